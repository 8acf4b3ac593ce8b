"""Per-modality weights, calibration and click confidence: the one home of these formulas.

For a pair of products ``(i, j)`` and a modality ``m`` both have:

* ``cos_m(i, j)`` — the raw cosine of their L2-normalised vectors;
* the **calibrated** similarity ``s_m = cos_m`` (``calibration="none"``, the paper) or
  ``s_m = (cos_m − μ_m) / σ_m`` (``"zscore"`` and ``"zmean"``), where ``μ_m``, ``σ_m`` are
  the mean and standard deviation of ``cos_m`` over random pairs of products having ``m``
  (:func:`estimate_stats`; exact for the pairwise ``cooc`` modality). A z-score says how
  unusual a similarity is *for that modality*: a 0.4 photo cosine and a 0.9 title cosine
  can mean the same thing;
* the **pair weight** ``W_m(i, j) = w_m`` — times ``c(n_i)·c(n_j)`` for clicks when a
  confidence constant ``n0`` is set, with ``c(n) = n / (n + n0)`` and ``n`` a product's
  training occurrences, so products Prod2Vec saw rarely lean on title and photo. With
  ``Weighting.confidence="min"`` it is ``w_m · [n_i ≥ n0]`` instead: the clicks of a
  *query* seen fewer than ``n0`` times count as absent (its list comes from its other
  modalities), and the candidate's side is left alone. A vector Prod2Vec barely moved has
  cosines far below the random-pair mean with every product (on H&M: 3.7 standard deviations
  for a product seen once), so under ``"zmean"`` it would rank every clicked candidate below
  every product without clicks (docs/results/README.md, twenty-third session). Early
  fusion, whose blocks are scaled per product, applies ``[n ≥ n0]`` to both sides.

The three fusions then are

* **intermediate** — ``S = Σ W_m s_m / Σ W_m`` over the modalities both have (exact for
  missing modalities; ``-inf`` when the shared weights sum to 0). Under ``"zmean"`` a
  modality that one of the two products lacks counts as its **mean** (``z = 0``; with
  ``impute`` β: as β × the weighted mean z over the modalities both have, so
  ``S = (num/den)·(den + β(D(q) − den))/D(q)``, β = 1 ranking as ``"zscore"``) instead of
  being dropped: ``S = Σ_{m both have} W_m z_m / D(q)`` with the query's normaliser
  ``D(q) = Σ_{m q has} w_m·c(n_q)`` (``c`` for clicks under ``n0``), still ``-inf`` where
  the shared weights sum to 0. With ``"zscore"`` a product lacking a modality is ranked by
  the mean of the others at full strength, so products without (say) clicks crowd out the
  click neighbours when clicks carry most of the weight; with ``"zmean"`` lacking a
  modality means "no evidence" — neither a bonus nor a penalty against a random product;
* **early** — the cosine of ``[b_m(i) u_m(i)]_m`` with ``u_m`` the L2-normalised vector and
  ``b_m(i) = sqrt(w_m · a_m) · c(n_i)`` (clicks), ``a_m = 1/σ_m`` under ``zscore`` (a cosine
  of concatenations cannot subtract ``μ_m``; scaling by ``1/σ_m`` equalises the spread). Each
  block contributes in proportion to its weight, never to its raw norm;
* **late** — ``Σ w_m [cluster_m(i) = cluster_m(j)]`` plus a tie-break below the smallest gap
  between two distinct weighted counts (:func:`tie_scale`).

With ``fallback`` (what ``prodfusion tune`` writes), intermediate fusion ranks a pair that
shares only zero-weight modalities after every other candidate instead of never: a weight of
0 means "last resort", so tuning may switch a modality off without leaving the products that
have only it (e.g. no click vector) with no recommendation (:func:`fallback_terms`). Plain
(``True``): by the pair's mean raw cosine over those modalities minus
:data:`FALLBACK_OFFSET` (1000). With **fallback weights** ``f_m`` (learnt by ``tune`` on
the validation cases as if the weighted modalities were missing): by ``Σ f_m z_m / Σ f_m``
over the shared modalities with ``f_m > 0`` (``z_m`` the z-score of ``cos_m``, whatever the
main calibration: the fallback mixes modalities) minus 1000 — or, with
``fallback_missing="zero"`` (what ``tune`` writes), by ``Σ f_m z_m / Σ_{m q has} f_m``, a
modality the candidate lacks counting as a random product's ``z = 0`` as under ``"zmean"``,
so lacking a photo is no bonus —
then the pairs sharing only ``f_m = 0`` modalities by their mean raw cosine minus 2000.
Folders without the flag keep ``-inf``.

With no weights, no calibration and no ``n0`` (:attr:`Weighting.is_default`) every fusion is
the paper's formula, computed by the original code path (old model folders behave as before).
The :class:`Weighting` value itself is :mod:`prodfusion.fusion.weighting`.

Examples
--------
>>> import numpy as np
>>> confidence(np.array([0, 5, 15]), 5.0)  # c(n) = n / (n + n0)
array([0.  , 0.5 , 0.75], dtype=float32)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.fusion.weighting import (  # the weighting itself; importable from here as before
    CALIBRATIONS,
    FALLBACK_OFFSET,
    Z_CALIBRATIONS,
    Weighting,
    format_weights,
    parse_weights,
)

__all__ = ["CALIBRATIONS", "Weighting", "parse_weights", "format_weights", "estimate_stats",
           "confidence",
           "tie_scale", "tie_weighting", "intermediate_combine", "fallback_terms",
           "row_confidence",
           "fallback_search_weighting", "early_block_scale", "pair_confidence",
           "late_combine", "query_norm", "Z_CALIBRATIONS", "title_split_weights"]

#: The modalities that encode the same field, the title: untuned, they share one weight.
TITLE_MODALITIES: tuple[str, str] = ("text", "lexical")


def title_split_weights(modalities: Sequence[str]) -> dict[str, float] | None:
    """The untuned weights of a model holding both title modalities: every modality 1, but
    ``text`` and ``lexical`` ½ each — two encodings of one field (the title) count as one
    modality, so adding the cheap lexical view does not double the title's share against the
    photo and the clicks. ``None`` (equal weights, the paper) without both of them.

    On H&M (``docs/results/README.md``, ninth session) this kept the paper's retrieval
    figures and raised top-15 category precision above equal weights over the same
    modalities and above every single modality; ``prodfusion build`` stores these weights
    when it does not tune.

    >>> title_split_weights(["text", "image", "clicks", "lexical"])
    {'text': 0.5, 'image': 1.0, 'clicks': 1.0, 'lexical': 0.5}
    >>> title_split_weights(["text", "image"]) is None
    True
    """
    mods = list(modalities)
    if not all(m in mods for m in TITLE_MODALITIES):
        return None
    return {m: 0.5 if m in TITLE_MODALITIES else 1.0 for m in mods}


def confidence(counts: np.ndarray, n0: float, form: str = "ratio") -> np.ndarray:
    """``c(n) = n / (n + n0)`` per product (float32), 0 for a product never seen; with
    ``form="min"``, 1 for a product seen at least ``n0`` times and 0 below
    (:data:`~prodfusion.fusion.weighting.CONFIDENCE_FORMS`).

    >>> confidence(np.array([0, 1, 3]), 1.0).tolist()
    [0.0, 0.5, 0.75]
    >>> confidence(np.array([0, 1, 4, 5, 9]), 5.0, "min").tolist()
    [0.0, 0.0, 0.0, 1.0, 1.0]
    """
    n = np.asarray(counts, dtype=np.float64)
    if form == "min":
        return (n >= float(n0)).astype(np.float32)
    return (n / (n + float(n0))).astype(np.float32)


def row_confidence(counts, weighting: Weighting) -> np.ndarray | None:
    """The per-product array the fusers take as ``confidence`` under ``weighting``:
    :func:`confidence` of the click counts under its ``n0`` (None without one); for a
    learned weighting each product's ``log(1 + clicks)``, a feature of its trees (None
    without counts).

    >>> row_confidence(np.array([0, 2]), Weighting.make({"clicks": 1}, n0=2.0)).tolist()
    [0.0, 0.5]
    """
    if counts is None:
        return None
    if weighting.learned is not None:
        return np.log1p(np.asarray(counts, np.float64)).astype(np.float32)
    if weighting.n0 is None:
        return None
    return confidence(counts, weighting.n0, weighting.confidence)


def row_confidence_of(linear: Weighting, log_q, log_c) -> tuple:
    """``(conf_q, conf_c)`` of the linear weighting ``linear`` from a learned weighting's
    ``log(1 + clicks)`` arrays (:func:`row_confidence`), or ``(None, None)``."""
    if linear.n0 is None or log_q is None or log_c is None:
        return None, None
    back = [np.rint(np.expm1(np.asarray(x, np.float64))) for x in (log_q, log_c)]
    return tuple(confidence(b, linear.n0, linear.confidence) for b in back)


def tie_scale(weights: Sequence[float]) -> float:
    """The smallest gap between two distinct weighted counts ``Σ_{m∈A} w_m`` (A any subset).

    Late fusion adds a tie-break in ``[0, 0.999·tie_scale)`` so it never overturns a count.
    Equal weights of 1 give 1 (the paper's integer counts).

    >>> tie_scale([1, 1, 1]), tie_scale([1, 0.5, 2])
    (1.0, 0.5)
    """
    sums = sorted({round(sum(c), 12) for r in range(len(weights) + 1)
                   for c in itertools.combinations([float(w) for w in weights], r)})
    gaps = [b - a for a, b in zip(sums, sums[1:], strict=False) if b - a > 1e-9]
    return float(min(gaps)) if gaps else 1.0


def estimate_stats(embeddings: Mapping[str, Embeddings], modalities: Sequence[str], *,
                   n_pairs: int = 20_000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of each modality's cosine over random pairs of products
    that have it (``n_pairs`` pairs of distinct products, seeded)."""
    rng = np.random.default_rng(seed)
    out = {}
    for m in modalities:
        e = embeddings[m]
        if hasattr(e, "stats"):  # a pairwise modality (cooc): exact over every pair
            out[m] = e.stats()
            continue
        rows = np.flatnonzero(e.mask)
        if len(rows) < 2:
            out[m] = (0.0, 1.0)
            continue
        a = rng.choice(rows, size=n_pairs)
        b = rng.choice(rows, size=n_pairs)
        keep = a != b
        a, b = a[keep], b[keep]
        va = np.asarray(e.vectors[np.sort(a)], np.float32)[np.argsort(np.argsort(a))]
        vb = np.asarray(e.vectors[np.sort(b)], np.float32)[np.argsort(np.argsort(b))]
        cos = np.einsum("ij,ij->i", va, vb) / (
            np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1))
        sd = float(np.std(cos))
        out[m] = (float(np.mean(cos)), sd if sd > 1e-6 else 1.0)  # constant cosines: no spread
    return out


