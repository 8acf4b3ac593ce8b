"""Parallel title pairs from the demo templates, with a test catalog excluded."""

from __future__ import annotations

import itertools

import pytest

from prodfusion.data.synthetic import _COLOURS_EN, CATEGORIES
from prodfusion.data.synthetic_sts import (
    Product,
    all_products,
    bilingual_pairs,
    bilingual_titles,
    render,
)


def test_all_products_is_every_attribute_combination_once():
    got = all_products()
    assert len(got) == len(set(got))
    # Hand count: nouns x (colours + none) x adjectives x audiences ("" counts once, as -1).
    expected = sum(len(c.en_nouns) * (len(_COLOURS_EN) + 1) * len(c.en_adjs) * len(set(c.en_for))
                   for c in CATEGORIES)
    assert len(got) == expected
    assert Product(0, 0, -1, 0, 0) in got  # no colour is a product too


def test_pairs_exclude_every_title_of_the_test_catalog():
    en, tr = bilingual_titles(300, seed=2)
    pairs = bilingual_pairs(exclude=en + tr, seed=0)
    banned = {t.casefold() for t in en + tr}
    assert pairs and not any(e.casefold() in banned or t.casefold() in banned for e, t in pairs)
    # Nothing else is lost: every product whose titles are not banned is there, once.
    kept = [(render(p, "en"), render(p, "tr")) for p in all_products()]
    kept = {(e, t) for e, t in kept if e.casefold() not in banned and t.casefold() not in banned}
    assert set(pairs) == kept and len(pairs) == len(kept)


def test_exclusion_is_case_insensitive_and_applies_to_either_language():
    p, q = Product(1, 0, 1, 0, 0), Product(1, 1, 2, 1, 1)
    en_p, tr_q = render(p, "en"), render(q, "tr")
    pairs = bilingual_pairs([p, q, Product(2, 0, 0, 0, 0)], exclude=[en_p.upper(), tr_q.lower()])
    assert pairs == [(render(Product(2, 0, 0, 0, 0), "en"), render(Product(2, 0, 0, 0, 0), "tr"))]


def test_products_filter_holds_out_categories_and_seed_only_reorders():
    held = {0, 3}
    products = [p for p in all_products() if p.category not in held]
    pairs = bilingual_pairs(products, seed=1)
    held_titles = {render(p, "en") for p in all_products() if p.category in held}
    assert len(pairs) == len(products) and not {e for e, _ in pairs} & held_titles
    assert sorted(pairs) == sorted(bilingual_pairs(products, seed=None))
    assert pairs != bilingual_pairs(products, seed=None)
    assert bilingual_pairs([products[0], products[0]], seed=None) == [
        (render(products[0], "en"), render(products[0], "tr"))]


@pytest.mark.parametrize("lang", ["en", "tr"])
def test_rendered_titles_are_distinct_per_product(lang):
    titles = [render(p, lang).casefold() for p in itertools.islice(all_products(), None)]
    assert len(set(titles)) == len(titles)
