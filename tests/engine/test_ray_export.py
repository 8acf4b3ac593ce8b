"""``export`` on Ray equals ``export`` locally equals ``similar_batch``; the executor seam."""

from __future__ import annotations

import functools
import operator

import numpy as np
import pyarrow.parquet as pq
import pytest

from prodfusion.batch.export import export_lists
from prodfusion.engine import LocalExecutor, make_executor
from prodfusion.errors import ParameterError
from prodfusion.recommender import Recommender
from tests.index.conftest import make_planted

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cat, embs, *_ = make_planted(np.random.default_rng(11), n=700)
    rec = Recommender.from_embeddings(cat, embs, fusion="early")
    return rec.save(tmp_path_factory.mktemp("rayexport") / "model")


def test_local_executor_contract():
    ex = make_executor("local")
    assert isinstance(ex, LocalExecutor)
    assert list(ex.run(abs, [-1, 2])) == [(-1, 1), (2, 2)]
    with pytest.raises(ParameterError, match="The 'engine' parameter of make_executor"):
        make_executor("spark")


def test_ray_executor_runs_items_with_state(ray_local, caplog):
    ex = make_executor("ray", num_cpus_per_worker=0.5)
    with caplog.at_level("INFO", logger="prodfusion.engine.ray_engine"):
        got = dict(ex.map_with_state(functools.partial(int, "10"), operator.add, range(7)))
    assert got == {i: 10 + i for i in range(7)}
    # how far the pool spread, and the cluster's size, for a user who joined a cluster
    assert "ray: 4 actors on 1 node for 7 items" in caplog.text
    assert ex.describe().startswith("ray (local: 1 node, 2 CPUs, ")
    assert dict(ex.run(abs, [-3, 4])) == {-3: 3, 4: 4}
    ex.close()  # did not start Ray: leaves the module's Ray running
    assert ray_local.is_initialized()


@pytest.mark.parametrize("fusion", ["early", "intermediate"])
def test_export_on_ray_equals_local_equals_similar_batch(ray_local, model, tmp_path, fusion):
    local = tmp_path / "local.parquet"
    on_ray = tmp_path / "ray.parquet"
    export_lists(model, local, k=8, fusion=fusion, batch_size=96, progress=False)
    ex = make_executor("ray", num_cpus_per_worker=0.5)
    rep = export_lists(model, on_ray, k=8, fusion=fusion, batch_size=96, executor=ex,
                       progress=False)
    assert rep["engine"] == "ray" and rep["batches"] == 8  # ceil(700 / 96)
    a, b = pq.read_table(local), pq.read_table(on_ray)
    assert a.column("product_id").to_pylist() == b.column("product_id").to_pylist()
    assert a.column("ids").to_pylist() == b.column("ids").to_pylist()
    # scores up to float32 rounding: Ray's workers may run BLAS with other thread counts,
    # which sums the matrix products in another order (seen: 1 ulp with numpy 2.4.6)
    np.testing.assert_allclose(np.concatenate(a.column("scores").to_pylist()),
                               np.concatenate(b.column("scores").to_pylist()), rtol=1e-6)
    rec = Recommender.load(model)
    ids, scores = rec.similar_batch(list(rec.catalog.ids), 8, fusion=fusion)
    assert b.column("ids").to_pylist() == [[x for x in r if x is not None] for r in ids.tolist()]
    # the same up to float32 rounding: batches of 96 and the whole catalog at once
    np.testing.assert_allclose(np.concatenate(b.column("scores").to_pylist()),
                               scores[np.isfinite(scores)], rtol=1e-5, atol=1e-6)


def test_ray_export_needs_a_model_folder(ray_local, model):
    rec = Recommender.load(model)
    rec.path_ = None
    with pytest.raises(ParameterError, match="needs a saved model folder"):
        export_lists(rec, "/tmp/never.parquet", executor=make_executor("ray"))


