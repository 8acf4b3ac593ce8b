"""A small reader for dictd dictionaries (``NAME.index`` + ``NAME.dict`` or ``NAME.dict.dz``),
and the example sentences of FreeDict's bilingual dictionaries.

The ``.index`` file has one line per headword: ``headword<TAB>offset<TAB>length``, where
offset and length are byte positions in the uncompressed ``.dict`` data written in dictd's
base-64 digits (``A``–``Z``, ``a``–``z``, ``0``–``9``, ``+``, ``/``; most significant first).
A ``.dict.dz`` file is dictzip, which any gzip reader decompresses.

FreeDict's English → German dictionary (Debian package ``dict-freedict-eng-deu``, GPL/AGPL;
read it at run time, never copy it into this repository) marks usage examples inside the
entries as ``"English example"  - deutsches Beispiel`` lines; :func:`dictd_examples` collects
them, one pair per distinct English sentence.

Examples
--------
>>> pairs = dictd_examples("/usr/share/dictd/freedict-eng-deu")        # doctest: +SKIP
>>> len(pairs)                                                         # doctest: +SKIP
45637
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prodfusion.errors import DataError

__all__ = ["read_dictd", "dictd_examples", "dictd_glosses", "dictd_translations", "b64_number"]

_B64 = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_SENSE = re.compile(r"^\s*1\.\s+(?P<text>.+)$")
_TAG = re.compile(r"\([^)]*\)")
_EXAMPLE = re.compile(r'^\s+"(?P<src>.+)"\s+-\s+(?P<tgt>.+?)\s*$')
_NUMBERED = re.compile(r"^(?P<n>\d+)\.\s+(?P<text>.*)$")
# A sense that only points at another headword (eng-tur's "(bak.) burr." = "see burr").
_SEE_ALSO = ("(bak.)", "see:", "see ")
_LABELS = re.compile(r"\([^)]*\)|\[[^\]]*\]|<[^>]*>|\{[^}]*\}")


def b64_number(text: str) -> int:
    """dictd's base-64 number (``"B8"`` → 124)."""
    n = 0
    for ch in text:
        try:
            n = n * 64 + _B64[ch]
        except KeyError:
            raise ValueError(f"{text!r} is not a dictd base-64 number") from None
    return n


def _paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(prefix)
    for suffix in (".index", ".dict.dz", ".dict"):
        if p.name.endswith(suffix):
            p = p.with_name(p.name[: -len(suffix)])
    index = p.with_name(p.name + ".index")
    for data in (p.with_name(p.name + ".dict.dz"), p.with_name(p.name + ".dict")):
        if data.is_file():
            break
    if not index.is_file() or not data.is_file():
        raise DataError(f"{p}: no dictd dictionary there (need {index.name} and {p.name}.dict[.dz]); "
                        "for FreeDict English-German: apt-get install dict-freedict-eng-deu.")
    return index, data


def read_dictd(prefix: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """``(headword, entry text)`` for every index line, in index order."""
    index, data_path = _paths(prefix)
    raw = data_path.read_bytes()
    if data_path.name.endswith(".dz"):
        raw = gzip.decompress(raw)
    with open(index, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                raise DataError(f"{index} line {i}: expected headword<TAB>offset<TAB>length.")
            try:
                start, length = b64_number(parts[1]), b64_number(parts[2])
            except ValueError as exc:
                raise DataError(f"{index} line {i}: {exc}.") from None
            yield parts[0], raw[start : start + length].decode("utf-8", errors="replace")


def dictd_examples(prefix: str | os.PathLike, *, min_words: int = 3,
                   max_words: int = 20) -> list[tuple[str, str]]:
    """Example-sentence pairs ``(source, translation)`` of a FreeDict dictionary.

    One pair per distinct source sentence (its first translation), keeping sources of
    ``min_words``–``max_words`` whitespace-separated words; in order of first appearance.
    """
    seen: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    for head, body in read_dictd(prefix):
        key = (head, body[:64])
        if key in done:  # several headwords can point at one entry
            continue
        done.add(key)
        for line in body.split("\n"):
            m = _EXAMPLE.match(line)
            if m:
                src, tgt = m.group("src").strip(), m.group("tgt").strip()
                if src and tgt and min_words <= len(src.split()) <= max_words:
                    seen.setdefault(src, tgt)
    return list(seen.items())


def dictd_glosses(prefix: str | os.PathLike, *, max_words: int = 4) -> list[tuple[str, str]]:
    """``(headword, first gloss)`` pairs of a word-gloss dictionary such as FreeDict eng-tur.

    The gloss is the first comma- or semicolon-separated item of sense ``1.``, with
    parenthesised labels (``(tıb.)``) removed; pairs whose gloss is empty or longer than
    ``max_words`` words are skipped. One pair per headword, in index order.
    """
    out: dict[str, str] = {}
    for head, body in read_dictd(prefix):
        if head.startswith("00") or head in out:
            continue
        for line in body.split("\n")[1:]:
            m = _SENSE.match(line)
            if m:
                gloss = re.split(r"[,;]", _TAG.sub(" ", m.group("text")))[0]
                gloss = " ".join(gloss.split()).strip(" .")
                if gloss and len(gloss.split()) <= max_words:
                    out[head] = gloss
                break
    return list(out.items())


def _headword(first_line: str) -> str:
    """The headword as printed on an entry's first line (before the ``/ipa/`` part)."""
    return " ".join(first_line.split(" /", 1)[0].split())


def dictd_translations(prefix: str | os.PathLike, *, max_words: int = 3,
                       max_senses: int = 3) -> list[tuple[str, list[str]]]:
    """``(headword, translations)`` of a FreeDict word dictionary, in index order.

    An entry is its headword line (``word /ipa/ <tags>``) followed by translation lines,
    either one comma-separated line (``Fasern /.../\\ntel, lif``) or numbered senses
    (``1. diplomasi, diplomatlık\\n2. ...``). From each of the first ``max_senses`` lines,
    the text before the first ``". "`` (what follows is usage examples) is split on commas
    and semicolons; labels in ``()``, ``[]``, ``<>``, ``{}`` are removed; items of more than
    ``max_words`` words are dropped; a sense that only refers to another headword
    (``(bak.) burr``, ``see: …``) gives nothing. Indented lines (examples, synonyms, cross references)
    and ``00-database-*`` entries are skipped. The headword keeps its case as printed.
    """
    out: dict[str, list[str]] = {}
    for head, body in read_dictd(prefix):
        if head.startswith("00"):
            continue
        lines = body.split("\n")
        word = _headword(lines[0])
        if not word:
            continue
        found: list[str] = []
        senses = 0
        for line in lines[1:]:
            if not line.strip() or line[0].isspace() or senses >= max_senses:
                continue
            m = _NUMBERED.match(line)
            text = m.group("text") if m else line
            senses += 1
            if text.lstrip().startswith(_SEE_ALSO):
                continue
            text = _LABELS.sub(" ", text.split(". ")[0]).rstrip(" .")
            for item in re.split(r"[,;]", text):
                item = " ".join(item.split()).strip(" .")
                if item and len(item.split()) <= max_words and item not in found:
                    found.append(item)
        if found:
            have = out.setdefault(word, [])
            have += [t for t in found if t not in have]
    return list(out.items())
