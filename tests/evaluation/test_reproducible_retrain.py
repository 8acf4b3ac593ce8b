"""Every Prod2Vec fit of a build — the model's own, ``tune``'s validation splits,
``evaluate``'s training part — runs on one thread up to ``REPRODUCIBLE_MAX_CLICKS`` clicks
unless a thread count was given: gensim is not reproducible on several threads, two runs of the
same build tuned different weights, and the lists a build served moved between builds."""

from __future__ import annotations

import logging

import numpy as np

import prodfusion.encoders as encoders
from prodfusion.encoders import clicks as clicks_mod
from prodfusion.encoders.clicks import Prod2VecParams
from prodfusion.evaluation.split import heldout_recommender
from prodfusion.recommender import Recommender
from tests.evaluation.test_tuning import KW, _shop


def _spy(monkeypatch):
    seen: list = []
    real = encoders.Prod2Vec

    def spy(**kw):
        seen.append(kw.get("workers"))
        return real(**kw)

    monkeypatch.setattr(encoders, "Prod2Vec", spy)
    return seen


def test_retraining_uses_one_thread_unless_told_or_large(monkeypatch):
    rec, sessions, _ = _shop()
    seen = _spy(monkeypatch)
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, min_count=1)  # workers not given
    heldout_recommender(rec, sessions)
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, min_count=1, workers=2)
    heldout_recommender(rec, sessions)
    assert seen == [1, 2]
    monkeypatch.setattr(clicks_mod, "REPRODUCIBLE_MAX_CLICKS", sessions.n_clicks - 1)
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, min_count=1)
    heldout_recommender(rec, sessions)
    assert seen[-1] is None  # larger than the limit: every core, as gensim's default


def test_tuning_retrains_on_one_thread_and_says_so(monkeypatch):
    rec, sessions, _ = _shop()
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, min_count=1)
    seen = _spy(monkeypatch)
    lines: list[str] = []
    first = rec.tune(sessions, **KW, progress=lines.append)
    assert seen and set(seen) == {1}
    assert any("retraining Prod2Vec on the fitting part" in x and "one thread" in x
               for x in lines), lines
    again = rec.tune(sessions, **KW)
    assert (again["weights"], again["validation_score"]) == (first["weights"],
                                                             first["validation_score"])


def test_a_build_trains_its_click_vectors_on_one_thread_and_twice_gives_the_same(
        monkeypatch, caplog):
    rec, sessions, _ = _shop()
    seen = _spy(monkeypatch)
    params = Prod2VecParams(vector_size=8, epochs=2, min_count=1)  # workers not given

    def build():
        return Recommender(text=None, image=None, prod2vec=params, fusion="intermediate",
                           progress=False).build(rec.catalog, sessions)

    with caplog.at_level(logging.INFO, logger="prodfusion"):
        first, again = build(), build()
    assert seen == [1, 1]
    assert first.embeddings_["clicks"].info["workers"] == 1
    np.testing.assert_array_equal(first.embeddings_["clicks"].vectors,
                                  again.embeddings_["clicks"].vectors)
    assert any("one thread, reproducible" in r.getMessage() for r in caplog.records)
    for a, b in zip(first.similar(rec.catalog.ids[0], k=10),
                    again.similar(rec.catalog.ids[0], k=10), strict=True):
        np.testing.assert_array_equal(a, b)  # the same list, the same scores
    # a thread count given is kept; above the limit every core trains (gensim's speed)
    Recommender(text=None, image=None, prod2vec=Prod2VecParams(vector_size=8, epochs=1,
                                                               workers=2),
                progress=False).build(rec.catalog, sessions)
    monkeypatch.setattr(clicks_mod, "REPRODUCIBLE_MAX_CLICKS", sessions.n_clicks - 1)
    build()
    assert seen[2:] == [2, None]
