"""Approximate top-k for each fusion method, with exact re-scoring, filters and incremental updates.

Every searcher here has the fusers' ``topk`` signature and returns what the exact fuser
would return, up to the recall of its candidate generation:

* **early** — one vector index over the fused unit vectors (absent blocks are empty, so the
  inner product *is* the fused cosine). Candidates are re-scored exactly.
* **intermediate** — one index *per presence pattern* (which of the fused modalities a
  product has). Within a pattern ``P`` a product's vector is the concatenation of its
  L2-normalised blocks; a query ``q`` searches pattern ``P`` with its own blocks of ``P``
  (zero where ``q`` lacks one), and the inner product divided by ``|P ∩ P_q|`` is the exact
  mean cosine over the modalities both have. So products lacking a modality are ranked
  fairly, not pushed down by zero blocks as in a single ``X/sqrt(M)`` index. Patterns
  smaller than ``IndexSettings.exact_below`` are searched exactly.
* **late** — no vectors at all: per-modality cluster inverted lists. The candidates are the
  products sharing at least one cluster with the query; their count is exact from the
  labels, the intermediate tie-break is computed only for the count levels that can reach
  the top ``k``. When fewer than ``k`` such products pass the filters, the search falls
  back to exact (count-0 products are then ranked by the tie-break alone, as in the fuser).

Exact scores come from the library's own fusion classes fitted on just the rows involved
(query ∪ candidates): every fused similarity is row-local, so this equals the full
fuser's value without ever holding an ``N × D`` fused matrix.

Filters (``banned``, ``same_code``, ``diff_code``; see :func:`prodfusion.fusion.base.topk_exact`)
are applied after re-scoring. Candidates are over-fetched in proportion to how much the
filter removes; if too few survive, the fetch grows, and beyond
``IndexSettings.max_candidates`` (or when the allowed rows are few) the search is exact
over the allowed rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ModelError, NotBuiltError, ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.fusion.base import check_query_rows
from prodfusion.fusion.pairs import early_row_scale, pair_scores
from prodfusion.fusion.weights import Weighting
from prodfusion.index.base import IndexSettings, choose_backend
from prodfusion.index.exact import ExactIndex, topk_rows
from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex

__all__ = ["FusedIndex", "EarlyIndex", "IntermediateIndex", "LateIndex", "make_fused_index",
           "load_fused_index"]

log = logging.getLogger(__name__)

#: Rows whose fused vectors are computed at once while building (bounds the build's memory).
_BUILD_CHUNK = 32_768
#: Queries re-scored together (their candidates share one fitted subset fuser).
_QUERY_BLOCK = 64
#: Rows scored at once by the exact fallback.
_EXACT_CHUNK = 32_768

_BACKENDS = {"exact": ExactIndex, "hnsw": HNSWIndex, "ivfpq": IVFPQIndex}


def _pattern_name(mods: Sequence[str]) -> str:
    return "+".join(mods)


def _row_norms(e: Embeddings) -> np.ndarray:
    """L2 norm of every row (0 where absent), computed in chunks."""
    out = np.zeros(len(e.mask), dtype=np.float32)
    for lo in range(0, len(out), _BUILD_CHUNK):
        v = np.asarray(e.vectors[lo : lo + _BUILD_CHUNK], dtype=np.float32)
        out[lo : lo + _BUILD_CHUNK] = np.sqrt(np.einsum("ij,ij->i", v, v))
    out[~e.mask] = 0.0
    return out


class _Codes:
    """Inverted lists and counts of an int code array (category / group), cached per array."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes
        valid = codes >= 0
        rows = np.flatnonzero(valid)
        order = np.argsort(codes[rows], kind="stable")
        self.sorted_rows = rows[order]
        size = int(codes.max()) + 1 if valid.any() else 0
        self.counts = np.bincount(codes[rows], minlength=size)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])

    def rows(self, code: int) -> np.ndarray:
        if code < 0 or code >= len(self.counts):
            return np.zeros(0, dtype=np.int64)
        return self.sorted_rows[self.offsets[code] : self.offsets[code + 1]]

    def count(self, code: int) -> int:
        return 0 if code < 0 or code >= len(self.counts) else int(self.counts[code])


class _Filter:
    """The query-time filters of one ``topk`` call."""

    def __init__(self, owner: FusedIndex, exclude_self, banned, same_code, diff_code) -> None:
        n = owner.n
        for name, arr in (("banned", banned), ("same_code", same_code), ("diff_code", diff_code)):
            if arr is not None and len(arr) != n:
                raise ParameterError(f"topk(): {name} has {len(arr)} entries, the index {n} rows.")
        self.exclude_self = exclude_self
        self.banned = None if banned is None else np.asarray(banned, dtype=bool)
        self.n_banned = 0 if self.banned is None else int(self.banned.sum())
        self.same = None if same_code is None else owner._codes(same_code)
        self.diff = None if diff_code is None else owner._codes(diff_code)

    def ok(self, q: int, c: np.ndarray) -> np.ndarray:
        m = np.ones(len(c), dtype=bool)
        if self.exclude_self:
            m &= c != q
        if self.banned is not None:
            m &= ~self.banned[c]
        if self.same is not None:
            qc = self.same.codes[q]
            m &= (self.same.codes[c] == qc) & (qc >= 0)
        if self.diff is not None:
            qc = self.diff.codes[q]
            if qc >= 0:
                m &= self.diff.codes[c] != qc
        return m

    def universe(self, q: int) -> np.ndarray | None:
        """Rows that can pass ``same_code`` (``None``: every row)."""
        if self.same is None:
            return None
        return self.same.rows(int(self.same.codes[q]))

    def n_removed(self, q: int) -> int:
        """Rows removed besides ``same_code``: an upper bound used to size the over-fetch."""
        r = self.n_banned + 1
        if self.diff is not None:
            r += self.diff.count(int(self.diff.codes[q]))
        return r


