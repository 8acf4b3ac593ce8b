"""A graded, bilingual (English / Turkish) product-title similarity set — SYNTHETIC.

No multilingual semantic-textual-similarity (STS) set of product titles ships offline, so
this one is generated from the demo shop's templates (:mod:`prodfusion.data.synthetic`): a
product is a tuple of attributes (category, product noun, colour, material/feature
adjective, audience), rendered word for word in English or Turkish. The gold score of two
products (0–5, like STS benchmarks) comes from their attribute overlap:

* different categories: 0.5 when they share a colour, else 0;
* same category: 1 + 1.5 (same noun) + 1 (same colour) + 1 (same adjective) + 0.5 (same
  audience), so identical attributes score 5.

Every attribute pair is rendered three ways — English/English, Turkish/Turkish and
English/Turkish (``subset`` column ``en-en``, ``tr-tr``, ``en-tr``) — so same-language and
cross-language scores are measured on the same product pairs. In ``en-tr`` a score-5 pair
is a translation. The templates are simple and the scores are a rule, not human judgement:
use it to compare encoders with each other, never as an absolute quality figure.

Examples
--------
>>> rows = make_bilingual_sts(4, seed=1)
>>> sorted({r["subset"] for r in rows}), len(rows)
(['en-en', 'en-tr', 'tr-tr'], 12)
>>> en, tr = bilingual_titles(2, seed=0)
>>> len(en) == len(tr) == 2
True
>>> pairs = bilingual_pairs(exclude=en + tr)   # parallel titles for training, test excluded
>>> len(pairs) == len(all_products()) - 2, set(en) & {e for e, _ in pairs}
(True, set())
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from prodfusion._checks import check_int
from prodfusion.data.synthetic_items import _COLOURS_EN, _COLOURS_TR, CATEGORIES
from prodfusion.errors import param_error

__all__ = ["make_bilingual_sts", "write_bilingual_sts", "bilingual_titles", "sts_score",
           "Product", "render", "all_products", "bilingual_pairs"]

SUBSETS = ("en-en", "tr-tr", "en-tr")


class Product(NamedTuple):
    """Attribute indices into a category's word lists (``colour``/``audience`` -1 = none)."""

    category: int
    noun: int
    colour: int
    adjective: int
    audience: int


def render(p: Product, lang: str) -> str:
    """The title of ``p`` in ``"en"`` or ``"tr"`` (colour, adjective, audience, noun)."""
    cat = CATEGORIES[p.category]
    if lang == "en":
        nouns, adjs, aud, colours = cat.en_nouns, cat.en_adjs, cat.en_for, _COLOURS_EN
    elif lang == "tr":
        nouns, adjs, aud, colours = cat.tr_nouns, cat.tr_adjs, cat.tr_for, _COLOURS_TR
    else:
        raise param_error("lang", "render()", "'en' or 'tr'", lang)
    words = [colours[p.colour] if p.colour >= 0 else "", adjs[p.adjective],
             aud[p.audience] if p.audience >= 0 else "", nouns[p.noun]]
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:]


def sts_score(a: Product, b: Product) -> float:
    """Gold similarity 0–5 from attribute overlap (see the module docstring)."""
    same_colour = a.colour == b.colour and a.colour >= 0
    if a.category != b.category:
        return 0.5 if same_colour else 0.0
    return (1.0 + 1.5 * (a.noun == b.noun) + 1.0 * (a.colour == b.colour)
            + 1.0 * (a.adjective == b.adjective) + 0.5 * (a.audience == b.audience))


def _random_product(rng: np.random.Generator, category: int | None = None) -> Product:
    c = int(rng.integers(len(CATEGORIES))) if category is None else category
    cat = CATEGORIES[c]
    aud = int(rng.integers(len(cat.en_for)))
    if cat.en_for[aud] == "":
        aud = -1
    colour = int(rng.integers(len(_COLOURS_EN))) if rng.random() < 0.85 else -1
    return Product(c, int(rng.integers(len(cat.en_nouns))), colour,
                   int(rng.integers(len(cat.en_adjs))), aud)


