"""Weighted and calibrated fusion against brute-force N×N loops, weight parsing, old folders."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.fusion.weights import Weighting, confidence, estimate_stats, parse_weights
from prodfusion.index import IndexSettings, cluster_auto, make_fused_index
from prodfusion.recommender import Recommender
from tests.index.conftest import assert_same_topk, make_planted

MODS = ("text", "image", "clicks")
SUBSETS = [c for r in (1, 2, 3) for c in itertools.combinations(MODS, r)]
ANN = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, nprobe=10_000, pq_m=4,
                    min_candidates=64)


def _small(seed=0, n=30):
    rng = np.random.default_rng(seed)
    embs = {}
    for m, d in (("text", 5), ("image", 7), ("clicks", 4)):
        v = rng.normal(size=(n, d)).astype(np.float32) * rng.uniform(0.1, 5.0, size=(n, 1))
        mask = rng.random(n) > 0.25
        embs[m] = Embeddings(v.astype(np.float32), mask, m)
    counts = rng.integers(0, 20, n)
    return embs, counts


def _oracle(embs, mods, wt: Weighting, method, conf=None, labels=None):
    """The formulas of prodfusion.fusion.weights, one pair at a time."""
    n = len(embs[mods[0]].mask)
    with np.errstate(invalid="ignore"):  # absent rows are zero vectors; never read below
        u = {m: embs[m].vectors / np.linalg.norm(embs[m].vectors, axis=1, keepdims=True)
             for m in mods}
    has = {m: embs[m].mask for m in mods}

    def pair_w(m, i, j):
        w = wt.w(m)
        if m == "clicks" and wt.n0 is not None:  # "min": the query's side only
            w *= conf[i] * (1.0 if wt.confidence == "min" else conf[j])
        return w

    def inter(i, j, w8):
        num = den = dq = 0.0
        for m in mods:
            if has[m][i]:  # zmean: D(q) = Σ over the query's modalities of w_m (· c(n_q))
                dq += w8.w(m) * (conf[i] if m == "clicks" and w8.n0 is not None else 1.0)
            if has[m][i] and has[m][j]:
                cos = float(u[m][i] @ u[m][j])
                num += pair_w(m, i, j) * w8.calibrate(m, np.float32(cos))
                den += pair_w(m, i, j)
        if den <= 0:
            return -math.inf
        return num / (dq if w8.calibration == "zmean" else den)

    out = np.full((n, n), -math.inf)
    for i in range(n):
        for j in range(n):
            if method == "intermediate":
                out[i, j] = inter(i, j, wt)
            elif method == "early":
                def vec(r):
                    parts = []
                    for m in mods:
                        b = math.sqrt(wt.w(m) * wt.scale(m))
                        if m == "clicks" and wt.n0 is not None:
                            b *= conf[r]
                        parts.append(u[m][r] * b if has[m][r] else np.zeros_like(u[m][r]))
                    return np.concatenate(parts)
                a, b = vec(i), vec(j)
                na, nb = np.linalg.norm(a), np.linalg.norm(b)
                out[i, j] = -math.inf if na == 0 or nb == 0 else float(a @ b / (na * nb))
            else:
                tie = inter(i, j, Weighting(wt.weights, "none", (), wt.n0,
                                            confidence=wt.confidence))
                if tie == -math.inf:
                    continue
                ws = [wt.w(m) for m in mods]
                sums = sorted({round(sum(c), 12) for r in range(len(ws) + 1)
                               for c in itertools.combinations(ws, r)})
                gap = min([b - a for a, b in zip(sums, sums[1:], strict=False) if b - a > 1e-9],
                          default=1.0)
                count = sum(wt.w(m) for m in mods
                            if labels[m][i] >= 0 and labels[m][i] == labels[m][j])
                out[i, j] = count + 0.999 * gap * (1 + tie) / 2
    return out


WEIGHTINGS = [
    dict(weights={"text": 1.0, "image": 0.5, "clicks": 2.0}),
    dict(weights={"text": 0.3, "image": 0.0, "clicks": 1.0}, calibration="zscore"),
    dict(calibration="zscore", n0=3.0),
    dict(weights={"text": 0.3, "image": 1.0, "clicks": 2.0}, calibration="zmean", n0=3.0),
    # clicks count only for queries seen at least 8 times (a third of _small's products)
    dict(weights={"text": 0.3, "image": 1.0, "clicks": 2.0}, calibration="zmean", n0=8.0,
         confidence="min"),
    dict(weights={"text": 0.001, "image": 0.0, "clicks": 1.0}, n0=8.0, confidence="min"),
]


def _weighting(kw):
    return Weighting.make(kw.get("weights"), kw.get("calibration", "none"), None, kw.get("n0"),
                          confidence=kw.get("confidence", "ratio"))


@pytest.mark.parametrize("spec", range(len(WEIGHTINGS)))
@pytest.mark.parametrize("mods", SUBSETS, ids="+".join)
@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_weighted_fusion_matches_brute_force(method, mods, spec):
    embs, counts = _small(spec)
    kw = dict(WEIGHTINGS[spec])
    if kw.get("weights"):
        kw["weights"] = {m: w for m, w in kw["weights"].items() if m in mods}
        if all(w == 0 for w in kw["weights"].values()):
            pytest.skip("every fused modality has weight 0")
    wt = _weighting(kw)
    if wt.calibration != "none":
        wt = wt.with_stats(estimate_stats(embs, mods, n_pairs=500))
    conf = confidence(counts, wt.n0, wt.confidence) if wt.n0 else None
    labels = {m: cluster_auto(embs[m], 4, seed=0) for m in mods} if method == "late" else None
    f = make_fuser(method, embs, mods, late_labels=labels, weighting=wt, confidence=conf)
    got = f.similarity(np.arange(30))
    want = _oracle(embs, mods, wt, method, conf, labels)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], atol=2e-5)


@pytest.mark.parametrize("spec", range(len(WEIGHTINGS)))
@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_approximate_index_is_exact_after_rescoring(rng, method, spec):
    _, embs, _, _ = make_planted(rng, n=400)
    counts = rng.integers(0, 50, 400)
    kw = WEIGHTINGS[spec]
    wt = _weighting(kw)
    if wt.calibration != "none":
        wt = wt.with_stats(estimate_stats(embs, MODS))
    conf = confidence(counts, wt.n0, wt.confidence) if wt.n0 else None
    labels = {m: cluster_auto(embs[m], 12, seed=0) for m in MODS} if method == "late" else None
    exact = make_fuser(method, embs, MODS, late_labels=labels, weighting=wt, confidence=conf)
    approx = make_fused_index(method, MODS, backend="hnsw", settings=ANN, weighting=wt,
                              confidence=conf).build(embs, labels)
    q = np.arange(0, 400, 9)
    r0, s0 = exact.topk(q, 15)
    r1, s1 = approx.topk(q, 15)
    assert_same_topk(exact, q, r0, s0, r1, s1, atol=1e-4)


@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_weights_one_zero_zero_reproduce_the_single_modality_ranking(method):
    embs, _ = _small(3, n=40)
    labels = {m: cluster_auto(embs[m], 4, seed=0) for m in MODS}
    only = make_fuser(method, embs, ("text",), late_labels=labels)
    wt = Weighting.make({"text": 1, "image": 0, "clicks": 0})
    fused = make_fuser(method, embs, MODS, late_labels=labels, weighting=wt)
    q = np.flatnonzero(embs["text"].mask)
    r0, _ = only.topk(q, 10)
    r1, _ = fused.topk(q, 10)
    np.testing.assert_array_equal(r0, r1)


def test_equal_weights_are_the_papers_intermediate_and_late():
    embs, _ = _small(4)
    for method in ("intermediate", "late"):
        labels = {m: cluster_auto(embs[m], 4, seed=0) for m in MODS}
        a = make_fuser(method, embs, MODS, late_labels=labels).similarity(np.arange(30))
        b = make_fuser(method, embs, MODS, late_labels=labels,
                       weighting=Weighting.make({"text": 1, "image": 1, "clicks": 1}))
        np.testing.assert_allclose(b.similarity(np.arange(30)), a, atol=1e-5)


@pytest.mark.parametrize("spec, msg", [
    ("text=1,colour=2", r"--weights: unknown modality 'colour'; expected some of"),
    ("text=-1", r"--weights: the weight of 'text' is -1.0; weights must be ≥ 0"),
    ("text=nan", r"--weights: the weight of 'text' is nan; weights must be finite"),
    ("text=0,image=0", r"--weights: every weight is 0"),
    ("text", r"--weights: 'text' is not MODALITY=WEIGHT"),
    ("text=x", r"--weights: the weight of 'text' is 'x', not a number"),
    ("text=1,text=2", r"--weights: modality 'text' is given twice"),
])
def test_bad_weights_are_refused_by_name(spec, msg):
    with pytest.raises(ParameterError, match=msg):
        parse_weights(spec)


def test_weight_and_calibration_options_of_the_recommender():
    assert parse_weights("text=1, image=0.5,clicks=2") == {"text": 1.0, "image": 0.5, "clicks": 2.0}
    with pytest.raises(ParameterError, match=r"'calibration' parameter of Recommender\(\) must "
                                             r"be one of \['none', 'zscore', 'zmean'\]"):
        Recommender(calibration="rank")
    with pytest.raises(ParameterError, match=r"'n0' parameter of Recommender\(\) must be a "
                                             r"finite number > 0"):
        Recommender(click_n0=-1)
    with pytest.raises(ParameterError, match=r"Recommender\(\): unknown modality 'sound'"):
        Recommender(weights={"sound": 1})


def test_old_folders_load_with_the_papers_formulas_and_weights_round_trip(tmp_path, rng):
    catalog, embs, _, _ = make_planted(rng, n=120)
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate")
    ids0, s0 = rec.similar(catalog.ids[0], k=10)
    rec.save(tmp_path / "old")
    man = json.loads((tmp_path / "old" / "manifest.json").read_text())
    assert "weighting" not in man["settings"]  # what folders written before weights look like
    old = Recommender.load(tmp_path / "old")
    assert old.weighting().is_default
    ids1, s1 = old.similar(catalog.ids[0], k=10)
    assert ids1.tolist() == ids0.tolist() and np.allclose(s0, s1)
    # a weighted, calibrated model keeps its weights, statistics and ranking
    rec.weights, rec.calibration = {"text": 2.0, "image": 0.5, "clicks": 1.0}, "zscore"
    ids2, s2 = rec.similar(catalog.ids[0], k=10)
    rec.save(tmp_path / "new")
    w = Recommender.load(tmp_path / "new")
    assert w.weighting().to_dict() == rec.weighting().to_dict()
    ids3, s3 = w.similar(catalog.ids[0], k=10)
    assert ids3.tolist() == ids2.tolist() and np.allclose(s2, s3)
    with pytest.raises(ParameterError, match=r"weights name \['image'\], which this fusion "
                                             r"does not have"):
        w.fuser("intermediate", ["text"], Weighting.make({"image": 1.0}))