class FusedIndex:
    """Approximate top-k for one fusion method over one modality subset (base class).

    Parameters
    ----------
    modalities : sequence of str
        The fused modalities, e.g. ``("text", "image", "clicks")``.
    backend : {"auto", "exact", "hnsw", "ivfpq"}
        Vector index used by each piece; ``"auto"`` picks by the number of products.
    settings : IndexSettings, optional
    normalize : bool
        Early fusion only (see :class:`prodfusion.fusion.EarlyFusion`).

    Attributes
    ----------
    n : int
        Catalog rows covered.
    backend_ : str
        The resolved backend.
    """

    method = ""

    def __init__(
        self,
        *,
        modalities: Sequence[str],
        backend: str = "auto",
        settings: IndexSettings | None = None,
        normalize: bool = False,
        weighting: Weighting | None = None,
        confidence: np.ndarray | None = None,
    ) -> None:
        self.modalities = tuple(modalities)
        self.backend = backend
        self.settings = settings or IndexSettings()
        self.normalize = normalize
        self.weighting = weighting or Weighting()
        self.confidence = confidence
        self._code_cache: list[tuple[np.ndarray, _Codes]] = []

    # ----------------------------------------------------------------- state
    def _set_data(self, embeddings: Mapping[str, Embeddings], labels=None) -> None:
        missing = [m for m in self.modalities if m not in embeddings]
        if missing:
            raise ParameterError(f"{type(self).__name__}: no embeddings for {missing}.")
        self.embeddings_ = {m: embeddings[m] for m in self.modalities}
        self.n = len(self.embeddings_[self.modalities[0]].mask)
        self.masks_ = np.stack([self.embeddings_[m].mask for m in self.modalities], axis=1)
        self.present = self.masks_.any(axis=1)
        self.n_present_ = int(self.present.sum())
        if labels is not None:
            self.labels_ = {m: np.asarray(labels[m], dtype=np.int32) for m in self.modalities}
        self.norms_ = {m: _row_norms(self.embeddings_[m]) for m in self.modalities}
        wt = self.weighting
        # Early fusion: unit blocks scaled by b_m(i) (prodfusion.fusion.pairs.early_row_scale;
        # the paper's [v_m / sqrt(D_m)]_m is b_m = |v_m| / sqrt(D_m)); the concatenation's
        # squared norm is Σ over present blocks of b_m(i)².
        self.early_scale_ = {m: early_row_scale(wt, m, self.norms_[m], self.embeddings_[m].dim,
                                                normalize=self.normalize,
                                                confidence=self.confidence)
                             for m in self.modalities}
        b2 = np.stack([np.broadcast_to(np.square(np.asarray(self.early_scale_[m], np.float32)),
                                       (self.n,)) for m in self.modalities], axis=1)
        self.fused_norm_ = np.sqrt((b2 * self.masks_).sum(axis=1)).astype(np.float32)
        if not wt.is_default:
            wt.check(self.modalities, type(self).__name__)
            if self.method == "early":
                self.present &= self.fused_norm_ > 0
                self.n_present_ = int(self.present.sum())
            w = np.array([wt.w(m) for m in self.modalities], np.float32)
            self.est_w_ = w  # intermediate estimates: (ip − masks·est_c) / (masks·est_w)
            self.est_c_ = w * np.array([wt.shift(m) for m in self.modalities], np.float32)

    def _pool(self):
        """Threads that search index pieces concurrently (``settings.search_threads`` > 1)."""
        n = self.settings.search_threads
        if n <= 1:
            return None
        pool = getattr(self, "_pool_", None)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = self._pool_ = ThreadPoolExecutor(n, thread_name_prefix="pf-search")
        return pool

    def _check_built(self) -> None:
        if not hasattr(self, "embeddings_"):
            raise NotBuiltError(f"{type(self).__name__} is not built: call build() first.")

    def _codes(self, codes: np.ndarray) -> _Codes:
        for arr, c in self._code_cache:
            if arr is codes:
                return c
        c = _Codes(np.asarray(codes, dtype=np.int64))
        self._code_cache = [(codes, c)] + self._code_cache[:3]
        return c

    def _sub(self, rows: np.ndarray):
        """The library's fuser fitted on ``rows`` only (sorted unique catalog rows)."""
        sub = {m: e.take(rows) for m, e in self.embeddings_.items()}
        labels = None
        if self.method == "late":
            labels = {m: lab[rows] for m, lab in self.labels_.items()}
        return make_fuser(self.method, sub, self.modalities, normalize=self.normalize,
                          late_labels=labels, weighting=self.weighting,
                          confidence=None if self.confidence is None else self.confidence[rows])

    def exact_scores(self, query_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """Exact fused similarity ``(len(query_rows), len(cand_rows))`` without an N×D matrix."""
        q = np.asarray(query_rows, dtype=np.int64)
        c = np.asarray(cand_rows, dtype=np.int64)
        union, inv = np.unique(np.concatenate([q, c]), return_inverse=True)
        f = self._sub(union)
        return f.similarity(inv[: len(q)], inv[len(q) :])

    def pair_scores(self, q: int, cand_rows: np.ndarray) -> np.ndarray:
        """Exact fused similarity of one query row to ``cand_rows`` (float32), fast path.

        Per-modality cosines of the candidates' rows (from precomputed row norms) fed to
        :func:`prodfusion.fusion.pairs.pair_scores`, the fusion formulas' one row-local
        home. Tested against the fusion classes (and :meth:`exact_scores`, which runs them).
        """
        c = np.asarray(cand_rows, dtype=np.int64)
        cos, both, q_has, scale = {}, {}, {}, {}
        early = self.method == "early"
        for j, m in enumerate(self.modalities):
            q_has[m] = bool(self.masks_[q, j])
            both[m] = self.masks_[c, j] & q_has[m]
            if early:
                b = self.early_scale_[m]
                scale[m] = (b[q], b[c]) if np.ndim(b) else (b, b)
            if not q_has[m]:
                cos[m] = np.zeros(len(c), np.float32)
                continue
            e = self.embeddings_[m]
            dots = np.asarray(e.vectors[c], np.float32) @ np.asarray(e.vectors[q], np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                cos[m] = np.where(both[m], dots / (self.norms_[m][c] * self.norms_[m][q]), 0.0)
        conf = self.confidence
        match = None
        if self.method == "late":
            match = {m: (self.labels_[m][c] == self.labels_[m][q]) & (self.labels_[m][q] >= 0)
                     for m in self.modalities}
        out = pair_scores(self.method, self.weighting, self.modalities, cos, both, q_has=q_has,
                          conf_q=None if conf is None else conf[[q]],
                          conf_c=None if conf is None else conf[c], early_scale=scale,
                          early_norm=(self.fused_norm_[q], self.fused_norm_[c]), match=match)
        if early:
            out[~self.present[c]] = -np.inf
        if not self.present[q]:
            out[:] = -np.inf
        return out.astype(np.float32)

    def _mean_est(self, ip: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """Intermediate estimates from a piece's inner products ``ip`` ``(q, kk)``, for
        queries sharing the modalities ``shared`` (bool ``(q, M)``) with the piece: the mean
        cosine, or under a weighting ``(ip − Σ w_m shift_m) / Σ w_m`` over shared modalities
        (the piece's blocks carry ``sqrt(w_m a_m)`` on both sides)."""
        sh = shared.astype(np.float32)
        if self.weighting.is_default:
            return ip / sh.sum(axis=1, keepdims=True)
        w, c = sh @ self.est_w_, sh @ self.est_c_
        if self.weighting.calibration == "zmean":  # Σ W z over shared; D(q) is per query
            w = np.where(w > 0, 1.0, 0.0).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(w[:, None] > 0, (ip - c[:, None]) / w[:, None], -np.inf
                            ).astype(np.float32)

    def _query_blocks(self, q_rows: np.ndarray, mods: tuple[str, ...]) -> np.ndarray:
        """Index-space vectors of the queries for a piece over ``mods`` (see subclasses)."""
        raise NotImplementedError  # pragma: no cover

    def _resolved_backend(self, n: int) -> str:
        return choose_backend(self.backend, n, self.settings)

    # ----------------------------------------------------------------- search
    def _validate_rows(self, query_rows) -> np.ndarray:
        return check_query_rows(query_rows, self.n)

    def topk(
        self,
        query_rows,
        k: int = 15,
        *,
        exclude_self: bool = True,
        banned: np.ndarray | None = None,
        same_code: np.ndarray | None = None,
        diff_code: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and exact fused scores per query row, as the fuser's ``topk``.

        Returns
        -------
        rows : int64 array (q, k), best first, ``-1`` padding
        scores : float32 array (q, k), ``-inf`` padding
        """
        self._check_built()
        rows = self._validate_rows(query_rows)
        k = int(k)
        flt = _Filter(self, exclude_self, banned, same_code, diff_code)
        out_r = np.full((len(rows), k), -1, dtype=np.int64)
        out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
        todo = [i for i in range(len(rows)) if self.present[rows[i]]]
        self._search(rows, todo, k, flt, out_r, out_s)
        return out_r, out_s

    def exact_topk(
        self,
        query_rows,
        k: int = 15,
        *,
        exclude_self: bool = True,
        banned: np.ndarray | None = None,
        same_code: np.ndarray | None = None,
        diff_code: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by scanning every row in chunks: the oracle, in bounded memory.

        Blocks of queries are scored against chunks of ``_EXACT_CHUNK`` rows with the
        library's fuser fitted on just those rows, keeping a running top-k.
        """
        self._check_built()
        rows = self._validate_rows(query_rows)
        flt = _Filter(self, exclude_self, banned, same_code, diff_code)
        out_r = np.full((len(rows), k), -1, dtype=np.int64)
        out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
        universe = np.flatnonzero(self.present)
        for lo in range(0, len(rows), 256):
            q = rows[lo : lo + 256]
            best_r = np.zeros((len(q), 0), dtype=np.int64)
            best_s = np.zeros((len(q), 0), dtype=np.float32)
            for clo in range(0, len(universe), _EXACT_CHUNK):
                c = universe[clo : clo + _EXACT_CHUNK]
                s = np.asarray(self.exact_scores(q, c), dtype=np.float32)
                for j, qj in enumerate(q):
                    s[j, ~flt.ok(int(qj), c)] = -np.inf
                s[~self.present[q]] = -np.inf
                best_r, best_s = topk_rows(
                    np.concatenate([best_s, s], axis=1), k,
                    np.concatenate([best_r, np.broadcast_to(c, s.shape)], axis=1),
                )
            out_r[lo : lo + 256], out_s[lo : lo + 256] = best_r, best_s
        return out_r, out_s

    def _exact_over(self, q: int, k: int, flt: _Filter) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of one query over every row the filters allow."""
        universe = flt.universe(q)
        if universe is None:
            universe = np.flatnonzero(self.present)
        universe = universe[flt.ok(q, universe)]
        best_r = np.zeros(0, dtype=np.int64)
        best_s = np.zeros(0, dtype=np.float32)
        for lo in range(0, len(universe), _EXACT_CHUNK):
            c = universe[lo : lo + _EXACT_CHUNK]
            s = self.pair_scores(q, c)
            best_r = np.concatenate([best_r, c])
            best_s = np.concatenate([best_s, s.astype(np.float32)])
            r, sc = topk_rows(best_s[None, :], k, best_r[None, :])
            keep = r[0] >= 0
            best_r, best_s = r[0][keep], sc[0][keep]
        out_r = np.full(k, -1, dtype=np.int64)
        out_s = np.full(k, -np.inf, dtype=np.float32)
        out_r[: len(best_r)] = best_r
        out_s[: len(best_s)] = best_s
        return out_r, out_s

    def _search(self, rows, todo, k, flt, out_r, out_s) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- persistence
    def save(self, folder: Path) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self) -> dict:
        """What was built: backend and the size of each piece (for manifests and reports)."""
        out = {"method": self.method, "modalities": list(self.modalities),
               "requested": self.backend}
        if not self.weighting.is_default:  # absent: the paper's formulas (older folders)
            out["weighting"] = self.weighting.to_dict()
        return out


# =================================================================== vector-index fusions
class _Piece:
    """One vector index over some catalog rows, all sharing the same present modalities.

    A *mixed* piece (intermediate fusion) gathers the rows of every presence pattern too
    small for its own index: it is searched exactly, dividing each inner product by the
    number of modalities that row shares with the query.
    """

    def __init__(self, name: str, modalities: tuple[str, ...], rows: np.ndarray, index,
                 mixed: bool = False) -> None:
        self.name = name
        self.modalities = modalities
        self.rows = rows
        self.index = index
        self.mixed = mixed
        self.masks: np.ndarray | None = None  # (M, len) presence, cached for mixed pieces

    def __len__(self) -> int:
        return len(self.rows)


class _VectorFusedIndex(FusedIndex):
    """Shared machinery of early and intermediate fusion: pieces, candidates, re-scoring."""

    def _pieces_plan(self, rows: np.ndarray | None = None) -> dict:  # pragma: no cover
        """``name -> (modalities, rows, mixed)`` for all rows, or for appended ``rows``."""
        raise NotImplementedError

    def _vectors_chunked(self, rows: np.ndarray, mods: tuple[str, ...]):
        """Index-space vectors of ``rows``, a chunk at a time (bounded memory)."""
        for lo in range(0, len(rows), _BUILD_CHUNK):
            yield self._query_blocks(rows[lo : lo + _BUILD_CHUNK], mods)

    def _make_piece(self, name: str, mods: tuple[str, ...], rows: np.ndarray,
                    mixed: bool = False) -> _Piece:
        backend = self._resolved_backend(self.n)
        dim = int(sum(self.embeddings_[m].dim for m in mods))
        if mixed and backend != "exact":  # small patterns: brute force on projected vectors
            index = ExactIndex(dim, reduce_dim=self.settings.reduce_dim)
            index.train(np.concatenate(list(self._vectors_chunked(
                self._sample(rows), mods))))
        elif backend == "exact" or mixed or len(rows) < self.settings.exact_below:
            index = ExactIndex(dim)
        else:
            index = _BACKENDS[backend](dim, self.settings, n_expected=len(rows))
            index.train(np.concatenate(list(self._vectors_chunked(self._sample(rows), mods))))
        n_shards = 1 if mixed else min(self.settings.shards,
                                        len(rows) // max(1, self.settings.exact_below))
        if n_shards > 1:  # shards of the trained index, filled by the executor's tasks
            from prodfusion.index.sharded import build_shards

            index = build_shards(index, self._vectors_chunked(rows, mods), len(rows), n_shards,
                                 executor=getattr(self, "executor", None),
                                 what=f"{self.method} index, piece {name}")
        else:
            for v in self._vectors_chunked(rows, mods):
                index.add(v)
        return _Piece(name, mods, rows.astype(np.int64), index, mixed)

    def _sample(self, rows: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.settings.seed)
        ns = min(len(rows), self.settings.train_sample)
        return np.sort(rng.choice(rows, size=ns, replace=False))

    def build(self, embeddings: Mapping[str, Embeddings], labels=None) -> _VectorFusedIndex:
        """Compute the fused vectors in chunks and index every piece."""
        self._set_data(embeddings)
        self.backend_ = self._resolved_backend(self.n)
        self.pieces_: dict[str, _Piece] = {}
        for name, (mods, rows, mixed) in self._pieces_plan().items():
            self.pieces_[name] = self._make_piece(name, mods, rows, mixed)
        self._locate()
        return self

    # ----------------------------------------------------------------- search
    def _n_fetch(self, q: int, k: int, flt: _Filter) -> int | None:
        """Candidates per piece for the first pass; ``None``: go exact over the allowed rows.

        The fetch is ``k · over_fetch`` plus the few rows the filters remove by name (banned
        ids, the query's group); when most rows are banned it is divided by the fraction
        left. A ``same_code`` filter (category) is not over-fetched: the index search itself
        is restricted to the category's rows (small categories are scanned exactly).
        """
        s = self.settings
        n_present = max(1, self.n_present_)
        universe = flt.universe(q)
        if universe is not None and len(universe) <= s.exact_below:
            return None
        frac = 1.0
        removed = flt.n_removed(q)
        extra = removed
        if removed >= n_present / 2:  # most rows are banned: treat it as a selective filter
            frac *= max(1.0 - removed / n_present, 1e-9)
            extra = 0
        kp = max(s.min_candidates, math.ceil(k * s.over_fetch / frac) + extra)
        kp = -(-kp // 32) * 32  # multiples of 32 let queries share a search call
        if kp > s.max_candidates:
            return None
        return kp

    def _locate(self) -> None:
        """``piece_of_[row]`` (-1: none) and ``pos_[row]``: where each row sits in the pieces."""
        self.piece_of_ = np.full(self.n, -1, dtype=np.int16)
        self.pos_ = np.full(self.n, -1, dtype=np.int64)
        for j, piece in enumerate(self.pieces_.values()):
            self.piece_of_[piece.rows] = j
            self.pos_[piece.rows] = np.arange(len(piece), dtype=np.int64)

    def _candidates(self, q_rows: np.ndarray, kp: int, universes=None
                    ) -> tuple[list[np.ndarray], np.ndarray]:
        """The ``kp`` best candidates per query over every relevant piece, by index estimate.

        Intermediate estimates are the piece's inner product divided by the number of
        modalities the query shares with the piece (the mean over shared modalities).
        With ``universes`` (one array of allowed rows per query), each query searches only
        those rows. Also returns whether that was exhaustive (every relevant row returned).
        """
        if universes is not None:  # restricted searches go one query at a time
            out, exh = [], np.ones(len(q_rows), dtype=bool)
            for i, (q, u) in enumerate(zip(q_rows, universes, strict=True)):
                c, e = self._candidates_one(int(q), kp, u)
                out.append(c)
                exh[i] = e
            return out, exh
        rows: list[list[np.ndarray]] = [[] for _ in q_rows]
        est: list[list[np.ndarray]] = [[] for _ in q_rows]
        exhaustive = np.ones(len(q_rows), dtype=bool)
        qmask = self.masks_[q_rows]
        jobs = []
        for piece in self.pieces_.values():
            if not len(piece):
                continue
            pm = np.array([m in piece.modalities for m in self.modalities])
            shared = (qmask & pm).sum(axis=1)
            sel = np.flatnonzero(shared > 0)
            if not len(sel):
                continue
            kk = min(kp, len(piece))
            if kk < len(piece):
                exhaustive[sel] = False
            jobs.append((piece, sel, pm, kk))

        def run(job):
            piece, sel, pm, kk = job
            qv = self._query_blocks(q_rows[sel], piece.modalities)
            if piece.mixed:
                return topk_rows(self._mixed_mean(piece, qv, qmask[sel]), kk)
            labels, scores = piece.index.search(qv, kk)
            if self.method == "intermediate":
                scores = self._mean_est(scores, qmask[sel] & pm)
            return labels, scores

        # FAISS and BLAS release the GIL: the pieces of one query can be searched at once.
        pool = self._pool() if len(jobs) > 1 else None
        results = pool.map(run, jobs) if pool is not None else map(run, jobs)
        for (piece, sel, _, _), (labels, scores) in zip(jobs, results, strict=True):
            for j, i in enumerate(sel):
                ok = labels[j] >= 0
                rows[i].append(piece.rows[labels[j][ok]])
                est[i].append(scores[j][ok])
        out = []
        for i in range(len(q_rows)):
            if not rows[i]:
                out.append(np.zeros(0, np.int64))
                continue
            r, e = np.concatenate(rows[i]), np.concatenate(est[i])
            if len(r) > kp:
                r = r[np.argpartition(-e, kp - 1)[:kp]]
                exhaustive[i] = False
            out.append(r)
        return out, exhaustive

    def _mixed_mean(self, piece: _Piece, qv: np.ndarray, qmask: np.ndarray,
                    cols: np.ndarray | None = None) -> np.ndarray:
        """Estimates over the mixed piece (its rows ``cols``, default all): each row's inner
        product with the queries divided by the number of modalities the two share."""
        vectors = piece.index.vectors if cols is None else piece.index.vectors[cols]
        ip = piece.index.project(qv) @ vectors.T
        if piece.masks is None:
            piece.masks = np.ascontiguousarray(self.masks_[piece.rows].T, dtype=np.float32)
        masks = piece.masks if cols is None else piece.masks[:, cols]
        qm = qmask.astype(np.float32)
        if self.weighting.is_default:
            sh, c = qm @ masks, 0.0
        else:
            sh, c = (qm * self.est_w_) @ masks, (qm * self.est_c_) @ masks
            if self.weighting.calibration == "zmean":  # Σ W z over shared (D(q) per query)
                sh = np.where(sh > 0, 1.0, 0.0).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sh > 0, (ip - c) / sh, -np.inf).astype(np.float32)

    def _candidates_one(self, q: int, kp: int, universe: np.ndarray) -> tuple[np.ndarray, bool]:
        """Candidates of one query among ``universe`` rows only (e.g. its category)."""
        if not hasattr(self, "pos_") or len(self.pos_) != self.n:
            self._locate()
        qmask = self.masks_[q]
        where = self.piece_of_[universe]
        rows, est, exhaustive = [], [], True
        for j, piece in enumerate(self.pieces_.values()):
            pm = np.array([m in piece.modalities for m in self.modalities])
            shared = int((qmask & pm).sum())
            allowed = np.sort(self.pos_[universe[where == j]])
            if not shared or not len(allowed):
                continue
            kk = min(kp, len(allowed))
            qv = self._query_blocks(np.array([q]), piece.modalities)
            if piece.mixed:
                mean = self._mixed_mean(piece, qv, qmask[None, :], allowed)
                lab, sc = topk_rows(mean, kk, allowed[None, :])
            else:
                lab, sc = piece.index.search(qv, kk, allowed=allowed)
                if self.method == "intermediate":
                    sc = self._mean_est(sc, (qmask & pm)[None, :])
            ok = lab[0] >= 0
            exhaustive &= bool(ok.sum() == len(allowed))  # every allowed row came back
            rows.append(piece.rows[lab[0][ok]])
            est.append(sc[0][ok])
        if not rows:
            return np.zeros(0, np.int64), True
        r, e = np.concatenate(rows), np.concatenate(est)
        if len(r) > kp:
            r = r[np.argpartition(-e, kp - 1)[:kp]]
            exhaustive = False
        return r, exhaustive

    def _search(self, rows, todo, k, flt, out_r, out_s) -> None:
        plan: dict[int | None, list[int]] = {}
        for i in todo:
            plan.setdefault(self._n_fetch(int(rows[i]), k, flt), []).append(i)
        while plan:
            kp, idx = plan.popitem()
            if kp is None:
                for i in idx:
                    out_r[i], out_s[i] = self._exact_over(int(rows[i]), k, flt)
                continue
            for lo in range(0, len(idx), _QUERY_BLOCK):
                block = idx[lo : lo + _QUERY_BLOCK]
                universes = None
                if flt.same is not None:
                    universes = [flt.universe(int(rows[i])) for i in block]
                cands, exhaustive = self._candidates(rows[block], kp, universes)
                for j, i in enumerate(block):
                    q = int(rows[i])
                    c = cands[j]
                    c = c[flt.ok(q, c)]
                    s = self.pair_scores(q, c)
                    keep = np.isfinite(s)
                    if keep.sum() >= k or exhaustive[j]:
                        out_r[i], out_s[i] = topk_rows(s[keep][None, :], k, c[keep][None, :])
                    else:
                        nxt = kp * 4
                        plan.setdefault(nxt if nxt <= self.settings.max_candidates else None,
                                        []).append(i)

    # ----------------------------------------------------------------- updates
    def add(self, embeddings: Mapping[str, Embeddings], new_rows: np.ndarray, labels=None) -> dict:
        """Index rows appended to the catalog (cold start). Existing pieces grow in place.

        ``embeddings`` are the full, grown embeddings; ``new_rows`` the appended rows.
        Returns which pieces grew and which were created.
        """
        self._check_built()
        self._set_data(embeddings)
        new_rows = np.asarray(new_rows, dtype=np.int64)
        plan = self._pieces_plan(new_rows)
        report = {"grown": [], "created": []}
        for name, (mods, rows, mixed) in plan.items():
            if not len(rows):
                continue
            piece = self.pieces_.get(name)
            if piece is None:
                self.pieces_[name] = self._make_piece(name, mods, rows, mixed)
                report["created"].append(name)
                continue
            if isinstance(piece.index, ExactIndex) and not mixed and self.backend_ != "exact" and (
                len(piece) + len(rows) >= self.settings.exact_below
            ):  # the piece outgrew exact search
                self.pieces_[name] = self._make_piece(name, mods, np.concatenate([piece.rows, rows]))
                report["created"].append(name)
                continue
            for v in self._vectors_chunked(rows, mods):
                piece.index.add(v)
            piece.rows = np.concatenate([piece.rows, rows])
            piece.masks = None
            report["grown"].append(name)
        self._locate()
        return report

    def update(self, embeddings: Mapping[str, Embeddings], changed: Sequence[str], labels=None) -> dict:
        """Take new vectors for the ``changed`` modalities; rebuild only the pieces they touch.

        A piece is rebuilt when it indexes a changed modality or when its rows changed
        (a product gained or lost that modality); every other piece is kept as it is.
        """
        self._check_built()
        self._set_data(embeddings)
        changed = set(changed)
        report = {"rebuilt": [], "kept": [], "dropped": []}
        plan = self._pieces_plan()
        for name in list(self.pieces_):
            if name not in plan:
                del self.pieces_[name]
                report["dropped"].append(name)
        for name, (mods, rows, mixed) in plan.items():
            piece = self.pieces_.get(name)
            if piece is not None and not (changed & set(mods)) and np.array_equal(piece.rows, rows):
                report["kept"].append(name)
                continue
            self.pieces_[name] = self._make_piece(name, mods, rows, mixed)
            report["rebuilt"].append(name)
        self._locate()
        return report

    # ----------------------------------------------------------------- persistence
    def save(self, folder: Path) -> dict:
        self._check_built()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pieces = {}
        for i, (name, piece) in enumerate(self.pieces_.items()):
            stem = f"piece{i}"
            np.save(folder / f"{stem}.rows.npy", piece.rows)
            meta = piece.index.save(folder, stem)
            meta["rows"] = f"{stem}.rows.npy"
            meta["modalities"] = list(piece.modalities)
            meta["size"] = len(piece)
            meta["mixed"] = piece.mixed
            pieces[name] = meta
        return {**self.info(), "pieces": pieces}

    def _load_pieces(self, folder: Path, meta: dict, mmap: bool) -> None:
        from prodfusion.index.sharded import ShardedVectorIndex

        classes = {**_BACKENDS, "sharded": ShardedVectorIndex}
        self.pieces_ = {}
        for name, pm in meta["pieces"].items():
            cls = classes.get(pm.get("kind"))
            if cls is None:
                raise ModelError(f"{folder}: unknown index kind {pm.get('kind')!r} for {name!r}.")
            try:
                rows = np.load(Path(folder) / pm["rows"])
            except (OSError, ValueError) as exc:
                raise ModelError(f"{folder / pm['rows']}: cannot read ({exc}).") from exc
            index = cls.load(folder, pm, mmap=mmap)
            if len(index) != len(rows):
                raise ModelError(
                    f"{folder}: piece {name!r} indexes {len(index)} vectors but lists {len(rows)} rows."
                )
            self.pieces_[name] = _Piece(name, tuple(pm["modalities"]), rows, index,
                                        bool(pm.get("mixed", False)))
        self._locate()

    def info(self) -> dict:
        out = super().info()
        out["backend"] = getattr(self, "backend_", None)
        out["pieces_summary"] = {
            name: {"kind": p.index.kind, "size": len(p)} for name, p in getattr(self, "pieces_", {}).items()
        }
        return out


class EarlyIndex(_VectorFusedIndex):
    """Approximate early fusion: one index over the fused unit vectors (see module docs)."""

    method = "early"

    def _pieces_plan(self, rows: np.ndarray | None = None):
        r = np.flatnonzero(self.present) if rows is None else rows[self.present[rows]]
        return {"all": (self.modalities, r.astype(np.int64), False)}

    def _query_blocks(self, q_rows, mods):
        """Fused unit vectors ``[b_m(i) u_m(i)]_m / norm`` (EarlyFusion's, from stored norms;
        ``b_m``: :func:`prodfusion.fusion.pairs.early_row_scale`)."""
        blocks = []
        for m in self.modalities:
            v = np.asarray(self.embeddings_[m].vectors[q_rows], dtype=np.float32)
            b = self.early_scale_[m]
            b = np.asarray(b, np.float32)[q_rows][:, None] if np.ndim(b) else np.float32(b)
            blocks.append(v / np.maximum(self.norms_[m][q_rows], 1e-30)[:, None] * b)
        x = np.concatenate(blocks, axis=1)
        return x / np.maximum(self.fused_norm_[q_rows], 1e-30)[:, None]


class IntermediateIndex(_VectorFusedIndex):
    """Approximate intermediate fusion: one index per presence pattern (see module docs)."""

    method = "intermediate"

    def _pieces_plan(self, rows: np.ndarray | None = None):
        """One piece per presence pattern big enough for its own index; the rest: ``mixed``.

        For appended ``rows``, a pattern joins its existing piece, else the mixed one.
        """
        weights = 1 << np.arange(len(self.modalities))
        all_codes = (self.masks_ * weights).sum(axis=1)
        counts = np.bincount(all_codes, minlength=1 << len(self.modalities))
        exact = self._resolved_backend(self.n) == "exact"
        rows = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.int64)
        code = all_codes[rows]
        existing = getattr(self, "pieces_", None)
        plan: dict = {}
        mixed_rows = []
        for c in np.unique(code):
            if c == 0:
                continue
            mods = tuple(m for j, m in enumerate(self.modalities) if c >> j & 1)
            name = _pattern_name(mods)
            own = (name in existing) if existing is not None and len(rows) < self.n else (
                not exact and counts[c] >= self.settings.exact_below
            )
            if own:
                plan[name] = (mods, rows[code == c], False)
            else:
                mixed_rows.append(rows[code == c])
        if mixed_rows:
            plan["mixed"] = (self.modalities, np.sort(np.concatenate(mixed_rows)), True)
        return plan

    def _query_blocks(self, q_rows, mods):
        """Concatenated L2-normalised blocks (IntermediateFusion's, from stored norms)."""
        blocks = []
        wt = self.weighting
        for m in mods:
            v = np.asarray(self.embeddings_[m].vectors[q_rows], dtype=np.float32)
            v = v / np.maximum(self.norms_[m][q_rows], 1e-30)[:, None]  # absent: 0
            if not wt.is_default:  # both sides carry sqrt(w_m a_m): see _mean_est
                v = v * np.float32(np.sqrt(wt.w(m) * wt.scale(m)))
            blocks.append(v)
        return np.concatenate(blocks, axis=1)


# =================================================================== late fusion
class LateIndex(FusedIndex):
    """Late fusion from per-modality cluster inverted lists (no vectors indexed)."""

    method = "late"

    def build(self, embeddings: Mapping[str, Embeddings], labels=None) -> LateIndex:
        if labels is None:
            raise ParameterError("LateIndex.build() needs the k-means++ labels of every modality.")
        self._set_data(embeddings, labels)
        self.backend_ = "inverted-lists"
        self.lists_ = {m: _Codes(self.labels_[m].astype(np.int64)) for m in self.modalities}
        return self

    def _search(self, rows, todo, k, flt, out_r, out_s) -> None:
        for i in todo:
            q = int(rows[i])
            universe = flt.universe(q)
            if universe is not None and len(universe) <= self.settings.exact_below:
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            lists = [self.lists_[m].rows(int(self.labels_[m][q])) for m in self.modalities]
            lists = [x for x in lists if len(x)]
            if not lists:
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            if self.weighting.is_default:
                cand, count = np.unique(np.concatenate(lists), return_counts=True)
            else:  # weighted counts Σ w_m over the lists a candidate is in
                wl = [self.weighting.w(m) for m in self.modalities
                      if len(self.lists_[m].rows(int(self.labels_[m][q])))]
                allr = np.concatenate(lists)
                cand, inv = np.unique(allr, return_inverse=True)
                count = np.bincount(inv, weights=np.repeat(wl, [len(x) for x in lists]),
                                    minlength=len(cand))
            keep = flt.ok(q, cand)
            cand, count = cand[keep], count[keep]
            if len(cand) < k:  # count-0 products enter the top k: rank them exactly
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            level = np.partition(count, len(count) - k)[len(count) - k]
            if level <= 0:  # weight-0 lists: products in no list tie with these; go exact
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            need = cand[count >= level]
            s = self.pair_scores(q, need)
            out_r[i], out_s[i] = topk_rows(s[None, :], k, need[None, :])

    def add(self, embeddings: Mapping[str, Embeddings], new_rows: np.ndarray, labels=None) -> dict:
        """Appended rows join the inverted lists of their (nearest-centroid) clusters."""
        self._check_built()
        self.build(embeddings, labels)
        return {"grown": list(self.modalities), "created": []}

    def update(self, embeddings: Mapping[str, Embeddings], changed: Sequence[str], labels=None) -> dict:
        """Rebuild the inverted lists of the changed modalities only."""
        self._check_built()
        self._set_data(embeddings, labels)
        report = {"rebuilt": [], "kept": [], "dropped": []}
        for m in self.modalities:
            if m in set(changed):
                self.lists_[m] = _Codes(self.labels_[m].astype(np.int64))
                report["rebuilt"].append(m)
            else:
                report["kept"].append(m)
        return report

    def save(self, folder: Path) -> dict:
        self._check_built()
        return {**self.info(), "backend": self.backend_, "pieces": {}}

    def info(self) -> dict:
        out = super().info()
        out["backend"] = "inverted-lists"
        out["pieces_summary"] = {
            m: {"kind": "clusters", "size": int(len(c.counts))} for m, c in getattr(self, "lists_", {}).items()
        }
        return out


_CLASSES = {"early": EarlyIndex, "intermediate": IntermediateIndex, "late": LateIndex}


def make_fused_index(
    method: str,
    modalities: Sequence[str],
    *,
    backend: str = "auto",
    settings: IndexSettings | None = None,
    normalize: bool = False,
    weighting: Weighting | None = None,
    confidence: np.ndarray | None = None,
) -> FusedIndex:
    """An unbuilt approximate searcher for ``method`` (``"early"|"intermediate"|"late"``)."""
    return _CLASSES[method](modalities=modalities, backend=backend, settings=settings,
                            normalize=normalize, weighting=weighting, confidence=confidence)


def load_fused_index(
    folder: Path,
    meta: dict,
    embeddings: Mapping[str, Embeddings],
    *,
    labels=None,
    settings: IndexSettings | None = None,
    normalize: bool = False,
    mmap: bool = True,
    weighting: Weighting | None = None,
    confidence: np.ndarray | None = None,
) -> FusedIndex:
    """Rebuild a searcher saved by :meth:`FusedIndex.save` (FAISS files memory-mapped)."""
    try:
        method, mods = meta["method"], tuple(meta["modalities"])
        obj = make_fused_index(method, mods, backend=meta.get("requested", "auto"),
                               settings=settings, normalize=normalize, weighting=weighting,
                               confidence=confidence)
        if method == "late":
            return obj.build(embeddings, labels)
        obj._set_data(embeddings)
        obj.backend_ = meta["backend"]
        obj._load_pieces(Path(folder), meta, mmap)
    except KeyError as exc:
        raise ModelError(f"{folder}: index description lacks {exc}; rebuild the index.") from exc
    covered = sum(len(p) for p in obj.pieces_.values())
    if covered != int(obj.present.sum()):
        raise ModelError(
            f"{folder}: the saved {method} index covers {covered} products but the model has "
            f"{int(obj.present.sum())} with those modalities; it is stale. Rebuild the index."
        )
    return obj