def pair_confidence(m: str, weighting: Weighting, conf_q, conf_c) -> np.ndarray | float:
    """The factor of modality ``m``'s pair weight from click confidence, ``(q, c)`` or
    broadcastable: ``c(n_q)·c(n_c)``, or ``c(n_q)`` alone under ``confidence="min"``; 1
    for other modalities or without ``n0``."""
    if m != "clicks" or weighting.n0 is None:
        return 1.0
    if conf_q is None or conf_c is None:
        raise ParameterError(
            "n0 (confidence-weighted clicks) needs each product's training occurrences; this "
            "model has none recorded (rebuild it with sessions)."
        )
    if weighting.confidence == "min":  # the query's side only: its clicks count or not
        return np.asarray(conf_q, np.float32)[:, None]
    cc = np.asarray(conf_c, np.float32)  # (c,) shared by the queries, or (q, c) per query
    return np.asarray(conf_q, np.float32)[:, None] * (cc if cc.ndim == 2 else cc[None, :])


def query_norm(weighting: Weighting, modalities: Sequence[str], q_has: Mapping,
               conf_q=None) -> np.ndarray:
    """``D(q) = Σ_{m q has} w_m · c(n_q)`` (``c`` for clicks under ``n0``): the ``"zmean"``
    normaliser, one value per query (``q_has[m]``: bool per query)."""
    d = None
    for m in modalities:
        x = np.asarray(q_has[m], np.float32) * np.float32(weighting.w(m))
        if m == "clicks" and weighting.n0 is not None and conf_q is not None:
            x = x * np.asarray(conf_q, np.float32)
        d = x if d is None else d + x
    return d


