"""The vector-index protocol, its settings, and how a backend is chosen for a catalog size."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from prodfusion._checks import check_int
from prodfusion.errors import DataError, ModelError, param_error

__all__ = [
    "INDEX_BACKENDS",
    "IndexBackend",
    "IndexSettings",
    "VectorIndex",
    "choose_backend",
    "check_backend",
    "check_vectors",
]

IndexBackend = Literal["auto", "exact", "hnsw", "ivfpq"]
INDEX_BACKENDS: tuple[str, ...] = ("auto", "exact", "hnsw", "ivfpq")
HNSW_STORAGE: tuple[str, ...] = ("flat", "sq8", "fp16")


@dataclass
class IndexSettings:
    """How approximate search is built and queried (every field has a working default).

    Parameters
    ----------
    auto_hnsw_from : int
        Under ``index="auto"``, catalogs with at least this many products use HNSW; smaller
        ones are searched exactly (NumPy), which is fast enough there and has recall 1.
    auto_ivfpq_from : int
        Under ``index="auto"``, catalogs with at least this many products use IVF-PQ, whose
        codes take 64 bytes per product (``pq_m``) instead of HNSW's full vectors.
    exact_below : int
        Inside an approximate index, a piece (one presence pattern of intermediate fusion,
        one category under ``same_category``) with fewer rows than this is searched exactly.
    reduce_dim : int or None
        Vectors wider than this are projected on their top principal directions (uncentred
        PCA, so inner products are preserved as well as possible) before indexing. Candidates
        are re-scored exactly on the full vectors, so this trades a little candidate quality
        for a much faster, smaller index. ``None`` indexes the full vectors.
    hnsw_m, ef_construction, ef_search : int
        HNSW graph degree, build-time and query-time beam widths (FAISS ``IndexHNSW*``).
        The query-time width is at least the candidates fetched, and doubled on graphs of
        500,000 rows or more (``HNSWIndex.LARGE_GRAPH``).
    hnsw_storage : {"flat", "sq8", "fp16"}
        How HNSW stores its (projected) vectors: ``"flat"`` float32, ``"sq8"`` one byte per
        dimension (FAISS scalar quantiser, 4× smaller, faster to build and search), ``"fp16"``
        half floats. Candidates are re-scored exactly on the stored embeddings either way.
    ivf_nlist : int or None
        IVF cells; default ``4·sqrt(n)``.
    pq_m, pq_nbits : int
        Product-quantiser sub-vectors and bits per code (``pq_m`` is lowered to a divisor of the
        indexed width, or the width zero-padded to a multiple of it: ``IVFPQIndex``). 64 codes
        of 8 bits (64 bytes per product) since the thirty-fourth session, 32 before: the
        re-scored top 15 among 128 candidates held 0.02–0.10 more of the true 15 on click
        vectors and synthetic titles and photos, for about twice the codes' scan (+0.2–0.3 ms
        per search at 100,000 rows) and a slower training (docs/benchmarks/ivfpq_pq_m.md).
        Model folders keep the value they were built with.
    nprobe : int
        IVF cells visited per query, at least; more when these would hold on average fewer
        than 4 rows per wanted candidate (``IVFPQIndex.PROBE_ROWS_PER_CANDIDATE``: small
        indexes, large fetches).
    over_fetch : int
        Candidates fetched per wanted result before exact re-scoring (at least
        ``min_candidates``); doubled automatically when filters leave too few.
    min_candidates : int
        Lower bound of the candidates fetched per query and per index piece (4× under
        intermediate fusion with confidence-weighted clicks, ``click_n0``: its estimates
        ignore the per-pair confidence; ``prodfusion.index.fused.intermediate``). IVF-PQ
        pieces raise it to one candidate per 128 rows their ``nprobe`` cells hold
        (``IVFPQIndex.min_fetch``: about 300 at 1M products, 1,500 at 5M).
    max_candidates : int
        Beyond this many candidates per piece, search falls back to exact over the rows that
        the filters allow.
    train_sample : int
        Rows sampled to learn projections, IVF cells and PQ codebooks.
    search_threads : int
        Threads that search the pieces of an index (intermediate fusion has one per presence
        pattern) concurrently for the same queries — and, under learned trees, the indexes
        of the modalities whose nearest products make a query's pools
        (:mod:`prodfusion.index.learned`); 1 searches them one after the other.
    shards : int
        Row shards of every index piece (at most one per ``exact_below`` rows, so a shard is
        never smaller than a piece that gets its own index): the backend is trained once on
        the sample, then each shard is filled by its own task (in parallel on Ray:
        ``Recommender.build_index(executor=…)``, ``prodfusion build --engine ray``); a query
        searches every shard and the candidates are re-scored exactly as usual. 1 (default):
        one index per piece. See :mod:`prodfusion.index.sharded`.
    seed : int
        Sampling seed.
    """

    auto_hnsw_from: int = 50_000
    auto_ivfpq_from: int = 5_000_000
    exact_below: int = 4_096
    reduce_dim: int | None = 256
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 128
    hnsw_storage: str = "flat"
    ivf_nlist: int | None = None
    pq_m: int = 64
    pq_nbits: int = 8
    nprobe: int = 32
    over_fetch: int = 8
    min_candidates: int = 128
    max_candidates: int = 16_384
    train_sample: int = 32_768
    search_threads: int = 1
    shards: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        where = "IndexSettings()"
        if self.hnsw_storage not in HNSW_STORAGE:
            raise param_error("hnsw_storage", where, f"one of {list(HNSW_STORAGE)}", self.hnsw_storage)
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "hnsw_storage":
                continue
            if v is None and f.name in ("reduce_dim", "ivf_nlist"):
                continue
            check_int(v, f.name, where)
            low = 0 if f.name in ("exact_below", "seed") else 1
            if v < low:
                raise param_error(f.name, where, f"an int >= {low}", v)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> IndexSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def check_backend(backend: str, where: str = "Recommender()") -> str:
    if backend not in INDEX_BACKENDS:
        raise param_error("index", where, f"one of {list(INDEX_BACKENDS)}", backend)
    return backend


def owned_threads(owner, attr: str, n: int, prefix: str):
    """A thread pool of ``n`` threads kept on ``owner`` as ``attr`` (made on first use), or
    None for ``n`` ≤ 1: the searchers' concurrent searches (``IndexSettings.search_threads``)."""
    if n <= 1:
        return None
    pool = getattr(owner, attr, None)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(n, thread_name_prefix=prefix)
        setattr(owner, attr, pool)
    return pool


