"""Bilingual word lists → pseudo-parallel sentences, for distilling into languages that have
no parallel sentences at hand.

Knowledge distillation needs ``(source, translation)`` sentence pairs. For many language pairs
only word lists exist offline (FreeDict has English→Turkish glosses and German→Turkish words,
but English→Turkish example sentences nowhere). Two steps turn them into training data:

* :func:`pivot` joins two word lists through a middle language (English→German ∘
  German→Turkish = English→Turkish), scoring each candidate by how many middle words lead to
  it; :func:`merge_lexicons` adds direct lists to it.
* :func:`word_by_word` renders a source sentence in the target language one word (or
  phrase, longest match first, up to ``max_ngram`` words) at a time. Word order and
  morphology stay English, which a *static* student — the mean of its token vectors — cannot
  see anyway: for it a bag of correctly translated words is the translation.

A :class:`Lexicon` maps a lower-cased source phrase to target candidates with scores, best
first. Nothing here reads a dictionary format: :func:`prodfusion.data.dictd.dictd_translations`
reads FreeDict's, and ``benchmarks/distill_turkish.py`` wires them together.

Examples
--------
>>> en_de = lexicon_from_pairs([("black", ["schwarz"]), ("bike", ["Fahrrad", "Rad"])])
>>> de_tr = lexicon_from_pairs([("schwarz", ["siyah", "kara"]), ("Fahrrad", ["bisiklet"])])
>>> en_tr = pivot(en_de, de_tr)
>>> en_tr["bike"]
[('bisiklet', 1.0)]
>>> import random
>>> word_by_word("A black bike!", en_tr, random.Random(0), top=1)
'siyah bisiklet'
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Lexicon", "lexicon_from_pairs", "pivot", "merge_lexicons", "word_by_word", "phrase_bags",
           "normalize_phrase", "DROP_EN"]

#: ``{source phrase: [(target, score), …]}`` with the best candidate first.
Lexicon = dict[str, list[tuple[str, float]]]

#: English words that Turkish expresses by suffixes or not at all (articles, forms of "be",
#: "of", "to"): :func:`word_by_word` leaves them out instead of looking them up.
DROP_EN = frozenset({"a", "an", "the", "is", "are", "am", "was", "were", "be", "been",
                     "being", "of", "to"})

_CLEAN = re.compile(r"[^\W_]+(?:[ '’-]+[^\W_]+)*", re.UNICODE)
_POSSESSIVE = re.compile(r"(?:'s|’s|(?<=s)['’])$")
_TOKEN = re.compile(r"[^\W_]+(?:[-'’.][^\W_]+)*", re.UNICODE)
# Valency placeholders of FreeDict's German side ("etw. überholen", "sich etw. leisten").
_PLACEHOLDERS = frozenset({"etw.", "jdm.", "jdn.", "jds.", "sich", "sb.", "sth.", "sb", "sth"})


def normalize_phrase(text: str) -> str:
    """Lower-cased words without valency placeholders (``"etw. Überholen"`` → ``"überholen"``)."""
    return " ".join(w for w in text.lower().split() if w not in _PLACEHOLDERS).strip()


def _sorted(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def lexicon_from_pairs(pairs: Iterable[tuple[str, Sequence[str]]], *,
                       reverse: bool = False) -> Lexicon:
    """A :class:`Lexicon` from ``(headword, [translations in preference order])`` pairs.

    The k-th translation of a headword scores ``1 / k``; a headword listed twice adds up.
    ``reverse=True`` reads the pairs the other way (translation → headword), for a list in
    the opposite direction (Turkish→English used as English→Turkish).
    """
    acc: dict[str, dict[str, float]] = {}
    for head, targets in pairs:
        for k, target in enumerate(targets, start=1):
            src, tgt = (target, head) if reverse else (head, target)
            key, value = normalize_phrase(src), " ".join(tgt.split())
            if key and value and _CLEAN.fullmatch(value):
                slot = acc.setdefault(key, {})
                slot[value] = slot.get(value, 0.0) + 1.0 / k
    return {k: _sorted(v) for k, v in acc.items()}


def pivot(ab: Lexicon, bc: Lexicon, *, max_candidates: int = 5) -> Lexicon:
    """A→C through B: each B candidate of an A phrase passes its score on to its C candidates,
    shared in proportion to their scores; at most ``max_candidates`` C candidates per phrase.
    """
    out: Lexicon = {}
    for a, bs in ab.items():
        scores: dict[str, float] = {}
        for b, s_ab in bs:
            cs = bc.get(normalize_phrase(b))
            if not cs:
                continue
            total = sum(s for _, s in cs)
            for c, s_bc in cs:
                scores[c] = scores.get(c, 0.0) + s_ab * s_bc / total
        if scores:
            out[a] = _sorted(scores)[:max_candidates]
    return out


def merge_lexicons(*lexicons: Lexicon, weights: Sequence[float] | None = None,
                   max_candidates: int = 5) -> Lexicon:
    """The weighted sum of several lexicons' scores (weights default to 1)."""
    weights = [1.0] * len(lexicons) if weights is None else list(weights)
    if len(weights) != len(lexicons):
        raise ValueError(f"merge_lexicons: {len(lexicons)} lexicons but {len(weights)} weights")
    acc: dict[str, dict[str, float]] = {}
    for lex, w in zip(lexicons, weights, strict=True):
        for key, cands in lex.items():
            slot = acc.setdefault(key, {})
            for c, s in cands:
                slot[c] = slot.get(c, 0.0) + w * s
    return {k: _sorted(v)[:max_candidates] for k, v in acc.items()}