def intermediate_combine(weighting: Weighting, modalities: Sequence[str], cos: Mapping,
                         both: Mapping, conf_q=None, conf_c=None, q_has: Mapping | None = None,
                         q_best: Mapping | None = None, pool: np.ndarray | None = None
                         ) -> np.ndarray:
    """``S = Σ W_m s_m / Σ W_m`` over shared modalities, from per-modality ``(q, c)`` raw
    cosines ``cos[m]`` and presence ``both[m]`` (bool); ``-inf`` where ``Σ W_m = 0``.

    Under ``"zmean"`` the denominator is the query's ``D(q)`` (:func:`query_norm`), which
    needs ``q_has[m]`` (bool per query: the query has ``m``).

    A learned weighting (:mod:`prodfusion.fusion.learned`) scores by its trees instead:
    ``q_best[m]`` is each query's best similarity in ``m``
    (:func:`~prodfusion.fusion.learned.query_best`), ``conf_q`` / ``conf_c`` the
    products' ``log(1 + clicks)`` (:func:`row_confidence`). With ``pool`` (bool ``(q, c)``:
    the candidates among each modality's nearest, :func:`~prodfusion.fusion.learned.pool_mask`)
    the trees score those pairs and the others rank after them by the linear weighting;
    without it every pair is scored by the trees.
    """
    if weighting.learned is not None:
        from dataclasses import replace

        from prodfusion.fusion.learned import POOL_OFFSET

        if q_best is None:
            raise ParameterError("a learned weighting needs each query's best similarity "
                                 "per modality (q_best).")
        lr = weighting.learned
        linear = replace(weighting, learned=None)
        cl = row_confidence_of(linear, conf_q, conf_c)
        lin = intermediate_combine(linear, modalities, cos, both, cl[0], cl[1], q_has=q_has)
        if pool is None:
            return lr.scores(cos, both, q_best, conf_q, conf_c, linear=lin)
        out = (lin - np.float32(POOL_OFFSET)).astype(np.float32)
        if np.any(pool):
            t = lr.scores(cos, both, q_best, conf_q, conf_c, where=pool, linear=lin)
            out[pool] = t[pool]
        return out
    num = den = None
    for m in modalities:
        wm = weighting.w(m)
        if wm == 0:
            continue
        wpair = np.where(both[m], np.float32(wm), np.float32(0)) * pair_confidence(
            m, weighting, conf_q, conf_c)
        s = np.where(both[m], weighting.calibrate(m, cos[m]), 0.0)
        num = wpair * s if num is None else num + wpair * s
        den = wpair if den is None else den + wpair
    if num is None:
        raise ParameterError("every fused modality has weight 0; nothing to rank by.")
    with np.errstate(divide="ignore", invalid="ignore"):
        if weighting.calibration == "zmean":
            if q_has is None:
                raise ParameterError("calibration 'zmean' needs which modalities each query has.")
            dq = np.asarray(query_norm(weighting, modalities, q_has, conf_q), np.float32)[:, None]
            if weighting.impute:  # a missing modality: impute × the shared modalities' mean
                out = (num / den * (den + np.float32(weighting.impute) * (dq - den)) / dq
                       ).astype(np.float32)
            else:
                out = (num / dq).astype(np.float32)
        else:
            out = (num / den).astype(np.float32)
    out[~(den > 0)] = -np.inf
    terms = fallback_terms(weighting, modalities, cos, both, q_has)
    if terms is not None:  # pairs sharing only zero-weight modalities: a last resort
        base, shares = terms
        fb = base + sum(shares.values())
        out = np.where(den > 0, out, fb).astype(np.float32)
    return out


