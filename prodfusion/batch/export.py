"""``export_lists``: the top-k list of every product of a model, in batches, resumable.

Each batch of catalog rows ``[lo, hi)`` goes through :meth:`Recommender.similar_batch` (the
same code that answers one query, so an exported list *is* the live list) and is written as a
part file in ``.<out>.parts/`` beside the output. A rerun with the same settings skips the
parts already written; the parts are merged into ``out`` at the end, atomically, and the
folder is removed. ``start``/``stop`` export a range of rows only (e.g. one machine per
range; their files can be read together as one Parquet data set).

Batches run through an executor (:mod:`prodfusion.engine`): in this process by default, or on
Ray workers that each load the model folder once.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prodfusion import __version__
from prodfusion._checks import check_k, is_int
from prodfusion._outputs import check_output_file
from prodfusion.batch._progress import Progress
from prodfusion.batch.lists import LISTS_FORMAT_VERSION, META_KEY, lists_table, read_lists_meta
from prodfusion.data.storage import is_object_uri
from prodfusion.errors import DataError, ParameterError, param_error

__all__ = ["export_lists", "parts_folder", "update_lists"]



def parts_folder(out: str | os.PathLike) -> Path:
    """The folder holding the finished batches of an export to ``out`` until it completes."""
    out = Path(out)
    return out.with_name(f".{out.name}.parts")


def _load_model(path: str, mmap_index: bool):
    from prodfusion.recommender import Recommender

    return Recommender.load(path, mmap_index=mmap_index)


def _given(rec):
    return rec


def _range_lists(rec, rows: tuple[int, int], *, k: int, fusion: str, modalities: tuple[str, ...],
                 explain: bool = False, profile: str | None = None,
                 one_per_group: bool = False):
    """The lists of catalog rows ``[lo, hi)`` as an Arrow table (runs on a worker)."""
    lo, hi = rows
    pids = rec._ids[lo:hi]
    rows_, scores = rec.similar_rows(np.arange(lo, hi), k, fusion=fusion, modalities=modalities,
                                     profile=profile, one_per_group=one_per_group)
    ids = rec.ids_of(rows_)
    table = lists_table(pids, ids, scores)
    if explain:
        table = _with_shares(rec, table, fusion, modalities, profile)
    return table


def _rows_lists(rec, rows: np.ndarray, *, k: int, fusion: str, modalities: tuple[str, ...],
                explain: bool = False, profile: str | None = None,
                one_per_group: bool = False):
    """The lists of catalog ``rows`` (any rows) as an Arrow table (runs on a worker)."""
    rows = np.asarray(rows, np.int64)
    found, scores = rec.similar_rows(rows, k, fusion=fusion, modalities=modalities,
                                     profile=profile, one_per_group=one_per_group)
    table = lists_table(rec._ids[rows], rec.ids_of(found), scores)
    if explain:
        table = _with_shares(rec, table, fusion, modalities, profile)
    return table


def _with_shares(rec, table: pa.Table, fusion: str, modalities,
                 profile: str | None = None) -> pa.Table:
    """Add ``share_<modality>`` (and ``share_base``) list columns: each modality's part of every
    listed score (:meth:`Recommender.explain`; they add up to the score)."""
    cols = {m: [] for m in (*modalities, "base")}
    for pid, listed in zip(table.column("product_id").to_pylist(),
                           table.column("ids").to_pylist(), strict=True):
        ex = rec.explain_rows(rec.catalog.row_of(pid), rec.catalog.rows_of(listed),
                              fusion=fusion, modalities=modalities, profile=profile,
                              served=True) if listed else []  # the lists' own rows
        for m in modalities:
            cols[m].append([float(e["modalities"][m]["share"]) if m in e["modalities"] else 0.0
                            for e in ex])
        cols["base"].append([float(e.get("base", 0.0)) for e in ex])
    for m, values in cols.items():
        table = table.append_column(f"share_{m}", pa.array(values, pa.list_(pa.float32())))
    return table


def _job_meta(rec, *, k, fusion, modalities, start, stop, one_per_group=None) -> dict:
    m = getattr(rec, "manifest_", {}) or {}
    return {
        "format_version": LISTS_FORMAT_VERSION,
        "k": int(k),
        "fusion": fusion,
        "modalities": list(modalities),
        "normalize": bool(rec.normalize),
        "one_per_group": rec.groups_once(one_per_group),
        "model": {"path": str(getattr(rec, "path_", "") or ""),
                  "catalog_fingerprint": (m.get("fingerprints") or {}).get("catalog"),
                  "created": m.get("created"),
                  # the build the model comes from (kept by add/update): another build's
                  # file is found stale by the service (batch.lists.stale_reasons)
                  "built": m.get("built") or m.get("created"),
                  "build_id": m.get("build_id")},
        "n_products": len(rec.catalog),
        "start": int(start),
        "stop": int(stop),
    }


def _job_model(model, batch_size, where: str):
    """``(recommender, folder or None)`` of a batch job's ``model`` (a loaded one or its
    folder, loaded: validated, defaults resolved; a folder in a bucket as its URI),
    ``batch_size`` checked."""
    from prodfusion.recommender import Recommender

    if not is_int(batch_size) or batch_size < 1:
        raise param_error("batch_size", where, "an int >= 1", batch_size)
    if isinstance(model, Recommender):  # read from a bucket: its workers read the bucket
        return model, getattr(model, "uri_", None) or getattr(model, "path_", None)
    if is_object_uri(model):  # each machine of a Ray cluster reads its own copy of it
        return Recommender.load(model), model.strip().rstrip("/")
    return Recommender.load(Path(model)), Path(model)


def _part_name(lo: int, hi: int) -> str:
    return f"part-{lo:012d}-{hi:012d}.parquet"


def staging_path(uri: str, model) -> Path:
    """Where an export to ``uri`` (object storage) is computed before its upload
    (:func:`prodfusion.data.storage.staging_path`: the same for the same URI and model, so an
    interrupted export resumes there)."""
    from prodfusion.data.storage import staging_path as _staging

    return _staging(uri, model if isinstance(model, (str, os.PathLike)) else None)


def staged(uri: str, model) -> Path:
    """:func:`staging_path`, its folder made."""
    local = staging_path(uri, model)
    local.parent.mkdir(parents=True, exist_ok=True)
    return local


def local_lists(path) -> Path:
    """``path`` as a local file: for a lists file in a bucket (``s3://…``), the local copy of
    it as published now (:func:`prodfusion.data.storage.local_copy`, the one ``serve
    --lists`` reads); :class:`DataError` naming it where it cannot be read."""
    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.data.storage import local_copy, object_stamp

    if not is_object_uri(path):
        return Path(path)
    uri = str(path).strip()
    try:
        stamp = object_stamp(uri)
        if stamp is None:
            raise DataError(f"{uri}: no such lists file in the bucket.")
        return local_copy(stamp)
    except PhotoFetchError as e:
        raise DataError(f"{uri}: cannot be read ({e}).") from None


def check_store_output(uri: str, where: str) -> None:
    """Refuse an object at ``uri`` that an export did not write (it is never replaced): a
    ``.parquet`` one must hold the lists metadata; a flat one (``.csv``, ``.tsv``,
    ``.jsonl``) must begin as a flat export does."""
    from prodfusion.batch.lists import FLAT_FORMATS
    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.data.storage import locate, object_head

    uri = str(uri).strip()
    try:
        head = object_head(uri, 16)
    except PhotoFetchError as e:
        raise DataError(f"{uri}: cannot be read ({e}).") from None
    if head is None:
        return
    suffix = os.path.splitext(uri.split("?", 1)[0])[1].lower()
    if suffix in FLAT_FORMATS:
        ours = head.startswith((b"product_id", b'{"product_id"'))
    else:
        fs, path = locate(uri)
        try:
            ours = META_KEY in (pq.read_schema(path, filesystem=fs).metadata or {})
        except Exception:  # noqa: BLE001 - whatever it is, it is not a lists file
            ours = False
    if not ours:
        raise ParameterError(f"{where} {uri!r} exists and is not a lists file an earlier "
                             "export wrote; it is never replaced. Name another object, or "
                             "remove it first.")


def publish(local: Path, uri: str) -> None:
    """Upload ``local`` to ``uri``, then remove its staging folder; where the upload fails,
    a :class:`DataError` says why and where the file is kept."""
    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.data.storage import upload_file

    try:
        upload_file(local, str(uri).strip())
    except PhotoFetchError as e:
        raise DataError(f"{str(uri).strip()}: the lists could not be uploaded ({e}); they are "
                        f"kept at {local}.") from None
    shutil.rmtree(local.parent, ignore_errors=True)


def export_lists(
    model,
    out: str | os.PathLike,
    *,
    k: int = 15,
    fusion: str | None = None,
    modalities=None,
    batch_size: int = 4096,
    start: int = 0,
    stop: int | None = None,
    executor=None,
    resume: bool = True,
    progress: bool | None = None,
    explain: bool = False,
    profile: str | None = None,
    one_per_group: bool | None = None,
) -> dict:
    """Write the ``k`` most similar products of every product (rows ``start..stop``) to ``out``.

    Parameters
    ----------
    model : Recommender or path
        A loaded model, or its folder. Remote executors need the folder (workers load it;
        on a cluster it must be readable from every node at the same path).
    out : path or str
        The Parquet file to write (layout: :mod:`prodfusion.batch.lists`), atomically; or
        an object in a bucket (``s3://shop-data/lists.parquet``: computed into a local
        staging file, where an interrupted export resumes, then uploaded whole).
    k, fusion, modalities
        As in :meth:`Recommender.similar` (defaults: the model's).
    batch_size : int
        Products per :meth:`~Recommender.similar_batch` call and per part file.
    start, stop : int
        Catalog rows to export (default: all).
    executor : Executor, optional
        :func:`prodfusion.engine.make_executor` (default: this process).
    resume : bool
        Reuse the part files of an interrupted export with the same settings (default). False
        starts over.
    progress : bool or None
        A tqdm bar on a terminal, plain lines every 30 s otherwise; False: silent.
    explain : bool
        Also write ``share_<modality>`` and ``share_base`` columns: each modality's part of
        every listed score (:meth:`Recommender.explain`; ``base + Σ shares = score``).
    profile : str, optional
        One of the model's weighting profiles (:attr:`Recommender.profiles`) to rank by
        (intermediate fusion unless ``fusion`` says otherwise); kept in the lists' metadata,
        and a service arm serves the file only with that profile.
    one_per_group : bool, optional
        At most one product of each group per list (:meth:`Recommender.similar`; ``None``:
        the model's setting); kept in the lists' metadata, and the service answers a
        request asking otherwise live.

    Returns
    -------
    dict
        ``out``, ``products`` exported, ``batches`` computed now and ``reused``, ``seconds``,
        ``engine`` and the lists metadata.

    Examples
    --------
    >>> export_lists("model_dir", "lists.parquet", k=15)                 # doctest: +SKIP
    """
    from prodfusion.engine import LocalExecutor
    from prodfusion.fusion import check_method, check_modalities

    if is_object_uri(out):  # a bucket: computed into a local staging file, then uploaded
        check_store_output(out, "export_lists(): out")
        local = staged(out, model)
        rep = export_lists(model, local, k=k, fusion=fusion, modalities=modalities,
                           batch_size=batch_size, start=start, stop=stop, executor=executor,
                           resume=resume, progress=progress, explain=explain, profile=profile,
                           one_per_group=one_per_group)
        publish(local, out)
        return {**rep, "out": str(out).strip()}
    t0 = time.perf_counter()
    began = time.time()  # before the model is read: a product re-encoded later is stale
    executor = executor or LocalExecutor()
    k = check_k(k, "export_lists()")
    check_output_file(out, "export_lists(): out", ours=read_lists_meta,  # before any work
                      written_by="a lists file written by an earlier export (no readable "
                                 "'prodfusion.lists' metadata)",
                      name="the Parquet file (e.g. lists.parquet; CLI: --out)")
    rec, folder = _job_model(model, batch_size, "export_lists()")
    if executor.name != "local" and folder is None:
        raise ParameterError(
            f"export_lists(): the {executor.name} engine loads the model on its workers, so it "
            "needs a saved model folder; pass its path (or save the model and load it).")
    n = len(rec.catalog)
    stop = n if stop is None else stop
    if not 0 <= start < stop <= n:
        raise ParameterError(
            f"export_lists(): start={start} and stop={stop} must satisfy 0 <= start < stop <= "
            f"{n} (the model's products).")
    method = check_method(rec.fusion_for(fusion, profile), "export_lists()")
    if modalities is not None:
        check_modalities(modalities, rec.available_modalities, "export_lists()")
    # as similar() resolves them: early / late leave out the pairwise modalities (cooc …)
    mods = rec.resolve(method, modalities)[1]
    wt = rec.profile_weighting(profile, where="export_lists()") if profile else None
    if executor.name == "local":  # remote workers read the index themselves
        rec.searcher(method, mods, wt)  # loads (or builds) the index once, before the first batch
    rec.groups_once(one_per_group, "export_lists()")  # refused without group codes
    meta = _job_meta(rec, k=k, fusion=method, modalities=mods, start=start, stop=stop,
                     one_per_group=one_per_group)
    meta["explain"] = bool(explain)
    if profile:  # absent: the model's default weighting (what older files hold)
        meta["profile"] = profile

    out = Path(out)
    parts = parts_folder(out)
    job = parts / "job.json"
    if parts.exists() and (not resume or not job.is_file()
                           or json.loads(job.read_text()) != meta):
        if resume and job.is_file():
            raise DataError(
                f"{parts}: holds an unfinished export with other settings ({job}); remove it, "
                "or pass resume=False (CLI: --restart) to start over.")
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    job.write_text(json.dumps(meta))
    started = parts / "started"  # when the first run of this job began (a resumed one too)
    if not started.is_file():
        started.write_text(repr(began))
    began = float(started.read_text())
    ranges = [(lo, min(lo + batch_size, stop)) for lo in range(start, stop, batch_size)]
    todo = [r for r in ranges if not (parts / _part_name(*r)).is_file()]
    reused = len(ranges) - len(todo)
    bar = Progress(stop - start, "export", "products", enabled=progress,
                   initial=sum(hi - lo for lo, hi in ranges) - sum(hi - lo for lo, hi in todo))
    fn = functools.partial(_range_lists, k=k, fusion=method, modalities=mods,
                           explain=bool(explain), profile=profile,
                           one_per_group=meta["one_per_group"])
    make = (functools.partial(_given, rec) if executor.name == "local"
            else functools.partial(_load_model, str(folder), False))
    try:
        for (lo, hi), table in executor.map_with_state(make, fn, todo):
            tmp = parts / f".{_part_name(lo, hi)}.tmp"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, parts / _part_name(lo, hi))
            bar.update(hi - lo)
    finally:
        bar.close()
    meta = {**meta, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started": began,
            "prodfusion": __version__, "engine": executor.name}
    _merge(parts, ranges, out, meta)
    shutil.rmtree(parts, ignore_errors=True)
    return {"out": str(out), "products": stop - start, "batches": len(todo), "reused": reused,
            "seconds": round(time.perf_counter() - t0, 2), "engine": executor.name,
            "meta": meta}


def update_lists(
    model,
    previous: str | os.PathLike,
    out: str | os.PathLike,
    *,
    batch_size: int = 4096,
    executor=None,
    progress: bool | None = None,
) -> dict:
    """A lists file for ``model`` made from ``previous`` (a file ``export_lists`` wrote for
    an earlier state of the same model), recomputing only the lists it cannot hold any more.

    After ``prodfusion add`` the lists that can differ from the previous file's are those
    of the products **added** since its export began, of those **re-encoded** since (title,
    photo or category changed), the lists that **hold** a re-encoded, retired or unknown
    product, and the lists that an added, re-encoded or re-activated product would
    **enter**: its score for that query, computed exactly as the search ranks it, reaches
    the list's last one. Those are recomputed with the previous file's settings (k, fusion,
    modalities, profile, explain); the others cannot have changed (the model's other vectors
    and its calibration statistics are as they were) and are kept. The result equals a full
    export (up to an approximate index's recall) and is written to ``out`` atomically (``out``
    may be ``previous``; either may be an object in a bucket, ``s3://…``: read from its local
    copy, written into a local staging file and uploaded). Checking costs one exact score
    per kept list and new or changed product. When every list may have changed — the click
    vectors retrained, the weights tuned, the folder rebuilt
    (:func:`prodfusion.batch.lists.stale_reasons`) — it refuses: export in full.

    Returns
    -------
    dict
        ``out``, ``products``, ``recomputed``, ``kept``, ``seconds``, ``engine``, ``meta``
        (whose ``updated_from`` names the previous file and the counts).
    """
    from prodfusion.batch.lists import exported_at, stale_reasons, write_lists
    from prodfusion.engine import LocalExecutor

    remote_out = str(out).strip() if is_object_uri(out) else None
    if remote_out:  # computed into a local staging file, uploaded at the end
        check_store_output(remote_out, "update_lists() out")
    prev_name = str(previous).strip() if is_object_uri(previous) else None
    previous = local_lists(previous)
    t0 = time.perf_counter()
    began = time.time()  # before the model is read, as export_lists
    executor = executor or LocalExecutor()
    rec, folder = _job_model(model, batch_size, "update_lists()")
    if executor.name != "local" and folder is None:
        raise ParameterError("update_lists(): the Ray engine needs a saved model folder.")
    previous = Path(previous)
    prev_meta = read_lists_meta(previous)
    n_prev = prev_meta.get("n_products")
    if prev_meta.get("start", 0) != 0 or prev_meta.get("stop") != n_prev:
        raise DataError(
            f"{previous}: holds catalog rows {prev_meta.get('start')}..{prev_meta.get('stop')} "
            f"of {n_prev} (an export with --start/--stop); --update needs a whole export.")
    reasons = stale_reasons(prev_meta, getattr(rec, "manifest_", None) or {})
    if reasons:
        raise DataError(f"{previous}: {'; '.join(reasons)}, so every list may have changed; "
                        "export in full (without --update).")
    k, method = int(prev_meta["k"]), prev_meta["fusion"]
    mods = tuple(prev_meta["modalities"])
    profile, explain = prev_meta.get("profile"), bool(prev_meta.get("explain"))
    if rec.resolve(method, mods)[1] != mods or bool(rec.normalize) != bool(
            prev_meta.get("normalize")):
        raise DataError(f"{previous}: exported over {list(mods)} (normalize="
                        f"{prev_meta.get('normalize')}), which this model does not serve so; "
                        "export in full.")
    prev = read_lists(previous)
    since = exported_at(prev_meta)
    n = len(rec.catalog)
    updated = rec.updated_ if getattr(rec, "updated_", None) is not None else np.zeros(n)
    retired = rec.retired_ if getattr(rec, "retired_", None) is not None else np.zeros(n, bool)
    fresh = np.asarray(updated) > since  # re-encoded since the export began
    prev_rows, found = rec.catalog.lookup(prev.column("product_id").to_pylist())
    if not found.all():
        raise DataError(f"{previous}: lists products this model does not have (e.g. "
                        f"{prev.column('product_id')[int(np.argmin(found))]}); export in full.")
    todo = np.ones(n, bool)
    todo[prev_rows] = False  # added since: not in the file
    todo |= fresh
    listed = prev.column("ids").combine_chunks()
    member_rows, member_found = rec.catalog.lookup(listed.flatten().to_pylist())
    bad = ~member_found | fresh[member_rows] | retired[member_rows]
    owner = np.repeat(np.arange(len(prev)), np.diff(np.asarray(listed.offsets)))
    holds_bad = np.bincount(owner[bad], minlength=len(prev)) > 0
    todo[prev_rows[holds_bad]] = True
    # a kept list gains a product added or re-encoded since (or recommended again) when
    # that product scores at least its last one: scored exactly, as the search ranks it
    wt = rec.profile_weighting(profile, where="update_lists()") if profile else None
    cand = np.flatnonzero((fresh | ~np.isin(np.arange(n), prev_rows)) & ~retired)
    kept_idx = np.flatnonzero(~todo[prev_rows])
    if len(cand) and len(kept_idx):
        last = _last_scores(prev.column("scores").combine_chunks(), k)
        todo[prev_rows[kept_idx[_entered(rec.searcher(method, mods, wt),
                                         prev_rows[kept_idx], last[kept_idx], cand,
                                         progress)]]] = True
    rows = np.flatnonzero(todo)
    if executor.name == "local" and len(rows):
        rec.searcher(method, mods, wt)
    fn = functools.partial(_rows_lists, k=k, fusion=method, modalities=mods, explain=explain,
                           profile=profile,
                           one_per_group=bool(prev_meta.get("one_per_group", False)))
    make = (functools.partial(_given, rec) if executor.name == "local"
            else functools.partial(_load_model, str(folder), False))
    chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    bar = Progress(len(rows), "export --update", "lists", enabled=progress)
    tables, done = [], []  # in the order the executor returns them
    try:
        for chunk, table in executor.map_with_state(make, fn, chunks):
            tables.append(table)
            done.append(np.asarray(chunk, np.int64))
            bar.update(table.num_rows)
    finally:
        bar.close()
    schema = prev.schema.remove_metadata()
    keep_idx = np.flatnonzero(~todo[prev_rows])
    parts = [prev.take(pa.array(keep_idx)).replace_schema_metadata(None)]
    parts += [t.cast(schema) for t in tables]
    merged = pa.concat_tables(parts)
    order_rows = np.concatenate([prev_rows[keep_idx], *done])
    merged = merged.take(pa.array(np.argsort(order_rows, kind="stable")))
    meta = {**{key: v for key, v in prev_meta.items()
               if key not in ("created", "started", "prodfusion", "engine", "updated_from")},
            **{key: v for key, v in _job_meta(rec, k=k, fusion=method, modalities=mods,
                                              start=0, stop=n).items()
               if key in ("model", "n_products", "start", "stop")},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started": began,
            "prodfusion": __version__, "engine": executor.name,
            "updated_from": {"file": prev_name or str(previous.resolve()),
                             "created": prev_meta.get("created"),
                             "started": prev_meta.get("started"),
                             "recomputed": int(len(rows)), "kept": int(n - len(rows))}}
    if remote_out:
        local = staged(remote_out, model)
        write_lists(merged, local, meta)
        publish(local, remote_out)
    else:
        write_lists(merged, out, meta)
    return {"out": remote_out or str(out), "products": n, "recomputed": int(len(rows)),
            "kept": int(n - len(rows)), "seconds": round(time.perf_counter() - t0, 2),
            "engine": executor.name, "meta": meta}


def _last_scores(scores: pa.ListArray, k: int) -> np.ndarray:
    """Per list, the score a product must reach to enter it: its last (lowest) score, or
    ``-inf`` for a list that is short or holds a backfilled product (no score): any
    product with a score enters those."""
    flat = np.asarray(scores.flatten(), np.float32)
    offsets = np.asarray(scores.offsets)
    lengths = np.diff(offsets)
    out = np.full(len(lengths), -np.inf, np.float32)
    full = lengths >= k
    for i in np.flatnonzero(full):
        x = flat[offsets[i]:offsets[i + 1]]
        if np.isfinite(x).all():
            out[i] = x.min()
    return out


def _block_scores(searcher, q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``(len(q), len(c))`` scores of candidates ``c`` for queries ``q`` as ``searcher``'s
    ``topk`` ranks them (exactly; an approximate index re-scores its candidates so)."""
    from prodfusion.fusion.weights import FALLBACK_OFFSET
    from prodfusion.index.fallback import EarlyFallbackIndex, FallbackRoutedIndex

    if isinstance(searcher, EarlyFallbackIndex):  # queries without a weighted modality
        out = np.full((len(q), len(c)), -np.inf, np.float32)
        a = searcher.served[q]
        if a.any():
            out[a] = _block_scores(searcher.main, q[a], c)
        if not a.all():
            s = _block_scores(searcher.fallback, q[~a], c)
            out[~a] = np.where(np.isfinite(s), s - np.float32(FALLBACK_OFFSET), -np.inf)
        return out
    if isinstance(searcher, FallbackRoutedIndex):  # its main scores rank the fallback pairs
        return _block_scores(searcher.main, q, c)
    if hasattr(searcher, "similarity"):  # an exact fuser
        return np.asarray(searcher.similarity(q, c), np.float32)
    if hasattr(searcher, "exact_scores"):  # a fused index: a small exact fuser per block
        return np.asarray(searcher.exact_scores(q, c), np.float32)
    return np.stack([np.asarray(searcher.pair_scores(int(x), c), np.float32) for x in q])


def _entered(searcher, q: np.ndarray, last: np.ndarray, cand: np.ndarray,
             progress) -> np.ndarray:
    """Which queries ``q`` some candidate of ``cand`` would enter the list of (a score at
    least ``last``, ties included: the tie-break may put it first)."""
    out = np.zeros(len(q), bool)
    block = max(1, min(4096, (128 << 20) // (4 * len(cand))))
    bar = Progress(len(q), "export --update: lists checked", "lists", enabled=progress)
    try:
        for lo in range(0, len(q), block):
            s = _block_scores(searcher, q[lo:lo + block], cand)
            out[lo:lo + block] = (np.isfinite(s) & (s >= last[lo:lo + block, None])).any(1)
            bar.update(min(block, len(q) - lo))
    finally:
        bar.close()
    return out


def _merge(parts: Path, ranges, out: Path, meta: dict) -> None:
    """Concatenate the part files in row order into ``out`` (temp file, then rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = None
    try:
        for lo, hi in ranges:
            table = pq.read_table(parts / _part_name(lo, hi))
            if writer is None:
                schema = table.schema.with_metadata({META_KEY: json.dumps(meta).encode()})
                writer = pq.ParquetWriter(tmp, schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
        if writer is None:
            raise DataError(f"{parts}: nothing to merge.")
        writer.close()
        writer = None
        os.replace(tmp, out)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise


def read_lists(path: str | os.PathLike) -> pa.Table:
    """A lists file as an Arrow table (all columns)."""
    return pq.read_table(path)
