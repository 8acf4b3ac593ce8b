"""``export_lists`` / ``prodfusion export``: every product's list equals ``similar_batch``,
resumes from its finished batches, writes atomically; the serving stores read it back exactly."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodfusion.batch.export import export_lists, parts_folder
from prodfusion.batch.lists import LAYOUTS, ListStore, read_lists_meta, write_lists
from prodfusion.engine import LocalExecutor
from prodfusion.errors import DataError, ParameterError
from prodfusion.recommender import Recommender
from tests.index.conftest import make_planted


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cat, embs, *_ = make_planted(np.random.default_rng(3), n=500)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    return rec.save(tmp_path_factory.mktemp("export") / "model")


def _expected(rec, k, **kw):
    ids, scores = rec.similar_batch(list(rec.catalog.ids), k, **kw)
    out_ids = [[x for x in row if x is not None] for row in ids.tolist()]
    out_scores = [s[: len(i)].tolist() for s, i in zip(scores, out_ids, strict=True)]
    return out_ids, out_scores


@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
def test_export_equals_similar_batch(model, tmp_path, fusion):
    rec = Recommender.load(model)
    out = tmp_path / "lists.parquet"
    rep = export_lists(model, out, k=7, fusion=fusion, batch_size=64, progress=False)
    table = pq.read_table(out)
    ids, scores = _expected(rec, 7, fusion=fusion)
    assert table.column("product_id").to_pylist() == list(rec.catalog.ids)
    assert table.column("ids").to_pylist() == ids
    # the same scores up to float32 rounding: a batch of 64 queries and the whole catalog
    # at once may sum the matrix products in another order (BLAS blocking)
    np.testing.assert_allclose(np.concatenate(table.column("scores").to_pylist()),
                               np.concatenate(scores).astype(np.float32), rtol=1e-5, atol=1e-6)
    assert all(pid not in row for pid, row in zip(rec.catalog.ids, ids, strict=True))
    meta = read_lists_meta(out)
    assert meta["fusion"] == fusion and meta["k"] == 7 and meta["n_products"] == 500
    assert meta["modalities"] == ["text", "image", "clicks"]
    assert meta["model"]["catalog_fingerprint"] == rec.manifest_["fingerprints"]["catalog"]
    assert rep["batches"] == 8 and rep["reused"] == 0  # ceil(500 / 64)
    assert not parts_folder(out).exists()


def test_product_without_any_modality_gets_an_empty_list(tmp_path):
    cat, embs, *_ = make_planted(np.random.default_rng(0), n=120)
    for e in embs.values():
        e.mask[7] = False
        e.vectors[7] = 0
    rec = Recommender.from_embeddings(cat, embs, fusion="early")
    out = tmp_path / "l.parquet"
    export_lists(rec, out, k=5, progress=False)
    t = pq.read_table(out)
    assert t.column("ids")[7].as_py() == [] and t.column("scores")[7].as_py() == []
    assert len(t.column("ids")[8].as_py()) == 5


class _Interrupt(LocalExecutor):
    """Stops after ``n`` batches, like a killed job."""

    def __init__(self, n):
        self.n = n

    def map_with_state(self, make_state, fn, items):
        for i, pair in enumerate(super().map_with_state(make_state, fn, items)):
            if i == self.n:
                raise KeyboardInterrupt
            yield pair


def test_interrupted_export_resumes_and_writes_nothing_partial(model, tmp_path):
    out = tmp_path / "lists.parquet"
    with pytest.raises(KeyboardInterrupt):
        export_lists(model, out, k=5, batch_size=100, executor=_Interrupt(2), progress=False)
    assert not out.exists()  # nothing half-written at the destination
    assert len(list(parts_folder(out).glob("part-*.parquet"))) == 2
    rep = export_lists(model, out, k=5, batch_size=100, progress=False)
    assert (rep["reused"], rep["batches"]) == (2, 3)
    ids, _ = _expected(Recommender.load(model), 5)
    assert pq.read_table(out).column("ids").to_pylist() == ids
    # other settings over an unfinished export: refused unless restarted
    with pytest.raises(KeyboardInterrupt):
        export_lists(model, out, k=5, batch_size=100, executor=_Interrupt(1), progress=False)
    with pytest.raises(DataError, match="unfinished export with other settings"):
        export_lists(model, out, k=6, batch_size=100, progress=False)
    rep = export_lists(model, out, k=6, batch_size=100, resume=False, progress=False)
    assert rep["reused"] == 0 and read_lists_meta(out)["k"] == 6


def test_range_export(model, tmp_path):
    out = tmp_path / "part.parquet"
    export_lists(model, out, k=4, start=100, stop=250, batch_size=40, progress=False)
    t = pq.read_table(out)
    rec = Recommender.load(model)
    assert t.column("product_id").to_pylist() == list(rec.catalog.ids[100:250])
    assert (read_lists_meta(out)["start"], read_lists_meta(out)["stop"]) == (100, 250)
    with pytest.raises(ParameterError, match="start=300 and stop=200"):
        export_lists(model, out, start=300, stop=200)
    with pytest.raises(ParameterError, match="The 'k' parameter of export_lists"):
        export_lists(model, out, k=0)
    folder = tmp_path / "a_folder"  # refused before any list is computed, nothing left behind
    folder.mkdir()
    with pytest.raises(ParameterError, match="is a folder; name the Parquet file"):
        export_lists(model, folder, k=4)
    assert not parts_folder(folder).exists() and folder.is_dir()
    other = tmp_path / "catalog.parquet"  # a file that is no lists file: never replaced
    pq.write_table(pa.table({"product_id": ["a"]}), other)
    before = other.read_bytes()
    with pytest.raises(ParameterError, match="is not a lists file written by an earlier export"):
        export_lists(model, other, k=4)
    assert other.read_bytes() == before and not parts_folder(other).exists()
    export_lists(model, out, k=4, start=0, stop=50, progress=False)  # a lists file: replaced
    assert (read_lists_meta(out)["start"], read_lists_meta(out)["stop"]) == (0, 50)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stores_return_the_file_exactly(model, tmp_path, layout):
    out = tmp_path / "lists.parquet"
    export_lists(model, out, k=6, progress=False)
    rec = Recommender.load(model)
    ids, scores = _expected(rec, 6)
    store = ListStore.open(ListStore.prepare(out, layout))
    assert len(store) == 500 and store.layout == layout and store.meta["k"] == 6
    for row in range(0, 500, 7):
        got = store.get(rec.catalog.ids[row])
        assert got[0] == ids[row]
        np.testing.assert_array_equal(np.float32(got[1]), np.float32(scores[row]))
    assert store.get("no-such-product") is None and store.get("") is None
    store.close()


def test_serving_copy_is_redone_when_the_file_is_newer(model, tmp_path):
    out = tmp_path / "lists.parquet"
    export_lists(model, out, k=3, progress=False)
    copy = ListStore.prepare(out, "arrow")
    assert ListStore.prepare(out, "arrow") == copy and ListStore.open(copy).meta["k"] == 3
    export_lists(model, out, k=4, progress=False)
    assert ListStore.open(ListStore.prepare(out, "arrow")).meta["k"] == 4


def test_not_a_lists_file(tmp_path):
    import pyarrow as pa

    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1]}), p)
    with pytest.raises(DataError, match="not a prodfusion lists file"):
        ListStore.open(ListStore.prepare(p, "arrow"))
    t = pa.table({"product_id": ["a"], "ids": [["b"]], "scores": [[1.0]]})
    write_lists(t, p, {"format_version": 99, "k": 1})
    with pytest.raises(DataError, match="lists format version 99"):
        read_lists_meta(p)


def test_cli_export_prints_plain_progress_when_not_a_terminal(model, tmp_path, capsys):
    from prodfusion.cli import main

    out = tmp_path / "cli.parquet"
    assert main(["export", str(model), "--out", str(out), "-k", "5", "--batch-size", "200",
                 "--json"]) == 0
    captured = capsys.readouterr()
    rep = json.loads(captured.out)
    assert rep["products"] == 500 and rep["engine"] == "local"
    assert "export: 500/500 products (100.0%)" in captured.err
    ids, _ = _expected(Recommender.load(model), 5)
    assert pq.read_table(out).column("ids").to_pylist() == ids
    assert "warning" not in captured.err
    other = tmp_path / "lists.out"  # Parquet all the same, and the user is told
    assert main(["export", str(model), "--out", str(other), "-k", "5", "--stop", "10",
                 "--quiet"]) == 0
    assert "the lists are written as Parquet whatever the file's name" in capsys.readouterr().err
    assert pq.read_table(other).num_rows == 10


def test_cli_export_to_csv_tsv_jsonl_writes_a_row_per_recommendation(model, tmp_path, capsys):
    """For a shop's database import: `--out lists.csv` (or .tsv, .jsonl) holds the same lists
    as the Parquet export, one row per recommendation, ranks from 1; with `--explain` the
    shares too; nothing left beside it; `--update` (which reads and writes Parquet) refused."""
    import polars as pl

    from prodfusion.cli import main

    ids, scores = _expected(Recommender.load(model), 5)
    text = {"product_id": pl.String, "recommended_id": pl.String}  # ids keep leading zeros
    for name, read in (("lists.csv", lambda p: pl.read_csv(p, schema_overrides=text)),
                       ("lists.tsv", lambda p: pl.read_csv(p, separator="\t",
                                                           schema_overrides=text)),
                       ("lists.jsonl", pl.read_ndjson)):
        out = tmp_path / name
        assert main(["export", str(model), "--out", str(out), "-k", "5", "--stop", "40",
                     "--quiet"]) == 0
        err = capsys.readouterr().err
        assert "200 rows: product_id, rank, recommended_id, score (" in err and "warning" not in err
        flat = read(out)
        assert flat.columns == ["product_id", "rank", "recommended_id", "score"]
        assert flat["rank"].to_list() == [1, 2, 3, 4, 5] * 40
        got = flat.group_by("product_id", maintain_order=True).agg("recommended_id", "score")
        assert got["recommended_id"].to_list() == ids[:40]
        np.testing.assert_allclose(np.array(got["score"].to_list()), np.array(scores[:40]),
                                   rtol=1e-6)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    out = tmp_path / "why.csv"
    assert main(["export", str(model), "--out", str(out), "-k", "3", "--stop", "4", "--explain",
                 "--quiet"]) == 0
    flat = pl.read_csv(out)
    assert [c for c in flat.columns if c.startswith("share_")] == [
        "share_text", "share_image", "share_clicks", "share_base"]
    np.testing.assert_allclose(flat.select(pl.sum_horizontal(pl.col("^share_.*$"))).to_series(),
                               flat["score"], atol=2e-4)  # the shares add up to the score
    capsys.readouterr()
    assert main(["export", str(model), "--out", str(tmp_path / "u.csv"), "--update",
                 str(tmp_path / "cli.parquet")]) == 2
    assert "--update writes a Parquet lists file" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"lists\.csv: cannot read the lists file .* A \.csv "
                                        r"export holds one row per recommendation, for a "
                                        r"database; the service and `export --update` read "
                                        r"the Parquet one: prodfusion export MODEL --out "
                                        r"lists\.parquet"):
        read_lists_meta(tmp_path / "lists.csv")  # what `serve --lists lists.csv` reads first


@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
def test_explain_shares_add_up_to_the_scores(model, tmp_path, fusion):
    out = tmp_path / "x.parquet"
    export_lists(model, out, k=5, fusion=fusion, stop=60, explain=True, progress=False)
    t = pq.read_table(out)
    assert read_lists_meta(out)["explain"] is True
    total = np.array(t.column("share_base").to_pylist(), dtype=np.float64)
    for m in ("text", "image", "clicks"):
        total += np.array(t.column(f"share_{m}").to_pylist(), dtype=np.float64)
    np.testing.assert_allclose(total, np.array(t.column("scores").to_pylist()), atol=2e-4)
    rec = Recommender.load(model)
    pid = rec.catalog.ids[3]
    ex = rec.explain(pid, t.column("ids")[3].as_py(), fusion=fusion)
    assert t.column("share_image")[3].as_py() == pytest.approx(
        [e["modalities"]["image"]["share"] for e in ex], abs=1e-6)


@pytest.mark.parametrize("fusion", ["intermediate", "early", "late"])
def test_export_of_a_model_with_cooc_equals_similar_batch(tmp_path, fusion):
    """A build with sessions has the pairwise ``cooc`` modality besides its vectors: the
    export fuses it like ``similar`` does (it once refused it, checking only the vectors),
    and early / late fusion leave it out as ``similar`` does (they refused the model)."""
    from prodfusion.data.sessions import Sessions
    from prodfusion.fusion.cooc import Cooc
    from tests.fusion.test_cooc import _data

    cat, _, lists, embs = _data(2)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.cooc_ = Cooc.from_sessions(Sessions.from_lists(lists), cat)
    rec.modalities = rec.available_modalities
    assert "cooc" in rec.modalities
    model = rec.save(tmp_path / "model")
    out = tmp_path / "lists.parquet"
    export_lists(model, out, k=5, batch_size=10, fusion=fusion, progress=False)
    back = Recommender.load(model)
    ids, scores = _expected(back, 5, fusion=fusion)
    table = pq.read_table(out)
    assert table.column("ids").to_pylist() == ids
    got = table.column("scores").to_pylist()
    for g, s in zip(got, scores, strict=True):  # backfilled entries are scored null/NaN
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), s, rtol=1e-5, atol=1e-6)
    assert read_lists_meta(out)["modalities"] == (
        ["text", "clicks", "cooc"] if fusion == "intermediate" else ["text", "clicks"])  # the service serves it: tests/service/test_lists.py


def _day_of_changes(rec, rng, n_new=15, n_changed=12):
    """A day's `add`: products appended, products re-encoded (moved next to others), two
    retired, one retired earlier recommended again."""
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings

    n = len(rec.catalog)
    src = rng.choice(n, n_new, replace=False)
    new = Catalog(pl.DataFrame({"product_id": [f"new{i}" for i in range(n_new)],
                                "title": [f"new product {i}" for i in range(n_new)]}))
    rec.add_products(new, {m: Embeddings(np.asarray(e.vectors[src], np.float32)  # near them
                                         + rng.normal(scale=0.3, size=(n_new, e.dim)).astype(
                                             np.float32), np.asarray(e.mask[src]), e.spec)
                           for m, e in rec.embeddings_.items() if m != "clicks"})
    moved = rng.choice(n, n_changed, replace=False)
    to = rng.choice(n, n_changed, replace=False)
    ids = rec.catalog.ids[moved].tolist()
    rec.update_products(Catalog(pl.DataFrame({"product_id": ids, "title": [f"renamed {p}" for p
                                                                              in ids]})),
                        {"text": Embeddings(np.asarray(rec.embeddings_["text"].vectors[to],
                                                       np.float32) + rng.normal(
                                                           scale=0.3, size=(n_changed, 1)).astype(
                                                           np.float32),
                                            np.ones(n_changed, bool), "text")})
    others = [p for p in rec.catalog.ids[:50].tolist() if p not in ids]
    rec.retire(others[:2])
    rec.retire([others[2]])
    return ids


@pytest.mark.parametrize("index", ["exact", "hnsw"])
@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
def test_update_after_a_days_add_equals_a_full_export(tmp_path, index, fusion):
    """`export --update`: after products were added, re-encoded, retired and recommended
    again, the updated file equals a full export of the grown model — recomputing only the
    lists that changed — under tuned-like weights (zero weights with a fallback), exact or
    approximate search."""
    from prodfusion.batch.export import update_lists
    from prodfusion.index import IndexSettings

    rng = np.random.default_rng(7)
    cat, embs, *_ = make_planted(rng, n=400)
    rec = Recommender.from_embeddings(
        cat, embs, fusion=fusion, index=index,
        index_settings=IndexSettings(exact_below=0, reduce_dim=None, ef_search=400,
                                     min_candidates=400))
    rec.weights, rec.calibration, rec.zero_weight_fallback = \
        {"text": 0.6, "image": 0.0, "clicks": 0.4}, "zmean", True
    rec.retire([rec.catalog.ids[60]])  # retired before the export, back after it
    folder = rec.save(tmp_path / "m")
    before = tmp_path / "before.parquet"
    export_lists(folder, before, k=10, progress=False)
    rec = Recommender.load(folder)
    _day_of_changes(rec, rng)
    rec.retire([rec.catalog.ids[60]], retired=False)
    rec.save(folder)
    rep = update_lists(folder, before, tmp_path / "updated.parquet", progress=False)
    export_lists(folder, tmp_path / "full.parquet", k=10, progress=False)
    got = pq.read_table(tmp_path / "updated.parquet").to_pydict()
    want = pq.read_table(tmp_path / "full.parquet").to_pydict()
    assert got["product_id"] == want["product_id"] and len(got["ids"]) == 415
    assert got["ids"] == want["ids"]
    for a, b in zip(got["scores"], want["scores"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert 15 + 12 <= rep["recomputed"] < 415 and rep["kept"] == 415 - rep["recomputed"]
    meta = read_lists_meta(tmp_path / "updated.parquet")
    assert meta["updated_from"]["recomputed"] == rep["recomputed"]
    assert meta["n_products"] == 415 and meta["k"] == 10 and meta["fusion"] == fusion


def test_update_with_the_model_and_the_lists_in_a_bucket_equals_a_full_export(tmp_path, s3,
                                                                              capsys):
    """The daily flow with everything in a bucket: `add` into the model's folder there, then
    `export s3://model --out s3://lists --update s3://lists` — the previous file read from
    its local copy, the new one uploaded — equals a full export of the grown model."""
    from prodfusion.cli import main

    rng = np.random.default_rng(11)
    cat, embs, *_ = make_planted(rng, n=300)
    s3.fs.create_dir("lists-g")
    model, lists = "s3://lists-g/models/m", "s3://lists-g/lists/lists.parquet"
    Recommender.from_embeddings(cat, embs, fusion="intermediate").save(model)
    export_lists(model, lists, k=10, progress=False)
    rec = Recommender.load(model)
    _day_of_changes(rec, rng)
    rec.save(model)
    capsys.readouterr()
    assert main(["export", model, "--out", lists, "--update", lists, "--quiet"]) == 0
    assert f"to {lists} in" in capsys.readouterr().err
    export_lists(model, tmp_path / "full.parquet", k=10, progress=False)
    with s3.fs.open_input_file("lists-g/lists/lists.parquet") as f:
        got = pq.read_table(f)
    want = pq.read_table(tmp_path / "full.parquet").to_pydict()
    assert got.column("ids").to_pylist() == want["ids"] and got.num_rows == 315
    meta = json.loads(got.schema.metadata[b"prodfusion.lists"])
    assert meta["updated_from"]["file"] == lists and 0 < meta["updated_from"]["recomputed"] < 315


def test_update_in_place_refusals_and_cli(model, tmp_path, capsys):
    """--out may be the previous file; settings come from it (a clash is an error); a range
    export and a model whose clicks were retrained since are refused, naming why."""
    from prodfusion.batch.export import update_lists
    from prodfusion.cli import main
    from prodfusion.data.sessions import Sessions

    folder = tmp_path / "m"
    Recommender.load(model).save(folder)
    lists = tmp_path / "lists.parquet"
    export_lists(folder, lists, k=7, progress=False)
    before = lists.read_bytes()
    capsys.readouterr()
    assert main(["export", str(folder), "--out", str(lists), "--update", str(lists),
                 "--quiet"]) == 0  # nothing changed: every list kept, in place
    assert "0 recomputed" in capsys.readouterr().err
    assert pq.read_table(lists).to_pydict() == pq.read_table(
        __import__("io").BytesIO(before)).to_pydict()
    assert main(["export", str(folder), "--out", str(tmp_path / "x.parquet"), "--update",
                 str(lists), "-k", "15"]) != 0
    assert "-k 15 (the file: 7)" in capsys.readouterr().err
    export_lists(folder, tmp_path / "range.parquet", k=7, start=0, stop=100, progress=False)
    with pytest.raises(DataError, match="an export with --start/--stop"):
        update_lists(folder, tmp_path / "range.parquet", tmp_path / "y.parquet")
    rec = Recommender.load(folder)
    ids = rec.catalog.ids
    rec.rebuild_clicks(Sessions.from_lists([[ids[i], ids[i + 1]] for i in range(0, 200, 2)]))
    rec.save(folder)
    with pytest.raises(DataError, match="click vectors were retrained .* export in full"):
        update_lists(folder, lists, tmp_path / "z.parquet")
    assert not (tmp_path / "z.parquet").exists()


def test_a_lists_file_of_another_model_is_found_stale():
    """A file records the build its model comes from: another build, earlier or later, is
    named; an add or update of the same build is not (only its new products differ)."""
    from prodfusion.batch.lists import stale_reasons

    meta = {"model": {"created": "2026-12-04T10:00:00+0000", "built": "2026-12-04T10:00:00+0000"},
            "exported_at": "2026-12-04T10:05:00+0000"}
    same = {"built": "2026-12-04T10:00:00+0000", "created": "2026-12-04T11:00:00+0000"}
    assert stale_reasons(meta, same) == []  # products added since: served live, not stale
    later = {"created": "2026-12-04T12:00:00+0000"}
    earlier = {"created": "2026-12-04T09:00:00+0000"}
    assert "exported from an earlier build of the model" in stale_reasons(meta, later)[0]
    assert "exported from another model" in stale_reasons(meta, earlier)[0]
    # an older file without "built": a model saved before the file's own model is another one
    old = {"model": {"created": "2026-12-04T10:00:00+0000"},
           "exported_at": "2026-12-04T10:05:00+0000"}
    assert "exported from another model" in stale_reasons(old, earlier)[0]
    assert stale_reasons(old, same) == []
    # build ids, where both record one, decide exactly (timestamps may share a second)
    meta["model"]["build_id"] = "b-1"
    assert stale_reasons(meta, {**same, "build_id": "b-1"}) == []
    twin = {"built": "2026-12-04T10:00:00+0000", "created": "2026-12-04T10:00:00+0000",
            "build_id": "b-2"}
    assert "exported from another model" in stale_reasons(meta, twin)[0]


def test_export_to_a_bucket_uploads_the_same_file_and_never_replaces_a_stranger(model, tmp_path,
                                                                                s3, capsys):
    """``--out s3://…``: the lists computed into a local staging file, uploaded whole, the
    staging folder removed; an object the export did not write is refused before any work;
    an interrupted export resumes from its staging folder."""
    from prodfusion.batch.export import staging_path
    from prodfusion.cli import main

    local = tmp_path / "lists.parquet"
    export_lists(model, local, k=5, batch_size=128, progress=False)
    uri = "s3://lists-f/daily/lists.parquet"
    with pytest.raises(DataError, match=r"^s3://lists-f/daily/lists\.parquet: the lists could "
                                        r"not be uploaded \(no such bucket 'lists-f'\); they "
                                        r"are kept at /"):
        export_lists(model, uri, k=5, batch_size=128, progress=False)
    s3.fs.create_dir("lists-f")
    rep = export_lists(model, uri, k=5, batch_size=128, progress=False)
    assert rep["out"] == uri and rep["products"] == 500
    fs, path = s3.fs, uri.removeprefix("s3://")
    with fs.open_input_file(path) as f:
        got = pq.read_table(f)
    assert got.select(["product_id", "ids", "scores"]).equals(
        pq.read_table(local).select(["product_id", "ids", "scores"]))
    assert not staging_path(uri, model).parent.exists()  # removed after the upload
    # again: an object an export wrote is replaced
    export_lists(model, uri, k=5, batch_size=128, progress=False)

    # the command line, one row per recommendation
    assert main(["export", str(model), "--out", "s3://lists-f/daily/lists.csv", "-k", "3",
                 "--quiet"]) == 0
    assert "to s3://lists-f/daily/lists.csv" in capsys.readouterr().err
    assert main(["export", str(model), "--out", str(tmp_path / "lists.csv"), "-k", "3",
                 "--quiet"]) == 0
    with fs.open_input_stream("lists-f/daily/lists.csv") as f:
        text = f.read().decode()
    assert text.startswith("product_id,rank,recommended_id,score\n")
    assert text == (tmp_path / "lists.csv").read_text() and text.count("\n") > 1000

    # an object the export did not write: refused, untouched
    s3.put("s3://lists-f/daily/report.parquet", b"PAR1 not lists")
    s3.put("s3://lists-f/daily/notes.csv", b"name,comment\n")
    with pytest.raises(ParameterError, match="'s3://lists-f/daily/report.parquet' exists and "
                                             "is not a lists file"):
        export_lists(model, "s3://lists-f/daily/report.parquet", k=5, progress=False)
    capsys.readouterr()
    assert main(["export", str(model), "--out", "s3://lists-f/daily/notes.csv", "--quiet"]) != 0
    assert "error: --out 's3://lists-f/daily/notes.csv' exists and is not a lists file" in \
        capsys.readouterr().err
    for name, data in (("report.parquet", b"PAR1 not lists"), ("notes.csv", b"name,comment\n")):
        with fs.open_input_stream(f"lists-f/daily/{name}") as f:
            assert f.read() == data

    # interrupted after its first batches: run again, the staged batches are reused
    uri2 = "s3://lists-f/daily/resumed.parquet"
    with pytest.raises(KeyboardInterrupt):
        export_lists(model, uri2, k=5, batch_size=100, executor=_Interrupt(2), progress=False)
    assert s3.fs.get_file_info("lists-f/daily/resumed.parquet").type.name == "NotFound"
    assert len(list(parts_folder(staging_path(uri2, model)).glob("part-*.parquet"))) == 2
    rep = export_lists(model, uri2, k=5, batch_size=100, progress=False)
    assert (rep["reused"], rep["batches"]) == (2, 3)
    with fs.open_input_file("lists-f/daily/resumed.parquet") as f:
        assert pq.read_table(f).column("ids").to_pylist() == _expected(
            Recommender.load(model), 5)[0]
    from prodfusion.batch.export import update_lists

    rep = update_lists(model, uri2, tmp_path / "again.parquet", progress=False)  # from the bucket
    assert rep["recomputed"] == 0 and rep["kept"] == 500
    assert read_lists_meta(tmp_path / "again.parquet")["updated_from"]["file"] == uri2