def fallback_terms(weighting: Weighting, modalities: Sequence[str], cos: Mapping,
                   both: Mapping, q_has: Mapping | None = None
                   ) -> tuple[np.ndarray, dict] | None:
    """The zero-weight fallback of intermediate fusion as ``(base, {m: share})``: its score
    is ``base + Σ shares`` (``base`` is ``−1000``, ``−2000`` or ``-inf``; module docstring).

    Only meaningful where the pair shares no positive-weight modality; ``None`` when the
    weighting has no fallback or no zero weight among ``modalities``. Under
    ``fallback_missing="zero"`` the first tier divides by the query's own ``Σ f_m``, which
    needs ``q_has[m]`` (bool per query).
    """
    zero = [m for m in modalities if weighting.w(m) == 0]
    if not (weighting.fallback and weighting.weights is not None and zero):
        return None
    shape = np.shape(both[zero[0]])
    tier1 = [m for m in zero if (weighting.fallback_weight(m) or 0) > 0]
    plain = weighting.fallback_weight(zero[0]) is None
    if plain:
        tier1 = []
    f_den = np.zeros(shape, np.float32)
    for m in tier1:
        f_den += np.where(both[m], np.float32(weighting.fallback_weight(m)), np.float32(0))
    cnt = np.zeros(shape, np.float32)
    for m in zero:
        cnt += both[m]
    in1 = f_den > 0
    if tier1 and weighting.fallback_missing == "zero":  # a missing modality counts as z = 0
        if q_has is None:
            raise ParameterError("fallback_missing='zero' needs which modalities each query "
                                 "has.")
        d_q = sum(np.asarray(q_has[m], np.float32) * np.float32(weighting.fallback_weight(m))
                  for m in tier1)
        f_den = np.where(in1, np.broadcast_to(np.asarray(d_q, np.float32).reshape(-1, 1),
                                              shape), f_den)
    base = np.where(in1, np.float32(-FALLBACK_OFFSET),
                    np.where(cnt > 0, np.float32(-FALLBACK_OFFSET * (1 if plain else 2)),
                             np.float32(-np.inf))).astype(np.float32)
    shares = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for m in zero:
            raw = np.where(both[m], cos[m], 0.0) / np.maximum(cnt, 1)  # tier 2 (or plain)
            if m in tier1:
                s1 = np.float32(weighting.fallback_weight(m)) * np.where(
                    both[m], weighting.fallback_calibrate(m, cos[m]), 0.0) / np.where(
                        in1, f_den, 1)
                shares[m] = np.where(in1, s1, raw).astype(np.float32)
            else:
                shares[m] = np.where(in1, 0.0, raw).astype(np.float32)
    return base, shares


