"""Vector-index backends: one conformance suite over exact, HNSW and IVF-PQ; settings; projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prodfusion.errors import DataError, ModelError, NotBuiltError, ParameterError
from prodfusion.index import (
    ExactIndex,
    HNSWIndex,
    IndexSettings,
    IVFPQIndex,
    choose_backend,
    fit_projection,
)
from prodfusion.index.exact import topk_rows

EXHAUSTIVE = IndexSettings(reduce_dim=None, ef_search=512, nprobe=10_000, pq_m=8, hnsw_storage="flat")


def _make(kind, dim, settings=EXHAUSTIVE):
    return {"exact": lambda: ExactIndex(dim), "hnsw": lambda: HNSWIndex(dim, settings),
            "ivfpq": lambda: IVFPQIndex(dim, settings, n_expected=400),
            "ivfpq-equal": lambda: IVFPQIndex(dim, settings, n_expected=400, equal_norms=True),
            }[kind]()


def _data(rng, n=400, d=16):
    return rng.normal(size=(n, d)).astype(np.float32)


def test_exact_index_is_brute_force(rng):
    x, q = _data(rng), _data(rng, 7)
    idx = ExactIndex(16)
    idx.add(x[:150])
    idx.add(x[150:])
    labels, scores = idx.search(q, 10)
    full = q @ x.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-5)


def test_topk_rows_pads_and_breaks_ties_by_label():
    s = np.array([[0.5, 0.9, 0.5, -np.inf]], dtype=np.float32)
    labels, scores = topk_rows(s, 6)
    assert labels.tolist() == [[1, 0, 2, -1, -1, -1]]
    assert scores[0, 3] == -np.inf


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_small_data_recall_is_one(rng, kind):
    """With a beam wider than the data, HNSW must return exactly what brute force does."""
    x, q = _data(rng), _data(rng, 20)
    idx = _make(kind, 16).train(x)
    idx.add(x)
    labels, _ = idx.search(q, 10)
    np.testing.assert_array_equal(labels, np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10])


def test_ivfpq_finds_every_vector_when_all_cells_are_probed(rng):
    """PQ scores are approximate, so the contract is the candidate set, re-scored by callers."""
    x = _data(rng)
    idx = _make("ivfpq", 16).train(x)
    idx.add(x)
    labels, scores = idx.search(x[:3], len(x))
    assert all(sorted(row.tolist()) == list(range(len(x))) for row in labels)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivfpq", "ivfpq-equal"])
def test_conformance_padding_save_load(rng, tmp_path, kind):
    x = _data(rng, 300)
    idx = _make(kind, 16).train(x)
    idx.add(x[:5])
    labels, scores = idx.search(x[:2], 8)
    assert labels.shape == scores.shape == (2, 8)
    assert labels.dtype == np.int64 and scores.dtype == np.float32
    assert np.all(labels[:, 5:] == -1) and np.all(np.isneginf(scores[:, 5:]))
    idx.add(x[5:])
    assert len(idx) == 300
    before = idx.search(x[:4], 10)
    meta = idx.save(tmp_path, "p")
    loaded = type(idx).load(tmp_path, meta, mmap=True)
    after = loaded.search(x[:4], 10)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-6)
    loaded.add(x[:1])  # a memory-mapped index can still grow (it is copied first)
    assert len(loaded) == 301


def test_hnsw_load_is_memory_mapped(rng, tmp_path):
    x = _data(rng, 200)
    idx = HNSWIndex(16, EXHAUSTIVE).train(x)
    idx.add(x)
    meta = idx.save(tmp_path, "h")
    assert HNSWIndex.load(tmp_path, meta, mmap=True)._mmapped
    assert not HNSWIndex.load(tmp_path, meta, mmap=False)._mmapped


def test_projection_preserves_inner_products_of_low_rank_data(rng):
    basis = rng.normal(size=(5, 64))
    x = (rng.normal(size=(500, 5)) @ basis).astype(np.float32)
    p = fit_projection(x, 5)
    np.testing.assert_allclose((x @ p) @ (x @ p).T, x @ x.T, rtol=1e-3, atol=1e-2)
    idx = HNSWIndex(64, IndexSettings(reduce_dim=8, ef_search=512, hnsw_storage="flat")).train(x)
    assert idx.projection_.shape == (64, 8) and idx.index_.d == 8 + 1  # + the equal-norm one
    idx.add(x)
    labels, _ = idx.search(x[:10], 5)
    np.testing.assert_array_equal(labels, np.argsort(-(x[:10] @ x.T), axis=1, kind="stable")[:, :5])


def test_errors(rng, tmp_path):
    with pytest.raises(NotBuiltError, match=r"HNSWIndex: call train\(\) before add\(\)"):
        HNSWIndex(4).add(np.zeros((1, 4), np.float32))
    idx = ExactIndex(4)
    with pytest.raises(DataError, match="vectors have 3 dimensions, the index 4"):
        idx.add(np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="row 1 contains NaN or Inf"):
        idx.add(np.array([[0, 0, 0, 1], [np.nan, 0, 0, 0]], np.float32))
    with pytest.raises(ModelError, match="cannot read the hnsw index"):
        HNSWIndex.load(tmp_path, {"dim": 4, "files": ["missing.faiss"]})


def test_settings_and_backend_choice():
    s = IndexSettings(auto_hnsw_from=100, auto_ivfpq_from=1000)
    assert [choose_backend("auto", n, s) for n in (99, 100, 999, 1000)] == [
        "exact", "hnsw", "hnsw", "ivfpq"]
    assert choose_backend("hnsw", 3, s) == "hnsw"
    with pytest.raises(ParameterError, match=r"The 'index' parameter of choose_backend\(\) must be one of"):
        choose_backend("annoy", 10)
    with pytest.raises(ParameterError, match=r"The 'ef_search' parameter of IndexSettings\(\) must be an int >= 1. Got 0 instead."):
        IndexSettings(ef_search=0)
    with pytest.raises(ParameterError, match=r"The 'reduce_dim' parameter of IndexSettings\(\) must be an int. Got '8' instead."):
        IndexSettings(reduce_dim="8")
    assert IndexSettings.from_dict({**IndexSettings(hnsw_m=8).to_dict(), "unknown": 1}).hnsw_m == 8


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivfpq", "ivfpq-equal"])
def test_search_restricted_to_allowed_labels(rng, kind):
    x = _data(rng)
    idx = _make(kind, 16).train(x)
    idx.add(x)
    allowed = np.sort(rng.choice(400, 30, replace=False))
    labels, scores = idx.search(x[:5], 10, allowed=allowed)
    assert np.isin(labels[labels >= 0], allowed).all()
    if kind.startswith("ivfpq"):  # estimates of inner products (3-bit codes here: rough)
        assert np.all(np.diff(scores, axis=1) <= 1e-5)
        true = np.take_along_axis(x[:5] @ x.T, labels, 1)
        assert np.corrcoef(scores.ravel(), true.ravel())[0, 1] > 0.4  # L2 distances: < 0
    else:  # exact scores: the restricted brute force
        full = x[:5] @ x[allowed].T
        expected = allowed[np.argsort(-full, axis=1, kind="stable")[:, :10]]
        np.testing.assert_array_equal(labels, expected)
    few, _ = idx.search(x[:1], 10, allowed=allowed[:3])
    assert sorted(few[0][few[0] >= 0].tolist()) == allowed[:3].tolist() and (few[0] == -1).sum() == 7


@pytest.mark.parametrize("storage", ["sq8", "fp16"])
def test_quantised_hnsw_storage_finds_the_same_candidates(rng, tmp_path, storage):
    """sq8/fp16 storage changes the estimates a little, not which vectors are found: the top-10
    of brute force is inside the top-30 returned, and the index is smaller on disk."""
    x, q = _data(rng, 400, 32), _data(rng, 20, 32)
    flat = HNSWIndex(32, EXHAUSTIVE).train(x)
    flat.add(x)
    quant = HNSWIndex(32, IndexSettings(**{**EXHAUSTIVE.to_dict(), "hnsw_storage": storage}))
    quant.train(x)
    quant.add(x)
    truth = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    labels, scores = quant.search(q, 30)
    assert all(set(t) <= set(lab) for t, lab in zip(truth, labels, strict=True))
    np.testing.assert_allclose(scores[:, 0], (q @ x.T).max(axis=1), atol=0.1)
    a, b = flat.save(tmp_path, "flat"), quant.save(tmp_path, "quant")
    size = {n: (tmp_path / m["files"][0]).stat().st_size for n, m in (("flat", a), ("q", b))}
    per_dim = {"sq8": 1, "fp16": 2}[storage]  # bytes per stored dimension instead of 4
    assert size["flat"] - size["q"] >= 0.95 * x.size * (4 - per_dim)
    loaded = HNSWIndex.load(tmp_path, b, mmap=True)
    np.testing.assert_array_equal(loaded.search(q, 30)[0], labels)


def test_hnsw_stores_rows_of_equal_norm_and_keeps_inner_products(rng, tmp_path):
    """Every stored row is the projected row plus ``sqrt(R² − ‖y‖²)`` (norm ``R``, the
    sample's longest projected row); queries get 0 there, so the estimates are the projected
    inner products; ``R`` is saved; an index saved without it (earlier versions, or
    ``equal_norms=False``) is searched as it was built."""
    import faiss

    x = (rng.normal(size=(600, 32)) * rng.uniform(0.3, 1.0, size=(600, 1))).astype(np.float32)
    x[-10:] *= 3.0  # longer than any row of the training sample x[:400]
    settings = IndexSettings(reduce_dim=12, ef_search=1024)
    idx = HNSWIndex(32, settings).train(x[:400])
    idx.add(x)
    y = idx.project(x)
    assert idx.radius_ == pytest.approx(np.linalg.norm(y[:400], axis=1).max(), rel=1e-5)
    stored = faiss.downcast_index(idx.index_.storage).reconstruct_n(0, len(x))
    assert stored.shape == (600, 13)
    np.testing.assert_allclose(stored[:, :12], y, atol=1e-6)
    # rows past R (not sampled) keep theirs; norms in float64 as the radius is taken (a
    # float32 norm of the longest row may exceed it in the last bit: it did on an AVX-512 CPU)
    inside = np.sqrt(np.einsum("ij,ij->i", y, y, dtype=np.float64)) <= idx.radius_
    assert inside[:400].all() and not inside.all()
    np.testing.assert_allclose(np.linalg.norm(stored[inside], axis=1), idx.radius_, rtol=1e-5)
    assert np.all(stored[~inside, 12] == 0)
    labels, scores = idx.search(x[:20], 10)  # a beam wider than the data: brute force
    ip = y[:20] @ y.T
    np.testing.assert_array_equal(labels, np.argsort(-ip, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(scores, np.take_along_axis(ip, labels, 1), rtol=1e-4, atol=1e-5)

    meta = idx.save(tmp_path, "eq")
    assert meta["radius"] == idx.radius_
    back = HNSWIndex.load(tmp_path, meta, mmap=False)
    assert back.radius_ == idx.radius_ and back.index_.d == 13
    np.testing.assert_array_equal(back.search(x[:20], 10)[0], labels)

    plain = HNSWIndex(32, settings, equal_norms=False).train(x[:400])
    plain.add(x)
    assert plain.radius_ is None and plain.index_.d == 12
    old = plain.save(tmp_path, "plain")
    assert "radius" not in old  # what earlier versions wrote
    loaded = HNSWIndex.load(tmp_path, old, mmap=False)
    assert loaded.radius_ is None and not loaded.equal_norms
    np.testing.assert_array_equal(loaded.search(x[:20], 10)[0], plain.search(x[:20], 10)[0])
    loaded.add(x[:5])  # grows as it was built (no extra coordinate)
    assert loaded.index_.d == 12 and len(loaded) == 605
    with pytest.raises(ModelError, match="index width 12, expected 13"):
        HNSWIndex.load(tmp_path, {**old, "radius": 1.0})


def test_hnsw_storage_is_checked():
    with pytest.raises(ParameterError, match="'hnsw_storage' parameter of IndexSettings"):
        IndexSettings(hnsw_storage="int4")


def _nearly_parallel(rng, n=2000, d=32, noise=0.15):
    """Unit rows around one direction (mean pair cosine ≈ 0.98), like Prod2Vec vectors."""
    base = rng.normal(size=d)
    x = base / np.linalg.norm(base) + noise * rng.normal(size=(n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _recall15(idx, x, fetch=128, n_q=200):
    truth = x[:n_q] @ x.T
    truth[np.arange(n_q), np.arange(n_q)] = -np.inf
    labels, _ = idx.search(x[:n_q], fetch + 1)
    hits = []
    for i in range(n_q):
        c = labels[i][(labels[i] >= 0) & (labels[i] != i)][:fetch]
        top = np.argpartition(-truth[i], 15)[:15]
        got = c[np.argsort(-truth[i][c], kind="stable")[:15]]
        hits.append(len(np.intersect1d(top, got)) / 15)
    return float(np.mean(hits))


def test_ivfpq_chooses_rows_of_equal_norm_where_plain_codes_lose_nearly_parallel_rows(rng):
    """On nearly parallel rows the inner-product codes find few of the true 15 nearest among
    128 candidates; the equal-norm L2 codes find most. The default (``equal_norms=None``)
    measures both on the training sample and keeps the better; the forced ones agree with
    the choice's sample recalls."""
    x = _nearly_parallel(rng)
    st = IndexSettings(reduce_dim=None, pq_m=8)
    got = {}
    for eq in (False, True, None):
        idx = IVFPQIndex(32, st, n_expected=len(x), equal_norms=eq).train(x)
        idx.add(x)
        got[eq] = (idx, _recall15(idx, x))
    chosen = got[None][0]
    assert chosen.choice_["chosen"] == "equal norms" and chosen.radius_ is not None
    assert chosen.choice_["recall_equal norms"] > chosen.choice_["recall_plain"] + 0.3
    assert got[True][1] > got[False][1] + 0.3  # measured on the index, not the sample
    assert got[None][1] == pytest.approx(got[True][1])
    assert got[False][0].radius_ is None and got[False][0].choice_ is None
    assert got[False][0].index_.metric_type == 0  # faiss.METRIC_INNER_PRODUCT


def test_ivfpq_choice_follows_the_sample_recall_and_ties_stay_plain(rng, monkeypatch):
    x = _data(rng, 800)
    calls, recall = [], {False: 0.5}

    def fake(self, sample, k=15):
        calls.append(self.radius_ is not None)
        return recall[self.radius_ is not None]

    monkeypatch.setattr(IVFPQIndex, "_sample_recall", fake)
    for recall[True], want in ((0.6, "equal norms"), (0.5, "plain"), (0.4, "plain")):
        idx = IVFPQIndex(16, EXHAUSTIVE, n_expected=800).train(x)
        assert idx.choice_["chosen"] == want
        assert (idx.radius_ is not None) == (want == "equal norms")
        assert len(idx) == 0  # the sample rows used to choose are gone
        idx.add(x)
        assert len(idx) == 800
    assert calls == [False, True] * 3
    small = IVFPQIndex(16, EXHAUSTIVE).train(x[: IVFPQIndex.CHOOSE_FROM - 1])
    assert small.choice_ is None and small.radius_ is None  # too small to choose: plain
    assert len(calls) == 6


def test_ivfpq_rows_of_equal_norm_are_padded_and_searched_as_inner_products(rng, tmp_path):
    """Stored rows: the projected row, ``sqrt(R² − ‖y‖²)``, zeros up to a multiple of
    ``pq_m``; the scores returned are FAISS's L2 distances turned back into inner
    products, ``(‖q‖² + R² − d²) / 2``, which equal the query's inner product with the
    decoded row plus that row's own term; save and load keep ``R`` and the choice."""
    import faiss

    x = _nearly_parallel(rng, n=1200, d=48)
    st = IndexSettings(reduce_dim=20, pq_m=8, nprobe=10_000)
    idx = IVFPQIndex(48, st, n_expected=1200, equal_norms=True).train(x)
    idx.add(x)
    y = idx.project(x)
    assert idx._faiss_dim == 24 and idx.index_.d == 24  # 20 + 1, padded to 3 × 8
    stored = idx._stored(y, query=False)
    np.testing.assert_array_equal(stored[:, :20], y)
    assert np.all(stored[:, 21:] == 0)
    inside = np.linalg.norm(y, axis=1) <= idx.radius_
    np.testing.assert_allclose(np.linalg.norm(stored[inside], axis=1), idx.radius_, rtol=1e-5)
    labels, scores = idx.search(x[:5], 50)
    ivf = faiss.extract_index_ivf(idx.index_)
    ivf.make_direct_map()
    q = idx._stored(y[:5], query=True)
    for i in range(5):
        dec = np.stack([ivf.reconstruct(int(j)) for j in labels[i]])
        d2 = ((q[i] - dec) ** 2).sum(1)
        want = 0.5 * (q[i] @ q[i] + idx.radius_ ** 2 - d2)
        np.testing.assert_allclose(scores[i], want, rtol=1e-4, atol=1e-4)
        assert np.all(np.diff(scores[i]) <= 1e-5)  # best first
    meta = idx.save(tmp_path, "eq")
    assert meta["radius"] == idx.radius_
    back = IVFPQIndex.load(tmp_path, meta, mmap=False)
    assert back.radius_ == idx.radius_
    np.testing.assert_array_equal(back.search(x[:5], 50)[0], labels)

    chosen = IVFPQIndex(48, st, n_expected=1200).train(x)
    chosen.add(x)
    meta = chosen.save(tmp_path, "ch")
    assert meta["choice"] == chosen.choice_ and meta["choice"]["chosen"] in ("plain", "equal norms")
    assert IVFPQIndex.load(tmp_path, meta).choice_ == chosen.choice_

    plain = IVFPQIndex(48, st, n_expected=1200, equal_norms=False).train(x)
    plain.add(x)
    old = plain.save(tmp_path, "plain")
    assert "radius" not in old and "choice" not in old  # what earlier versions wrote
    loaded = IVFPQIndex.load(tmp_path, old, mmap=False)
    assert loaded.radius_ is None
    np.testing.assert_array_equal(loaded.search(x[:5], 20)[0], plain.search(x[:5], 20)[0])
    with pytest.raises(ModelError, match="expected 24"):
        IVFPQIndex.load(tmp_path, {**old, "radius": 1.0})


def test_ivfpq_probes_enough_cells_to_fill_a_large_fetch(rng, monkeypatch):
    """Two of 50 cells hold about 80 of 2,000 rows: a fetch of 400 candidates could not be
    filled. ``nprobe`` is raised until the probed cells hold about
    ``PROBE_ROWS_PER_CANDIDATE`` rows per candidate (capped at every cell); small fetches
    keep the setting."""
    x = _data(rng, 2000)
    idx = IVFPQIndex(16, IndexSettings(reduce_dim=None, pq_m=8, ivf_nlist=50, nprobe=2),
                     n_expected=2000, equal_norms=False).train(x)
    idx.add(x)
    assert idx._probes(10) == 2  # 4 rows × 10 candidates: two cells (~80 rows) are enough
    assert idx._probes(400) == 40  # ceil(4 × 400 × 50 / 2,000)
    assert idx._probes(5000) == 50  # never more than every cell
    q = x[:20]
    truth = np.argsort(-(q @ x.T), axis=1)[:, :50]

    def found(labels):
        return np.mean([len(np.intersect1d(t, lab)) / 50
                        for t, lab in zip(truth, labels, strict=True)])

    labels, _ = idx.search(q, 400)
    assert np.all(labels >= 0)
    raised = found(labels)
    monkeypatch.setattr(IVFPQIndex, "PROBE_ROWS_PER_CANDIDATE", 0)  # the setting alone
    assert idx._probes(400) == 2
    labels, _ = idx.search(q, 400)
    assert np.mean(labels < 0) > 0.5  # two cells cannot fill 400 candidates
    assert raised > found(labels) + 0.3


def test_hnsw_searches_large_graphs_with_twice_ef_search(rng, monkeypatch):
    """efSearch is ``ef_search``, doubled from ``LARGE_GRAPH`` rows, never below the fetch;
    the doubled width reaches FAISS's search parameters."""
    x = _data(rng, 300)
    idx = HNSWIndex(16, IndexSettings(reduce_dim=None, ef_search=40)).train(x)
    idx.add(x)
    assert idx._ef(10) == 40 and idx._ef(60) == 60  # 300 rows: below LARGE_GRAPH
    monkeypatch.setattr(HNSWIndex, "LARGE_GRAPH", 300)
    assert idx._ef(10) == 80 and idx._ef(100) == 100
    seen = []
    faiss = pytest.importorskip("faiss")
    real = faiss.SearchParametersHNSW

    def spy(**kw):
        seen.append(kw["efSearch"])
        return real(**kw)

    monkeypatch.setattr(faiss, "SearchParametersHNSW", spy)
    idx.search(x[:2], 10)
    assert seen == [80]


def test_ivfpq_fetches_more_candidates_when_its_cells_hold_many_rows(monkeypatch):
    """``IVFPQIndex.min_fetch`` (thirty-fourth session): a query fetches at least one
    candidate per ``PROBED_ROWS_PER_FETCH`` rows its cells hold, because the codes rank
    every probed row and a fixed cut loses true neighbours as the cells grow (at 1M
    products 128 of ~38,000 probed rows kept recall@15 at 0.93). Lossy codes on isotropic
    rows: with the rule on (a small divisor, so that it reaches past ``min_candidates`` at
    a test's size) the fused index fetches what the rule says and finds more of the true 15
    than with it off."""
    from prodfusion.encoders.base import Embeddings
    from prodfusion.recommender import Recommender
    from tests.index.conftest import make_planted

    n = 12_000
    cat = make_planted(np.random.default_rng(1), n=n)[0]
    x = np.random.default_rng(2).normal(size=(n, 64)).astype(np.float32)
    embs = {"text": Embeddings(x, np.ones(n, bool), "text")}
    st = IndexSettings(reduce_dim=None, pq_m=8, nprobe=16, train_sample=4_000,
                       min_candidates=32, over_fetch=2, exact_below=16)
    rec = Recommender.from_embeddings(cat, embs, fusion="early", index="ivfpq",
                                      index_settings=st)
    searcher = rec.searcher("early")
    rows = np.arange(0, n, n // 150)
    truth, _ = searcher.exact_topk(rows, 15)
    index = searcher.pieces_["all"].index
    asked = []
    real = index.search

    def spy(q, k, allowed=None):
        asked.append(k)
        return real(q, k, allowed)

    monkeypatch.setattr(index, "search", spy)
    recall = {}
    for rule, per in (("off", 10**9), ("on", 8)):
        monkeypatch.setattr(IVFPQIndex, "PROBED_ROWS_PER_FETCH", per)
        asked.clear()
        got, _ = searcher.topk(rows, 15)
        want = index.min_fetch()
        assert want == math.ceil(n * 16 / index.index_.nlist / per)
        assert min(asked) >= max(32, want) and max(asked) <= max(32, want) + 31
        recall[rule] = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(
            got.tolist(), truth.tolist(), strict=True)])
    assert recall["on"] > recall["off"] + 0.1, recall
