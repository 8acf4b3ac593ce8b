"""``explain``: each modality's share of the fused score, summing to the score."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prodfusion.recommender import Recommender
from tests.index.conftest import make_planted

SETTINGS = [
    dict(),
    dict(weights={"text": 1.0, "image": 0.5, "clicks": 2.0}),
    dict(weights={"text": 1.0, "image": 0.25, "clicks": 1.0}, calibration="zscore", click_n0=5.0),
    # clicks count only for queries seen at least 15 times (about half of them)
    dict(weights={"text": 1.0, "image": 0.25, "clicks": 1.0}, calibration="zmean", click_n0=15.0,
         click_confidence="min"),
]


@pytest.mark.parametrize("spec", range(len(SETTINGS)))
@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_shares_sum_to_the_fused_score(rng, method, spec):
    catalog, embs, _, _ = make_planted(rng, n=150)
    rec = Recommender.from_embeddings(catalog, embs, fusion=method)
    for key, value in SETTINGS[spec].items():
        setattr(rec, key, value)
    rec.click_counts_ = rng.integers(0, 30, len(catalog))
    for pid in catalog.ids[:12]:
        ids, scores, why = rec.similar(pid, k=8, explain=True)
        assert [e["product_id"] for e in why] == ids.tolist()
        for s, e in zip(scores, why, strict=True):
            total = e["base"] + sum(v["share"] for v in e["modalities"].values())
            assert total == pytest.approx(float(s), abs=1e-4)
            assert e["score"] == pytest.approx(float(s), abs=1e-4)
            q, j = catalog.row_of(pid), catalog.row_of(e["product_id"])
            for m, v in e["modalities"].items():
                both = bool(embs[m].mask[q] and embs[m].mask[j])
                assert (v["raw"] is None) == (not both)  # null where one lacks the modality
                if not both:
                    assert v["share"] == pytest.approx(0.0) or method == "late"
                else:
                    a, b = embs[m].vectors[q], embs[m].vectors[j]
                    cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
                    assert v["raw"] == pytest.approx(cos, abs=1e-5)


def test_cli_similar_explain_and_weights(tmp_path, rng, capsys):
    from prodfusion.cli import main

    catalog, embs, _, _ = make_planted(rng, n=100)
    path = Recommender.from_embeddings(catalog, embs, fusion="intermediate").save(tmp_path / "m")
    pid = catalog.ids[3]
    assert main(["similar", str(path), pid, "-k", "3", "--explain", "--json",
                 "--weights", "text=1,image=0,clicks=1"]) == 0
    out = json.loads(capsys.readouterr().out)
    first = out["results"][0]
    assert first["explain"]["modalities"]["image"]["weight"] == 0.0
    shares = sum(v["share"] for v in first["explain"]["modalities"].values())
    assert shares == pytest.approx(first["score"], abs=1e-4)
    assert main(["similar", str(path), pid, "-k", "3", "--explain"]) == 0
    assert "why (per modality" in capsys.readouterr().out
    assert main(["similar", str(path), pid, "--weights", "text=1,taste=2"]) == 2
    assert "--weights: unknown modality 'taste'" in capsys.readouterr().err
    assert main(["similar", str(path), pid, "--weights", "text=0"]) == 2
    assert "--weights: every weight is 0" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["early", "intermediate"])
def test_explain_on_an_indexed_model_fits_no_fuser(rng, method, monkeypatch):
    """A fitted fuser copies every row's fused vectors (9 GB at 1M products): explaining the
    top-k of an approximate search must read only the rows involved, and still match the
    fuser's scores."""
    import prodfusion.model_search as recommender  # where Recommender.fuser fits fusers
    from prodfusion.index import IndexSettings

    catalog, embs, _, _ = make_planted(rng, n=300)
    counts = rng.integers(0, 30, len(catalog))

    def model(**kw):
        rec = Recommender.from_embeddings(catalog, embs, fusion=method, **kw)
        rec.weights, rec.calibration, rec.click_n0 = (
            {"text": 1.0, "image": 0.5, "clicks": 2.0}, "zscore", 5.0)
        rec.click_counts_ = counts
        return rec

    exact = model().fuser()  # the oracle: another model's fuser, fitted before the spy
    rec = model(index="hnsw", index_settings=IndexSettings(exact_below=0))
    fitted = []
    real = recommender.make_fuser
    monkeypatch.setattr(recommender, "make_fuser",
                        lambda *a, **kw: fitted.append(a[0]) or real(*a, **kw))
    for pid in catalog.ids[:10]:
        ids, scores, why = rec.similar(pid, k=6, explain=True)
        q = catalog.row_of(pid)
        want = exact.similarity([q], catalog.rows_of(ids))[0]
        np.testing.assert_allclose([e["score"] for e in why], want, atol=1e-4)
        np.testing.assert_allclose(scores, want, atol=1e-4)
    assert fitted == []