def fallback_search_weighting(weighting: Weighting, modalities: Sequence[str]
                              ) -> tuple[tuple[str, ...], Weighting] | None:
    """What an approximate index searches for a query that shares no positive-weight modality
    with anything (it has none of them): ``(modalities, weighting)`` ranking candidates as
    the fallback's first tier does (:func:`fallback_terms`) — equal raw cosines under the
    plain fallback, the fallback weights over z-scores otherwise. ``None``
    when the weighting has no fallback among ``modalities``.
    """
    zero = [m for m in modalities if weighting.w(m) == 0]
    if not (weighting.fallback and weighting.weights is not None and zero
            and any(weighting.w(m) > 0 for m in modalities)):
        return None
    if weighting.fallback is True:
        return tuple(zero), Weighting()
    f = {m: weighting.fallback_weight(m) for m in zero if (weighting.fallback_weight(m) or 0) > 0}
    if not f:
        return tuple(zero), Weighting()
    stats = {m: (mu, sd) for m, mu, sd in weighting.stats if m in f}
    return tuple(m for m in zero if m in f), Weighting.make(
        f, "zmean" if weighting.fallback_missing == "zero" else "zscore", stats,
        where="fallback weights")


def early_block_scale(weighting: Weighting, m: str, conf_rows=None) -> np.ndarray | float:
    """``b_m(i) = sqrt(w_m · a_m) · c(n_i)`` (clicks with ``n0``): scalar or per-row array."""
    b = math.sqrt(weighting.w(m) * weighting.scale(m))
    if m == "clicks" and weighting.n0 is not None:
        if conf_rows is None:
            raise ParameterError(
                "n0 (confidence-weighted clicks) needs each product's training occurrences; "
                "this model has none recorded (rebuild it with sessions)."
            )
        return np.float32(b) * np.asarray(conf_rows, np.float32)
    return b


