"""Why a product was recommended: each modality's similarity, weight and share of the score.

For a query ``q`` and a recommended product ``j``, per fused modality ``m``:

* ``raw`` — the cosine of their ``m`` vectors (``None`` when either lacks ``m``);
* ``calibrated`` — the calibrated similarity ``s_m`` (:mod:`prodfusion.fusion.weights`; for
  a fallback pair what the fallback weighs: the z-score in its first tier, the raw cosine in
  the second);
* ``weight`` — the pair weight ``W_m(q, j)`` (intermediate, late) or the block weight
  ``b_m(q)·b_m(j)`` (early); 0 when either lacks ``m``; for a pair that shares only
  zero-weight modalities and is ranked by the fallback (the explanation then holds
  ``"fallback"``: its tier, 1 or 2), the fallback's normalised weight of ``m``;
* ``share`` — the part of the fused score that comes from ``m``.

The shares add up to the fused score, with ``base`` (late fusion's constant part of the
tie-break; ``−1000`` or ``−2000`` for a pair ranked by the zero-weight fallback of
:class:`~prodfusion.fusion.weights.Weighting`, :func:`~prodfusion.fusion.weights.fallback_terms`;
else 0): ``score = base + Σ_m share_m``. The explanation is computed in float64, the
fusers' scores in float32: where a z-scored modality barely varies (Prod2Vec's nearly
parallel vectors after a few hundred sessions) the z-score magnifies float32's rounding,
and the two scores can part slightly. By method:

* intermediate: ``share_m = W_m s_m / Σ W`` (``"zmean"``: ``/ D(q)``; with ``impute`` β:
  ``/ (Σ W·D(q) / (Σ W + β(D(q) − Σ W)))``);
* early: ``share_m = b_m(q) b_m(j) cos_m / (|x_q| |x_j|)`` (the paper's raw formula:
  ``v_m(q)·v_m(j) / D_m / (|x_q| |x_j|)``);
* late: ``share_m = w_m [same cluster] + 0.999·gap·(W_m cos_m / Σ W) / 2`` and
  ``base = 0.999·gap / 2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.fusion.weights import (
    FALLBACK_OFFSET,
    Weighting,
    early_block_scale,
    fallback_terms,
    pair_confidence,
    tie_scale,
    tie_weighting,
)

__all__ = ["explain_pairs"]


def _vec(e: Embeddings, rows: np.ndarray) -> np.ndarray:
    return np.asarray(e.vectors[np.asarray(rows)], dtype=np.float64)


def explain_pairs(method: str, embeddings: Mapping[str, Embeddings], modalities: Sequence[str],
                  weighting: Weighting, q: int, cand_rows: Sequence[int], *,
                  normalize: bool = False, labels: Mapping[str, np.ndarray] | None = None,
                  confidence: np.ndarray | None = None, pool_rows=None) -> list[dict]:
    """One explanation per candidate row: ``{"base", "score", "modalities": {m: {...}}}``.

    ``pool_rows``: under a learned weighting searched through the indexes, the query's pool
    as the search drew it (:meth:`~prodfusion.index.learned.LearnedRescorer.candidates`);
    None: drawn from every product, as the exact search does."""
    from prodfusion.fusion.late import TIE_WEIGHT

    c = np.asarray(cand_rows, dtype=np.int64)
    if method == "intermediate" and weighting.learned is not None:
        return _explain_learned(embeddings, modalities, weighting, q, c, confidence,
                                pool_rows)
    n = len(c)
    raw, has = {}, {}
    for m in modalities:
        e = embeddings[m]
        has[m] = np.asarray(e.mask[c], bool) & bool(e.mask[q])
        if hasattr(e, "scores"):  # a pairwise modality (cooc): its exact score
            raw[m] = np.where(has[m], e.scores([q], c)[0].astype(np.float64), np.nan)
            continue
        vq, vc = _vec(e, [q])[0], _vec(e, c)
        nq, nc = np.linalg.norm(vq), np.linalg.norm(vc, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw[m] = np.where(has[m], vc @ vq / (nc * nq), np.nan)
    share = {m: np.zeros(n) for m in modalities}
    weight = {m: np.zeros(n) for m in modalities}
    cal = {m: np.where(has[m], weighting.calibrate(m, np.nan_to_num(raw[m])), np.nan)
           for m in modalities}
    base = np.zeros(n)
    tier = np.zeros(n, dtype=int)  # the fallback's tier (1, 2) where it ranked the pair
    if method == "early":
        if weighting.is_default:  # the paper: blocks v_m / sqrt(D_m) (normalised if asked)
            num, sq_q, sq_c = {}, 0.0, np.zeros(n)
            for m in modalities:
                e = embeddings[m]
                vq, vc = _vec(e, [q])[0], _vec(e, c)
                if normalize:
                    vq = vq / (np.linalg.norm(vq) or 1.0)
                    vc = vc / np.maximum(np.linalg.norm(vc, axis=1, keepdims=True), 1e-300)
                vq, vc = vq * bool(e.mask[q]) / np.sqrt(e.dim), vc * e.mask[c][:, None] / np.sqrt(e.dim)
                num[m] = vc @ vq
                sq_q += vq @ vq
                sq_c += np.einsum("ij,ij->i", vc, vc)
            denom = np.sqrt(sq_q * sq_c)
            for m in modalities:
                weight[m] = np.where(has[m], 1.0, 0.0)
                share[m] = np.where(denom > 0, num[m] / np.where(denom > 0, denom, 1.0), 0.0)
        else:
            bq, bc, sq_q, sq_c = {}, {}, 0.0, np.zeros(n)
            for m in modalities:
                b = early_block_scale(weighting, m, confidence)
                bq[m] = float(b[q]) if np.ndim(b) else float(b)
                bc[m] = np.asarray(b[c], float) if np.ndim(b) else np.full(n, float(b))
                sq_q += bq[m] ** 2 * bool(embeddings[m].mask[q])
                sq_c += bc[m] ** 2 * embeddings[m].mask[c]
            denom = np.sqrt(sq_q * sq_c)
            for m in modalities:
                weight[m] = np.where(has[m], bq[m] * bc[m], 0.0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    share[m] = np.where(has[m] & (denom > 0),
                                        weight[m] * np.nan_to_num(raw[m]) / denom, 0.0)
    else:
        # late: the tie-break's weighting (raw cosines, the same weights and fallback)
        tw = weighting if method == "intermediate" else tie_weighting(weighting)
        for m in modalities:
            w = np.full(n, tw.w(m))
            if m == "clicks" and tw.n0 is not None and confidence is not None:
                w = w * pair_confidence(m, tw, confidence[[q]], confidence[c])[0]
            weight[m] = np.where(has[m], w, 0.0)
        total = sum(weight.values())
        if method == "intermediate" and tw.calibration == "zmean":  # the query's D(q)
            from prodfusion.fusion.weights import query_norm

            dq = float(query_norm(
                tw, modalities, {m: np.array([bool(embeddings[m].mask[q])]) for m in modalities},
                None if confidence is None else confidence[[q]])[0])
            with np.errstate(divide="ignore", invalid="ignore"):  # impute β: den·D/(den+β(D−den))
                eff = total * dq / (total + tw.impute * (dq - total)) if tw.impute else dq
            total = np.where(total > 0, eff, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            for m in modalities:
                s = cal[m] if method == "intermediate" else raw[m]
                share[m] = np.where(total > 0, weight[m] * np.nan_to_num(s) / total, 0.0)
        q_has = {m: np.array([bool(embeddings[m].mask[q])]) for m in modalities}
        terms = fallback_terms(tw, modalities, {m: np.nan_to_num(raw[m])[None, :]
                                                for m in modalities},
                               {m: has[m][None, :] for m in modalities}, q_has)
        if terms is not None:  # pairs sharing only zero-weight modalities: the last resort
            fb = (total <= 0) & np.isfinite(terms[0][0])
            base = np.where(fb, terms[0][0], base)
            tier = np.where(fb, np.rint(-terms[0][0] / FALLBACK_OFFSET), 0).astype(int)
            f = {m: tw.fallback_weight(m) or 0.0 for m in terms[1]}  # plain (None): 0
            weighted = (tier == 1) & (tw.fallback is not True)  # the fallback weights' tier
            f_den = sum(f[m] * has[m] for m in f)
            if tw.fallback_missing == "zero":  # the query's own Σ f_m (fallback_terms)
                f_den = np.where(f_den > 0, sum(f[m] * float(q_has[m][0]) for m in f), f_den)
            cnt = sum(has[m].astype(float) for m in f)
            for m, x in terms[1].items():
                share[m] = np.where(fb, x[0], share[m])
                # as the fallback weighs: f_m over the shared ones, else the mean raw cosine
                fw = np.where(weighted, f[m] * has[m] / np.where(f_den > 0, f_den, 1.0),
                              has[m] / np.maximum(cnt, 1.0))
                weight[m] = np.where(fb, fw, weight[m])
                # the first tier weighs z-scores whatever the main calibration, the second
                # (and the plain fallback) raw cosines
                z = np.where(has[m], tw.fallback_calibrate(m, np.nan_to_num(raw[m])),
                             np.nan) if f[m] > 0 else raw[m]
                cal[m] = np.where(fb, np.where(tier == 1, z, raw[m]), cal[m])
        if method == "late":
            eps = tie_scale([weighting.w(m) for m in modalities]) * TIE_WEIGHT
            base = eps / 2 + eps * base / 2  # base: the tie-break's (its fallback's) or 0
            for m in modalities:
                lab = labels[m]
                same = (lab[c] == lab[q]) & (lab[q] >= 0)
                share[m] = weighting.w(m) * same + eps * share[m] / 2
    out = []
    for i in range(n):
        mods = {}
        for m in modalities:
            ok = bool(has[m][i])
            mods[m] = {
                "raw": float(raw[m][i]) if ok else None,
                "calibrated": float(cal[m][i]) if ok else None,
                "weight": float(weight[m][i]),
                "share": float(share[m][i]),
            }
        e = {"base": float(base[i]),
             "score": float(base[i] + sum(v["share"] for v in mods.values())),
             "modalities": mods}
        if tier[i]:  # ranked by the zero-weight fallback: after every weighted pair
            e["fallback"] = int(tier[i])
        out.append(e)
    return out


def _explain_learned(embeddings: Mapping[str, Embeddings], modalities: Sequence[str],
                     weighting: Weighting, q: int, c: np.ndarray,
                     confidence: np.ndarray | None, pool_rows=None) -> list[dict]:
    """A learned weighting's explanations (:mod:`prodfusion.fusion.learned`).

    A candidate in the query's pool (each modality's nearest) is scored by the trees. Its
    ``base`` is their score with every modality hidden (the click counts kept, and with them
    the trees' bonus for a product without training clicks) and each
    modality's ``share`` what revealing it adds, in the trees' modality order, so that
    ``score = base + Σ share`` (a path attribution: another order would split it otherwise);
    ``calibrated`` is the raw similarity (the trees read it as it is), ``weight`` 1 where
    both products have the modality. Outside the pool the pair is explained by the linear
    weighting, ``POOL_OFFSET`` below (``"pool": false``).
    """
    from dataclasses import replace

    from prodfusion.fusion.learned import POOL_OFFSET, pair_features, pool_mask, query_best
    from prodfusion.fusion.weights import intermediate_combine, row_confidence_of

    lr = weighting.learned
    linear = replace(weighting, learned=None)
    lin_conf = None
    if confidence is not None and linear.n0 is not None:
        lin_conf = row_confidence_of(linear, confidence, confidence)[1]
    out = explain_pairs("intermediate", embeddings, modalities, linear, q, c,
                        confidence=lin_conf)
    # the query's pool and best similarities: over the whole catalog, as the fuser draws
    # them (pool_mask), or over the pool the indexes gave (pool_rows)
    from prodfusion.encoders.base import row_norms
    from prodfusion.index.pairwise import row_similarities

    n = len(np.asarray(embeddings[lr.modalities[0]].mask))
    rows = np.arange(n) if pool_rows is None else np.union1d(np.asarray(pool_rows, np.int64), c)
    norms = {m: row_norms(embeddings[m]) for m in lr.modalities
             if not hasattr(embeddings[m], "scores")}  # the vector modalities'
    full, full_both, _ = row_similarities(embeddings, norms, lr.modalities, q,
                                          None if pool_rows is None else rows)
    best = query_best(lr.modalities, full, full_both, (rows == q)[None])
    if pool_rows is None:
        pool = pool_mask(lr.modalities, full, full_both, lr.pool, exclude=(rows == q)[None],
                         prior=None if confidence is None else np.asarray(confidence))
        in_pool = pool[0, c]
    else:
        in_pool = np.isin(c, np.asarray(pool_rows, np.int64))
    cos = {m: np.array([[x["modalities"][m]["raw"] if x["modalities"][m]["raw"] is not None
                         else 0.0 for x in out]], np.float32) for m in lr.modalities}
    has = {m: np.array([[x["modalities"][m]["raw"] is not None for x in out]])
           for m in lr.modalities}
    logq = None if confidence is None else np.asarray(confidence)[[q]]
    logc = None if confidence is None else np.asarray(confidence)[c]
    cq, cc = (None, None) if lin_conf is None else (lin_conf[[q]], lin_conf[c])
    q_has = {m: np.array([bool(embeddings[m].mask[q])]) for m in lr.modalities}
    feats = []
    for j in range(len(lr.modalities) + 1):  # modalities revealed one at a time
        shown = {m: has[m] & (i < j) for i, m in enumerate(lr.modalities)}
        if j:  # the weights' score over the modalities shown so far (a feature too)
            lin = intermediate_combine(linear, lr.modalities, cos, shown, cq, cc, q_has=q_has)
        else:
            lin = None
        feats.append(pair_features(lr.modalities, cos, shown, best, logq, logc, lin)[0])
    # every step's rows through the trees at once (one walk per tree, not one per step)
    steps = np.split(lr.predict(np.concatenate(feats)), len(feats))
    for i, e in enumerate(out):
        if not in_pool[i]:
            e["base"] -= POOL_OFFSET
            e["score"] -= POOL_OFFSET
            e["pool"] = False
            continue
        e.pop("fallback", None)
        for j, m in enumerate(lr.modalities):
            ok = bool(has[m][0, i])
            e["modalities"][m] = {"raw": float(cos[m][0, i]) if ok else None,
                                  "calibrated": float(cos[m][0, i]) if ok else None,
                                  "weight": 1.0 if ok else 0.0,
                                  "share": float(steps[j + 1][i] - steps[j][i])}
        e["base"] = float(steps[0][i])
        e["score"] = float(steps[0][i] + sum(v["share"] for v in e["modalities"].values()))
        e["pool"] = True
        e["learned"] = True
    return out