def _mutate(p: Product, n_changes: int, rng: np.random.Generator) -> Product:
    fields = ["noun", "colour", "adjective", "audience"]
    q = p
    for name in rng.permutation(fields)[:n_changes]:
        other = _random_product(rng, p.category)
        q = q._replace(**{name: getattr(other, name)})
    return q


def make_bilingual_sts(n_pairs: int = 600, *, seed: int = 0) -> list[dict]:
    """``3 × n_pairs`` rows ``{sentence1, sentence2, score, subset}`` (score 0–5).

    Partners are drawn so that every score level occurs: identical attributes, 1–4
    attributes changed within the category, another category.
    """
    n_pairs = check_int(n_pairs, "n_pairs", "make_bilingual_sts()", low=1)
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_pairs):
        a = _random_product(rng)
        kind = int(rng.integers(6))  # 0 identical, 1-4 changes, 5 other category
        b = _random_product(rng) if kind == 5 else _mutate(a, kind, rng)
        pairs.append((a, b))
    rows = []
    for subset in SUBSETS:
        l1, l2 = subset.split("-")
        rows += [{"sentence1": render(a, l1), "sentence2": render(b, l2),
                  "score": sts_score(a, b), "subset": subset} for a, b in pairs]
    return rows


def write_bilingual_sts(path: str | os.PathLike, n_pairs: int = 600, *, seed: int = 0) -> Path:
    """Write :func:`make_bilingual_sts` as a CSV (``sentence1,sentence2,score,subset``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["sentence1", "sentence2", "score", "subset"])
        w.writeheader()
        w.writerows(make_bilingual_sts(n_pairs, seed=seed))
    return path


def bilingual_titles(n: int, *, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` distinct products as ``(english_titles, turkish_titles)``, row i the same product."""
    n = check_int(n, "n", "bilingual_titles()", low=1)
    rng = np.random.default_rng(seed)
    seen: dict[str, str] = {}
    for _ in range(50 * n):
        if len(seen) >= n:
            break
        p = _random_product(rng)
        seen.setdefault(render(p, "en"), render(p, "tr"))
    en = list(seen)[:n]
    return en, [seen[e] for e in en]


def all_products() -> list[Product]:
    """Every product the templates can render, in a fixed order (5,512 of them).

    Colour -1 (no colour) is included; a category whose audiences include ``""`` gets
    audience -1 for it, as :func:`bilingual_titles` draws it.
    """
    out = []
    for c, cat in enumerate(CATEGORIES):
        audiences = sorted({-1 if a == "" else i for i, a in enumerate(cat.en_for)})
        for noun, colour, adj, aud in itertools.product(
                range(len(cat.en_nouns)), range(-1, len(_COLOURS_EN)),
                range(len(cat.en_adjs)), audiences):
            out.append(Product(c, noun, colour, adj, aud))
    return out


def bilingual_pairs(products: Iterable[Product] | None = None, *, exclude: Iterable[str] = (),
                    seed: int | None = 0) -> list[tuple[str, str]]:
    """``(english, turkish)`` titles of ``products`` (default :func:`all_products`) — parallel
    data for distillation from the templates a test catalog is made of.

    A pair is dropped when its English **or** its Turkish title occurs in ``exclude``
    (compared case-insensitively), e.g. ``exclude=en + tr`` of a ``bilingual_titles``
    test catalog, so that no test title is ever a training sentence. The pairs are
    shuffled with ``seed`` (``None``: in the order given); a product listed twice gives one pair.
    """
    banned = {t.casefold() for t in exclude}
    seen: set[tuple[str, str]] = set()
    pairs = []
    for p in all_products() if products is None else products:
        pair = (render(p, "en"), render(p, "tr"))
        if pair in seen or pair[0].casefold() in banned or pair[1].casefold() in banned:
            continue
        seen.add(pair)
        pairs.append(pair)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(pairs))
        pairs = [pairs[i] for i in order]
    return pairs
