"""Encoding titles and photos on Ray Data, into the embedding cache.

:func:`encode_on_ray` does for one encoder spec what ``make_encoder(spec).encode(catalog)``
does locally, with the model calls spread over Ray actors:

1. the driver looks up which titles / photos the embedding cache already holds (the same
   content keys as the local path: SHA-256 of the title, or of the photo file's bytes);
2. the missing ones become a Ray Dataset, explicitly repartitioned into blocks, and
   ``map_batches`` runs a class-based encoder on an actor pool (``ActorPoolStrategy``) with a
   *fractional* CPU per actor (whole-CPU actors deadlocked on 2 cores, issue 14): each actor
   loads its model once;
3. the results are written as Parquet shards (``key``, ``ok``, ``kind``, ``reason``,
   ``vector``) and merged into the embedding cache; shards left by an interrupted run are
   merged first, so a rerun encodes only what is still missing;
4. the Embeddings are assembled from the cache exactly like the local path, with the photos
   that could not be read counted (missing / corrupt) as locally.

``prodfusion build --engine ray`` runs this for the text and image encoders before the normal
build, which then finds every vector in the cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prodfusion._outputs import check_replaceable_folder
from prodfusion.errors import ParameterError

__all__ = ["encode_on_ray", "RayBatchEncoder"]

log = logging.getLogger(__name__)


class RayBatchEncoder:
    """The ``map_batches`` callable: one encoder per actor, loaded once in ``__init__``."""

    def __init__(self, spec: str, device: str = "cpu", batch_size: int | None = None) -> None:
        from prodfusion.encoders import make_encoder

        self.enc = make_encoder(spec, device=device, batch_size=batch_size, progress=False)
        if self.enc.modality == "image":
            self.enc.decode_workers = 1  # the actor holds a fraction of a CPU
        self.enc.load()
        import ray

        self.node = ray.get_runtime_context().get_node_id()  # where this actor runs

    def __call__(self, batch: pa.Table) -> pa.Table:
        keys = batch.column("key").to_pylist()
        xs = batch.column("x").to_pylist()
        n = len(xs)
        kind = [""] * n
        reason = [""] * n
        if self.enc.modality == "text":
            vectors = self.enc.encode_texts(xs)
            ok = np.ones(n, dtype=bool)
        else:
            vectors, ok, failures = self.enc.encode_paths(xs)
            for f in failures:
                kind[f.index], reason[f.index] = f.kind, f.reason
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        flat = pa.array(vectors.ravel())
        return pa.table({
            "key": pa.array(keys, pa.string()),
            "ok": pa.array(ok),
            "kind": pa.array(kind, pa.string()),
            "reason": pa.array(reason, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
            "node": pa.array([self.node] * n, pa.string()),
        })


#: Marks a ``shards_dir`` given to :func:`encode_on_ray` as its own (read, then removed).
RAY_SHARDS_MARKER = ".prodfusion-ray-shards"


def _merge_shards(folder: Path, cache, namespace: str,
                  nodes: set | None = None) -> dict[str, tuple[str, str]]:
    """Put the vectors of every shard in ``folder`` into the cache; returns the failures.
    ``nodes`` collects the Ray nodes that encoded them (shards written before the ``node``
    column existed add none)."""
    failed: dict[str, tuple[str, str]] = {}
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    for f in files:
        try:
            t = pq.read_table(f)
        except (OSError, pa.ArrowInvalid):
            log.warning("ignoring an unreadable (partly written?) shard %s", f)
            continue
        ok = t.column("ok").to_numpy(zero_copy_only=False)
        keys = t.column("key").to_pylist()
        if nodes is not None and "node" in t.column_names:
            nodes.update(t.column("node").unique().to_pylist())
        if ok.any():
            vec = t.column("vector").combine_chunks()
            dim = vec.type.list_size
            mat = vec.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
            cache.put(namespace, [k for k, o in zip(keys, ok, strict=True) if o], mat[ok])
        for k, o, kd, rs in zip(keys, ok, t.column("kind").to_pylist(),
                                t.column("reason").to_pylist(), strict=True):
            if not o:
                failed[k] = (kd, rs)
    return failed


def encode_on_ray(
    catalog,
    spec: str,
    cache,
    *,
    actors: int = 2,
    num_cpus_per_actor: float = 0.5,
    num_gpus_per_actor: float = 0.0,
    batch_size: int | None = None,
    blocks: int | None = None,
    shards_dir: str | os.PathLike | None = None,
    keep_shards: bool = False,
):
    """Encode ``catalog``'s titles or photos with ``spec`` on Ray Data; fill ``cache``.

    Parameters
    ----------
    catalog : Catalog
    spec : str
        A text or image encoder spec (:func:`prodfusion.encoders.make_encoder`).
    cache : EmbeddingCache
        Where the vectors go (required: it is how results come back and how a rerun resumes).
    actors, num_cpus_per_actor, num_gpus_per_actor
        Size of the actor pool and what each actor reserves (fractions allowed).
    batch_size : int, optional
        Rows per ``map_batches`` call (default: the encoder's batch size).
    blocks : int, optional
        Blocks the dataset is repartitioned into (default: 4 per actor).
    shards_dir : path, optional
        Where the Parquet shards are written (default: a folder in the cache directory named
        after the spec); kept after a failure so that the next run merges them.

    Returns
    -------
    Embeddings
        Equal to the local ``make_encoder(spec).encode(catalog)`` (same vectors, same mask,
        ``info`` with the counts, ``engine: "ray"``).
    """
    from prodfusion.encoders import make_encoder
    from prodfusion.encoders.cache import content_key
    from prodfusion.engine.ray_engine import require_ray

    if cache is None:
        raise ParameterError(
            "encode_on_ray(): the Ray engine returns its vectors through the embedding cache; "
            "pass a cache (CLI: do not use --cache-dir none with --engine ray).")
    ray = require_ray()
    t0 = time.perf_counter()
    enc = make_encoder(spec, cache=cache, progress=False)
    ns = enc.namespace
    folder = Path(shards_dir) if shards_dir else Path(cache.directory) / "ray-shards" / \
        ns.replace("/", "_").replace(":", "_")
    if shards_dir:  # a folder given: read and removed only when empty or this function's
        check_replaceable_folder(folder, RAY_SHARDS_MARKER, "encode_on_ray(): shards_dir")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RAY_SHARDS_MARKER).touch()
    failed = _merge_shards(folder, cache, ns)  # an interrupted run's finished shards
    if enc.modality == "text":
        from prodfusion.encoders.text import title_mask

        # products without a title get no text vector (the local encode below marks them)
        titles = [t for t, ok in zip(catalog.titles, title_mask(catalog.titles), strict=True)
                  if ok]
        inputs = list(dict.fromkeys(titles))
        keys = [content_key(t) for t in inputs]
    else:
        from prodfusion.encoders.image import remote_photo_stamps

        paths = [p if p else None for p in catalog.image_paths]
        inputs, keys = [], []
        unique = list(dict.fromkeys(p for p in paths if p is not None))
        stamps = remote_photo_stamps(unique)  # keys as the local encode makes them
        for p in unique:
            key, err = enc._hash_one(str(p), stamps.get(str(p).strip()))
            inputs.append(str(p))
            keys.append(key if key is not None else f"missing:{p}")
            if key is None:
                failed[keys[-1]] = ("missing", err)
    _, found = cache.get(ns, keys) if keys else (None, np.zeros(0, bool))
    todo = [i for i, k in enumerate(keys) if not found[i] and k not in failed]
    nodes: set = set()
    if todo:
        from ray.data import ActorPoolStrategy

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_arrow(pa.table({"key": [keys[i] for i in todo],
                                           "x": [inputs[i] for i in todo]}))
        ds = ds.repartition(blocks or max(1, min(len(todo), 4 * actors)))
        ds = ds.map_batches(
            RayBatchEncoder, fn_constructor_kwargs={
                "spec": spec, "device": "cuda" if num_gpus_per_actor > 0 else "cpu",
                "batch_size": batch_size},
            batch_size=batch_size or enc.batch_size, batch_format="pyarrow",
            compute=ActorPoolStrategy(size=actors), num_cpus=num_cpus_per_actor,
            num_gpus=num_gpus_per_actor or None)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".run-", dir=folder))
        try:
            ds.write_parquet(str(tmp))
            for f in tmp.glob("*.parquet"):  # finished shards join the folder one by one
                os.replace(f, folder / f"{time.time_ns()}-{f.name}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        failed.update(_merge_shards(folder, cache, ns, nodes))
    if not keep_shards:
        shutil.rmtree(folder, ignore_errors=True)
    # Assemble exactly like the local path: everything now comes from the cache.
    local = make_encoder(spec, cache=cache, progress=False)
    emb = local.encode(catalog)
    emb.info.update({"engine": "ray", "n_encoded_on_ray": len(todo), "ray_actors": actors,
                     "ray_nodes": len(nodes),
                     "seconds": round(time.perf_counter() - t0, 3)})
    if len(todo) and failed:
        log.info("%s: %d inputs could not be encoded on Ray", spec, len(failed))
    return emb
