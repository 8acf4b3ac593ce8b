"""A vector index split into row shards, built in parallel, searched together (issue 14).

:class:`ShardedVectorIndex` has the protocol of every backend (:class:`~prodfusion.index.base.
VectorIndex`: ``search``, ``add``, ``save``/``load``, ``len``), so a fused index can hold it as
the index of one of its pieces; labels are positions ``0 … len-1`` over the shards in order.

* **Build** (:func:`build_shards`): the backend is trained once, on a sample of all rows
  (projection, IVF centroids, PQ codebooks; HNSW has nothing to learn), and that trained
  *prototype* is copied into every shard, so all shards map vectors into the same space and
  their estimates are comparable. Each shard adds its row range ``[lo, hi)`` in its own task,
  through an executor (:mod:`prodfusion.engine`: in this process, or Ray tasks on a cluster).
  The tasks receive their rows already in index space (projected when the backend projects:
  256 floats per row instead of the full width) and return the built shard; nothing is
  written by a worker, so no shared file system is needed.
* **Search**: every shard answers the query for its own best ``k`` (only the ``allowed``
  labels that fall in it), labels are shifted by the shard's first position, and the union is
  cut to the best ``k`` by the backends' estimates (ties by label). The caller re-scores those
  candidates exactly, as for an unsharded index. With exact shards this is the unsharded
  exact search; with HNSW / IVF-PQ shards each shard is searched with the usual ``ef_search``
  / ``nprobe`` over fewer rows, and ``S`` shards return ``S·k`` candidates before the cut.
* **Storage**: one file set per shard (``<name>.s000.faiss`` …) and, in the description the
  model's manifest keeps, the list of shards with their kind, size and position range.
* **Growing** (cold start): new rows go to the last shard.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from prodfusion._checks import check_int
from prodfusion.errors import ModelError
from prodfusion.index.exact import ExactIndex, topk_rows

__all__ = ["ShardedVectorIndex", "build_shards", "shard_bounds"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _kinds() -> dict:
    from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex

    return {"exact": ExactIndex, "hnsw": HNSWIndex, "ivfpq": IVFPQIndex}


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """``n_shards`` (at most ``n``) contiguous ranges of nearly equal size covering ``0…n``.

    >>> shard_bounds(10, 3)
    [(0, 3), (3, 6), (6, 10)]
    """
    check_int(n_shards, "n_shards", "shard_bounds()", low=1)
    b = np.linspace(0, n, max(1, min(int(n_shards), n)) + 1).astype(np.int64)
    return [(int(lo), int(hi)) for lo, hi in zip(b[:-1], b[1:], strict=True)]


def _fill_shard(job: tuple) -> object:
    """One shard (runs in a task): a copy of the trained prototype plus its rows."""
    _, prototype, vectors = job
    idx = pickle.loads(prototype)
    idx.add(vectors, projected=True)
    return idx


class ShardedVectorIndex:
    """Row shards of one trained backend, searched together (see the module docs).

    Parameters
    ----------
    shards : list of VectorIndex
        Built shards, in position order (shard ``i`` holds positions ``offsets[i] …``).
    """

    kind = "sharded"

    def __init__(self, shards: list) -> None:
        if not shards:
            raise ModelError("ShardedVectorIndex: no shards.")
        self.shards = list(shards)
        self.dim = int(self.shards[0].dim)
        self.shard_kind = self.shards[0].kind

    @property
    def offsets(self) -> np.ndarray:
        """First position of every shard, and the total at the end."""
        return np.concatenate([[0], np.cumsum([len(s) for s in self.shards])]).astype(np.int64)

    def __len__(self) -> int:
        return int(sum(len(s) for s in self.shards))

    def train(self, sample: np.ndarray):  # pragma: no cover - built by build_shards
        raise ModelError("ShardedVectorIndex is built by build_shards(), not trained.")

    def add(self, vectors: np.ndarray, *, projected: bool = False) -> None:
        """Append rows (they go to the last shard)."""
        self.shards[-1].add(vectors, projected=projected)

    def min_fetch(self) -> int:
        """The shards' ``min_fetch`` added up (each IVF-PQ shard probes its own cells)."""
        return sum(int(s.min_fetch()) for s in self.shards)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` positions by the shards' estimates, merged over the shards."""
        q = np.atleast_2d(queries)
        offs = self.offsets
        labels, scores = [], []
        for i, shard in enumerate(self.shards):
            lo, hi = int(offs[i]), int(offs[i + 1])
            sub = None
            if allowed is not None:
                a = np.asarray(allowed, dtype=np.int64)
                sub = a[(a >= lo) & (a < hi)] - lo
                if not len(sub):
                    continue
            kk = min(int(k), (hi - lo) if sub is None else len(sub))
            if kk < 1:
                continue
            lab, sc = shard.search(q, kk, sub)
            labels.append(np.where(lab >= 0, lab + lo, -1))
            scores.append(np.where(lab >= 0, sc, -np.inf).astype(np.float32))
        if not labels:
            return (np.full((len(q), k), -1, np.int64), np.full((len(q), k), -np.inf, np.float32))
        return topk_rows(np.concatenate(scores, axis=1), int(k), np.concatenate(labels, axis=1))

    def save(self, folder: Path, name: str) -> dict:
        folder = Path(folder)
        offs = self.offsets
        shards = []
        for i, shard in enumerate(self.shards):
            meta = shard.save(folder, f"{name}.s{i:03d}")
            shards.append({**meta, "lo": int(offs[i]), "hi": int(offs[i + 1])})
        return {"kind": self.kind, "format_version": FORMAT_VERSION, "dim": self.dim,
                "shard_kind": self.shard_kind, "n_shards": len(shards),
                "files": [f for s in shards for f in s["files"]], "shards": shards}

    @classmethod
    def load(cls, folder: Path, meta: dict, *, mmap: bool = True) -> ShardedVectorIndex:
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ModelError(f"{folder}: sharded index from a newer prodfusion "
                             f"(format {meta.get('format_version')}); upgrade prodfusion.")
        kinds = _kinds()
        shards = []
        for s in meta.get("shards") or []:
            cls_ = kinds.get(s.get("kind"))
            if cls_ is None:
                raise ModelError(f"{folder}: unknown shard kind {s.get('kind')!r}.")
            shard = cls_.load(folder, s, mmap=mmap)
            if "lo" in s and len(shard) != s["hi"] - s["lo"]:
                raise ModelError(f"{folder}: shard {s['files'][0]} holds {len(shard)} vectors, "
                                 f"its manifest says {s['hi'] - s['lo']}; rebuild the index.")
            shards.append(shard)
        return cls(shards)

    def info(self) -> dict:
        offs = self.offsets
        return {"kind": self.kind, "shard_kind": self.shard_kind,
                "shards": [(int(offs[i]), int(offs[i + 1])) for i in range(len(self.shards))]}


def build_shards(prototype, chunks: Iterable[np.ndarray], n: int, n_shards: int, *,
                 executor=None, what: str = "index") -> ShardedVectorIndex:
    """Fill ``n_shards`` copies of a trained ``prototype`` with ``n`` rows, one task each.

    ``chunks`` yields the rows' vectors in order (full width, as ``prototype.add`` takes them;
    they are projected here, chunk by chunk, so only index-space rows are kept and shipped).
    ``executor`` runs the tasks (:func:`prodfusion.engine.make_executor`; default: this
    process, one shard after another).
    """
    bounds = shard_bounds(n, n_shards)
    t = time.perf_counter()
    parts, have = [], 0
    for c in chunks:  # index-space rows, in order
        parts.append(prototype.project(np.ascontiguousarray(c, dtype=np.float32)))
        have += len(c)
    if have != n:
        raise ModelError(f"build_shards(): got {have} rows, expected {n}.")
    x = np.concatenate(parts) if parts else np.zeros((0, prototype.dim), np.float32)
    del parts
    blob = pickle.dumps(prototype)
    jobs = [(i, blob, np.ascontiguousarray(x[lo:hi])) for i, (lo, hi) in enumerate(bounds)]
    del x
    done: dict[int, object] = {}
    # the index layer does not import the engine: without an executor, a plain loop
    results = (executor.run(_fill_shard, jobs) if executor is not None
               else ((job, _fill_shard(job)) for job in jobs))
    for (i, _, _), shard in results:
        done[i] = shard
        log.info("%s: shard %d/%d built (%d rows) after %.1f s on %s", what, len(done),
                 len(bounds), bounds[i][1] - bounds[i][0], time.perf_counter() - t,
                 getattr(executor, "name", "this process"))
    return ShardedVectorIndex([done[i] for i in range(len(bounds))])
