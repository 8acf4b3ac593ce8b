"""The base class of the fused indexes: state, exact pair scores, ``topk`` and the exact paths.

Exact scores come from the library's own fusion formulas (:mod:`prodfusion.fusion.pairs`, or
the fusion classes fitted on just the rows involved): every fused similarity is row-local, so
this equals the full fuser's value without ever holding an ``N × D`` fused matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prodfusion.encoders.base import Embeddings, row_norms
from prodfusion.errors import NotBuiltError, ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.fusion.base import check_query_rows
from prodfusion.fusion.pairs import early_row_scale, pair_scores
from prodfusion.fusion.weights import Weighting
from prodfusion.index.base import IndexSettings, choose_backend, owned_threads
from prodfusion.index.exact import topk_rows
from prodfusion.index.fused.filtering import _Codes, _Filter
from prodfusion.index.topk import Filters

__all__ = ["FusedIndex"]

#: Rows whose fused vectors are computed at once while building (bounds the build's memory).
_BUILD_CHUNK = 32_768
#: Queries re-scored together (their candidates share one fitted subset fuser).
_QUERY_BLOCK = 64
#: Rows scored at once by the exact fallback.
_EXACT_CHUNK = 32_768




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
        self.norms_ = {m: row_norms(self.embeddings_[m]) for m in self.modalities}
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
        return owned_threads(self, "_pool_", self.settings.search_threads, "pf-search")

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


    def _query_blocks(self, q_rows: np.ndarray, mods: tuple[str, ...],
                      qmask: np.ndarray | None = None) -> np.ndarray:
        """Index-space vectors of the queries for a piece over ``mods`` (see subclasses);
        ``qmask`` (:meth:`_query_masks`): which modalities count for each query."""
        raise NotImplementedError  # pragma: no cover

    def _query_masks(self, q_rows: np.ndarray) -> np.ndarray:
        """Which modalities count for each query: its presence, less its clicks where the
        weighting's click confidence is ``"min"`` and the query was seen too rarely
        (:attr:`~prodfusion.fusion.weighting.Weighting.confidence`)."""
        qmask = self.masks_[q_rows]
        if self.weighting.confidence == "min" and self.confidence is not None \
                and "clicks" in self.modalities:
            qmask = qmask.copy()
            qmask[:, self.modalities.index("clicks")] &= self.confidence[q_rows] > 0
        return qmask

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
        filters: Filters | None = None,
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
        flt = _Filter(self, filters)
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
        filters: Filters | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by scanning every row in chunks: the oracle, in bounded memory.

        Blocks of queries are scored against chunks of ``_EXACT_CHUNK`` rows with the
        library's fuser fitted on just those rows, keeping a running top-k.
        """
        self._check_built()
        rows = self._validate_rows(query_rows)
        flt = _Filter(self, filters)
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
            universe = flt.unbanned(self.present)
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

