"""Approximate early fusion: one vector index over the fused unit vectors.

Absent blocks are empty, so the inner product of two fused unit vectors *is* the fused
cosine; candidates are re-scored exactly all the same (the index may be approximate).
"""

from __future__ import annotations

import numpy as np

from prodfusion.index.fused.vector import _VectorFusedIndex


class EarlyIndex(_VectorFusedIndex):
    """Approximate early fusion: one index over the fused unit vectors (see module docs)."""

    method = "early"

    def _pieces_plan(self, rows: np.ndarray | None = None):
        r = np.flatnonzero(self.present) if rows is None else rows[self.present[rows]]
        return {"all": (self.modalities, r.astype(np.int64), False)}

    def _query_blocks(self, q_rows, mods, qmask=None):
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