def choose_backend(backend: str, n: int, settings: IndexSettings | None = None) -> str:
    """Resolve ``"auto"`` to a concrete backend for a catalog of ``n`` products.

    >>> choose_backend("auto", 10_000), choose_backend("auto", 1_000_000)
    ('exact', 'hnsw')
    >>> choose_backend("ivfpq", 10)
    'ivfpq'
    """
    settings = settings or IndexSettings()
    check_backend(backend, "choose_backend()")
    if backend != "auto":
        return backend
    if n >= settings.auto_ivfpq_from:
        return "ivfpq"
    if n >= settings.auto_hnsw_from:
        return "hnsw"
    return "exact"


def check_vectors(x: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    """float32 C-contiguous 2-D, finite, of the expected width."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"{what}: vectors must be 2-D, got shape {x.shape}.")
    if dim is not None and x.shape[1] != dim:
        raise DataError(f"{what}: vectors have {x.shape[1]} dimensions, the index {dim}.")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise DataError(f"{what}: row {bad} contains NaN or Inf; nothing non-finite is indexed.")
    return x


@runtime_checkable
class VectorIndex(Protocol):
    """Inner-product top-k over vectors numbered ``0 … len-1`` in the order they were added.

    ``train(sample)`` learns what the backend needs (projection, cells, codebooks) and must
    come before the first ``add``; ``search`` returns ``(labels int64 (q, k), scores float32
    (q, k))`` best first, ``-1`` / ``-inf`` where fewer than ``k`` vectors exist. Scores are
    the backend's estimate of the inner product; callers re-score exactly.
    """

    kind: str
    dim: int

    def train(self, sample: np.ndarray) -> VectorIndex: ...  # pragma: no cover

    def add(self, vectors: np.ndarray) -> None: ...  # pragma: no cover

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]: ...  # pragma: no cover

    def __len__(self) -> int: ...  # pragma: no cover

    def save(self, folder: Path, name: str) -> dict: ...  # pragma: no cover


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2))


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable index description ({exc}).") from exc
