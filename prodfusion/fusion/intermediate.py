"""Intermediate fusion: the mean of per-modality cosine distances, without an N×N matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ParameterError
from prodfusion.fusion.base import ExactSearchMixin, _prepare, fill_blocks
from prodfusion.fusion.cooc import PAIRWISE_MODALITIES
from prodfusion.fusion.weights import Weighting, intermediate_combine

__all__ = ["IntermediateFusion"]


class IntermediateFusion(ExactSearchMixin):
    """Intermediate fusion: ``sim(i, j) = 1 − mean_m d_cos,m(i, j)`` over shared modalities.

    How it is computed exactly, with no N×N matrix: let ``u_{m,i}`` be the L2-normalised
    vector of modality ``m`` (zero where absent) and ``p_{m,i}`` its presence bit. With
    ``X_i = [u_{1,i}, …, u_{M,i}]`` and ``P_i = [p_{1,i}, …, p_{M,i}]``:

    * ``X_i · X_j = Σ_m p_{m,i} p_{m,j} cos_m(i, j)`` — the sum of cosines over the
      modalities *both* products have (an absent block contributes exactly 0);
    * ``P_i · P_j`` — how many modalities they share.

    So ``sim(i, j) = (X_i · X_j) / (P_i · P_j)`` is the mean cosine over shared modalities,
    i.e. 1 − the mean cosine distance — exactly the paper's definition, restricted to the
    modalities both have. When every product has every modality, ``P_i · P_j = M`` and this
    is the inner product of ``X/sqrt(M)``, which is what an inner-product index can serve.
    Pairs that share no modality get ``-inf`` (never recommended).

    With a non-default ``weighting`` (weights, calibration, click confidence) the similarity
    is ``Σ W_m s_m / Σ W_m`` over shared modalities (:mod:`prodfusion.fusion.weights`),
    computed per modality block.

    Examples
    --------
    >>> import numpy as np
    >>> from prodfusion.encoders.base import Embeddings
    >>> t = Embeddings(np.array([[1, 0], [1, 0]], "float32"), np.array([True, True]), "t")
    >>> i = Embeddings(np.array([[1, 0], [0, 1]], "float32"), np.array([True, False]), "i")
    >>> f = IntermediateFusion(modalities=("text", "image")).fit({"text": t, "image": i})
    >>> float(f.similarity([0], [1])[0, 0])  # only text is shared: cos = 1
    1.0
    """

    method = "intermediate"

    def __init__(self, *, modalities: Sequence[str], weighting: Weighting | None = None,
                 confidence: np.ndarray | None = None) -> None:
        self.modalities = tuple(modalities)
        self.weighting = weighting or Weighting()
        self.confidence = confidence

    def fit(self, embeddings: Mapping[str, Embeddings]) -> IntermediateFusion:
        """Fit on ``embeddings``: :class:`Embeddings` per vector modality and, for a pairwise
        modality (``cooc``), its :class:`~prodfusion.fusion.cooc.Cooc` object."""
        self.data_ = {m: embeddings[m] for m in self.modalities}  # a learned weighting's bests
        self.pairwise_ = {m: embeddings[m] for m in self.modalities if m in PAIRWISE_MODALITIES}
        for m, p in self.pairwise_.items():
            if not hasattr(p, "scores"):
                raise ParameterError(f"the {m!r} modality needs its pairwise scores "
                                     "(a Cooc, a CategoryMatch, a PopularityPrior).")
        self.dense_ = tuple(m for m in self.modalities if m not in self.pairwise_)
        embs = _prepare(embeddings, self.dense_) if self.dense_ else []
        self.weighting.check(self.modalities, "IntermediateFusion")
        masks = [e.mask for e in embs] + [p.mask for p in self.pairwise_.values()]
        self.n = len(masks[0])
        if any(len(x) != self.n for x in masks):
            raise DataError("every fused modality must cover the same catalog rows.")
        self.vectors_ = fill_blocks(embs, normalize=True, scale_by_dim=False) if embs else \
            np.zeros((self.n, 0), np.float32)
        # presence in self.modalities order
        by_mod = dict(zip(self.dense_, (e.mask for e in embs), strict=True))
        by_mod.update({m: p.mask for m, p in self.pairwise_.items()})
        self.presence_ = np.stack([by_mod[m] for m in self.modalities], axis=1).astype(np.float32)
        self.present = self.presence_.any(axis=1)
        self._cols = dict(zip(self.dense_, zip(np.cumsum([0] + [e.dim for e in embs])[:-1],
                                              np.cumsum([e.dim for e in embs]), strict=True),
                              strict=True))
        return self

    def similarity(self, query_rows, cand_rows=None) -> np.ndarray:
        q = self._query_rows(query_rows)
        if not self.weighting.is_default or self.pairwise_:
            return self._weighted(q, cand_rows)
        # Index the candidate side only when asked: vectors_[arange(n)] would copy it all.
        cv, cp = (self.vectors_, self.presence_) if cand_rows is None else (
            self.vectors_[cand_rows], self.presence_[cand_rows])
        num = self.vectors_[q] @ cv.T
        den = self.presence_[q] @ cp.T
        with np.errstate(divide="ignore", invalid="ignore"):
            s = num / den
        s[den == 0] = -np.inf
        return s

    def _pair_arrays(self, q: np.ndarray, cand_rows) -> tuple:
        """``(c, cos, both, q_has)``: the candidate rows (every product when ``cand_rows``
        is None) and, per modality, the raw similarities, presence of both products and
        the queries' presence."""
        c = np.arange(self.n) if cand_rows is None else np.asarray(cand_rows, dtype=np.int64)
        cos, both, q_has = {}, {}, {}
        for j, m in enumerate(self.modalities):
            if m in self.pairwise_:
                cos[m] = self.pairwise_[m].scores(q, None if cand_rows is None else c)
            else:
                lo, hi = self._cols[m]
                cv = self.vectors_[:, lo:hi] if cand_rows is None else self.vectors_[c, lo:hi]
                cos[m] = self.vectors_[q, lo:hi] @ cv.T
            q_has[m] = self.presence_[q, j] > 0
            both[m] = q_has[m][:, None] & (self.presence_[c, j][None, :] > 0)
        return c, cos, both, q_has

    def _weighted(self, q: np.ndarray, cand_rows) -> np.ndarray:
        """``Σ W_m s_m / Σ W_m`` (:func:`prodfusion.fusion.weights.intermediate_combine`)."""
        c, cos, both, q_has = self._pair_arrays(q, cand_rows)
        conf = self.confidence
        best = pool = None
        if self.weighting.learned is not None:  # each modality's nearest, by the trees
            from prodfusion.fusion.learned import query_best

            # the query's best and nearest over the whole catalog, from its full rows
            fc, fb = (cos, both) if cand_rows is None else self._pair_arrays(q, None)[1:3]
            best = query_best(self.modalities, fc, fb, self._self_mask(q))
            pool = self._pool(q, fc, fb)
            if cand_rows is not None:
                pool = pool[:, c]
        return intermediate_combine(self.weighting, self.modalities, cos, both,
                                    None if conf is None else conf[q],
                                    None if conf is None else conf[c], q_has=q_has,
                                    q_best=best, pool=pool)

    def _pool(self, q: np.ndarray, cos=None, both=None) -> np.ndarray:
        """Bool ``(q, n)``: the products a learned weighting's trees score for queries ``q``
        (:func:`~prodfusion.fusion.learned.pool_mask` over every product; ``cos``, ``both``:
        the full rows, when already computed)."""
        from prodfusion.fusion.learned import pool_mask

        if cos is None:
            _, cos, both, _ = self._pair_arrays(q, None)
        conf = self.confidence
        return pool_mask(self.modalities, cos, both, self.weighting.learned.pool,
                         exclude=self._self_mask(q), prior=None if conf is None else conf)

    def _self_mask(self, q: np.ndarray) -> np.ndarray:
        """Bool ``(q, n)``: each query's own row."""
        return q[:, None] == np.arange(self.n)[None, :]

    def distance(self, query_rows, cand_rows=None) -> np.ndarray:
        """``1 − similarity`` (the mean cosine distance); ``inf`` where nothing is shared."""
        s = self.similarity(query_rows, cand_rows)
        return np.where(np.isfinite(s), 1.0 - s, np.inf).astype(np.float32)

    def representation(self, rows=None) -> np.ndarray:
        """``X / sqrt(M)``: exact for products with every modality (see class docstring)."""
        if self.pairwise_:
            raise ParameterError(
                f"intermediate fusion with {sorted(self.pairwise_)} has no vector "
                "representation (a pairwise score); drop that modality to get one.")
        x = self.vectors_ if rows is None else self.vectors_[rows]
        return x / np.float32(np.sqrt(len(self.modalities)))
