"""Pivoted word lists and word-by-word pseudo-translation (hand-made lexicons)."""

from __future__ import annotations

import random

import pytest

from prodfusion.training.lexicon import (
    lexicon_from_pairs,
    merge_lexicons,
    normalize_phrase,
    phrase_bags,
    pivot,
    word_by_word,
)


def test_scores_follow_the_listed_order_and_add_up():
    lex = lexicon_from_pairs([("Bike", ["bisiklet", "motosiklet"]), ("bike", ["motosiklet"]),
                              ("odd", ["(k", "tek"])])
    assert lex["bike"] == [("motosiklet", 1.5), ("bisiklet", 1.0)]  # 1/2 + 1 beats 1
    assert lex["odd"] == [("tek", 0.5)]  # a label remnant is skipped, rank is kept
    rev = lexicon_from_pairs([("bisiklet", ["bike", "bicycle"])], reverse=True)
    assert rev == {"bike": [("bisiklet", 1.0)], "bicycle": [("bisiklet", 0.5)]}


def test_normalize_drops_valency_placeholders():
    assert normalize_phrase("etw. Überholen") == "überholen"
    assert normalize_phrase("sich etw.  leisten") == "leisten"


def test_pivot_shares_scores_through_the_middle_language():
    en_de = lexicon_from_pairs([("black", ["schwarz", "dunkel"]), ("cat", ["Katze"])])
    de_tr = lexicon_from_pairs([("schwarz", ["siyah", "kara"]), ("dunkel", ["karanlık", "kara"])])
    got = dict(pivot(en_de, de_tr)["black"])
    # schwarz (1) → siyah 1/1.5, kara 0.5/1.5; dunkel (1/2) → karanlık 1/1.5 · 1/2, kara 0.5/1.5 · 1/2
    assert got == pytest.approx({"siyah": 2 / 3, "kara": 1 / 3 + 1 / 6, "karanlık": 1 / 3})
    assert "cat" not in pivot(en_de, de_tr)  # Katze has no Turkish entry


def test_merge_weights_and_caps():
    a = {"red": [("kırmızı", 1.0)]}
    b = {"red": [("al", 1.0), ("kırmızı", 0.5)]}
    assert merge_lexicons(a, b, weights=[1, 2]) == {"red": [("al", 2.0), ("kırmızı", 2.0)]}
    assert merge_lexicons(a, b, max_candidates=1) == {"red": [("kırmızı", 1.5)]}
    with pytest.raises(ValueError, match="2 lexicons but 1 weights"):
        merge_lexicons(a, b, weights=[1])


def test_word_by_word_longest_match_drop_possessive_unknown():
    lex = {"mountain bike": [("dağ bisikleti", 1.0)], "bike": [("bisiklet", 1.0)],
           "black": [("siyah", 1.0)], "women": [("kadın", 1.0)]}
    rng = random.Random(0)
    assert word_by_word("The black mountain bike", lex, rng) == "siyah dağ bisikleti"
    assert word_by_word("women's bike by Velto", lex, rng) == "kadın bisiklet by Velto"
    assert word_by_word("women's bike by Velto", lex, rng, keep_unknown=False) == "kadın bisiklet"
    # 1 of 3 counted words covered, then 1 of 2 ("the" is dropped and not counted)
    assert word_by_word("the bike by Velto", lex, rng, min_translated=0.5) is None
    assert word_by_word("the bike Velto", lex, rng, min_translated=0.5) == "bisiklet Velto"
    assert word_by_word("the a an", lex, rng) is None


def test_word_by_word_draws_among_the_top_candidates_by_score():
    lex = {"red": [("kırmızı", 3.0), ("al", 1.0), ("kızıl", 1.0)]}
    rng = random.Random(1)
    draws = [word_by_word("red", lex, rng, top=2) for _ in range(2000)]
    assert set(draws) == {"kırmızı", "al"}  # kızıl is third: never drawn with top=2
    assert draws.count("kırmızı") / len(draws) == pytest.approx(0.75, abs=0.03)


def test_phrase_bags_translate_every_drawn_phrase():
    lex = {"red": [("kırmızı", 1.0)], "bike": [("bisiklet", 1.0)], "dress": [("elbise", 1.0)],
           "mountain bike": [("dağ bisikleti", 1.0)]}
    to_tr = {k: v[0][0] for k, v in lex.items()}
    bags = phrase_bags(lex, 200, random.Random(3), sizes=(2, 3))
    assert len(bags) == 200
    for src, tgt in bags:
        # rebuild the source's phrases greedily from the known keys and translate them
        rest, expect = src, []
        while rest:
            key = max((k for k in lex if rest == k or rest.startswith(k + " ")), key=len)
            expect.append(to_tr[key])
            rest = rest[len(key):].lstrip()
        assert tgt == " ".join(expect) and len(expect) in (2, 3)
    assert {len(s.split()) for s, _ in bags} >= {2, 3, 4}  # "mountain bike" drawn sometimes
    with pytest.raises(ValueError, match="lexicon is empty"):
        phrase_bags({}, 1, random.Random(0))


def test_module_docstring_example_runs():
    import doctest

    import prodfusion.training.lexicon as mod

    result = doctest.testmod(mod)
    assert result.attempted >= 4 and result.failed == 0
