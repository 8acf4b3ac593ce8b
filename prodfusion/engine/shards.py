"""A vector index split into row shards, built in parallel (Ray tasks or locally), searched
together and merged exactly.

Layout of a sharded index folder::

    manifest.json       format_version, backend, dim, n, vectors, shards [{name, lo, hi, meta}]
    trained.*           the index trained once on a sample (projection, IVF centroids, PQ
                        codebooks), copied by every shard so that all shards score alike
    shard-000.*  …      one index per row range [lo, hi), built by its own task

A query goes to every shard (each returns its best ``fetch`` candidates, labels shifted by the
shard's first row), the candidates are re-scored exactly against the full-precision vectors
(the ``.npy`` file the index was built from, memory-mapped; only the candidates' rows are read)
and the top ``k`` kept. With exact shards this *is* the unsharded exact search; with HNSW or
IVF-PQ shards it is each shard's approximate candidates, exactly ranked.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np

from prodfusion._checks import check_int
from prodfusion.errors import ModelError, param_error
from prodfusion.index.base import IndexSettings, read_json, write_json
from prodfusion.index.exact import ExactIndex, topk_rows

__all__ = ["ShardedIndex", "SHARD_BACKENDS"]

SHARD_BACKENDS = ("exact", "hnsw", "ivfpq")
FORMAT_VERSION = 1


def _backend(name: str):
    if name == "exact":
        return ExactIndex
    from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex

    return {"hnsw": HNSWIndex, "ivfpq": IVFPQIndex}[name]


def _new(name: str, dim: int, settings: IndexSettings, n: int):
    if name == "exact":
        return ExactIndex(dim, settings.reduce_dim)
    return _backend(name)(dim, settings, n_expected=n)


def _build_shard(job: tuple, *, folder: str, backend: str, vectors: str) -> dict:
    """One shard (runs in a task): the trained prototype + rows ``[lo, hi)``, saved."""
    name, lo, hi = job
    folder = Path(folder)
    manifest = read_json(folder / "manifest.json")
    idx = _backend(backend).load(folder, manifest["trained"], mmap=False)
    x = np.load(vectors, mmap_mode="r")
    idx.add(np.ascontiguousarray(x[lo:hi], dtype=np.float32))
    return idx.save(folder, name)


class ShardedIndex:
    """Row shards of one matrix of unit (or any) vectors; inner-product top-k.

    Build with :meth:`build`, open with :meth:`load`, query with :meth:`search`.

    >>> import numpy as np, tempfile                                    # doctest: +SKIP
    >>> np.save("v.npy", np.random.rand(1000, 16).astype("float32"))    # doctest: +SKIP
    >>> idx = ShardedIndex.build("v.npy", "idx", backend="exact", n_shards=3)  # doctest: +SKIP
    >>> rows, scores = idx.search(np.load("v.npy")[:2], k=5)           # doctest: +SKIP
    """

    def __init__(self, folder: Path, manifest: dict, shards: list, vectors: np.ndarray,
                 settings: IndexSettings) -> None:
        self.folder = folder
        self.manifest = manifest
        self.shards = shards
        self.vectors = vectors
        self.settings = settings

    @classmethod
    def build(cls, vectors: str | Path, folder: str | Path, *, backend: str = "hnsw",
              n_shards: int = 4, settings: IndexSettings | None = None,
              executor=None) -> ShardedIndex:
        """Train on a sample, then build ``n_shards`` shards through ``executor`` (tasks).

        ``vectors`` is a float32 ``.npy`` file (read memory-mapped by every task; on a
        cluster, a path every node can read).
        """
        from prodfusion.engine import LocalExecutor

        if backend not in SHARD_BACKENDS:
            raise param_error("backend", "ShardedIndex.build()", f"one of {list(SHARD_BACKENDS)}",
                              backend)
        n_shards = check_int(n_shards, "n_shards", "ShardedIndex.build()", low=1)
        settings = settings or IndexSettings()
        vectors = Path(vectors).resolve()
        x = np.load(vectors, mmap_mode="r")
        if x.ndim != 2 or x.dtype != np.float32:
            raise ModelError(f"{vectors}: expected a 2-d float32 matrix, got {x.dtype} {x.shape}.")
        n, dim = x.shape
        folder = Path(folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        rng = np.random.default_rng(settings.seed)
        sample_rows = np.sort(rng.choice(n, min(n, settings.train_sample), replace=False))
        proto = _new(backend, dim, settings, n).train(np.asarray(x[sample_rows]))
        trained = proto.save(folder, "trained")
        bounds = np.linspace(0, n, min(n_shards, n) + 1).astype(int)
        jobs = [(f"shard-{i:03d}", int(lo), int(hi))
                for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
        manifest = {"format_version": FORMAT_VERSION, "backend": backend, "dim": dim, "n": n,
                    "vectors": str(vectors), "settings": settings.to_dict(), "trained": trained}
        write_json(folder / "manifest.json", manifest)
        fn = functools.partial(_build_shard, folder=str(folder), backend=backend,
                               vectors=str(vectors))
        metas = dict((job[0], meta) for job, meta in (executor or LocalExecutor()).run(fn, jobs))
        manifest["shards"] = [{"name": name, "lo": lo, "hi": hi, "meta": metas[name]}
                              for name, lo, hi in jobs]
        write_json(folder / "manifest.json", manifest)
        return cls.load(folder)

    @classmethod
    def load(cls, folder: str | Path) -> ShardedIndex:
        folder = Path(folder)
        manifest = read_json(folder / "manifest.json")
        if manifest.get("format_version", 0) > FORMAT_VERSION or "shards" not in manifest:
            raise ModelError(f"{folder}: not a finished sharded index (manifest without shards "
                             "or from a newer prodfusion).")
        kind = _backend(manifest["backend"])
        shards = [(s["lo"], s["hi"], kind.load(folder, s["meta"], mmap=False))
                  for s in manifest["shards"]]
        vectors = np.load(manifest["vectors"], mmap_mode="r")
        return cls(folder, manifest, shards, vectors,
                   IndexSettings.from_dict(manifest.get("settings", {})))

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows and exact inner products of every query, best first (``-1``/-inf
        pads when fewer rows exist)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        projected = len(self.manifest["trained"].get("files", [])) > 1
        exact = self.manifest["backend"] == "exact" and not projected
        # exact shards: each shard's own top k holds its part of the global top k
        fetch = k if exact else max(self.settings.min_candidates, k * self.settings.over_fetch)
        cands = []
        for lo, hi, idx in self.shards:
            labels, _ = idx.search(q, min(fetch, hi - lo))
            cands.append(np.where(labels >= 0, labels + lo, -1))
        cand = np.concatenate(cands, axis=1)
        out_r = np.full((len(q), k), -1, dtype=np.int64)
        out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        for i in range(len(q)):  # exact re-scoring of the union of the shards' candidates
            c = np.unique(cand[i][cand[i] >= 0])
            if not len(c):
                continue
            s = np.asarray(self.vectors[c], dtype=np.float32) @ q[i]
            r, sc = topk_rows(s[None, :], min(k, len(c)), c[None, :])
            out_r[i, : r.shape[1]], out_s[i, : r.shape[1]] = r[0], sc[0]
        return out_r, out_s

    def info(self) -> dict:
        return {"backend": self.manifest["backend"], "n": len(self),
                "shards": [(s["name"], s["lo"], s["hi"]) for s in self.manifest["shards"]]}

