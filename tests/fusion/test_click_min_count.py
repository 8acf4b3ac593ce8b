"""Click confidence ``"min"`` (``--n0 min:K``): a query seen fewer than K times in training is
ranked without its clicks; the candidates' side is left alone."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from prodfusion.cli.tune import _n0_list
from prodfusion.errors import ParameterError
from prodfusion.fusion.weighting import Weighting, parse_n0
from prodfusion.recommender import Recommender
from tests.index.conftest import make_planted

K = 10


def _model(rng, confidence, planted=None):
    catalog, embs, _, _ = planted or make_planted(rng, n=150)
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate")
    rec.weights = {"text": 0.01, "image": 0.0, "clicks": 1.0}  # clicks first, titles a tie-break
    rec.calibration = "zmean"
    rec.click_n0, rec.click_confidence = (5.0, confidence) if confidence else (None, "ratio")
    rec.click_counts_ = np.tile([0, 1, 4, 5, 30], 30)  # rows 0, 1, 2 (mod 5): seen < 5 times
    return rec, embs


def test_a_rarely_seen_query_is_ranked_without_its_clicks(rng):
    planted = make_planted(rng, n=150)
    rec, embs = _model(rng, "min", planted)
    plain, _ = _model(rng, None, planted)  # the same weights without click confidence
    ids = rec.catalog.ids
    checked = {"rare": 0, "frequent": 0}
    for q in range(60):
        if not (embs["clicks"].mask[q] and embs["text"].mask[q]):
            continue
        got, _ = rec.similar(ids[q], k=K)
        if rec.click_counts_[q] < 5:  # its clicks do not count: the titles rank it
            want, _ = plain.similar(ids[q], k=K, weights={"text": 1.0})
            checked["rare"] += 1
        else:  # its clicks count in full, whatever the candidates' counts
            want, _ = plain.similar(ids[q], k=K)
            checked["frequent"] += 1
        assert got.tolist() == want.tolist(), q
    assert min(checked.values()) >= 5
    # under the ratio form the candidates' counts would have mattered: not the same lists
    ratio, _ = _model(rng, "ratio", planted)
    assert any(ratio.similar(ids[q], k=K)[0].tolist() != plain.similar(ids[q], k=K)[0].tolist()
               for q in range(60) if rec.click_counts_[q] >= 5 and embs["clicks"].mask[q])


def test_the_form_is_kept_in_the_manifest_and_old_weightings_read_as_ratio(rng, tmp_path):
    rec, _ = _model(rng, "min")
    before, _ = rec.similar(rec.catalog.ids[1], k=K)
    rec.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert back.weighting().confidence == "min" and back.weighting().n0 == 5.0
    assert back.weighting().to_dict()["confidence"] == "min"
    after, _ = back.similar(rec.catalog.ids[1], k=K)
    assert after.tolist() == before.tolist()
    old = {k: v for k, v in back.weighting().to_dict().items() if k != "confidence"}
    assert Weighting.from_dict(old).confidence == "ratio"
    assert "confidence" not in Weighting.make({"text": 1.0}, n0=2.0).to_dict()


def test_tune_tries_min_counts_and_records_the_form(rng):
    from prodfusion.encoders import Prod2Vec
    from prodfusion.recommender import Prod2VecParams
    from tests.evaluation.test_tuning import KW, _shop

    shop, sessions, _ = _shop()
    p2v = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
    clicks = Prod2Vec(vector_size=8, epochs=2, workers=1, min_count=1).fit(sessions).encode(
        shop.catalog)
    rec = Recommender.from_embeddings(shop.catalog, {**shop.embeddings_, "clicks": clicks},
                                      fusion="intermediate")
    rec.prod2vec = p2v
    lines: list[str] = []
    res = rec.tune(sessions, **{**KW, "n0_grid": (None, "min:2")}, progress=lines.append)
    assert res["search"]["n0_grid"] == [None, "min:2"]
    # the grid runs over the other n0; "min:2" is tried at the weights found, then refined
    assert any("× 1 n0 over" in x and "then 1 min-count n0 at the weights found" in x
               for x in lines), lines
    if res["n0"] is not None:
        assert res["n0"] == 2.0 and res["confidence"] == "min"
        assert rec.weighting().confidence == "min"
    else:
        assert "confidence" not in res and rec.weighting().confidence == "ratio"
    with pytest.raises(ParameterError, match="'n0' parameter"):
        rec.tune(sessions, **{**KW, "n0_grid": ("min:x",)})


def test_the_default_grid_tries_min_counts_after_the_ratio_entries(rng):
    """Since the twenty-fourth session ``tune`` and ``prodfusion tune`` try ``min:2`` and
    ``min:5`` unless told otherwise (at the weights the ratio entries find)."""
    from prodfusion.cli.main import build_parser
    from prodfusion.encoders import Prod2Vec
    from prodfusion.fusion.weighting import DEFAULT_N0_GRID
    from tests.evaluation.test_tuning import KW, _shop

    assert [x for x in DEFAULT_N0_GRID if isinstance(x, str)] == ["min:2", "min:5"]
    args = build_parser().parse_args(["tune", "m", "--interactions", "s.csv"])
    assert args.n0 == list(DEFAULT_N0_GRID)
    shop, sessions, _ = _shop()
    clicks = Prod2Vec(vector_size=8, epochs=2, workers=1, min_count=1).fit(sessions).encode(
        shop.catalog)
    rec = Recommender.from_embeddings(shop.catalog, {**shop.embeddings_, "clicks": clicks},
                                      fusion="intermediate")
    rec.prod2vec = shop.prod2vec
    lines: list[str] = []
    kw = {k: v for k, v in KW.items() if k != "n0_grid"}
    res = rec.tune(sessions, **kw, progress=lines.append)
    assert res["search"]["n0_grid"] == [None, 2.0, 10.0, "min:2", "min:5"]
    assert any("× 3 n0 over" in x and "then 2 min-count n0 at the weights found" in x
               for x in lines), lines


def test_n0_settings_parse_and_bad_ones_name_the_option():
    assert _n0_list("none,2,10,min:5") == [None, 2.0, 10.0, "min:5"]
    assert parse_n0("min:5") == (5.0, "min") and parse_n0("off".replace("off", "none")) == (
        None, "ratio")
    for bad in ("min:0", "max:3", "min:", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="n0"):
            _n0_list(bad)
    with pytest.raises(ParameterError, match="'confidence' parameter"):
        Weighting.make({"text": 1.0}, confidence="hard")
