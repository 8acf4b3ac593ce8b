"""A standalone sharded index over one ``.npy`` matrix, built in parallel (Ray tasks or
locally), searched together and re-scored exactly against the matrix.

The shards themselves are :class:`prodfusion.index.sharded.ShardedVectorIndex` (the same
class a model's fused indexes use with ``IndexSettings(shards=…)``): the backend is trained
once on a sample, every shard is a copy of it filled with one row range by its own task.

Layout of a sharded index folder::

    manifest.json       format_version (2), backend, dim, n, vectors, settings,
                        index (the shards' description), shards [{name, lo, hi}]
    index.s000.*  …     one index per row range [lo, hi)

A query goes to every shard, the union of their candidates is re-scored exactly against the
full-precision vectors (the ``.npy`` file the index was built from, memory-mapped; only the
candidates' rows are read) and the top ``k`` kept. With exact shards this *is* the unsharded
exact search; with HNSW or IVF-PQ shards it is each shard's approximate candidates, exactly
ranked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from prodfusion._checks import check_int
from prodfusion._outputs import check_replaceable_folder
from prodfusion.errors import ModelError, param_error
from prodfusion.index.base import IndexSettings, read_json, write_json
from prodfusion.index.exact import ExactIndex, topk_rows
from prodfusion.index.sharded import ShardedVectorIndex, build_shards

__all__ = ["ShardedIndex", "SHARD_BACKENDS"]

SHARD_BACKENDS = ("exact", "hnsw", "ivfpq")
FORMAT_VERSION = 2


def _backend(name: str):
    if name == "exact":
        return ExactIndex
    from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex

    return {"hnsw": HNSWIndex, "ivfpq": IVFPQIndex}[name]


def _new(name: str, dim: int, settings: IndexSettings, n: int):
    if name == "exact":
        return ExactIndex(dim, settings.reduce_dim)
    return _backend(name)(dim, settings, n_expected=n)


#: Marks a folder as a sharded index's (a later build empties only such a folder).
SHARDS_MARKER = ".prodfusion-shards"


class ShardedIndex:
    """Row shards of one matrix of unit (or any) vectors; inner-product top-k.

    Build with :meth:`build`, open with :meth:`load`, query with :meth:`search`.

    >>> import numpy as np, tempfile                                    # doctest: +SKIP
    >>> np.save("v.npy", np.random.rand(1000, 16).astype("float32"))    # doctest: +SKIP
    >>> idx = ShardedIndex.build("v.npy", "idx", backend="exact", n_shards=3)  # doctest: +SKIP
    >>> rows, scores = idx.search(np.load("v.npy")[:2], k=5)           # doctest: +SKIP
    """

    def __init__(self, folder: Path, manifest: dict, index: ShardedVectorIndex,
                 vectors: np.ndarray, settings: IndexSettings) -> None:
        self.folder = folder
        self.manifest = manifest
        self.index = index
        self.vectors = vectors
        self.settings = settings

    @classmethod
    def build(cls, vectors: str | Path, folder: str | Path, *, backend: str = "hnsw",
              n_shards: int = 4, settings: IndexSettings | None = None,
              executor=None) -> ShardedIndex:
        """Train on a sample, then build ``n_shards`` shards through ``executor`` (tasks).

        ``vectors`` is a float32 ``.npy`` file, read memory-mapped here: each task receives
        its rows in index space (projected when the backend projects), so workers need no
        shared storage; :meth:`search` re-scores against the file.
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
        check_replaceable_folder(folder, SHARDS_MARKER, "ShardedIndex.build(): folder")
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / SHARDS_MARKER).touch()  # only such a folder is emptied by a later build
        rng = np.random.default_rng(settings.seed)
        sample_rows = np.sort(rng.choice(n, min(n, settings.train_sample), replace=False))
        proto = _new(backend, dim, settings, n).train(np.asarray(x[sample_rows]))
        chunks = (x[lo : lo + 65_536] for lo in range(0, n, 65_536))
        index = build_shards(proto, chunks, n, n_shards, executor=executor or LocalExecutor(),
                             what=f"{backend} shards of {vectors.name}")
        meta = index.save(folder, "index")
        shards = [{"name": f"index.s{i:03d}", "lo": s["lo"], "hi": s["hi"]}
                  for i, s in enumerate(meta["shards"])]
        write_json(folder / "manifest.json", {
            "format_version": FORMAT_VERSION, "backend": backend, "dim": dim, "n": n,
            "vectors": str(vectors), "settings": settings.to_dict(), "index": meta,
            "shards": shards})
        return cls.load(folder)

    @classmethod
    def load(cls, folder: str | Path) -> ShardedIndex:
        folder = Path(folder)
        manifest = read_json(folder / "manifest.json")
        if manifest.get("format_version", 0) != FORMAT_VERSION or "index" not in manifest:
            raise ModelError(f"{folder}: not a finished sharded index of format "
                             f"{FORMAT_VERSION} (manifest without shards, or from another "
                             "prodfusion version); rebuild it.")
        index = ShardedVectorIndex.load(folder, manifest["index"], mmap=False)
        vectors = np.load(manifest["vectors"], mmap_mode="r")
        return cls(folder, manifest, index, vectors,
                   IndexSettings.from_dict(manifest.get("settings", {})))

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows and exact inner products of every query, best first (``-1``/-inf
        pads when fewer rows exist)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        projected = len(self.manifest["index"]["shards"][0].get("files", [])) > 1
        exact = self.manifest["backend"] == "exact" and not projected
        # exact shards: each shard's own top k holds its part of the global top k
        fetch = k if exact else max(self.settings.min_candidates, k * self.settings.over_fetch,
                                    self.index.min_fetch())  # IVF-PQ: per probed rows
        cand, _ = self.index.search(q, min(fetch, len(self)))
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

