"""Each fusion against the paper's brute-force formula on small random data (N×N in the test)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ParameterError
from prodfusion.fusion import (
    EarlyFusion,
    IntermediateFusion,
    LateFusion,
    check_modalities,
    make_fuser,
)
from prodfusion.fusion.late import TIE_WEIGHT
from prodfusion.index.topk import Filters

DIMS = {"text": 7, "image": 13, "clicks": 5}
SUBSETS = [
    tuple(c) for r in (1, 2, 3) for c in itertools.combinations(("text", "image", "clicks"), r)
]


def _embs(rng, n=40, missing=0.0):
    out = {}
    for m, d in DIMS.items():
        v = rng.normal(size=(n, d)).astype(np.float32) * rng.uniform(0.1, 50)
        mask = rng.random(n) >= missing
        out[m] = Embeddings(v, mask, m)
    return out


def _cos_matrix(v):
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    return u @ u.T


@pytest.mark.parametrize("mods", SUBSETS)
@pytest.mark.parametrize("normalize", [False, True])
def test_early_matches_paper_formula(rng, mods, normalize):
    e = _embs(rng)
    blocks = []
    for m in mods:
        v = e[m].vectors.astype(np.float64)
        if normalize:
            v = v / np.linalg.norm(v, axis=1, keepdims=True)
        blocks.append(v / np.sqrt(DIMS[m]))
    expected = _cos_matrix(np.concatenate(blocks, axis=1))
    f = EarlyFusion(modalities=mods, normalize=normalize).fit(e)
    got = f.similarity(np.arange(40))
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("mods", SUBSETS)
def test_intermediate_matches_mean_cosine_distance(rng, mods):
    e = _embs(rng)
    dist = np.mean([1 - _cos_matrix(e[m].vectors.astype(np.float64)) for m in mods], axis=0)
    f = IntermediateFusion(modalities=mods).fit(e)
    np.testing.assert_allclose(f.similarity(np.arange(40)), 1 - dist, atol=1e-5)
    np.testing.assert_allclose(f.distance(np.arange(40)), dist, atol=1e-5)


def test_intermediate_missing_modalities_average_only_shared(rng):
    n = 30
    e = _embs(rng, n=n, missing=0.35)
    mods = ("text", "image", "clicks")
    f = IntermediateFusion(modalities=mods).fit(e)
    got = f.similarity(np.arange(n))
    cos = {m: _cos_matrix(e[m].vectors.astype(np.float64) + 1e-30) for m in mods}
    for i in range(n):
        for j in range(n):
            shared = [m for m in mods if e[m].mask[i] and e[m].mask[j]]
            if not shared:
                assert got[i, j] == -np.inf
            else:
                expected = 1 - np.mean([1 - cos[m][i, j] for m in shared])
                assert got[i, j] == pytest.approx(expected, abs=1e-5)


def test_early_missing_modality_contributes_nothing(rng):
    e = _embs(rng, n=20)
    e["image"].mask[3] = False
    e["image"] = Embeddings(e["image"].vectors, e["image"].mask, "image")
    f = EarlyFusion(modalities=("text", "image"), normalize=True).fit(e)
    # Product 3 has only text: its fused vector is its text direction.
    t = e["text"].vectors
    x3 = np.concatenate([t[3] / np.linalg.norm(t[3]) / np.sqrt(7), np.zeros(13)])
    x5 = np.concatenate([
        t[5] / np.linalg.norm(t[5]) / np.sqrt(7),
        e["image"].vectors[5] / np.linalg.norm(e["image"].vectors[5]) / np.sqrt(13),
    ])
    expected = x3 @ x5 / np.linalg.norm(x3) / np.linalg.norm(x5)
    assert f.similarity([3], [5])[0, 0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("mods", SUBSETS)
def test_late_count_matches_brute_force(rng, mods):
    e = _embs(rng, n=50, missing=0.2)
    f = LateFusion(modalities=mods, n_clusters=4, seed=3).fit(e)
    n = 50
    count = np.zeros((n, n))
    for m in mods:
        lab = f.labels_[m]
        assert (lab[~e[m].mask] == -1).all() and (lab[e[m].mask] >= 0).all()
        for i in range(n):
            for j in range(n):
                count[i, j] += lab[i] >= 0 and lab[i] == lab[j]
    np.testing.assert_array_equal(f.count(np.arange(n)), count)
    s = f.similarity(np.arange(n))
    finite = np.isfinite(s)
    # Integer part is the paper's count; the tie-break never overturns it.
    np.testing.assert_array_equal(np.floor(s[finite]), count[finite])
    inter = IntermediateFusion(modalities=mods).fit(e).similarity(np.arange(n))
    np.testing.assert_allclose(
        s[finite], count[finite] + TIE_WEIGHT * (1 + inter[finite]) / 2, atol=1e-5
    )


def test_late_ties_broken_by_intermediate(rng):
    # Two tight groups in every modality; within a group all counts tie at 3.
    n = 20
    base = {m: rng.normal(size=(2, d)) for m, d in DIMS.items()}
    e = {
        m: Embeddings(base[m][np.arange(n) % 2] + 0.01 * rng.normal(size=(n, d)), np.ones(n, bool), m)
        for m, d in DIMS.items()
    }
    f = LateFusion(modalities=tuple(DIMS), n_clusters=2).fit(e)
    rows, scores = f.topk([0], k=9)
    assert set(rows[0]) == set(range(2, 20, 2))
    inter = IntermediateFusion(modalities=tuple(DIMS)).fit(e).similarity([0])[0]
    expected_order = sorted(range(2, 20, 2), key=lambda j: -inter[j])
    assert list(rows[0]) == expected_order
    assert np.all(np.floor(scores) == 3)


@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_topk_is_exact_best_first_and_never_self(rng, method):
    e = _embs(rng, n=60, missing=0.1)
    f = make_fuser(method, e, ("text", "image", "clicks"), n_clusters=5)
    rows, scores = f.topk(np.arange(60), k=15)
    sim = f.similarity(np.arange(60))
    for q in range(60):
        assert q not in rows[q]
        s = sim[q].copy()
        s[q] = -np.inf
        expected = np.sort(s[np.isfinite(s)])[::-1][:15]
        np.testing.assert_allclose(scores[q][: len(expected)], expected, atol=1e-6)
        assert np.all(np.diff(scores[q][np.isfinite(scores[q])]) <= 0)


def test_topk_filters(rng):
    e = _embs(rng, n=40)
    f = IntermediateFusion(modalities=("text",)).fit(e)
    codes = np.arange(40) % 4
    banned = np.zeros(40, bool)
    banned[[4, 8]] = True
    rows, _ = f.topk([0], k=40, filters=Filters(banned=banned, same_code=codes))
    got = rows[0][rows[0] >= 0]
    assert set(got) == set(range(12, 40, 4))  # same category as 0, minus banned 4 and 8
    rows, _ = f.topk([0], k=40, filters=Filters(diff_code=codes))
    got = rows[0][rows[0] >= 0]
    assert not any(codes[got] == 0) and len(got) == 30


def test_product_without_any_fused_modality_is_never_returned(rng):
    e = _embs(rng, n=10)
    e["text"] = Embeddings(e["text"].vectors, np.r_[np.zeros(1, bool), np.ones(9, bool)], "text")
    for method in ("early", "intermediate", "late"):
        f = make_fuser(method, e, ("text",), n_clusters=2)
        rows, scores = f.topk(np.arange(1, 10), k=9)
        assert 0 not in rows
        rows, scores = f.topk([0], k=5)
        assert (rows == -1).all() and np.isneginf(scores).all()


def test_nan_and_zero_vectors_are_refused(rng):
    e = _embs(rng, n=10)
    v = e["text"].vectors.copy()
    v[4, 2] = np.nan
    with pytest.raises(DataError, match="vector of catalog row 4 contains NaN or Inf"):
        IntermediateFusion(modalities=("text",)).fit({"text": Embeddings(v, np.ones(10, bool), "t")})
    v = e["text"].vectors.copy()
    v[7] = 0
    with pytest.raises(DataError, match="vector of catalog row 7 is all zeros"):
        EarlyFusion(modalities=("text",)).fit({"text": Embeddings(v, np.ones(10, bool), "t")})


def test_modality_subset_validation():
    assert check_modalities("image,text", ("text", "image")) == ("text", "image")
    with pytest.raises(ParameterError, match=r"must be a non-empty subset"):
        check_modalities([], ("text",))
    with pytest.raises(ParameterError, match=r"asks for 'clicks', but this model has only \['text'\]"):
        check_modalities(["clicks"], ("text",))
    with pytest.raises(ParameterError, match=r"The 'modalities' parameter of similar\(\) must be a subset"):
        check_modalities(["audio"], ("text",))
    with pytest.raises(ParameterError, match=r"The 'fusion' parameter of make_fuser\(\) must be one of"):
        make_fuser("hybrid", {}, ("text",))
