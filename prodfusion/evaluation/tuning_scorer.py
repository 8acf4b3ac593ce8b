"""What one candidate configuration of :func:`~prodfusion.evaluation.tuning.tune_weights`
scores on the validation queries (:class:`_Scorer`: per-modality similarities computed once,
each configuration one weighted sum and one rank per query), the repeated validation splits
it scores on (:func:`_validation_folds`), the one-standard-error rule (:func:`_one_se`), how
the interactions are split by session prefix (:func:`_part`), and which modalities keep every
product rankable (:func:`_covering`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from prodfusion.evaluation.metrics import tie_aware_metric, tie_aware_ranks
from prodfusion.evaluation.split import (
    on_offer_note,
    on_offer_rule,
    on_offer_windows,
    retired_words,
)
from prodfusion.fusion.cooc import PAIRWISE_MODALITIES
from prodfusion.fusion.learned import query_best

__all__: list[str] = []

#: Standard errors by which another cooc decay must beat the model's own on validation.
DECAY_SE = 2.0
#: The most products outside a query's candidate pool sampled to estimate their ranks
#: (:class:`_Scorer`): the sample's arrays are as wide as the pool's.
OUTSIDE_CAP = 1000
#: At most this many bytes of query-to-catalog similarities at once while a scorer is built
#: (the query block shrinks on large catalogs: 256 queries × 4 modalities × 1M products would
#: be 4 GiB; smaller blocks normalise the catalog's side more often, :func:`_cosines`).
SCORE_BLOCK_BYTES = 512 << 20
#: Catalog rows normalised at a time when a block of queries is compared to the catalog.
COLUMN_CHUNK = 65536


def _part(sessions, prefixes: tuple[str, ...]):
    from prodfusion.data.sessions import Sessions

    if sessions is None:
        return None
    f = sessions.frame.filter(pl.any_horizontal([pl.col("session").str.starts_with(p)
                                                 for p in prefixes]))
    return Sessions(f) if f.height else None


def _check_interactions(sessions, pairs, where: str) -> None:
    """A tuning needs interactions to learn from (a :class:`ParameterError` otherwise)."""
    if sessions is None and pairs is None:
        from prodfusion.errors import ParameterError

        raise ParameterError(
            f"{where} needs interactions to learn from: pass sessions= (cleaned sessions) "
            "and/or pairs= (co-interaction pairs as two-click sessions); on the command line "
            "--interactions and/or --pairs."
        )
    from prodfusion.evaluation.split import check_sources_left

    check_sources_left(sessions, pairs, f"{where}: ", "to learn from")


def _outer_parts(rec: Any, sessions, pairs, *, test_fraction: float, seed: int,
                 protocol: str, where: str) -> tuple:
    """``(outer split, its training sessions, its training pairs)``: the test part set aside
    exactly as ``evaluate`` holds it out; a tuning never reads ``outer.heldout``."""
    from prodfusion.errors import DataError
    from prodfusion.evaluation.retrieval import split_interactions
    from prodfusion.evaluation.split import model_clicked

    outer = split_interactions(rec.catalog, sessions, pairs, test_fraction=test_fraction,
                               seed=seed, protocol=protocol, clicked=model_clicked(rec))
    s_part = _part(outer.train, ("s:", "h:"))
    p_part = _part(outer.train, ("p:",))
    if s_part is not None and len(s_part) < 2:
        s_part = None
    if s_part is None and p_part is None:
        raise DataError(f"{where}: nothing is left to learn from once the test part is held out.")
    return outer, s_part, p_part


def _provenance(outer: Any, folds: list, fit_sizes: list, src: np.ndarray, sessions, pairs,
                *, protocol: str, test_fraction: float, val_fraction: float,
                seed: int) -> dict:
    """A tuning record's ``split`` (how the interactions were split, what validated) and
    ``fingerprints`` (of the interactions tuned on), as both learners write them."""
    src = np.asarray(src).astype(str)
    # each validation split's cases left out as a catalog of the log's own products would not
    # have held their targets (not the test part's shares: they read its targets)
    lcs = [{"applied": lc["applied"], "n_cases_dropped": sum(lc["n_cases_dropped"].values()),
            "targets_without": lc["targets_without_training_interactions"],
            "catalog_without": lc["catalog_share_compared"]}
           for lc in (getattr(sc, "log_catalog", None) for sc, _ in folds) if lc]
    offer = [(sc.on_offer[0], sc.valid[sc.inv]) for sc, _ in folds  # padding left out
             if getattr(sc, "on_offer", None) is not None]
    rule = next((sc.on_offer_rule for sc, _ in folds if getattr(sc, "on_offer_rule", None)),
                None)
    return {
        "split": {"protocol": protocol, "test_fraction": test_fraction,
                  "val_fraction": val_fraction, "seed": seed,
                  "n_validation_cases": int(len(src)),
                  "n_validation_cases_by_source": {str(x): int((src == x).sum())
                                                   for x in np.unique(src)},
                  "n_validation_queries": int(sum(len(sc.uq) for sc, _ in folds)),
                  "n_fitting_sessions": fit_sizes,
                  "test_cases_set_aside": int(sum(len(h) for h in outer.heldout.values())),
                  **({"log_catalog": lcs} if lcs else {}),
                  **({"on_offer": {"rule": rule,
                                   "candidates_not_on_offer": round(float(np.mean(
                                       [1.0 - ok[real].mean() for ok, real in offer])),
                                                                   4)}}
                     if offer else {})},
        "fingerprints": {name: x.fingerprint() for name, x in (("sessions", sessions),
                                                               ("pairs", pairs))
                         if x is not None and hasattr(x, "fingerprint")},
    }


def _row_norms(e: Any) -> np.ndarray:
    """L2 norm of every row of ``e`` in float32, computed :data:`COLUMN_CHUNK` rows at a time
    (once per scorer: :func:`_cosines` divides by them)."""
    n = len(e.mask)
    out = np.empty(n, np.float32)
    for lo in range(0, n, COLUMN_CHUNK):
        hi = min(n, lo + COLUMN_CHUNK)
        v = np.asarray(e.rows(slice(lo, hi)) if hasattr(e, "rows") else e.vectors[lo:hi],
                       np.float32)
        out[lo:hi] = np.linalg.norm(v, axis=1)
    return out


def _unit_rows(e: Any, rows, norms: np.ndarray) -> np.ndarray:
    """Rows of ``e`` L2-normalised in float32 (``norms``: :func:`_row_norms`), zero where
    ``e`` has no vector."""
    v = np.asarray(e.rows(rows) if hasattr(e, "rows") else e.vectors[rows], np.float32)
    return np.where(np.asarray(e.mask[rows])[:, None],
                    v / np.maximum(norms[rows], 1e-30)[:, None], np.float32(0.0))


def _cosines(e: Any, qb: np.ndarray, n: int, norms: np.ndarray) -> np.ndarray:
    """``(len(qb), n)`` cosines of the rows ``qb`` of ``e`` to every row, the catalog's side
    normalised :data:`COLUMN_CHUNK` rows at a time (no normalised copy of the whole matrix,
    which held one more copy of every vector modality through the scorer's construction).
    The same float32 normalisation as normalising the whole matrix first, bit for bit; the
    products agree with one product of the whole matrix to the last bit or so (BLAS blocks a
    product by its shape; ``tests/evaluation/test_tuning.py``)."""
    uq = _unit_rows(e, qb, norms)
    out = np.empty((len(qb), n), np.float32)
    for lo in range(0, n, COLUMN_CHUNK):
        hi = min(n, lo + COLUMN_CHUNK)
        out[:, lo:hi] = uq @ _unit_rows(e, slice(lo, hi), norms).T
    return out


#: What a product without training clicks lacks: its click vector and co-occurrence row
#: (:meth:`_Scorer.as_new_queries`; ``tune_learned``'s new queries).
NEW_PRODUCT_LACKS = ("clicks", "cooc")


class _Scorer:
    """Per-modality similarities of the validation queries to their candidates, combined
    per configuration.

    Candidates of a query: the union of each modality's ``n_cand`` nearest products (raw
    cosine, or the nonzero co-occurrences; a z-score is monotone in the cosine, so this is
    each modality's own top list under every calibration) plus the query's validation
    targets. A target's rank is counted among them, ties averaged over every order
    (:func:`~prodfusion.evaluation.metrics.tie_aware_metric`), **plus an estimate of how many
    of the other products of the catalog rank ahead of it or tie with it**: each query also
    scores a uniform random sample of ``n_outside`` (default ``n_cand``, at most
    :data:`OUTSIDE_CAP`) products outside its pool, and the sample's counts are scaled by
    (products outside) / (sample size) — unbiased for the catalog's counts, exact when the
    sample holds every product outside. (A pairwise modality adds only its nonzero products
    to the pool, so even ``n_cand`` = the catalog size leaves most of a sparse catalog
    outside it.)

    Without that estimate ranks were counted among the pool alone (the eleventh session
    changed it), and the optimism was **not** alike for every configuration: a
    configuration that ties many products — cooc alone, whose score is 0 for every product
    the query never shared a session with; the category, 1 for its whole group — had the
    target compete with the pool's share of its tied group only, not the catalog's. On
    DIGINETICA's viewed items cooc alone scored validation nDCG@15 0.1681 that way and
    0.1657 with every product a candidate, while the tuned fusion scored 0.1714 both ways;
    on its purchases the category alone scored 0.0081 and 0.0054 (docs/results/README.md,
    sixth and eleventh sections). The sample is drawn once per scorer (seeded), so every
    configuration is compared on the same products. ``n_outside=0`` restores the pool-only
    count (which the sixth session's "every product a candidate" run still used: its pool
    left out every product scoring 0 in the pairwise modalities and lacking the vector ones).
    """

    def __init__(self, ev: Any, mods: tuple[str, ...], q: np.ndarray, t: np.ndarray,
                 src: np.ndarray, counts: np.ndarray | None, metric: str, k: int,
                 n_cand: int = 200, block: int = 256, n_outside: int | None = None,
                 seed: int = 0, progress: bool = False, learned_pool: int | None = None,
                 group_codes: np.ndarray | None = None, times: np.ndarray | None = None,
                 on_offer: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.mods, self.metric, self.k = mods, metric, k
        self.uq, inv = np.unique(q, return_inverse=True)
        self.inv, self.t = inv, t
        self.src = src
        self.counts = counts
        data = ev.modality_data()
        n = len(ev.catalog)
        # Similarities of a block of queries to the whole catalog, ``len(mods)`` arrays of
        # (block, n) float32: the block shrinks so they stay within SCORE_BLOCK_BYTES.
        block = max(1, min(block, SCORE_BLOCK_BYTES // max(1, 4 * n * len(mods))))
        norms = {m: _row_norms(data[m]) for m in mods if m not in PAIRWISE_MODALITIES}
        sizes = np.bincount(group_codes[group_codes >= 0]) if group_codes is not None \
            else None
        targets_of: list[list[int]] = [[] for _ in self.uq]
        for i, u in enumerate(inv):
            targets_of[u].append(int(t[i]))
        cands: list[np.ndarray] = []
        naturals: list[np.ndarray] = []  # in some modality's nearest (not only a target)
        cos_rows: dict[str, list[np.ndarray]] = {m: [] for m in mods}
        n_out = min(n_cand, OUTSIDE_CAP) if n_outside is None else int(n_outside)
        rng = np.random.default_rng(seed)
        outs: list[np.ndarray] = []
        out_w = np.zeros(len(self.uq), np.float64)
        out_rows: dict[str, list[np.ndarray]] = {m: [] for m in mods}
        from prodfusion.progress import Progress  # minutes at 1M products: lines in a log too

        bar = Progress(len(self.uq), "validation queries scored", "queries", enabled=progress)
        for lo in range(0, len(self.uq), block):
            qb = self.uq[lo : lo + block]
            full = {}
            for m in mods:
                full[m] = data[m].scores(qb) if m in PAIRWISE_MODALITIES else \
                    _cosines(data[m], qb, n, norms[m])
            lpm = None
            if learned_pool:  # what a learned weighting's trees score (pool_mask, as served)
                from prodfusion.fusion.learned import pool_mask

                both_full = {m: np.asarray(data[m].mask, bool)[qb][:, None]
                             & np.asarray(data[m].mask, bool)[None, :] for m in mods}
                lpm = pool_mask(mods, full, both_full, learned_pool,
                                exclude=np.arange(n)[None, :] == qb[:, None],
                                prior=None if counts is None else np.log1p(counts))
            for j, qq in enumerate(qb):
                pool = [np.asarray(targets_of[lo + j], np.int64)]
                if lpm is not None:
                    pool.append(np.flatnonzero(lpm[j]))
                for m in mods:
                    mask = data[m].mask
                    if not mask[qq]:
                        continue
                    row = np.where(mask, full[m][j], -np.inf)
                    row[qq] = -np.inf
                    kk = min(n_cand, n - 1)
                    top = np.argpartition(-row, kk - 1)[:kk]
                    pool.append(top[np.isfinite(row[top]) & (
                        (m not in PAIRWISE_MODALITIES) | (row[top] > 0))])
                c = np.unique(np.concatenate(pool))
                c = c[c != qq]
                g = int(group_codes[qq]) if group_codes is not None else -1  # never listed
                if g >= 0:  # the query's group (one_per_group)
                    c = c[group_codes[c] != g]
                cands.append(c)
                if lpm is not None:
                    naturals.append(np.isin(c, pool[1]))
                else:
                    naturals.append(np.isin(c, np.concatenate(pool[1:])) if len(pool) > 1
                                    else np.zeros(len(c), bool))
                for m in mods:
                    cos_rows[m].append(full[m][j, c])
                # every other product of the catalog (but the query's group's)
                outside = n - 1 - len(c) - (int(sizes[g]) - 1 if g >= 0 else 0)
                o = np.zeros(0, np.int64)
                if n_out > 0 and outside > 0:
                    draw = rng.choice(n, size=min(n, n_out + len(c) + 1), replace=False) \
                        if outside > n_out else np.arange(n)
                    ok = ~np.isin(draw, c) & (draw != qq)
                    if g >= 0:
                        ok &= group_codes[draw] != g
                    o = draw[ok][:n_out]
                    out_w[lo + j] = outside / len(o) if len(o) else 0.0
                outs.append(o)
                for m in mods:
                    out_rows[m].append(full[m][j, o])
            bar.update(len(qb))
        bar.close()
        self.q_has = {m: data[m].mask[self.uq] for m in mods}
        self.cand, self.valid, self.safe, self.cos, self.both = self._padded(
            cands, cos_rows, data, empty_width=1)
        # the sample of products outside each pool (scaled counts: class docstring)
        self.out, self.out_valid, self.out_safe, self.out_cos, self.out_both = self._padded(
            outs, out_rows, data, empty_width=0)
        self.out_w = out_w
        # the candidates a learned weighting's trees score (each modality's nearest: a
        # target that is in none of them ranks after them, as it would when served)
        self.natural = np.zeros(self.cand.shape, bool)
        for u, nat in enumerate(naturals):
            self.natural[u, : len(nat)] = nat
        # each query's best similarity per modality: the pool holds each modality's nearest
        # products, so its maximum is the catalog's (a learned weighting's feature)
        self.best = query_best(mods, self.cos, self.both)
        # where each case's target sits among its query's candidates
        self.tpos = np.array([int(np.searchsorted(cands[u], t[i])) for i, u in enumerate(inv)],
                             dtype=np.int64)
        self.n = n
        # per case, the candidates (and the outside sample's products) on offer at its time
        # (:func:`~prodfusion.evaluation.split.on_offer_windows`); ``None``: every product is
        self.on_offer = None
        if on_offer is not None and times is not None:
            first, last = on_offer
            tc = np.asarray(times, np.float64)[:, None]  # NaN (an untimed pair): every one

            def offered(rows: np.ndarray) -> np.ndarray:
                return ~((first[rows] > tc) | (last[rows] < tc))

            ok = offered(self.safe[inv])
            ok[np.arange(len(t)), self.tpos] = True  # clicked then, so on offer then
            self.on_offer = (ok, offered(self.out_safe[inv]))
        # validation slices, named as the evaluation report names them
        self.slices = {}
        for m, word in (("clicks", "training clicks"), ("image", "image")):
            if m not in mods:
                continue
            q_m = self.q_has[m][inv]
            t_m = np.asarray(data[m].mask, bool)[t]
            for side, has in (("query", q_m), ("target", t_m)):
                self.slices[f"{side}: with {word}"] = has
                self.slices[f"{side}: no {word}"] = ~has
        sources = np.unique(self.src)
        if len(sources) > 1:  # each kind of interaction is a slice: one must not pay for another
            for x in sources:
                self.slices[f"source: {x}"] = self.src == x

    def restricted(self, keep: np.ndarray) -> _Scorer:
        """The scorer of the cases whose query is in ``keep`` (bool per distinct query), the
        others dropped: :meth:`values` of it equals :meth:`values` of this one at those
        cases, for a share of the work (each query's row is scored on its own)."""
        import copy

        keep = np.asarray(keep, bool)
        rows = np.flatnonzero(keep)
        cases = keep[self.inv]
        remap = np.full(len(self.uq), -1, np.int64)
        remap[rows] = np.arange(len(rows))
        sub = copy.copy(self)
        sub.uq, sub.inv = self.uq[rows], remap[self.inv[cases]]
        sub.t, sub.src, sub.tpos = self.t[cases], self.src[cases], self.tpos[cases]
        for name in ("cand", "valid", "safe", "natural", "out", "out_valid", "out_safe",
                     "out_w"):
            setattr(sub, name, getattr(self, name)[rows])
        for name in ("cos", "both", "out_cos", "out_both", "q_has", "best"):
            setattr(sub, name, {m: v[rows] for m, v in getattr(self, name).items()})
        sub.slices = {name: np.asarray(v)[cases] for name, v in self.slices.items()}
        if self.on_offer is not None:
            sub.on_offer = tuple(v[cases] for v in self.on_offer)
        return sub

    def as_new_queries(self, learned_pool: int | None = None) -> _Scorer:
        """The same cases with every query as a **new product** would be: no training
        clicks, so no ``clicks`` or ``cooc`` vector of its own and a click count of 0 (what a
        product appended by ``add``, or first seen since the last training, has when served).
        The candidates, targets and the rest of the catalog's sample are the same; the
        trees' pool (``natural``) is re-drawn without those modalities' nearest
        (:func:`~prodfusion.fusion.learned.pool_mask` over the candidates, which hold every
        other modality's nearest). Measures, and teaches trees, how a product without clicks
        is answered (``tune_learned``'s new-query rows)."""
        import copy

        from prodfusion.fusion.learned import pool_mask, query_best

        gone = [m for m in NEW_PRODUCT_LACKS if m in self.mods]
        sub = copy.copy(self)
        sub.q_new = True
        sub.q_has = {m: (np.zeros_like(v) if m in gone else v) for m, v in self.q_has.items()}
        sub.both = {m: (np.zeros_like(v) if m in gone else v) for m, v in self.both.items()}
        sub.out_both = {m: (np.zeros_like(v) if m in gone else v)
                        for m, v in self.out_both.items()}
        sub.best = query_best(self.mods, sub.cos, sub.both)
        if learned_pool:
            prior = None if self.counts is None else np.log1p(
                np.asarray(self.counts, np.float64))[self.safe]
            sub.natural = pool_mask(self.mods, sub.cos, sub.both, learned_pool,
                                    exclude=~self.valid, prior=prior) & self.valid
        sub.slices = {name: (np.ones(len(self.inv), bool) if name.startswith("query: no training")
                             else np.zeros(len(self.inv), bool)
                             if name.startswith("query: with training") else v)
                      for name, v in self.slices.items()}
        return sub

    def query_confidence(self, conf):
        """The queries' rows of ``conf`` (:func:`row_confidence`'s per-product array), those
        of new products (:meth:`as_new_queries`) as for 0 clicks."""
        if conf is None:
            return None
        if getattr(self, "q_new", False):
            return np.zeros(len(self.uq), np.asarray(conf).dtype)
        return conf[self.uq]

    def _padded(self, rows: list, per_mod: dict, data: Any, empty_width: int) -> tuple:
        """Per-query product rows (and each modality's similarities to them) as ``-1``-padded
        arrays: ``(rows, valid, safe rows, {m: similarities}, {m: both have m})``."""
        width = max((len(r) for r in rows), default=empty_width)
        idx = np.full((len(rows), width), -1, np.int64)
        cos = {m: np.zeros((len(rows), width), np.float32) for m in self.mods}
        for u, r in enumerate(rows):
            idx[u, : len(r)] = r
            for m in self.mods:
                cos[m][u, : len(r)] = per_mod[m][u]
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        both = {m: self.q_has[m][:, None] & np.asarray(data[m].mask)[safe] & valid
                for m in self.mods}
        return idx, valid, safe, cos, both

    def _fused(self, wt, conf, cos: dict, both: dict, safe: np.ndarray,
               valid: np.ndarray, natural: np.ndarray | None = None) -> np.ndarray:
        """The weighting's fused scores of the padded candidates (``-inf`` in the padding),
        one row per case; a learned weighting's trees score the ``natural`` ones (none: the
        outside sample)."""
        return self.fused_by_query(wt, conf, cos, both, safe, valid, natural)[self.inv]

    def fused_by_query(self, wt, conf, cos: dict, both: dict, safe: np.ndarray,
                       valid: np.ndarray, natural: np.ndarray | None = None) -> np.ndarray:
        """:meth:`_fused`, one row per distinct query."""
        from prodfusion.fusion.weights import intermediate_combine

        pool = None
        if wt.learned is not None:
            pool = natural if natural is not None else np.zeros(valid.shape, bool)
        s = intermediate_combine(wt, self.mods, cos, both, self.query_confidence(conf),
                                 None if conf is None else conf[safe], q_has=self.q_has,
                                 q_best=self.best, pool=pool)
        s[~valid] = -np.inf  # padding slots: never ranked
        return s

    def score(self, wt) -> float:
        """The objective: the metric's mean per source (:meth:`values`), sources alike."""
        return self.objective(self.values(wt))

    def objective(self, val: np.ndarray, where: np.ndarray | None = None) -> float:
        """Mean of per-case ``val`` per source, every source counting alike (over the cases
        in ``where`` only, if given; NaN when none is)."""
        return _source_mean(val, self.src, where)

    def values(self, wt) -> np.ndarray:
        """The metric of every validation case under weighting ``wt``."""
        from prodfusion.fusion.weights import row_confidence

        conf = row_confidence(self.counts, wt)
        s = self._fused(wt, conf, self.cos, self.both, self.safe, self.valid, self.natural)
        if self.on_offer is not None:  # a product not on offer at the case's time: not ranked
            s = np.where(self.on_offer[0], s, -np.inf)
        ahead, ties, ok = tie_aware_ranks([s], self.tpos)
        if self.out.shape[1]:  # the rest of the catalog, estimated from its sample
            so = self._fused(wt, conf, self.out_cos, self.out_both, self.out_safe,
                             self.out_valid)
            if self.on_offer is not None:
                so = np.where(self.on_offer[1], so, -np.inf)
            st = s[np.arange(len(s)), self.tpos][:, None]
            fin = np.isfinite(so)
            w = self.out_w[self.inv]
            ahead = ahead + np.rint(w * ((so > st) & fin).sum(axis=1)).astype(np.int64)
            ties = ties + np.rint(w * ((so == st) & fin).sum(axis=1)).astype(np.int64)
        return np.where(ok, tie_aware_metric(ahead, ties, self.k, self.metric), 0.0)


def _covering(mods: tuple[str, ...], masks: dict) -> Callable:
    """``fix(w)``: ``w`` with every product kept rankable (see ``tune_weights``' ``min_weight``)."""
    union = np.zeros(len(next(iter(masks.values()))), bool)
    for m in mods:
        union |= masks[m]
    memo: dict = {}

    def needed(pos: frozenset) -> tuple[str, ...]:
        if pos not in memo:
            cov = np.zeros_like(union)
            for m in pos:
                cov |= masks[m]
            add: list[str] = []
            while (union & ~cov).any():
                gaps = union & ~cov
                m = max((x for x in mods if x not in pos and x not in add),
                        key=lambda x: int((masks[x] & gaps).sum()))
                add.append(m)
                cov |= masks[m]
            memo[pos] = tuple(add)
        return memo[pos]

    return needed


def _validation_folds(rec: Any, s_part, p_part, mods: tuple[str, ...], *, validate_on: str,
                      val_fraction: float, seed: int, protocol: str, repeats: int,
                      rolling: bool, max_queries: int, prod2vec: Any, metric: str, k: int,
                      n_candidates: int, with_stats: bool, log: Callable, progress: Any,
                      where: str, cooc_decays: tuple[float, ...] = (),
                      selection: str = "lcb", learned_pool: int | None = None) -> tuple:
    """The ``repeats`` validation splits of :func:`~prodfusion.evaluation.tuning.tune_weights`
    (its module docstring): ``(modalities every split has, [(scorer, stats)], fitting-part
    sizes, {modality: presence mask} of the first split, the cooc decay choice or None)``;
    the choice (:func:`_choose_decay`, from the sessions alone) is made first, and the
    splits' ``cooc`` is counted with it.

    The splits are scored one at a time: a split's recommender (its retrained click vectors,
    as large as the model's) is dropped once its scorer and calibration statistics are made,
    so the tuning holds one split's vectors at a time, not every split's (the thirteenth
    session measured 7.1 GiB at 300,000 products with all three held;
    ``benchmarks/tune_scale.py``). Should a split lack a modality the others have (too few
    sessions left to train clicks), every split is scored again without it."""
    from dataclasses import replace

    from prodfusion.errors import DataError
    from prodfusion.evaluation.protocol import log_catalog_line
    from prodfusion.evaluation.retrieval import (
        check_no_leak,
        heldout_recommender,
        in_own_group,
        split_interactions,
    )
    from prodfusion.evaluation.split import model_clicked, retrain_params
    from prodfusion.fusion.weights import estimate_stats
    from prodfusion.model_updates import retired_count

    folds_in, fit_sizes = [], []
    clicked = model_clicked(rec)  # the whole log's products, one mask for every split
    codes = one_per_group_codes(rec)
    offer = on_offer_windows(rec, s_part)
    if offer is not None:
        log(f"validation: {on_offer_rule(rec)} ({retired_words(rec)})")
    if (note := on_offer_note(rec, s_part, offer)) is not None:
        log(note)
    elif offer is None and (n_retired := retired_count(rec)):
        log(f"note: the validation ranks each case among all {len(rec.catalog):,} products, "
            f"the {n_retired:,} retired ones too: the interactions have no times to tell when "
            "each was on offer; where listings come and go within days this weighs the "
            "titles less than lists of the listings on sale would "
            "(docs/benchmarks/classifieds_lists.md)")

    p2v = prod2vec if prod2vec is not None else getattr(rec, "prod2vec", None)
    for r in range(repeats):  # repeated validation splits: the choice is less split-bound
        try:  # pairs: another seeded hash; sessions: the latest block (rolling: the r-th)
            inner = split_interactions(rec.catalog, s_part, p_part, test_fraction=val_fraction,
                                       seed=seed + 7919 * (r + 1), protocol=protocol,
                                       window=r if rolling else 0, clicked=clicked)
        except DataError:
            if r == 0:
                raise
            log(f"only {r} validation split(s): too few sessions for another window")
            break
        check_no_leak(inner, rec.catalog)
        if (line := log_catalog_line(inner.info.get("log_catalog"), "validation")):
            log(f"validation split {r + 1}: {line}")
        parts = [(name, ho) for name, ho in inner.heldout.items()
                 if validate_on in ("all", name)]
        q = np.concatenate([ho.query_rows for _, ho in parts] or [np.zeros(0, int)])
        t = np.concatenate([ho.target_rows for _, ho in parts] or [np.zeros(0, int)])
        src = np.concatenate([np.full(len(ho), name, dtype=object) for name, ho in parts]
                             or [np.zeros(0, object)])
        times = np.concatenate([ho.times if ho.times is not None else np.full(len(ho), np.nan)
                                for _, ho in parts] or [np.zeros(0)])
        if len(q) == 0:
            raise DataError(
                f"{where}: no held-out validation pair is left after cleaning (the "
                "interactions hold too few sessions of 2+ known products, or pairs of products "
                "with 2+ partners). Pass more interactions."
            )
        if codes is not None:  # lists one product per group never hold the query's own
            same = in_own_group(codes, q, t)
            q, t, src, times = q[~same], t[~same], src[~same], times[~same]
            log(f"validation split {r + 1}: {int(same.sum()):,} case(s) inside the query's "
                "own group left out (the model lists one product per group)")
        uq = np.unique(q)
        if len(uq) > max_queries:
            keep = np.random.default_rng(seed + r).choice(uq, size=max_queries, replace=False)
            sel = np.isin(q, keep)
            q, t, src, times = q[sel], t[sel], src[sel], times[sel]
        folds_in.append((inner, q, t, src, times))
        fit_sizes.append(len(inner.train) if inner.train is not None else 0)

    decay, coocs = None, None
    own = rec.cooc_.decay if getattr(rec, "cooc_", None) is not None else 0.0
    if "cooc" in mods and set(cooc_decays) - {own} and s_part is not None \
            and int(np.max(s_part.lengths)) > 2:  # pairs alone: every distance is 1
        decay, coocs = _choose_decay(rec, folds_in, own, tuple(dict.fromkeys(cooc_decays)),
                                     selection=selection, log=log, metric=metric, k=k,
                                     group_codes=codes)

    def split_recommender(r: int):
        inner, q = folds_in[r][0], folds_in[r][1]
        params = replace(p2v, seed=p2v.seed + r) if p2v is not None and r else p2v
        used = retrain_params(params, inner.train)  # one thread where reproducible
        log(f"validation split {r + 1}/{len(folds_in)}: retraining Prod2Vec on the fitting "
            f"part ({len(inner.train or []):,} sessions"
            f"{', one thread' if used is not params else ''}); {len(q):,} validation cases")
        ev = heldout_recommender(  # and Prod2Vec from another seed
            rec, inner.train, prod2vec=used, progress=bool(progress is True))
        if coocs is not None:  # counted with the chosen decay
            ev.cooc_ = coocs[r]
        return ev

    folds: list = []
    masks = None
    r = 0
    while r < len(folds_in):
        ev = split_recommender(r)
        have = tuple(m for m in mods if m in ev.available_modalities)
        if have != mods:  # every split is scored on the modalities they all have
            log(f"validation split {r + 1} has no {', '.join(set(mods) - set(have))}: "
                "scoring every split without it")
            mods, folds, masks, r = have, [], None, 0
            del ev
            continue
        inner, q, t, src, times = folds_in[r]
        counts = None
        if ("clicks" in mods or learned_pool) and inner.train is not None:
            pc = inner.train.product_counts()
            counts = np.array([pc.get(p, 0) for p in rec.catalog.ids], dtype=np.int64)
        log(f"scoring {len(np.unique(q)):,} validation queries against their candidates")
        sc = _Scorer(ev, mods, q, t, src.astype(str), counts, metric, k, n_cand=n_candidates,
                     progress=progress is True, learned_pool=learned_pool,
                     group_codes=codes, times=times, on_offer=offer)
        data = ev.modality_data()
        stats = estimate_stats(data, mods, seed=seed) if with_stats else {}
        sc.log_catalog = inner.info.get("log_catalog")  # the record's split (_provenance)
        sc.on_offer_rule = on_offer_rule(rec) if offer is not None else None  # likewise
        folds.append((sc, stats))
        if masks is None:
            masks = {m: np.asarray(data[m].mask, bool) for m in mods}
        del ev, data  # this split's vectors: only its scorer is kept
        r += 1
    return mods, folds, fit_sizes, masks, decay


def _choose_decay(rec: Any, folds_in: list, incumbent: float, decays: tuple[float, ...],
                  *, selection: str, log: Callable, metric: str = "ndcg",
                  k: int = 15, group_codes: np.ndarray | None = None) -> tuple[dict, list]:
    """Choose the ``cooc`` proximity exponent (:class:`~prodfusion.fusion.cooc.Cooc`'s
    ``decay``) on the validation splits (``[(split, queries, targets, sources)]``), scoring
    cooc alone, before any split's recommender is made.

    The incumbent is the model's own decay (0 for a model built with the defaults); another
    replaces it only when its validation objective, less :data:`DECAY_SE` standard errors of
    the paired per-case difference (``selection="lcb"``; cases held out in several splits
    count once), is above the incumbent's — how co-occurrences are counted is a structural
    choice, and order in sessions must help clearly before it is used (with one standard
    error, shuffled sessions whose order carries nothing crossed the bar in one planted
    catalog of five, ``tests/fusion/test_cooc_decay.py``). Cooc alone is ranked over the
    whole catalog, exactly, from each query's sparse row (:func:`_cooc_alone`).
    Returns ``({"decay": chosen, "scores": {decay: objective}, "incumbent": decay},
    [each split's co-occurrences counted with the chosen decay])``.
    """
    from prodfusion.fusion.cooc import Cooc

    if incumbent not in decays:
        decays = (incumbent, *decays)
    srcs = [np.asarray(f[3]).astype(str) for f in folds_in]
    groups = _groups([(s, f[1], f[2]) for s, f in zip(srcs, folds_in, strict=True)])
    src = np.concatenate(srcs)
    per: dict = {}
    for a in decays:
        coocs = [Cooc.from_sessions(f[0].train, rec.catalog, decay=a) for f in folds_in]
        vals = [_cooc_alone(c, f[1], f[2], metric, k, group_codes)
                for f, c in zip(folds_in, coocs, strict=True)]
        per[a] = (float(np.mean([_source_mean(v, s) for s, v in zip(srcs, vals, strict=True)])),
                  np.concatenate(vals), coocs)
    base, vb = per[incumbent][:2]
    chosen, crit_best = incumbent, base
    for a, (sc, v, _) in per.items():
        crit = sc - (DECAY_SE * _paired_se(v, vb, groups, src) if selection == "lcb" else 0.0)
        if a != incumbent and crit > crit_best + 1e-12:
            chosen, crit_best = a, crit
    kept = per[chosen][2]
    scores = {f"{a:g}": per[a][0] for a in decays}
    del per  # the other decays' counts
    log("cooc proximity decay on validation (cooc alone): "
        + ", ".join(f"{a}: {x:.4f}" for a, x in scores.items()) + f"; chosen {chosen:g}")
    return {"decay": chosen, "scores": scores, "incumbent": incumbent}, kept


def _source_mean(val: np.ndarray, src: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean of per-case ``val`` per source ``src``, every source counting alike (over the
    cases in ``where`` only, if given; NaN when none is): :meth:`_Scorer.objective`."""
    sel = np.ones(len(val), bool) if where is None else where
    means = [val[sel & (src == x)].mean() for x in np.unique(src) if (sel & (src == x)).any()]
    return float(np.mean(means)) if means else float("nan")


def one_per_group_codes(rec: Any) -> np.ndarray | None:
    """The model's group codes where it lists one product per group (``one_per_group``),
    else None: a tuning then leaves out the validation cases inside the query's own group
    and never ranks that group (as served)."""
    if not getattr(rec, "one_per_group", False):
        return None
    return getattr(rec, "_group_codes", None)


def _cooc_alone(cooc: Any, q: np.ndarray, t: np.ndarray, metric: str, k: int,
                group_codes: np.ndarray | None = None) -> np.ndarray:
    """The tie-aware metric of cooc alone for each validation case ``(q, t)``, ranked over
    the whole catalog exactly: what a :class:`_Scorer` of every product estimates for the
    weighting ``{cooc: 1}`` (raw, no fallback). A product the query never shared a session
    with scores 0 and ties with every other such product; one without any training session
    (not in ``cooc.mask``) is never ranked, nor is any product for a query without one.
    ``group_codes`` (one_per_group): the query's group is never ranked (its cases left out
    before)."""
    sim = cooc.sim.tocsr()
    mask = np.asarray(cooc.mask, bool)
    n_present = int(mask.sum())
    q = np.asarray(q, np.int64)
    t = np.asarray(t, np.int64)
    ahead = np.zeros(len(q), np.int64)
    ties = np.zeros(len(q), np.int64)
    ok = mask[q] & mask[t] & (q != t)
    gc = group_codes
    present = np.bincount(gc[(gc >= 0) & mask], minlength=int(gc.max()) + 1) \
        if gc is not None else None
    for i in np.flatnonzero(ok):
        lo, hi = sim.indptr[q[i]], sim.indptr[q[i] + 1]
        cols = sim.indices[lo:hi]
        vals = sim.data[lo:hi].astype(np.float32)  # the scorers' precision
        keep = (cols != q[i]) & (vals > 0)
        same = 0  # present products of the query's group but the query: never ranked
        if gc is not None and gc[q[i]] >= 0:
            keep &= gc[cols] != gc[q[i]]
            same = int(present[gc[q[i]]]) - 1
        cols, vals = cols[keep], vals[keep]
        st = vals[cols == t[i]]
        if len(st) and st[0] > 0:
            ahead[i] = int((vals > st[0]).sum())
            ties[i] = int((vals == st[0]).sum()) - 1
        else:  # tied with every other present product it never shared a session with
            ahead[i] = len(vals)
            ties[i] = n_present - 2 - len(vals) - same
    return np.where(ok, tie_aware_metric(ahead, ties, k, metric), 0.0)


def _one_se(results: dict, best: tuple, groups: np.ndarray | None = None,
            src: np.ndarray | None = None) -> tuple:
    """The one-standard-error rule: of the weightings ``results`` (``{w: (score, per-case
    values)}``), the one with the fewest positive weights (then the best score) whose score
    is within one standard error of the paired per-case difference from ``best``'s
    (:func:`_paired_se` with ``groups`` and ``src``)."""
    top, vb = results[best]
    ok = []
    for w, (sc, v) in results.items():
        if sc >= top - _paired_se(vb, v, groups, src) - 1e-12:
            ok.append((sum(x > 0 for x in w), -sc, w))
    return min(ok)[2] if ok else best


def _paired_se(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None,
               src: np.ndarray | None = None) -> float:
    """Standard error of the mean of the per-case difference ``a − b`` (0 for one case).

    With ``src`` (the source of each case) naming two or more sources, the error is that of
    the objective's **mean of per-source means** (:meth:`_Scorer.objective`):
    ``sqrt(Σ_s SE_s²) / S``. Pooling the cases instead would shrink it wherever one source
    does not move (co-interaction pairs under a change that only session order makes): the
    unchanged cases count as evidence of precision. Until the tenth session it pooled them.

    With ``groups`` (one id per case, :func:`_case_groups`) the differences of the cases
    sharing an id are averaged first and the error is over the distinct ids: the same held-out
    case scored in several validation splits (time-ordered sessions keep the latest block, so
    every split holds the same cases) is one observation, not several — counting it once per
    split would shrink the error by about the square root of the number of splits.

    >>> a, b = np.array([1.0, 0, 1, 0]), np.zeros(4)
    >>> round(_paired_se(np.tile(a, 3), np.tile(b, 3)), 4), _paired_se(
    ...     np.tile(a, 3), np.tile(b, 3), np.tile(np.arange(4), 3)) == _paired_se(a, b)
    (0.1508, True)
    >>> src = np.array(["s"] * 4 + ["p"] * 96)  # pairs unchanged: half of the sessions' error
    >>> a2, b2 = np.r_[a, np.zeros(96)], np.zeros(100)
    >>> round(_paired_se(a2, b2, src=src) / _paired_se(a, b), 4), round(_paired_se(a2, b2), 4)
    (0.5, 0.0141)
    """
    if src is not None and len(np.unique(src)) > 1:
        src = np.asarray(src)
        parts = [_paired_se(np.asarray(a)[src == x], np.asarray(b)[src == x],
                            None if groups is None else np.asarray(groups)[src == x])
                 for x in np.unique(src)]
        return float(math.sqrt(sum(p * p for p in parts)) / len(parts))
    d = np.asarray(a, float) - np.asarray(b, float)
    if groups is not None:
        inv = np.unique(np.asarray(groups), return_inverse=True)[1]
        d = np.bincount(inv, weights=d) / np.bincount(inv)
    return float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0


def _case_groups(folds: list) -> np.ndarray:
    """One id per validation case of every split (in :meth:`_Scorer.values` order, splits
    concatenated), equal for the same (source, query, target): the ``groups`` of
    :func:`_paired_se`."""
    return _groups([(sc.src, sc.uq[sc.inv], sc.t) for sc, _ in folds])


def _groups(cases: list) -> np.ndarray:
    """One id per case of ``[(sources, queries, targets)]`` (splits concatenated), equal for
    the same (source, query, target)."""
    keys = [f"{s}|{q}|{t}" for src, qs, ts in cases for s, q, t in zip(src, qs, ts, strict=True)]
    return np.unique(np.asarray(keys), return_inverse=True)[1]