def tie_weighting(weighting: Weighting) -> Weighting:
    """The late-fusion tie-break's weighting: the same weights and confidence, raw cosines
    (so the tie-break stays in ``[-1, 1]``), and the same fallback (whose weights z-score the
    cosines, so its statistics are kept)."""
    if weighting.is_default:
        return weighting
    return Weighting(weighting.weights, "none", weighting.stats, weighting.n0,
                     weighting.fallback, fallback_missing=weighting.fallback_missing,
                     confidence=weighting.confidence)


def late_combine(weighting: Weighting, modalities: Sequence[str], match: Mapping,
                 tie: np.ndarray) -> np.ndarray:
    """``Σ w_m match_m + 0.999·tie_scale·(1 + tie)/2``; ``-inf`` where ``tie`` is."""
    from prodfusion.fusion.late import TIE_WEIGHT

    count = None
    for m in modalities:
        x = np.asarray(match[m], np.float32) * np.float32(weighting.w(m))
        count = x if count is None else count + x
    eps = tie_scale([weighting.w(m) for m in modalities])
    out = count + np.float32(TIE_WEIGHT * eps) * (1.0 + tie) / 2.0
    return np.where(np.isfinite(tie), out, -np.inf).astype(np.float32)


#: A modality whose blocks carry less than this share of early fusion's squared norm is
#: reported as effectively ignored.
IGNORED_SHARE = 0.01


def norm_ratio_warnings(embeddings: Mapping[str, Embeddings], modalities: Sequence[str]
                        ) -> list[str]:
    """Warnings for modalities that the paper's early fusion (raw ``v_m / sqrt(D_m)``
    blocks) effectively ignores: median ``|v_m|² / D_m`` below ``IGNORED_SHARE`` of the sum.

    On H&M, Prod2Vec vectors have median norm ~0.03 against 1.0 for title vectors, so early
    text + clicks ranked exactly as text alone.
    """
    med = {}
    for m in modalities:
        e = embeddings[m]
        if not e.n_present:
            continue
        rows = np.flatnonzero(e.mask)[:20_000]
        v = np.asarray(e.vectors[rows], np.float32)
        med[m] = float(np.median(np.einsum("ij,ij->i", v, v))) / e.dim
    total = sum(med.values())
    if len(med) < 2 or total <= 0:
        return []
    out = []
    for m, x in med.items():
        share = x / total
        if share < IGNORED_SHARE:
            out.append(
                f"early fusion effectively ignores {m!r}: its blocks carry {share:.2%} of the "
                f"fused vector's squared norm (median |v|²/D {x:.3g} against {total:.3g} for "
                f"all). Use --fusion intermediate, --normalize or --weights."
            )
    return out