def test_export_of_a_weighting_profile_on_ray_equals_local(ray_local, model, tmp_path):
    """Ray's workers load the folder and rank by its profile, as this process does."""
    from prodfusion.batch.lists import read_lists_meta
    from prodfusion.fusion.weights import Weighting

    rec = Recommender.load(model)
    first, *rest = rec.available_modalities
    w = {first: 1.0, **{m: 0.1 for m in rest}}
    rec.profiles_ = {"p": {"weighting": Weighting.make(w, "zscore").to_dict(), "tuning": {}}}
    folder = rec.save(tmp_path / "with_profile")
    local, on_ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    export_lists(folder, local, k=8, profile="p", batch_size=96, progress=False)
    ex = make_executor("ray", num_cpus_per_worker=0.5)
    export_lists(folder, on_ray, k=8, profile="p", batch_size=96, executor=ex, progress=False)
    a, b = pq.read_table(local), pq.read_table(on_ray)
    assert a.column("ids").to_pylist() == b.column("ids").to_pylist()
    assert read_lists_meta(on_ray)["profile"] == "p"
    r, _ = Recommender.load(folder).similar_rows(np.arange(700), 8, profile="p")
    plain, _ = Recommender.load(folder).similar_rows(np.arange(700), 8, fusion="intermediate")
    got = b.column("ids").to_pylist()
    want = [[i for i in x if i is not None] for x in rec.ids_of(r)]
    assert sum(a != b for a, b in zip(want, got, strict=True)) == 0, [
        (a, b) for a, b in zip(want, got, strict=True) if a != b][:2]
    assert not np.array_equal(r, plain)  # the profile ranks otherwise than the default


def test_an_address_ray_cannot_reach_is_a_clear_error():
    """No traceback from deep inside Ray: the address, what Ray said, and what to pass."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    try:  # a private helper: skip rather than fail if a Ray release moves it
        from ray._private.utils import get_ray_client_dependency_error
    except ImportError:
        pytest.skip("cannot tell whether ray[client] is installed")
    if get_ray_client_dependency_error() is None:  # ray[client]: the address would be tried
        pytest.skip("ray[client] is installed: connecting to a dead address waits for a timeout")
    with pytest.raises(ParameterError, match=r"Ray address 'ray://127\.0\.0\.1:1' \(--address\): "
                                             r"cannot start or join Ray"):
        make_executor("ray", address="ray://127.0.0.1:1")
    assert not ray.is_initialized()


def test_export_update_on_ray_equals_the_local_update_and_a_full_export(ray_local, tmp_path):
    """`export --update --engine ray`: the recomputed lists come from Ray's workers, the kept
    ones from the previous file; the file equals the local update's and a full export's."""
    from prodfusion.batch.export import update_lists
    from tests.batch.test_export import _day_of_changes

    rng = np.random.default_rng(3)
    cat, embs, *_ = make_planted(rng, n=300)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    folder = rec.save(tmp_path / "m")
    before = tmp_path / "before.parquet"
    export_lists(folder, before, k=8, progress=False)
    rec = Recommender.load(folder)
    _day_of_changes(rec, rng)
    rec.save(folder)
    ex = make_executor("ray", num_cpus_per_worker=0.5)
    rep = update_lists(folder, before, tmp_path / "ray.parquet", batch_size=40, executor=ex,
                       progress=False)
    local = update_lists(folder, before, tmp_path / "local.parquet", batch_size=40,
                         progress=False)
    export_lists(folder, tmp_path / "full.parquet", k=8, progress=False)
    assert rep["engine"] == "ray" and rep["recomputed"] == local["recomputed"] < 315
    got, loc, full = (pq.read_table(tmp_path / f"{n}.parquet").to_pydict()
                      for n in ("ray", "local", "full"))
    assert got["product_id"] == full["product_id"] and len(got["ids"]) == 315
    assert got["ids"] == loc["ids"] == full["ids"]
    for a, b in zip(got["scores"], full["scores"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_cli_export_on_ray_says_where_it_ran(ray_local, model, tmp_path, capsys):
    """The summary line names the cluster (nodes, CPUs), not only the engine: a user who
    joined a cluster sees whether every node took part."""
    from prodfusion.cli import main

    assert main(["export", str(model), "--out", str(tmp_path / "l.parquet"), "--quiet",
                 "--engine", "ray", "--num-cpus-per-worker", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "wrote 700 lists" in err and " on ray (local: 1 node, 2 CPUs, 0 GPUs; " in err
    assert main(["export", str(model), "--out", str(tmp_path / "m.parquet"), "--quiet"]) == 0
    assert " on local (this process) (" in capsys.readouterr().err
