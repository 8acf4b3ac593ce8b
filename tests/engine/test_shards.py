"""Index shards built on Ray tasks (and locally): the merged search equals the unsharded exact
search; approximate shards return exactly re-scored candidates."""

from __future__ import annotations

import numpy as np
import pytest

from prodfusion.engine import make_executor
from prodfusion.engine.shards import ShardedIndex
from prodfusion.errors import ParameterError
from prodfusion.index import ExactIndex, IndexSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    """3,000 unit vectors around 30 centres (48-d), saved as .npy."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(30, 48))
    x = centres[rng.integers(0, 30, 3000)] + rng.normal(scale=0.6, size=(3000, 48))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    path = tmp_path_factory.mktemp("shards") / "v.npy"
    np.save(path, x)
    return path, x


def _oracle(x, q, k):
    idx = ExactIndex(x.shape[1])
    idx.add(x)
    return idx.search(q, k)


def test_sharded_exact_on_ray_equals_unsharded_exact(ray_local, vectors, tmp_path):
    path, x = vectors
    q = x[::37]
    idx = ShardedIndex.build(path, tmp_path / "idx", backend="exact", n_shards=4,
                             executor=make_executor("ray", num_cpus_per_worker=0.5))
    assert [s[1:] for s in idx.info()["shards"]] == [(0, 750), (750, 1500), (1500, 2250),
                                                      (2250, 3000)]
    rows, scores = idx.search(q, 15)
    r0, s0 = _oracle(x, q, 15)
    np.testing.assert_array_equal(rows, r0)
    np.testing.assert_allclose(scores, s0, rtol=0, atol=1e-6)
    again = ShardedIndex.load(tmp_path / "idx")  # from the manifest of shards
    np.testing.assert_array_equal(again.search(q, 15)[0], r0)


def test_hnsw_shards_on_ray_are_rescored_exactly(ray_local, vectors, tmp_path):
    path, x = vectors
    q = x[::29]
    idx = ShardedIndex.build(path, tmp_path / "h", backend="hnsw", n_shards=3,
                             settings=IndexSettings(ef_search=256),
                             executor=make_executor("ray", num_cpus_per_worker=0.5))
    rows, scores = idx.search(q, 10)
    r0, _ = _oracle(x, q, 10)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, x[rows]), atol=1e-5)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, r0, strict=True)])
    assert recall >= 0.98


def test_local_sharding_and_bad_parameters(vectors, tmp_path):
    path, x = vectors
    idx = ShardedIndex.build(path, tmp_path / "l", backend="exact", n_shards=5)
    np.testing.assert_array_equal(idx.search(x[:7], 5)[0], _oracle(x, x[:7], 5)[0])
    with pytest.raises(ParameterError, match="The 'backend' parameter of ShardedIndex.build"):
        ShardedIndex.build(path, tmp_path / "b", backend="annoy")
    with pytest.raises(ParameterError, match="The 'n_shards' parameter"):
        ShardedIndex.build(path, tmp_path / "b", n_shards=0)
    again = ShardedIndex.build(path, tmp_path / "l", backend="exact", n_shards=2)  # its own
    assert len(again.info()["shards"]) == 2
    mine = tmp_path / "mine"  # a folder it did not write is never emptied
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    with pytest.raises(ParameterError, match="holds files prodfusion did not write"):
        ShardedIndex.build(path, mine, backend="exact", n_shards=2)
    assert (mine / "notes.txt").read_text() == "x"
