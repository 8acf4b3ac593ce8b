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
from prodfusion.batch._progress import Progress
from prodfusion.batch.lists import LISTS_FORMAT_VERSION, META_KEY, lists_table
from prodfusion.errors import DataError, ParameterError, param_error

__all__ = ["export_lists", "parts_folder"]



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
                 explain: bool = False, profile: str | None = None):
    """The lists of catalog rows ``[lo, hi)`` as an Arrow table (runs on a worker)."""
    lo, hi = rows
    pids = rec._ids[lo:hi]
    rows_, scores = rec.similar_rows(np.arange(lo, hi), k, fusion=fusion, modalities=modalities,
                                     profile=profile)
    ids = rec.ids_of(rows_)
    table = lists_table(pids, ids, scores)
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
        ex = rec.explain(pid, listed, fusion=fusion, modalities=modalities,
                         profile=profile) if listed else []
        for m in modalities:
            cols[m].append([float(e["modalities"][m]["share"]) if m in e["modalities"] else 0.0
                            for e in ex])
        cols["base"].append([float(e.get("base", 0.0)) for e in ex])
    for m, values in cols.items():
        table = table.append_column(f"share_{m}", pa.array(values, pa.list_(pa.float32())))
    return table


def _job_meta(rec, *, k, fusion, modalities, start, stop) -> dict:
    m = getattr(rec, "manifest_", {}) or {}
    return {
        "format_version": LISTS_FORMAT_VERSION,
        "k": int(k),
        "fusion": fusion,
        "modalities": list(modalities),
        "normalize": bool(rec.normalize),
        "model": {"path": str(getattr(rec, "path_", "") or ""),
                  "catalog_fingerprint": (m.get("fingerprints") or {}).get("catalog"),
                  "created": m.get("created")},
        "n_products": len(rec.catalog),
        "start": int(start),
        "stop": int(stop),
    }


def _part_name(lo: int, hi: int) -> str:
    return f"part-{lo:012d}-{hi:012d}.parquet"


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
) -> dict:
    """Write the ``k`` most similar products of every product (rows ``start..stop``) to ``out``.

    Parameters
    ----------
    model : Recommender or path
        A loaded model, or its folder. Remote executors need the folder (workers load it;
        on a cluster it must be readable from every node at the same path).
    out : path
        The Parquet file to write (layout: :mod:`prodfusion.batch.lists`), atomically.
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
    from prodfusion.recommender import Recommender

    t0 = time.perf_counter()
    began = time.time()  # before the model is read: a product re-encoded later is stale
    executor = executor or LocalExecutor()
    k = check_k(k, "export_lists()")
    if not is_int(batch_size) or batch_size < 1:
        raise param_error("batch_size", "export_lists()", "an int >= 1", batch_size)
    if isinstance(model, Recommender):
        rec, folder = model, getattr(model, "path_", None)
    else:
        folder = Path(model)
        rec = Recommender.load(folder)  # validates the folder and resolves the defaults
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
    meta = _job_meta(rec, k=k, fusion=method, modalities=mods, start=start, stop=stop)
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
                           explain=bool(explain), profile=profile)
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
