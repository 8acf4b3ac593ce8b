"""FAISS backends: HNSW (default approximate index) and IVF-PQ (for memory), with an optional projection.

Both index inner products. When the vectors are wider than ``IndexSettings.reduce_dim`` they
are first projected on their top principal directions; the projection is uncentred
(eigenvectors of ``XᵀX``, not of the covariance) so that ``P x · P y`` approximates
``x · y`` — centring would add a per-candidate term ``-μ·y`` and change the ranking.
Callers re-score the candidates exactly, so the projection only has to find them.

HNSW searches inner products over rows of *equal norm*: each stored row ``y`` gets one more
coordinate ``sqrt(R² − ‖y‖²)`` (``R``: the largest norm of the training sample in index
space) and each query a ``0`` there, so the inner products and the order are unchanged while
every stored row has norm ``R`` (Bachrach et al., RecSys 2014: maximum inner product search
as nearest-neighbour search). HNSW's graph is built for metric neighbourhoods; over rows of
unequal norm — a projection's output, or vectors that a projection keeps poorly, such as
Prod2Vec vectors of rarely clicked products — long-norm rows become hubs and short-norm rows
are hard to reach: on DIGINETICA's click vectors (6,743 products, projected 512 → 256)
the plain inner-product graph returned the true nearest product among a query's 1,600
candidates for 94 % of 300 queries, the equal-norm one for all of them
(``benchmarks/hnsw_norms.py``, docs/benchmarks/hnsw_norms.md). Indexes saved before the
thirty-first session have no extra coordinate and are searched as they were built.

IVF-PQ can store its rows the same way, searched with the L2 metric (for rows of equal norm
the nearest are those of largest inner product); whether it does is chosen on the training
sample (:class:`IVFPQIndex`, thirty-second session).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from prodfusion.errors import ModelError, NotBuiltError
from prodfusion.index.base import IndexSettings, check_vectors

__all__ = ["HNSWIndex", "IVFPQIndex", "fit_projection"]

_ADD_CHUNK = 65_536

log = logging.getLogger(__name__)


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a declared extra
        raise ImportError(
            "Approximate search needs FAISS: pip install 'prodfusion[scale]' (faiss-cpu)."
        ) from exc
    return faiss


def fit_projection(sample: np.ndarray, dim: int) -> np.ndarray:
    """``(D, dim)`` orthonormal columns: the top eigenvectors of ``SᵀS`` (uncentred PCA).

    >>> s = np.random.default_rng(0).normal(size=(500, 8)) * [5, 4, 3, 1, 1, 1, 1, 1]
    >>> p = fit_projection(s.astype("float32"), 3)
    >>> p.shape, bool(np.allclose(p.T @ p, np.eye(3), atol=1e-5))
    ((8, 3), True)
    """
    from scipy.linalg import eigh

    s = np.asarray(sample, dtype=np.float32)
    d = s.shape[1]
    dim = min(dim, d)
    c = np.zeros((d, d), dtype=np.float64)
    for lo in range(0, len(s), 8192):  # float32 products, float64 accumulation
        blk = s[lo : lo + 8192]
        c += blk.T @ blk
    # Only the top ``dim`` eigenpairs (LAPACK ?syevr): several times faster than a full eigh.
    w, v = eigh(c.astype(np.float32), subset_by_index=[d - dim, d - 1], driver="evr")
    return np.ascontiguousarray(v[:, np.argsort(w)[::-1]], dtype=np.float32)


class _FaissIndex:
    kind = ""
    _mmap_flag_name = "IO_FLAG_MMAP"
    #: ``R`` of the extra coordinate (module docstring); ``None``: rows stored as projected
    #: (also what an object pickled by an earlier version has).
    radius_: float | None = None

    def __init__(self, dim: int, settings: IndexSettings | None = None, *, n_expected: int = 0) -> None:
        self.dim = int(dim)
        self.settings = settings or IndexSettings()
        self.n_expected = int(n_expected)
        self.projection_: np.ndarray | None = None
        self.index_ = None
        self._mmapped = False

    @property
    def index_dim(self) -> int:
        """Width of the index space (:meth:`project`'s output)."""
        return self.dim if self.projection_ is None else self.projection_.shape[1]

    @property
    def _faiss_dim(self) -> int:
        """Width of the rows FAISS holds (:meth:`_stored`)."""
        return self.index_dim + (self.radius_ is not None)

    def _stored(self, y: np.ndarray, *, query: bool) -> np.ndarray:
        """Index-space rows as FAISS stores them (``query=False``) or searches with them:
        with ``radius_``, one more coordinate ``sqrt(R² − ‖y‖²)`` (queries: 0; rows longer
        than ``R``, outside the training sample: 0, their norm stays), then zeros up to
        :attr:`_faiss_dim`."""
        if self.radius_ is None:
            return y
        if query:
            extra = np.zeros(len(y), np.float32)
        else:
            sq = np.einsum("ij,ij->i", y, y, dtype=np.float64)
            extra = np.sqrt(np.maximum(self.radius_ ** 2 - sq, 0.0))
        cols = [y, extra]
        pad = self._faiss_dim - y.shape[1] - 1
        if pad:
            cols.append(np.zeros((len(y), pad), np.float32))
        return np.ascontiguousarray(np.column_stack(cols), dtype=np.float32)

    def _set_radius(self, sample: np.ndarray) -> None:
        """``radius_``: the longest row of the (index-space) training sample."""
        sq = np.einsum("ij,ij->i", sample, sample, dtype=np.float64)
        self.radius_ = float(np.sqrt(sq.max())) if len(sq) else 0.0

    def _inner_products(self, scores: np.ndarray, q: np.ndarray) -> np.ndarray:
        """FAISS's scores of index-space queries ``q`` as inner-product estimates."""
        return scores

    def _check_loaded(self, path: Path) -> None:
        if self.index_.d != self._faiss_dim:
            raise ModelError(f"{path}: index width {self.index_.d}, expected {self._faiss_dim}.")

    def _project(self, x: np.ndarray) -> np.ndarray:
        if self.projection_ is None:
            return x
        return np.ascontiguousarray(x @ self.projection_, dtype=np.float32)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Vectors in the index's space (identity without a projection)."""
        return self._project(check_vectors(x, self.dim, f"{type(self).__name__}.project()"))

    def __getstate__(self) -> dict:
        """Picklable (shards travel to and from worker processes): FAISS's own bytes."""
        state = dict(self.__dict__)
        if self.index_ is not None:
            state["index_"] = _faiss().serialize_index(self.index_)
        state["_mmapped"] = False
        state.pop("_path", None)
        return state

    def __setstate__(self, state: dict) -> None:
        if state.get("index_") is not None:
            state["index_"] = _faiss().deserialize_index(state["index_"])
        self.__dict__.update(state)

    def train(self, sample: np.ndarray) -> _FaissIndex:
        """Learn the projection (if the vectors are wider than ``reduce_dim``) and the index."""
        s = check_vectors(sample, self.dim, f"{type(self).__name__}.train()")
        rd = self.settings.reduce_dim
        if rd is not None and self.dim > rd and len(s) >= 1:
            self.projection_ = fit_projection(s, rd)
        self.index_ = self._make(self._project(s))
        return self

    def _make(self, sample: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_trained(self) -> None:
        if self.index_ is None:
            raise NotBuiltError(f"{type(self).__name__}: call train() before add() or search().")

    def add(self, vectors: np.ndarray, *, projected: bool = False) -> None:
        """Add rows (``projected=True``: already in index space, see :meth:`project`)."""
        self._check_trained()
        if self._mmapped:  # a memory-mapped index is read-only: read it into memory first
            self.index_ = _faiss().read_index(self._path)
            self._mmapped = False
        v = check_vectors(vectors, self.index_dim if projected else self.dim,
                          f"{type(self).__name__}.add()")
        for lo in range(0, len(v), _ADD_CHUNK):
            chunk = v[lo : lo + _ADD_CHUNK]
            self.index_.add(self._stored(chunk if projected else self._project(chunk),
                                         query=False))

    def __len__(self) -> int:
        return 0 if self.index_ is None else int(self.index_.ntotal)

    def _params(self, k: int, sel=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def min_fetch(self) -> int:
        """Candidates a query should fetch at least from this index, beyond the fused index's
        own rule: none here (:meth:`IVFPQIndex.min_fetch` overrides)."""
        return 0

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` labels and estimated inner products; only labels in ``allowed`` when given
        (a FAISS ``IDSelectorBatch``: the graph or the lists are walked as usual, other
        labels are skipped, so a selective filter can return fewer than ``k``)."""
        self._check_trained()
        y = self._project(check_vectors(queries, self.dim, f"{type(self).__name__}.search()"))
        return self._search_index_space(y, k, allowed)

    def _search_index_space(self, y: np.ndarray, k: int, allowed: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` of queries ``y`` already in index space."""
        sel = None
        if allowed is not None:
            sel = _faiss().IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        scores, labels = self.index_.search(self._stored(y, query=True), int(k),
                                            params=self._params(int(k), sel))
        scores = self._inner_products(scores, y)
        labels = labels.astype(np.int64, copy=False)
        scores = np.where(labels >= 0, scores, -np.inf).astype(np.float32)
        return labels, scores

    def save(self, folder: Path, name: str) -> dict:
        self._check_trained()
        folder = Path(folder)
        faiss = _faiss()
        faiss.write_index(self.index_, str(folder / f"{name}.faiss"))
        files = [f"{name}.faiss"]
        if self.projection_ is not None:
            np.save(folder / f"{name}.proj.npy", self.projection_)
            files.append(f"{name}.proj.npy")
        meta = {"kind": self.kind, "dim": self.dim, "files": files,
                "settings": self.settings.to_dict(), "n_expected": self.n_expected}
        if getattr(self, "radius_", None) is not None:
            meta["radius"] = self.radius_
        return meta

    @classmethod
    def load(cls, folder: Path, meta: dict, *, mmap: bool = True):
        faiss = _faiss()
        folder = Path(folder)
        obj = cls(meta["dim"], IndexSettings.from_dict(meta.get("settings", {})),
                  n_expected=meta.get("n_expected", 0))
        path = folder / meta["files"][0]
        try:
            flag = getattr(faiss, cls._mmap_flag_name) if mmap else 0
            obj.index_ = faiss.read_index(str(path), flag)
            obj._mmapped = bool(mmap)
            obj._path = str(path)
            if len(meta["files"]) > 1:
                obj.projection_ = np.load(folder / meta["files"][1])
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read the {cls.kind} index ({exc}).") from exc
        if meta.get("radius") is not None:
            obj.radius_ = float(meta["radius"])
        else:  # saved before the extra coordinate existed (or without it): as it was built
            obj.equal_norms = False
        if meta.get("choice") is not None:  # IVF-PQ's choice on the sample (information)
            obj.choice_ = dict(meta["choice"])
        obj._check_loaded(path)
        return obj


class HNSWIndex(_FaissIndex):
    """FAISS ``IndexHNSWFlat`` with inner product (the default approximate backend), over
    rows made of equal norm by one more coordinate (module docstring; ``radius_``: ``R``,
    ``None`` in an index saved without it). ``equal_norms=False`` builds the plain
    inner-product graph of earlier versions (for comparisons).

    Loading memory-maps the stored vectors (``IO_FLAG_MMAP_IFC``); the graph is read into
    memory. Adding to a loaded index first copies it into memory.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(200, 16)).astype("float32")
    >>> idx = HNSWIndex(16).train(x)
    >>> idx.add(x)
    >>> int(idx.search(x[:1], 1)[0][0, 0])
    0
    """

    kind = "hnsw"
    _mmap_flag_name = "IO_FLAG_MMAP_IFC"
    #: Graphs of at least this many rows are searched with twice ``ef_search`` (thirty-third
    #: session, docs/benchmarks/scale.md: on the 1,000,000-product synthetic catalog the
    #: early fusion's graph found 0.948 of the true top 15 with efSearch 128 and 0.978 with
    #: 256, for +0.4 ms at p50; at 100,000 rows 128 finds 0.996).
    LARGE_GRAPH = 500_000

    def __init__(self, dim: int, settings: IndexSettings | None = None, *, n_expected: int = 0,
                 equal_norms: bool = True) -> None:
        super().__init__(dim, settings, n_expected=n_expected)
        self.equal_norms = bool(equal_norms)
        self.radius_: float | None = None

    def _make(self, sample: np.ndarray):
        faiss = _faiss()
        if self.equal_norms:
            self._set_radius(sample)
            sample = self._stored(sample, query=False)
        d, m, ip = self._faiss_dim, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT
        storage = self.settings.hnsw_storage
        if storage == "flat":
            idx = faiss.IndexHNSWFlat(d, m, ip)
        else:
            qt = {"sq8": faiss.ScalarQuantizer.QT_8bit,
                  "fp16": faiss.ScalarQuantizer.QT_fp16}[storage]
            idx = faiss.IndexHNSWSQ(d, qt, m, ip)
            idx.train(sample)  # per-dimension ranges of the scalar quantiser
        idx.hnsw.efConstruction = self.settings.ef_construction
        return idx

    def _ef(self, k: int) -> int:
        """efSearch for ``k`` candidates: ``settings.ef_search``, doubled on graphs of at
        least :attr:`LARGE_GRAPH` rows, and at least ``k``."""
        ef = self.settings.ef_search
        if self.index_.ntotal >= self.LARGE_GRAPH:
            ef *= 2
        return max(ef, int(k))

    def _params(self, k: int, sel=None):
        ef = self._ef(k)
        if sel is None:
            return _faiss().SearchParametersHNSW(efSearch=ef)
        return _faiss().SearchParametersHNSW(efSearch=ef, sel=sel)


class IVFPQIndex(_FaissIndex):
    """FAISS ``IndexIVFPQ``: compact codes for catalogs too big for HNSW.

    ``nlist`` defaults to ``4·sqrt(n_expected)`` (capped so that every cell gets about 39
    training points). Two ways to store the rows, chosen on the training sample
    (``equal_norms=None``, the default) or forced (``True`` / ``False``):

    * *plain*: the index-space rows, inner-product metric (``pq_m`` lowered to a divisor
      of the indexed width) — the only way before the thirty-second session;
    * *equal norms*: each row with the extra coordinate ``sqrt(R² − ‖y‖²)`` (module
      docstring), zero-padded to a multiple of ``pq_m``, and the **L2** metric: for rows of
      norm ``R`` the nearest are those of largest inner product, and the coarse k-means
      and the product quantiser work in the metric they are made for. The estimates are
      turned back into inner products (``(‖q‖² + R² − d²) / 2``).

    Neither wins everywhere (``benchmarks/hnsw_norms.py --backend ivfpq``,
    docs/benchmarks/ivfpq_norms.md): on H&M's Prod2Vec vectors, nearly parallel (mean
    cosine 0.98), the plain codes found 0.22 of the 15 nearest among 128 candidates and
    the equal-norm ones 0.79; on DIGINETICA's, whose projected norms spread more, the plain
    ones did better. So the default builds both on the training sample, searches 256 of
    its rows among the sample with ``min_candidates`` candidates, and keeps the one whose
    re-scored top 15 holds more of the true 15 (ties: plain). ``choice_`` keeps both
    recalls (saved in the index meta). ``nprobe`` cells are visited per query, more when
    they would hold fewer than ``PROBE_ROWS_PER_CANDIDATE`` rows per wanted candidate (a
    small index, or a learned weighting's large pools), and a query fetches at least one
    candidate per ``PROBED_ROWS_PER_FETCH`` rows those cells hold (:meth:`min_fetch`: the
    codes rank every probed row, so large cells need more candidates for the exact
    re-scoring to find the true top k). Intermediate fusion's pieces over
    several modalities are built with ``equal_norms=False``
    (``_VectorFusedIndex.partial_queries``: they are searched with the query's shared
    modalities only, which the choice does not measure).
    Loading memory-maps the inverted lists (``IO_FLAG_MMAP``).
    """

    kind = "ivfpq"
    #: Training samples smaller than this are stored plain without a choice.
    CHOOSE_FROM = 512
    #: ``nprobe`` is raised until the probed cells hold about this many rows per wanted
    #: candidate (thirty-third session): 32 cells of a small index could not fill a learned
    #: weighting's 1,600-candidate pools (docs/benchmarks/ivfpq_nprobe.md).
    PROBE_ROWS_PER_CANDIDATE = 4
    #: A query fetches at least one candidate per this many rows its cells hold
    #: (:meth:`min_fetch`; thirty-fourth session): at 1M products 128 candidates out of the
    #: ~38,000 rows of 32 cells lost the true 15 (recall@15 0.93, docs/benchmarks/scale.md).
    PROBED_ROWS_PER_FETCH = 128
    choice_: dict | None = None  # also what an object pickled by an earlier version has

    def __init__(self, dim: int, settings: IndexSettings | None = None, *, n_expected: int = 0,
                 equal_norms: bool | None = None) -> None:
        super().__init__(dim, settings, n_expected=n_expected)
        self.equal_norms = equal_norms
        self.radius_: float | None = None
        self.choice_: dict | None = None

    @property
    def _faiss_dim(self) -> int:
        d = self.index_dim
        if self.radius_ is None:
            return d
        m = min(self.settings.pq_m, d + 1)
        return -(-(d + 1) // m) * m

    def _new(self, sample: np.ndarray):
        """A FAISS index trained on ``sample`` as stored (:meth:`_stored` under the current
        :attr:`radius_`)."""
        faiss = _faiss()
        n = max(self.n_expected, len(sample))
        nlist = self.settings.ivf_nlist or int(4 * math.sqrt(max(n, 1)))
        nlist = max(1, min(nlist, len(sample) // 39 or 1))
        # FAISS wants about 39 training points per PQ centroid: fewer bits on small samples.
        nbits = max(1, min(self.settings.pq_nbits, int(math.log2(max(2, len(sample) / 39)))))
        if self.radius_ is None:
            d = self.index_dim
            m = max(x for x in range(1, min(self.settings.pq_m, d) + 1) if d % x == 0)
            metric, quantizer = faiss.METRIC_INNER_PRODUCT, faiss.IndexFlatIP(d)
        else:
            d = self._faiss_dim
            m = min(self.settings.pq_m, d)
            metric, quantizer = faiss.METRIC_L2, faiss.IndexFlatL2(d)
        idx = faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, metric)
        idx.train(sample)
        return idx

    def _make(self, sample: np.ndarray):
        choose = self.equal_norms is None
        if choose and len(sample) < self.CHOOSE_FROM:
            choose = False
        if not choose:
            if self.equal_norms:
                self._set_radius(sample)
            return self._new(self._stored(sample, query=False))
        built = {}
        for way in ("plain", "equal norms"):
            self.radius_ = None
            if way == "equal norms":
                self._set_radius(sample)
            stored = self._stored(sample, query=False)
            self.index_ = self._new(stored)
            self.index_.add(stored)
            built[way] = (self.index_, self.radius_, self._sample_recall(sample))
        way = "equal norms" if built["equal norms"][2] > built["plain"][2] else "plain"
        self.index_, self.radius_ = built[way][:2]
        self.index_.reset()  # trained, empty: the rows come by add()
        self.choice_ = {"chosen": way, **{f"recall_{w}": round(b[2], 4)
                                          for w, b in built.items()}}
        log.info("IVF-PQ codes: %s (recall@15 among %d candidates on %s sample rows: plain "
                 "%.3f, equal norms %.3f)", way, self.settings.min_candidates,
                 f"{len(sample):,}", built["plain"][2], built["equal norms"][2])
        return self.index_

    def _sample_recall(self, sample: np.ndarray, k: int = 15) -> float:
        """Mean share of each of 256 sample rows' ``k`` nearest (by inner product, itself
        left out) that the index finds among ``min_candidates`` candidates, re-scored."""
        rng = np.random.default_rng(self.settings.seed)
        qs = np.sort(rng.choice(len(sample), min(256, len(sample)), replace=False))
        fetch = min(self.settings.min_candidates, len(sample) - 1)
        truth = sample[qs] @ sample.T
        truth[np.arange(len(qs)), qs] = -np.inf
        labels, _ = self._search_index_space(np.ascontiguousarray(sample[qs]), fetch + 1)
        hits = 0.0
        for i, q in enumerate(qs):
            c = labels[i][(labels[i] >= 0) & (labels[i] != q)][:fetch]
            kk = min(k, len(sample) - 1)
            top = np.argpartition(-truth[i], kk - 1)[:kk]
            got = c[np.argsort(-truth[i][c], kind="stable")[:kk]]
            hits += len(np.intersect1d(top, got)) / kk
        return hits / len(qs)

    def _inner_products(self, scores: np.ndarray, q: np.ndarray) -> np.ndarray:
        if self.radius_ is None:
            return scores
        qq = np.einsum("ij,ij->i", q, q)[:, None]
        return 0.5 * (qq + np.float32(self.radius_ ** 2) - scores)

    def _check_loaded(self, path: Path) -> None:
        super()._check_loaded(path)
        l2 = self.index_.metric_type == _faiss().METRIC_L2
        if l2 != (self.radius_ is not None):
            raise ModelError(f"{path}: an IVF-PQ index with "
                             f"{'the L2' if l2 else 'the inner-product'} metric and "
                             f"{'no' if self.radius_ is None else 'an'} equal-norm radius "
                             "in its meta; rebuild the index.")

    def save(self, folder: Path, name: str) -> dict:
        meta = super().save(folder, name)
        if self.choice_ is not None:
            meta["choice"] = dict(self.choice_)
        return meta

    def min_fetch(self) -> int:
        """Candidates a query should fetch at least: one per :attr:`PROBED_ROWS_PER_FETCH`
        rows its ``nprobe`` cells hold on average (thirty-fourth session). The codes rank
        every probed row; the more rows they rank, the likelier a true neighbour falls below
        a fixed cut. With the default 32 of at most 840 cells it stays under
        ``min_candidates`` (128), so changes nothing, below about 430,000 rows; about 300 at
        1,000,000 rows, 1,500 at 5,000,000."""
        nlist, n = int(self.index_.nlist), int(self.index_.ntotal)
        if not n:
            return 0
        probed = n * min(nlist, self.settings.nprobe) / nlist
        return math.ceil(probed / self.PROBED_ROWS_PER_FETCH)

    def _probes(self, k: int) -> int:
        """Cells to visit for ``k`` candidates: ``settings.nprobe``, raised until the cells
        hold on average :attr:`PROBE_ROWS_PER_CANDIDATE` rows per candidate (at most every
        cell). Only small indexes or large fetches reach the rule: at 1,000,000 rows the
        default 32 of 840 cells hold about 38,000 rows."""
        nlist, n = int(self.index_.nlist), int(self.index_.ntotal)
        need = math.ceil(self.PROBE_ROWS_PER_CANDIDATE * k * nlist / n) if n else nlist
        return max(1, min(nlist, max(self.settings.nprobe, need)))

    def _params(self, k: int, sel=None):
        nprobe = self._probes(k)
        if sel is None:
            return _faiss().SearchParametersIVF(nprobe=nprobe)
        return _faiss().SearchParametersIVF(nprobe=nprobe, sel=sel)
