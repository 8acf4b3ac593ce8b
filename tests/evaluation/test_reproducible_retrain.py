"""Held-out Prod2Vec retraining (``tune``'s validation splits, ``evaluate``'s training part) runs
on one thread up to ``REPRODUCIBLE_MAX_CLICKS`` clicks unless a thread count was given: gensim
is not reproducible on several threads, and two runs of the same build tuned different weights."""

from __future__ import annotations

import prodfusion.encoders as encoders
from prodfusion.encoders.clicks import Prod2VecParams
from prodfusion.evaluation import split as split_mod
from prodfusion.evaluation.split import heldout_recommender
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
    monkeypatch.setattr(split_mod, "REPRODUCIBLE_MAX_CLICKS", sessions.n_clicks - 1)
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
