"""Early fusion: one vector per product, the concatenation of ``v_m / sqrt(D_m)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.fusion.base import ExactSearchMixin, _prepare, fill_blocks
from prodfusion.fusion.weights import Weighting, early_block_scale

__all__ = ["EarlyFusion"]


class EarlyFusion(ExactSearchMixin):
    """Early fusion (the paper's formula): cosine of concatenated, dimension-scaled vectors.

    ``x_i = [v_{1,i}/sqrt(D_1), …, v_{M,i}/sqrt(D_M)]`` and ``sim(i, j) = cos(x_i, x_j)``.

    With ``normalize=True`` each ``v_m`` is L2-normalised first. Without it, a modality whose
    raw norms are large (CNN image features) dominates the concatenation; on H&M the image
    block is orders of magnitude larger than the title block.

    With a non-default ``weighting`` each block is L2-normalised and scaled by
    ``sqrt(w_m · a_m)`` (times the click confidence), so it contributes in proportion to its
    weight (:mod:`prodfusion.fusion.weights`); ``normalize`` is then implied.

    A product lacking modality ``m`` has an empty block there: it adds nothing to dot products
    or norms (the block is not a real zero vector taking part in the comparison, it is left
    out). A product with none of the fused modalities is never returned.

    Parameters
    ----------
    modalities : sequence of str
        Which embeddings to fuse, e.g. ``("text", "image")``.
    normalize : bool, default False
        L2-normalise each modality before scaling.

    Examples
    --------
    >>> import numpy as np
    >>> from prodfusion.encoders.base import Embeddings
    >>> e = {"text": Embeddings(np.eye(3, dtype="float32"), np.ones(3, bool), "t")}
    >>> f = EarlyFusion(modalities=("text",)).fit(e)
    >>> round(float(f.similarity([0], [0])[0, 0]), 3)
    1.0
    """

    method = "early"

    def __init__(self, *, modalities: Sequence[str], normalize: bool = False,
                 weighting: Weighting | None = None, confidence: np.ndarray | None = None) -> None:
        self.modalities = tuple(modalities)
        self.normalize = normalize
        self.weighting = weighting or Weighting()
        self.confidence = confidence

    def fit(self, embeddings: Mapping[str, Embeddings]) -> EarlyFusion:
        embs = _prepare(embeddings, self.modalities)
        self.weighting.check(self.modalities, "EarlyFusion")
        if self.weighting.is_default:
            x = fill_blocks(embs, normalize=self.normalize, scale_by_dim=True)
        else:  # blocks L2-normalised and scaled by b_m (prodfusion.fusion.weights)
            x = fill_blocks(embs, normalize=True, scale_by_dim=False)
            col = 0
            for m, e in zip(self.modalities, embs, strict=True):
                b = early_block_scale(self.weighting, m, self.confidence)
                x[:, col : col + e.dim] *= b[:, None] if np.ndim(b) else np.float32(b)
                col += e.dim
        norms = np.linalg.norm(x, axis=1)
        self.present = np.zeros(len(x), dtype=bool)
        for e in embs:
            self.present |= e.mask
        self.present &= norms > 0  # weight 0 on every modality a product has: not rankable
        x[self.present] /= norms[self.present, None]
        self.vectors_ = x
        self.n = len(x)
        self.dims_ = [e.dim for e in embs]
        return self

    def similarity(self, query_rows, cand_rows=None) -> np.ndarray:
        """Cosine of the fused vectors; ``-inf`` for pairs involving a product with no modality."""
        q = self._query_rows(query_rows)
        # Index the candidate side only when asked: vectors_[arange(n)] would copy it all.
        cv, cp = (self.vectors_, self.present) if cand_rows is None else (
            self.vectors_[cand_rows], self.present[cand_rows])
        s = self.vectors_[q] @ cv.T
        s[~self.present[q], :] = -np.inf
        s[:, ~cp] = -np.inf
        return s

    def representation(self, rows=None) -> np.ndarray:
        """The fused unit vectors (rows without any modality are zero)."""
        return self.vectors_ if rows is None else self.vectors_[rows]
