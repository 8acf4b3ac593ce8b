"""Parallel sentences (source, translation) for knowledge distillation.

:func:`read_parallel` reads one or more files of ``source<TAB>translation`` lines (``.tsv``,
``.tsv.gz``, ``.txt``), or CSV / Parquet files with two named columns, into one
:class:`ParallelData`. Each file is one language pair (named by ``languages=`` or guessed
from the file name, e.g. ``TED2020-en-de.tsv.gz`` → ``"en-de"``) unless a language column
says so per row. As in Reimers & Gurevych (2020), pairs with a side longer than
``max_sentence_length`` characters are dropped, and at most ``max_sentences_per_language``
pairs are kept per language (the first ones, in file order); both are counted.

Bad input fails with a :class:`~prodfusion.errors.DataError` naming the file and the line
(1-based, header included for CSV): a blank line, a line without a tab, a line with more
than one tab, an empty side, bytes that are not UTF-8. Nothing is silently skipped.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "shop-en-tr.tsv"
>>> _ = p.write_text("red dress\\tkırmızı elbise\\nblack bike\\tsiyah bisiklet\\n", encoding="utf-8")
>>> data = read_parallel([p])
>>> len(data), data.targets[1], data.languages[0]
(2, 'siyah bisiklet', 'en-tr')
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prodfusion._checks import check_int
from prodfusion.errors import DataError, param_error

__all__ = ["ParallelData", "read_parallel", "TSV_SUFFIXES", "TABLE_SUFFIXES"]

TSV_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")

# An "xx-yy" / "xx_yy" language pair between separators; overlapping matches are all found
# (a lookahead) and the last one wins: "toy-en-de" is en-de, not toy-en.
_PAIR_IN_NAME = re.compile(r"(?=(?:^|[-_.])([a-z]{2,3})[-_]([a-z]{2,3})(?:$|[-_.]))")


@dataclass
class ParallelData:
    """Parallel sentences: ``sources[i]`` translates to ``targets[i]`` in ``languages[i]``.

    ``files`` holds one dict per input file: path, SHA-256 of its bytes, rows read, pairs
    kept, pairs dropped as too long or over the per-language cap.
    """

    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sources)

    def language_counts(self) -> dict[str, int]:
        """Pairs kept per language, most frequent first."""
        return dict(Counter(self.languages).most_common())

    def subset(self, rows: Sequence[int]) -> ParallelData:
        """The pairs at ``rows`` (file records are kept as they are)."""
        return ParallelData([self.sources[i] for i in rows], [self.targets[i] for i in rows],
                            [self.languages[i] for i in rows], list(self.files))

    def split(self, n_dev: int, *, seed: int = 0) -> tuple[ParallelData, ParallelData]:
        """``(train, dev)``: ``n_dev`` pairs drawn at random (by distinct source sentence,
        so one English sentence never sits on both sides), the rest for training."""
        import numpy as np

        if not 0 <= n_dev < len(self):
            raise param_error("n_dev", "ParallelData.split()", f"an int in [0, {len(self) - 1}]",
                              n_dev)
        unique = list(dict.fromkeys(self.sources))
        order = np.random.default_rng(seed).permutation(len(unique))
        dev_sources: set[str] = set()
        n = 0
        counts = Counter(self.sources)
        for i in order:
            if n >= n_dev:
                break
            dev_sources.add(unique[i])
            n += counts[unique[i]]
        dev = [i for i, s in enumerate(self.sources) if s in dev_sources]
        train = [i for i, s in enumerate(self.sources) if s not in dev_sources]
        return self.subset(train), self.subset(dev)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in TSV_SUFFIXES + TABLE_SUFFIXES:
        if name.endswith(s):
            return s
    return path.suffix.lower()


def _language_of(path: Path, languages: Mapping[str, str] | str | None) -> str:
    if isinstance(languages, str):
        return languages
    if languages:
        for key in (str(path), path.name):
            if key in languages:
                return languages[key]
    name = path.name
    for s in TSV_SUFFIXES + TABLE_SUFFIXES:
        if name.lower().endswith(s):
            name = name[: -len(s)]
            break
    else:
        name = path.stem
    found = _PAIR_IN_NAME.findall(name.lower())
    if found:
        return "-".join(found[-1])
    return name


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{path} line {line}: byte {raw[exc.start:exc.start + 1]!r} at column {col} is not "
            "UTF-8; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
        ) from None


def _read_bytes(path: Path) -> tuple[bytes, str]:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc}).") from None
    return raw, digest


def _tsv_rows(path: Path, text: str):
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    for i, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            raise DataError(f"{path} line {i}: blank line; every line must be "
                            "'source<TAB>translation' (remove blank lines).")
        parts = line.split("\t")
        if len(parts) == 1:
            raise DataError(f"{path} line {i}: no tab; expected 'source<TAB>translation', "
                            f"got {line[:80]!r}.")
        if len(parts) > 2:
            raise DataError(f"{path} line {i}: {len(parts) - 1} tabs; expected exactly one "
                            "('source<TAB>translation').")
        yield i, parts[0], parts[1], None


def _table_rows(path: Path, suffix: str, raw: bytes, source_col: str, target_col: str,
                language_col: str | None):
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(raw))
        except Exception as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc}).") from None
        columns = table.column_names
        _check_columns(path, columns, source_col, target_col, language_col)
        cols = [table.column(c).to_pylist() for c in (source_col, target_col)]
        langs = table.column(language_col).to_pylist() if language_col else None
        for r, (s, t) in enumerate(zip(*cols, strict=True)):
            # Parquet has no lines: row r is reported as "row r+1".
            yield f"row {r + 1}", s, t, (langs[r] if langs else None)
        return
    text = _decode(path, raw)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file (expected a header with columns "
                        f"{source_col!r}, {target_col!r}).") from None
    _check_columns(path, header, source_col, target_col, language_col)
    si, ti = header.index(source_col), header.index(target_col)
    li = header.index(language_col) if language_col else None
    for row in reader:
        where = f"line {reader.line_num}"
        if not row or not any(c.strip() for c in row):
            raise DataError(f"{path} {where}: blank line; remove it.")
        if len(row) != len(header):
            raise DataError(f"{path} {where}: {len(row)} fields, the header has {len(header)}.")
        yield where, row[si], row[ti], (row[li] if li is not None else None)


def _check_columns(path, columns, source_col, target_col, language_col) -> None:
    for opt, col in (("source_col", source_col), ("target_col", target_col),
                     ("language_col", language_col)):
        if col is not None and col not in columns:
            raise DataError(f"{path}: no column {col!r} ({opt}); the file has {list(columns)}.")


def read_parallel(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    source_col: str = "source",
    target_col: str = "target",
    language_col: str | None = None,
    languages: Mapping[str, str] | str | None = None,
    max_sentence_length: int | None = 250,
    max_sentences_per_language: int | None = None,
) -> ParallelData:
    """Read parallel-sentence files into one :class:`ParallelData`.

    Parameters
    ----------
    paths : path or sequence of paths
        ``.tsv`` / ``.tsv.gz`` / ``.txt`` files of ``source<TAB>translation`` lines (no
        header), or ``.csv`` / ``.csv.gz`` / ``.parquet`` files with a header.
    source_col, target_col : str
        Columns of CSV / Parquet files (default ``source``, ``target``).
    language_col : str, optional
        CSV / Parquet column naming each row's language (pair); otherwise one per file.
    languages : str or dict, optional
        One language label for every file, or ``{path or file name: label}``; by default
        the ``xx-yy`` pair in the file name, else the file name without its suffix.
    max_sentence_length : int or None
        Drop pairs with either side longer than this many characters (default 250, as in
        the method); None keeps everything.
    max_sentences_per_language : int or None
        Keep at most this many pairs per language, the first ones read.

    Raises
    ------
    DataError
        A missing or unreadable file, a blank line, a missing tab, an empty side, non-UTF-8
        bytes, a missing column — naming the file and the line.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise param_error("paths", "read_parallel()", "one or more files", [])
    for name, v in (("max_sentence_length", max_sentence_length),
                    ("max_sentences_per_language", max_sentences_per_language)):
        check_int(v, name, "read_parallel()", low=1, none=True, expected="an int >= 1 or None")
    out = ParallelData()
    per_language: Counter[str] = Counter()
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: parallel-data file does not exist.")
        suffix = _suffix(path)
        if suffix not in TSV_SUFFIXES + TABLE_SUFFIXES:
            raise DataError(f"{path}: unknown parallel-data format {suffix!r}; use one of "
                            f"{', '.join(TSV_SUFFIXES + TABLE_SUFFIXES)}.")
        raw, digest = _read_bytes(path)
        default_lang = _language_of(path, languages)
        if suffix in TSV_SUFFIXES:
            if language_col:
                raise DataError(f"{path}: language_col={language_col!r} needs a CSV or Parquet "
                                "file; a TSV file is one language pair (use languages=).")
            rows = _tsv_rows(path, _decode(path, raw))
        else:
            rows = _table_rows(path, suffix, raw, source_col, target_col, language_col)
        n_rows = kept = too_long = capped = 0
        for where, src, tgt, lang in rows:
            n_rows += 1
            where = where if isinstance(where, str) else f"line {where}"
            for side, value in (("source", src), ("translation", tgt)):
                if not isinstance(value, str) or not value.strip():
                    raise DataError(f"{path} {where}: empty {side} ({value!r}); every pair "
                                    "needs both sentences.")
            if language_col and (not isinstance(lang, str) or not lang.strip()):
                raise DataError(f"{path} {where}: empty language (column {language_col!r}).")
            lang = lang.strip() if lang else default_lang
            src, tgt = src.strip(), tgt.strip()
            if max_sentence_length and max(len(src), len(tgt)) > max_sentence_length:
                too_long += 1
                continue
            if max_sentences_per_language and per_language[lang] >= max_sentences_per_language:
                capped += 1
                continue
            per_language[lang] += 1
            out.sources.append(src)
            out.targets.append(tgt)
            out.languages.append(lang)
            kept += 1
        if n_rows == 0:
            raise DataError(f"{path}: no sentence pairs in the file.")
        out.files.append({"path": str(path), "sha256": digest, "rows": n_rows, "kept": kept,
                          "dropped_too_long": too_long, "dropped_over_cap": capped,
                          "language": default_lang if not language_col else None})
    return out
