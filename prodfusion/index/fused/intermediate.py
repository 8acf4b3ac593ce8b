"""Approximate intermediate fusion: one vector index per presence pattern.

A presence pattern ``P`` is which of the fused modalities a product has. Within ``P`` a
product's vector is the concatenation of its L2-normalised blocks; a query ``q`` searches
pattern ``P`` with its own blocks of ``P`` (zero where ``q`` lacks one), and the inner product
divided by ``|P ∩ P_q|`` is the exact mean cosine over the modalities both have. So products
lacking a modality are ranked fairly, not pushed down by zero blocks as in a single
``X/sqrt(M)`` index. Patterns smaller than ``IndexSettings.exact_below`` share one *mixed*
piece, searched exactly.
"""

from __future__ import annotations

import numpy as np

from prodfusion.index.fused.vector import _Piece, _VectorFusedIndex

#: ``min_candidates`` multiplier under confidence-weighted clicks (``n0``): the pieces'
#: estimates use the full click weight ``w``, not the pair's ``w·c(n_q)·c(n_j)``, so the
#: exact order of the candidates is further from the estimated one. Measured on 1M synthetic
#: products (docs/benchmarks/fusion_weights.md): recall@15 0.854 with 128 candidates per
#: piece, 0.915 with 256, 0.956 with 512 (equal weights without ``n0``: 0.959 with 128).
CONFIDENCE_FETCH_FACTOR = 4


def _pattern_name(mods) -> str:
    return "+".join(mods)


class IntermediateIndex(_VectorFusedIndex):
    """Approximate intermediate fusion: one index per presence pattern (see module docs)."""

    method = "intermediate"
    partial_queries = True

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

    def _query_blocks(self, q_rows, mods, qmask=None):
        """Concatenated L2-normalised blocks (IntermediateFusion's, from stored norms); a
        modality ``qmask`` says does not count for a query is a zero block."""
        blocks = []
        wt = self.weighting
        for m in mods:
            v = np.asarray(self.embeddings_[m].vectors[q_rows], dtype=np.float32)
            v = v / np.maximum(self.norms_[m][q_rows], 1e-30)[:, None]  # absent: 0
            if qmask is not None:
                v = v * qmask[:, self.modalities.index(m)][:, None]
            if not wt.is_default:  # both sides carry sqrt(w_m a_m): see _estimate
                v = v * np.float32(np.sqrt(wt.w(m) * wt.scale(m)))
            blocks.append(v)
        return np.concatenate(blocks, axis=1)

    def _fetch_factor(self) -> int:
        return CONFIDENCE_FETCH_FACTOR if self.confidence is not None else 1

    # ----------------------------------------------------------------- estimates
    def _estimate(self, ip: np.ndarray, shared: np.ndarray) -> np.ndarray:
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
