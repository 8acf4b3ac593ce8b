"""Row-local fused scores of one query against candidate rows: the one home of the three
fusion formulas as the approximate indexes use them.

The fusion classes compute whole blocks with matrix products; an index re-scores a few
hundred candidates of one query. Both evaluate the formulas of
:mod:`prodfusion.fusion.weights` — the paper's formulas are the default
:class:`~prodfusion.fusion.weights.Weighting` (equal weights, raw cosines), and early
fusion's raw blocks ``v_m / sqrt(D_m)`` are unit blocks scaled by ``|v_m| / sqrt(D_m)``
(:func:`early_row_scale`) — so the index code only gathers per-modality cosines and calls
:func:`pair_scores`.

Examples
--------
>>> import numpy as np
>>> from prodfusion.fusion.weights import Weighting
>>> cos = {"text": np.array([0.5, 1.0]), "image": np.array([0.1, 0.0])}
>>> both = {"text": np.array([True, True]), "image": np.array([True, False])}
>>> pair_scores("intermediate", Weighting(), ("text", "image"), cos, both).tolist()  # means
[0.30000001192092896, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.fusion.weights import (
    Weighting,
    early_block_scale,
    intermediate_combine,
    late_combine,
    tie_weighting,
)

__all__ = ["early_row_scale", "pair_scores"]


def early_row_scale(weighting: Weighting, m: str, norms: np.ndarray, dim: int, *,
                    normalize: bool = False, confidence: np.ndarray | None = None
                    ) -> np.ndarray | float:
    """Early fusion's block scale ``b_m(i)`` of the unit vector ``u_m(i)``.

    The paper (default weighting): ``|v_m(i)| / sqrt(D_m)`` (``1 / sqrt(D_m)`` with
    ``normalize``), so ``b_m(i) u_m(i) = v_m(i) / sqrt(D_m)``; weighted:
    ``sqrt(w_m a_m) · c(n_i)`` (:func:`~prodfusion.fusion.weights.early_block_scale`).
    """
    if weighting.is_default:
        if normalize:
            return 1.0 / math.sqrt(dim)
        return np.asarray(norms, np.float32) / np.float32(math.sqrt(dim))
    return early_block_scale(weighting, m, confidence)


def pair_scores(method: str, weighting: Weighting, modalities: Sequence[str], cos: Mapping,
                both: Mapping, *, q_has: Mapping | None = None, conf_q=None, conf_c=None,
                early_scale: Mapping | None = None, early_norm=None, match: Mapping | None = None
                ) -> np.ndarray:
    """Fused scores ``(c,)`` of one query from per-modality cosines ``cos[m]`` ``(c,)`` and
    presence ``both[m]`` (both products have ``m``).

    * intermediate: :func:`~prodfusion.fusion.weights.intermediate_combine` (``q_has``:
      the query has ``m``, needed by ``"zmean"``; ``conf_q`` / ``conf_c``: click confidence);
    * early: ``Σ_m b_m(q) b_m(c) cos_m / (|x_q| |x_c|)`` with ``early_scale[m] = (b_m(q),
      b_m(c))`` and ``early_norm = (|x_q|, |x_c|)``; ``-inf`` where a norm is 0;
    * late: :func:`~prodfusion.fusion.weights.late_combine` of ``match[m]`` (same cluster)
      and the intermediate tie-break.
    """
    one = {m: np.asarray(v, np.float32)[None] for m, v in cos.items()}
    pres = {m: np.asarray(v, bool)[None] for m, v in both.items()}
    qh = None if q_has is None else {m: np.atleast_1d(np.asarray(v, bool)) for m, v in q_has.items()}
    cq = None if conf_q is None else np.atleast_1d(np.asarray(conf_q, np.float32))
    if method == "early":
        num = np.zeros(len(next(iter(one.values()))[0]), np.float32)
        for m in modalities:
            bq, bc = early_scale[m]
            num += np.where(pres[m][0], one[m][0], 0.0).astype(np.float32) * \
                np.float32(bq) * np.asarray(bc, np.float32)
        nq, nc = early_norm
        den = np.float32(nq) * np.asarray(nc, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(den > 0, num / den, -np.inf)
        return out.astype(np.float32)
    wt = tie_weighting(weighting) if method == "late" else weighting
    out = intermediate_combine(wt, modalities, one, pres, cq, conf_c, q_has=qh)
    if method == "late":
        out = late_combine(weighting, modalities,
                           {m: np.asarray(v, bool)[None] for m, v in match.items()}, out)
    return out[0].astype(np.float32)