def _pick(cands: list[tuple[str, float]], rng: random.Random, top: int) -> str:
    best = cands[:top]
    return rng.choices([c for c, _ in best], weights=[s for _, s in best])[0]


def word_by_word(sentence: str, lexicon: Lexicon, rng: random.Random, *, max_ngram: int = 3,
                 top: int = 3, keep_unknown: bool = True, drop: frozenset[str] = DROP_EN,
                 min_translated: float = 0.0) -> str | None:
    """``sentence`` rendered phrase by phrase through ``lexicon``.

    Words are matched lower-cased, longest phrase first (up to ``max_ngram`` words); a
    matched phrase becomes one of its ``top`` best candidates, drawn with probability
    proportional to its score; a single word not found is looked up again without a
    possessive ``'s`` / ``s'``. An unmatched word is kept as written (names, numbers,
    loanwords) when ``keep_unknown``, else left out. Words in ``drop`` are always left out
    and not counted. Returns ``None`` when the lexicon covered fewer than ``min_translated``
    of the counted words, or when nothing is left.
    """
    words = _TOKEN.findall(sentence)
    lower = [w.lower() for w in words]
    out: list[str] = []
    covered = counted = 0
    i = 0
    while i < len(words):
        if lower[i] in drop:
            i += 1
            continue
        for n in range(min(max_ngram, len(words) - i), 0, -1):
            cands = lexicon.get(" ".join(lower[i : i + n]))
            if cands:
                out.append(_pick(cands, rng, top))
                covered += n
                counted += n
                i += n
                break
        else:
            cands = lexicon.get(_POSSESSIVE.sub("", lower[i]))
            if cands:
                out.append(_pick(cands, rng, top))
                covered += 1
            elif keep_unknown:
                out.append(words[i])
            counted += 1
            i += 1
    if not out or covered < min_translated * counted:
        return None
    return " ".join(out)


def phrase_bags(lexicon: Lexicon, n: int, rng: random.Random, *, sizes: Sequence[int] = (2, 3, 4, 5),
                top: int = 3, keys: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``n`` pseudo-parallel pairs made of random lexicon entries: a source of ``k`` phrases
    (``k`` drawn from ``sizes``) joined by spaces, and the same phrases translated.

    Title-like strings (short bags of nouns and adjectives) that cover the whole lexicon,
    not just the words that happen to occur in example sentences. ``keys`` restricts the
    phrases drawn from (default: every source phrase, sorted, drawn uniformly).
    """
    pool = sorted(lexicon) if keys is None else list(keys)
    if not pool:
        raise ValueError("phrase_bags: the lexicon is empty")
    out = []
    for _ in range(n):
        picked = rng.sample(pool, min(rng.choice(list(sizes)), len(pool)))
        out.append((" ".join(picked), " ".join(_pick(lexicon[k], rng, top) for k in picked)))
    return out
