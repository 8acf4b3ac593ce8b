"""Retrieval of held-out co-interactions: what an online A/B test measures, offline.

Interactions are split so that Prod2Vec trains on the earlier part only:

* sessions (views, baskets) are split whole, by the time of their first event
  (:meth:`prodfusion.data.Sessions.split_by_time`; by a seeded hash of the session key when
  the log has no times). Every consecutive pair ``(a → b)`` of a held-out session is one
  test case: the visitor viewed ``a`` and then went to ``b``;
* co-interaction pairs (e.g. H&M ``copurchase.csv``) have no time; they are split by a seeded
  hash of the *unordered* pair, so ``(a, b)`` and ``(b, a)`` always fall on the same side. A
  held-out pair whose two products also co-occur in any training session is not unseen and
  is left out of the test set (its count is reported).

The recommender under test keeps the model's text and image vectors (they do not depend on
interactions) and gets click vectors retrained on the training part only
(:func:`heldout_recommender`); :func:`check_no_leak` refuses to go on if a held-out pair or
session reached the training corpus. For each test case the top-k similar products of ``a``
are scored: HitRate@k, MRR@k, nDCG@k (one relevant item, ``b``), category precision@k and
catalog coverage, with bootstrap confidence intervals over sessions (over query products for
pairs), overall, for queries with training clicks, and for the cold-start slices "query has
no training clicks" and "query has no image".

Examples
--------
>>> import numpy as np
>>> ranked = np.array([[5, 7, 9], [1, 2, 3], [4, 4, 4]])
>>> targets = np.array([7, 8, 4])
>>> hit_rate_at_k(ranked, targets), mrr_at_k(ranked, targets)
(0.6666666666666666, 0.5)
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prodfusion.encoders.base import MODALITIES
from prodfusion.errors import DataError, ModelError, ParameterError, param_error
from prodfusion.evaluation.baselines import REFERENCES, Reference
from prodfusion.evaluation.protocol import slice_flags, slice_masks

if TYPE_CHECKING:
    from prodfusion.data.sessions import Sessions

__all__ = [
    "Variant",
    "BASELINE",
    "parse_variant",
    "HeldOut",
    "Split",
    "rank_of_target",
    "per_query_metrics",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "category_precision_at_k",
    "catalog_coverage",
    "bootstrap_ci",
    "consecutive_pairs",
    "split_interactions",
    "check_no_leak",
    "heldout_recommender",
    "evaluate_retrieval",
]

FUSIONS = ("early", "intermediate", "late")
MODALITY_ORDER = MODALITIES


# =========================================================================== metrics
def rank_of_target(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> np.ndarray:
    """1-based rank of each target in its ranked list (first ``k`` entries), 0 if absent.

    ``ranked`` is ``(q, K)`` (rows or ids, best first; padding — ``-1`` in int arrays,
    ``None`` in id arrays — never counts as a hit); ``targets`` is ``(q,)``.

    >>> rank_of_target(np.array([[3, 1, 2], [0, -1, -1]]), np.array([2, 5])).tolist()
    [3, 0]
    """
    ranked = np.asarray(ranked)
    targets = np.asarray(targets)
    if ranked.ndim != 2 or targets.shape != (ranked.shape[0],):
        raise DataError(
            f"rank_of_target(): ranked lists have shape {ranked.shape} and targets "
            f"{targets.shape}; pass one ranked list (row) per target."
        )
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise param_error("k", "rank_of_target()", "a positive int", k)
        ranked = ranked[:, :k]
    eq = ranked == targets[:, None]
    # Padding (-1 rows, None ids) is never a recommended product, whatever the target.
    if ranked.dtype.kind in "iu":
        eq &= ranked >= 0
    elif ranked.dtype == object:
        eq &= np.frompyfunc(lambda x: x is not None, 1, 1)(ranked).astype(bool)
    found = eq.any(axis=1)
    return np.where(found, eq.argmax(axis=1) + 1, 0).astype(np.int64)


def per_query_metrics(
    ranked: np.ndarray, targets: np.ndarray, k: int | None = None
) -> dict[str, np.ndarray]:
    """Per-test-case ``hit`` (0/1), ``rr`` (1/rank or 0) and ``ndcg`` (1/log2(rank+1) or 0).

    With a single relevant item the ideal DCG is 1, so nDCG@k is ``1 / log2(rank + 1)``.
    """
    r = rank_of_target(ranked, targets, k)
    hit = (r > 0).astype(np.float64)
    with np.errstate(divide="ignore"):
        rr = np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)
        ndcg = np.where(r > 0, 1.0 / np.log2(r + 1.0), 0.0)
    return {"hit": hit, "rr": rr, "ndcg": ndcg, "rank": r}


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else math.nan


def hit_rate_at_k(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> float:
    """Share of test cases whose target is among the first ``k`` recommendations."""
    return _mean(per_query_metrics(ranked, targets, k)["hit"])


def mrr_at_k(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> float:
    """Mean reciprocal rank of the target, counting 0 when it is not in the top ``k``."""
    return _mean(per_query_metrics(ranked, targets, k)["rr"])


def ndcg_at_k(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> float:
    """Mean nDCG@k with one relevant item per test case: ``1/log2(rank + 1)``, 0 if absent.

    >>> ndcg_at_k(np.array([[1, 2], [2, 1]]), np.array([2, 2]))  # ranks 2 and 1
    0.8154648767857288
    """
    return _mean(per_query_metrics(ranked, targets, k)["ndcg"])


def category_precision_at_k(
    ranked_rows: np.ndarray, query_rows: np.ndarray, category_codes: np.ndarray
) -> np.ndarray:
    """Per query: share of the returned products that share the query's category.

    ``category_codes`` holds an int per catalog row (``-1``: no category). Padding rows
    (``-1``) are not returned products and do not count. NaN where the query has no category
    or nothing was returned.

    >>> category_precision_at_k(np.array([[1, 2, -1]]), np.array([0]), np.array([7, 7, 3])).tolist()
    [0.5]
    """
    ranked_rows = np.asarray(ranked_rows, dtype=np.int64)
    q = np.asarray(query_rows, dtype=np.int64)
    codes = np.asarray(category_codes, dtype=np.int64)
    valid = ranked_rows >= 0
    rc = np.where(valid, codes[np.where(valid, ranked_rows, 0)], -2)
    qc = codes[q]
    same = (rc == qc[:, None]) & valid
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = same.sum(axis=1) / n
    out = out.astype(np.float64)
    out[(qc < 0) | (n == 0)] = np.nan
    return out


def catalog_coverage(ranked_rows: np.ndarray, n_catalog: int) -> float:
    """Share of the catalog that appears in at least one recommendation list.

    >>> catalog_coverage(np.array([[0, 1], [1, -1]]), 4)
    0.5
    """
    r = np.asarray(ranked_rows, dtype=np.int64)
    return float(len(np.unique(r[r >= 0])) / n_catalog) if n_catalog else math.nan


def bootstrap_ci(
    values: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval, resampling whole groups.

    Parameters
    ----------
    values : ndarray (n,)
        Per-test-case values (NaN entries are ignored, e.g. queries without a category).
    groups : ndarray (n,), optional
        The resampling unit of each value (a session). Default: each value alone.
    n_boot : int
        Bootstrap resamples (``scipy.stats.bootstrap``, paired over per-group sums and counts,
        so the statistic is the pooled mean ``Σ sums / Σ counts`` of the resampled groups).
    alpha : float
        ``1 − confidence``.
    seed : int

    Returns
    -------
    (mean, lo, hi) : tuple of float
        NaN when there are no values; ``lo == hi == mean`` when there is one group.
    """
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    g = np.arange(len(v)) if groups is None else np.asarray(groups)
    if g.shape != v.shape:
        raise DataError(f"bootstrap_ci(): {len(v)} values but {len(g)} group labels.")
    ok = ~np.isnan(v)
    v, g = v[ok], g[ok]
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    _, inv = np.unique(g, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    counts = np.bincount(inv).astype(np.float64)
    if len(sums) < 2 or np.ptp(sums / counts) == 0:  # constant statistic: no interval to draw
        return (mean, mean, mean)

    def stat(s, c, axis=-1):
        return s.sum(axis=axis) / c.sum(axis=axis)

    res = bootstrap(
        (sums, counts),
        stat,
        paired=True,
        vectorized=True,
        n_resamples=n_boot,
        confidence_level=1.0 - alpha,
        method="percentile",
        batch=max(1, int(2e7 // max(1, len(sums)))),
        rng=np.random.default_rng(seed),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (mean, lo, hi)


# =========================================================================== variants
@dataclass(frozen=True)
class Variant:
    """One recommendation configuration to evaluate or replay.

    Parameters
    ----------
    fusion : {"early", "intermediate", "late"}
    modalities : tuple of str
        Modalities fused for queries that have at least one of them.
    fallback : tuple of str, optional
        Modalities used (intermediate fusion) for queries that have none of ``modalities``,
        and to fill lists that the primary fusion cannot fill to ``k``.
    name : str, optional
        Label in reports (default: ``"intermediate:text+image+clicks"``).
    model : str, optional
        Model folder (replay configs; None: the default model).
    weights, calibration, n0 : optional
        Fusion weights / calibration / click confidence for this configuration (default: the
        model's own, e.g. those chosen by ``prodfusion tune``; :mod:`prodfusion.fusion.weights`).
    paper : bool
        Use the paper's formulas (equal weights, raw cosines, raw early blocks) whatever the
        model's weighting.

    Examples
    --------
    >>> BASELINE.label
    'baseline (Prod2Vec, text fallback)'
    >>> Variant("early", ("text", "image")).label
    'early:text+image'
    """

    fusion: str = "intermediate"
    modalities: tuple[str, ...] = ("text", "image", "clicks")
    fallback: tuple[str, ...] | None = None
    name: str | None = None
    model: str | None = None
    weights: tuple[tuple[str, float], ...] | None = None
    calibration: str | None = None
    n0: float | None = None
    paper: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.weights, Mapping):
            object.__setattr__(self, "weights", tuple(sorted(self.weights.items())))
        if self.fusion not in FUSIONS:
            raise param_error("fusion", "Variant()", f"one of {list(FUSIONS)}", self.fusion)
        for attr in ("modalities", "fallback"):
            mods = getattr(self, attr)
            if mods is None:
                continue
            if isinstance(mods, str):
                mods = tuple(m.strip() for m in mods.replace("+", ",").split(",") if m.strip())
            mods = tuple(mods)
            if not mods or any(m not in MODALITY_ORDER for m in mods):
                raise param_error(attr, "Variant()", f"a non-empty subset of {list(MODALITY_ORDER)}", mods)
            object.__setattr__(self, attr, tuple(m for m in MODALITY_ORDER if m in mods))

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        w = " [paper]" if self.paper else ""
        if self.weights is not None or self.calibration is not None:
            w = " [" + ",".join(f"{m}={x:g}" for m, x in (self.weights or ())) + (
                f" {self.calibration}" if self.calibration else "") + "]"
        return f"{self.fusion}:{'+'.join(self.modalities)}" + w + (
            f" (fallback {'+'.join(self.fallback)})" if self.fallback else ""
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["label"] = self.label
        d["weights"] = dict(self.weights) if self.weights is not None else None
        d["modalities"] = list(self.modalities)
        d["fallback"] = list(self.fallback) if self.fallback else None
        return d

    def recommend(
        self, rec: Any, query_rows: np.ndarray, k: int, *, diff_code: np.ndarray | None = None
    ) -> np.ndarray:
        """Top-``k`` catalog rows for each query row (``-1`` pads), best first."""
        q = np.asarray(query_rows, dtype=np.int64)
        override = None
        if self.paper or self.weights is not None or self.calibration is not None:
            from prodfusion.fusion.weights import Weighting

            override = Weighting() if self.paper else Weighting.make(
                dict(self.weights) if self.weights is not None else None,
                self.calibration or "none", None, self.n0, where=self.label)
        primary = rec.fuser(self.fusion, self.modalities, override)
        rows, _ = primary.topk(q, k, diff_code=diff_code)
        if not self.fallback:
            return rows
        short = np.flatnonzero((rows < 0).any(axis=1))
        if len(short) == 0:
            return rows
        fb = rec.fuser("intermediate", self.fallback)
        fb_rows, _ = fb.topk(q[short], 2 * k, diff_code=diff_code)
        for i, qi in enumerate(short):
            have = [r for r in rows[qi] if r >= 0]
            seen = set(have)
            for r in fb_rows[i]:
                if len(have) >= k:
                    break
                if r >= 0 and r not in seen:
                    have.append(int(r))
                    seen.add(int(r))
            rows[qi] = have + [-1] * (k - len(have))
        return rows


#: The paper's baseline: Prod2Vec neighbours, and text neighbours for products without clicks
#: (or to fill a list when fewer than k products have clicks).
BASELINE = Variant(
    fusion="intermediate",
    modalities=("clicks",),
    fallback=("text",),
    name="baseline (Prod2Vec, text fallback)",
)


def parse_variant(spec: str | Mapping | Variant, *, default_model: str | None = None) -> Variant:
    """A :class:`Variant` from ``"baseline"``, ``"FUSION:MOD+MOD"``, a dict or a config file.

    Config files are JSON (``.json``), TOML (``.toml``) or YAML (``.yaml``/``.yml``) holding
    ``{model: DIR, fusion: ..., modalities: [...], fallback: [...], name: ...}``; every key is
    optional (``baseline: true`` starts from the baseline). Relative ``model`` paths are read
    from the config file's folder.

    >>> parse_variant("late:text+image").modalities
    ('text', 'image')
    >>> parse_variant({"fusion": "early", "modalities": ["clicks"]}).label
    'early:clicks'
    """
    from pathlib import Path

    where = "parse_variant()"
    if isinstance(spec, (Variant, Reference)):
        v = spec
    elif isinstance(spec, Mapping):
        d = dict(spec)
        base = BASELINE if d.pop("baseline", False) else Variant()
        unknown = set(d) - {"fusion", "modalities", "fallback", "name", "model", "weights",
                            "calibration", "n0", "paper"}
        if unknown:
            raise ParameterError(
                f"{where}: unknown config key(s) {sorted(unknown)}; use fusion, modalities, "
                "fallback, name, model (and baseline: true)."
            )
        fields = {**asdict(base), **d}
        for key in ("modalities", "fallback"):
            if isinstance(fields.get(key), list):
                fields[key] = tuple(fields[key])
        v = Variant(**fields)
    elif isinstance(spec, str):
        s = spec.strip()
        p = Path(s)
        if s.lower() == "baseline":
            v = BASELINE
        elif s.lower() in REFERENCES:
            v = Reference(s.lower())
        elif p.suffix.lower() in (".json", ".toml", ".yaml", ".yml"):
            if not p.is_file():
                raise DataError(f"{p}: variant config file does not exist.")
            text = p.read_text(encoding="utf-8")
            try:
                if p.suffix.lower() == ".json":
                    import json

                    data = json.loads(text)
                elif p.suffix.lower() == ".toml":
                    try:
                        import tomllib
                    except ImportError:  # Python 3.10
                        import tomli as tomllib

                    data = tomllib.loads(text)
                else:
                    import yaml

                    data = yaml.safe_load(text)
            except Exception as exc:  # three parsers, three exception types
                raise DataError(f"{p}: cannot parse the config ({type(exc).__name__}: {exc}).") from None
            if not isinstance(data, Mapping):
                raise DataError(f"{p}: a variant config must be a mapping of keys to values.")
            data = dict(data)
            if data.get("model") and not Path(str(data["model"])).is_absolute():
                data["model"] = str((p.parent / str(data["model"])).resolve())
            v = parse_variant(data)
        elif ":" in s:
            fusion, _, mods = s.partition(":")
            v = Variant(fusion=fusion.strip(), modalities=mods)
        else:
            raise param_error(
                "config",
                where,
                "'baseline', 'FUSION:MOD+MOD' (e.g. 'intermediate:text+image+clicks'), a "
                f"reference baseline ({', '.join(REFERENCES)}) or a .json/.toml/.yaml file",
                spec,
            )
    else:
        raise param_error("config", where, "a string, a mapping or a Variant", spec)
    if v.model is None and default_model is not None:
        if isinstance(v, Reference):
            return Reference(v.kind, v.name, str(default_model))
        v = Variant(v.fusion, v.modalities, v.fallback, v.name, str(default_model), v.weights,
                    v.calibration, v.n0, v.paper)
    return v


# =========================================================================== splitting
@dataclass
class HeldOut:
    """Held-out test cases ``query → target`` (catalog rows) with their bootstrap groups."""

    source: str
    query_rows: np.ndarray
    target_rows: np.ndarray
    groups: np.ndarray
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.query_rows)

    def take(self, idx: np.ndarray) -> HeldOut:
        return HeldOut(
            self.source, self.query_rows[idx], self.target_rows[idx], self.groups[idx], dict(self.info)
        )


@dataclass
class Split:
    """Training corpus for Prod2Vec and the held-out test cases, with what the split did."""

    train: Sessions | None
    heldout: dict[str, HeldOut]
    test_session_keys: list[str]
    info: dict


def _pairs_frame(sessions: Sessions) -> pl.DataFrame:
    """Consecutive ``(session, a, b)`` of every session (a ≠ b)."""
    f = sessions.frame
    nxt = f.with_columns(pl.col("product_id").shift(-1).over("session").alias("next"))
    return (
        nxt.filter(pl.col("next").is_not_null() & (pl.col("next") != pl.col("product_id")))
        .select(pl.col("session"), pl.col("product_id").alias("a"), pl.col("next").alias("b"))
    )


def consecutive_pairs(sessions: Sessions, catalog: Any, *, source: str = "sessions") -> HeldOut:
    """Every consecutive pair ``(a → b)`` of every session as a test case grouped by session.

    Products not in ``catalog`` are skipped (clean the sessions against the catalog first to
    avoid that).
    """
    pf = _pairs_frame(sessions)
    qa, oka = catalog.lookup(pf["a"].to_list())
    qb, okb = catalog.lookup(pf["b"].to_list())
    ok = oka & okb
    return HeldOut(
        source=source,
        query_rows=qa[ok],
        target_rows=qb[ok],
        groups=np.asarray(pf["session"].to_list(), dtype=object)[ok],
        info={"n_pairs_unknown_products": int((~ok).sum())},
    )


def _hash_unit(keys: Sequence[str], seed: int) -> np.ndarray:
    """A seeded, platform-independent uniform number in [0, 1) per key (SHA-256)."""
    salt = f"prodfusion-split\x00{int(seed)}\x00".encode()
    digests = b"".join(hashlib.sha256(salt + k.encode()).digest()[:8] for k in keys)
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64


def _seen_pairs(train: Sessions, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Bool per pair: do ``a[i]`` and ``b[i]`` occur together in some training session?"""
    if train is None or len(a) == 0:
        return np.zeros(len(a), dtype=bool)
    tf = train.frame.select("session", "product_id").unique()
    pairs = pl.DataFrame({"i": np.arange(len(a)), "a": list(a), "b": list(b)})
    sa = pairs.join(tf, left_on="a", right_on="product_id").select("i", "session")
    sb = pairs.join(tf, left_on="b", right_on="product_id").select("i", "session")
    hit = sa.join(sb, on=["i", "session"]).get_column("i").unique().to_numpy()
    out = np.zeros(len(a), dtype=bool)
    out[hit] = True
    return out


def _concat_sessions(parts: Mapping[str, Sessions]) -> Sessions | None:
    from prodfusion.data.sessions import Sessions

    frames = [
        s.frame.with_columns((pl.lit(f"{tag}:") + pl.col("session")).alias("session"))
        for tag, s in parts.items()
        if s is not None and len(s)
    ]
    if not frames:
        return None
    return Sessions(pl.concat(frames, how="vertical"))


def split_interactions(
    catalog: Any,
    sessions: Sessions | None = None,
    pairs: Sessions | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    protocol: str = "leave-last-out",
) -> Split:
    """Split sessions by time and pairs by hash; see the module docstring.

    ``protocol="leave-last-out"`` (default) holds out the last transition of each test
    session and one pair of each test query product, and trains on everything else
    (:mod:`prodfusion.evaluation.protocol`); ``"whole"`` holds out whole sessions and whole
    unordered pairs (the earlier protocol, in which held-out targets lack click vectors far
    more often than the catalog does).

    Parameters
    ----------
    catalog : Catalog
    sessions : Sessions, optional
        Cleaned sessions (views, baskets) with times where available.
    pairs : Sessions, optional
        Co-interaction pairs as two-click sessions (``read_pairs`` + ``clean_sessions``).
    test_fraction : float
        Share of sessions (latest) and of unordered pairs held out.
    seed : int
        Seed of the pair hash (and of the session hash when sessions have no time).

    Returns
    -------
    Split
        ``train`` (session keys prefixed ``"s:"`` and ``"p:"``), ``heldout`` with
        ``"sessions"`` and/or ``"pairs"``, and counts in ``info``.
    """
    from prodfusion.data.sessions import Sessions

    where = "split_interactions()"
    if sessions is None and pairs is None:
        raise ParameterError(
            f"{where} needs sessions and/or pairs: the held-out test cases come from them. "
            "Pass --interactions and/or --pairs."
        )
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
        0 < test_fraction < 1
    ):
        raise param_error("test_fraction", where, "a float in (0, 1)", test_fraction)
    from prodfusion.evaluation.protocol import (
        PROTOCOLS,
        leave_last_out_sessions,
        leave_one_out_pairs,
    )

    if protocol not in PROTOCOLS:
        raise param_error("protocol", where, f"one of {list(PROTOCOLS)}", protocol)
    lolo = protocol == "leave-last-out"
    info: dict = {"test_fraction": test_fraction, "seed": seed, "protocol": protocol}
    heldout: dict[str, HeldOut] = {}
    train_parts: dict[str, Sessions] = {}
    test_keys: list[str] = []
    if sessions is not None:
        tr, te = sessions.split_by_time(test_fraction, seed=seed)
        train_parts["s"] = tr
        test_keys = ["s:" + k for k in te.keys]
        has_time = sessions.frame["ts"].null_count() == 0
        how = "by time of the first event" if has_time else "by seeded hash of the session key"
        info["sessions"] = {
            "split": (f"last transition of each held-out session (sessions {how}); the rest "
                      "of those sessions trains") if lolo else how,
            "n_train_sessions": len(tr),
            "n_test_sessions": len(te),
            "n_train_clicks": tr.n_clicks,
            "n_test_clicks": te.n_clicks,
        }
        if has_time and len(tr) and len(te):
            info["sessions"]["train_last_start"] = float(
                tr.frame.group_by("session").agg(pl.col("ts").min())["ts"].max()
            )
            info["sessions"]["test_first_start"] = float(
                te.frame.group_by("session").agg(pl.col("ts").min())["ts"].min()
            )
        if lolo:
            qa, qb, groups, prefixes, linfo = leave_last_out_sessions(te, catalog)
            train_parts["h"] = prefixes
            ho = HeldOut("sessions", qa, qb, groups, {})
            info["sessions"].update(linfo)
            info["sessions"]["expected_prefix_clicks"] = prefixes.n_clicks
        else:
            ho = consecutive_pairs(te, catalog)
            ho.groups = np.asarray(["s:" + str(g) for g in ho.groups], dtype=object)
        heldout["sessions"] = ho
        info["sessions"]["n_test_pairs"] = len(ho)
    pair_test = None
    if pairs is not None:
        pf = _pairs_frame(pairs)
        a, b = pf["a"].to_list(), pf["b"].to_list()
        if lolo:
            is_test, ta, tb, pinfo = leave_one_out_pairs(pf, test_fraction, seed, _hash_unit)
            pair_test = (ta, tb)
        else:
            keys = [x + "\x1f" + y if x < y else y + "\x1f" + x for x, y in zip(a, b, strict=True)]
            is_test = _hash_unit(keys, seed) < test_fraction
            pair_test = (np.asarray(a, dtype=object)[is_test], np.asarray(b, dtype=object)[is_test])
            pinfo = {}
        train_sessions = pf["session"].filter(pl.Series(~is_test)).unique()
        train_parts["p"] = Sessions(
            pairs.frame.filter(pl.col("session").is_in(train_sessions.implode()))
        )
        info["pairs"] = {
            "split": ("one pair of each held-out query product (seeded hash; products with at "
                      "least 2 partners), both directions; every other pair trains") if lolo
            else "by seeded hash of the unordered pair",
            "n_train_pairs": int((~is_test).sum()),
            "n_test_pairs_before_filter": len(pair_test[0]),
            **pinfo,
        }
    train = _concat_sessions(train_parts)
    if pair_test is not None:
        ta, tb = pair_test
        seen = _seen_pairs(train, ta, tb)
        ta, tb = ta[~seen], tb[~seen]
        qa, oka = catalog.lookup(list(ta))
        qb, okb = catalog.lookup(list(tb))
        ok = oka & okb
        heldout["pairs"] = HeldOut(
            source="pairs",
            query_rows=qa[ok],
            target_rows=qb[ok],
            groups=np.asarray(list(ta[ok]), dtype=object),
            info={"n_pairs_unknown_products": int((~ok).sum())},
        )
        info["pairs"]["n_test_pairs_seen_in_training_dropped"] = int(seen.sum())
        info["pairs"]["n_test_pairs"] = int(ok.sum())
    info["n_train_sessions_total"] = len(train) if train is not None else 0
    return Split(train=train, heldout=heldout, test_session_keys=test_keys, info=info)


def check_no_leak(split: Split, catalog: Any) -> dict:
    """Refuse a split in which held-out data reached the training corpus.

    Checks that no held-out session is in training, and that no held-out pair ``(a, b)`` from
    the pair source co-occurs in any training session.

    Raises
    ------
    ModelError
        Naming how many held-out sessions or pairs leaked.

    Returns
    -------
    dict
        What was checked (counts), for the report.
    """
    train = split.train
    train_keys = set(train.keys) if train is not None else set()
    leaked = sorted(set(split.test_session_keys) & train_keys)
    if leaked:
        raise ModelError(
            f"Leak: {len(leaked)} held-out session(s) are in the training corpus "
            f"(first: {leaked[0]!r}). The evaluation would score what the model has seen."
        )
    expected = split.info.get("sessions", {}).get("expected_prefix_clicks")
    if expected is not None and train is not None:
        got = int(train.frame.filter(pl.col("session").str.starts_with("h:")).height)
        if got != expected:
            raise ModelError(
                f"Leak: the training corpus holds {got} clicks of held-out sessions, "
                f"{expected} expected (each held-out session without its last click)."
            )
    checked = {"test_sessions_checked": len(split.test_session_keys), "test_pairs_checked": 0}
    ho = split.heldout.get("pairs")
    if ho is not None and train is not None and len(ho):
        ids = catalog.ids
        a, b = ids[ho.query_rows], ids[ho.target_rows]
        seen = _seen_pairs(train, list(a), list(b))
        if seen.any():
            i = int(np.flatnonzero(seen)[0])
            raise ModelError(
                f"Leak: {int(seen.sum())} held-out pair(s) co-occur in a training session "
                f"(first: {a[i]!r} and {b[i]!r}). The evaluation would score what the model "
                "has seen."
            )
        checked["test_pairs_checked"] = len(a)
    return checked


def heldout_recommender(
    rec: Any,
    train: Sessions | None,
    *,
    prod2vec: Any = None,
    progress: bool | None = None,
) -> Any:
    """A recommender with the model's text/image vectors and clicks retrained on ``train``.

    The model's own click vectors are never used (they were trained on every interaction,
    held-out ones included). With no training sessions the result has no click modality.

    Parameters
    ----------
    rec : Recommender
    train : Sessions or None
    prod2vec : Prod2VecParams, optional
        Default: the model's settings (``rec.prod2vec``).
    """
    from prodfusion.encoders import Prod2Vec
    from prodfusion.recommender import Recommender

    embs = {m: e for m, e in rec.embeddings_.items() if m != "clicks"}
    params = prod2vec if prod2vec is not None else getattr(rec, "prod2vec", None)
    if train is not None and len(train):
        p = asdict(params) if params is not None else {}
        embs["clicks"] = Prod2Vec(**p, progress=bool(progress)).fit(train).encode(rec.catalog)
        if embs["clicks"].n_present == 0:
            del embs["clicks"]
    if not embs:
        raise ModelError(
            "Nothing to evaluate: the model has no text or image vectors and no training "
            "sessions were given to retrain the click vectors."
        )
    ev = Recommender.from_embeddings(
        rec.catalog,
        embs,
        fusion=rec.fusion,
        normalize=getattr(rec, "normalize", False),
        seed=getattr(rec, "seed", 0),
    )
    ev.train_sessions_ = train  # what the reference baselines (cooc, popular) count
    if train is not None and len(train):
        # the cooc modality, counted on the training part only (as the clicks are retrained)
        from prodfusion.fusion.cooc import Cooc

        ev.cooc_ = Cooc.from_sessions(train, rec.catalog)
        ev.modalities = ev.available_modalities if getattr(rec, "cooc_", None) is not None \
            else ev.modalities
    # The model's fusion weights, calibration and click confidence; occurrences counted in
    # the training part (what the retrained click vectors saw).
    ev.weights = getattr(rec, "weights", None)
    ev.calibration = getattr(rec, "calibration", "none")
    ev.click_n0 = getattr(rec, "click_n0", None)
    ev.zero_weight_fallback = getattr(rec, "zero_weight_fallback", False)
    if train is not None and len(train):
        pc = train.product_counts()
        ev.click_counts_ = np.array([pc.get(p, 0) for p in rec.catalog.ids], dtype=np.int64)
    return ev


def _codes(values: Sequence[str | None] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, -1, dtype=np.int64)
    s = pl.Series(values, dtype=pl.Utf8)
    codes = s.cast(pl.Categorical).to_physical().cast(pl.Int64).to_numpy()
    return np.where(s.is_null().to_numpy(), -1, codes).astype(np.int64)


def _subsample(ho: HeldOut, max_pairs: int | None, seed: int) -> HeldOut:
    """At most ``max_pairs`` test cases, taking whole groups in a seeded random order."""
    if max_pairs is None or len(ho) <= max_pairs:
        return ho
    uniq, inv = np.unique(ho.groups.astype(str), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    sizes = np.bincount(inv)[order]
    n_take = int(np.searchsorted(np.cumsum(sizes), max_pairs, side="right"))
    chosen = np.zeros(len(uniq), dtype=bool)
    chosen[order[: max(1, n_take)]] = True
    out = ho.take(np.flatnonzero(chosen[inv]))
    out.info["subsampled_from"] = len(ho)
    return out


def default_variants(modalities: Sequence[str], fusions: Sequence[str] = FUSIONS) -> list:
    """Every modality combination × fusion, the baseline when clicks and text exist, and the
    reference baselines (``cooc``, ``tfidf``, ``popular``, ``cooc+tfidf``)."""
    from prodfusion.evaluation.clustering import all_combinations

    out: list = [Variant(f, c) for c in all_combinations(modalities) for f in fusions
                 if f == "intermediate" or "cooc" not in c]  # cooc: intermediate only
    if "clicks" in modalities and "text" in modalities:
        out.append(BASELINE)
    return out + [Reference(r) for r in REFERENCES]


def _metric_block(values: np.ndarray, groups: np.ndarray, n_boot: int, alpha: float, seed: int) -> dict:
    mean, lo, hi = bootstrap_ci(values, groups, n_boot=n_boot, alpha=alpha, seed=seed)
    return {"value": mean, "ci_lo": lo, "ci_hi": hi}


def evaluate_retrieval(
    rec: Any,
    *,
    sessions: Sessions | None = None,
    pairs: Sessions | None = None,
    test_fraction: float = 0.2,
    k: int = 15,
    variants: Sequence[Variant | str | Mapping] | None = None,
    fusions: Sequence[str] = FUSIONS,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    max_pairs: int | None = None,
    prod2vec: Any = None,
    exclude_group: bool = False,
    progress: bool | Callable = True,
    protocol: str = "leave-last-out",
    _split: Split | None = None,
) -> dict:
    """Score the retrieval of held-out co-interactions for several configurations.

    Parameters
    ----------
    rec : Recommender
        Gives the catalog and the text/image vectors (click vectors are retrained).
    sessions, pairs : Sessions, optional
        Interactions to split (see :func:`split_interactions`); at least one.
    test_fraction : float, default 0.2
    k : int, default 15
    variants : sequence, optional
        :class:`Variant`, ``"baseline"``, ``"FUSION:MOD+MOD"`` or dicts. Default: every
        modality combination × ``fusions``, plus the baseline.
    n_boot, alpha : bootstrap resamples and 1 − confidence of the intervals
    seed : int
        Split and bootstrap seed.
    max_pairs : int, optional
        Score at most this many test cases per source (whole sessions, seeded sample).
    prod2vec : Prod2VecParams, optional
        Click-encoder settings (default: the model's).
    exclude_group : bool
        Never recommend a product of the query's own variation group.
    progress : bool or callable
    protocol : {"leave-last-out", "whole"}
        How test cases are held out (:func:`split_interactions`).

    Returns
    -------
    dict
        ``config``, ``split`` (counts, leak check), ``heldout`` (test-case counts) and
        ``rows``: one per variant × source × slice with ``n``, ``hit_rate``, ``mrr``,
        ``ndcg``, ``category_precision`` (each ``{value, ci_lo, ci_hi}``) and ``coverage``.
    """
    from prodfusion.fusion.base import check_modalities

    where = "evaluate_retrieval()"
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 1000:
        raise param_error("k", where, "an int in [1, 1000]", k)
    t0 = time.perf_counter()
    catalog = rec.catalog
    split = _split or split_interactions(
        catalog, sessions, pairs, test_fraction=test_fraction, seed=seed, protocol=protocol
    )
    leak = check_no_leak(split, catalog)
    log = _Progress(progress)
    log("retraining Prod2Vec on the training part")
    ev = heldout_recommender(rec, split.train, prod2vec=prod2vec, progress=bool(progress is True))
    available = ev.available_modalities
    if variants is None:  # cooc (always counted on the training part) only if the model has it
        vlist = default_variants(tuple(m for m in available if m != "cooc"
                                       or getattr(rec, "cooc_", None) is not None), fusions)
    else:
        vlist = [parse_variant(v) for v in variants]
    if split.train is None or not len(split.train):
        vlist = [v for v in vlist if not (isinstance(v, Reference) and v.kind != "tfidf")]
    for v in vlist:
        if isinstance(v, Reference):
            continue
        check_modalities(v.modalities, available, where)
        if v.fallback:
            check_modalities(v.fallback, available, where)
    cat_codes = _codes(catalog.categories, len(catalog))
    diff_code = _codes(catalog.groups, len(catalog)) if exclude_group else None
    if exclude_group and catalog.groups is None:
        raise ParameterError(f"{where}: exclude_group=True needs a catalog with a 'group' column.")
    sources = {name: _subsample(ho, max_pairs, seed) for name, ho in split.heldout.items()}
    slices = slice_masks(rec, ev)
    out_rows = []
    all_q = np.unique(np.concatenate([ho.query_rows for ho in sources.values()] or [np.zeros(0, int)]))
    for vi, v in enumerate(vlist):
        log(f"[{vi + 1}/{len(vlist)}] {v.label}: top-{k} of {len(all_q):,} query products")
        ranked_all = v.recommend(ev, all_q, k, diff_code=diff_code)
        pos = {int(q): i for i, q in enumerate(all_q)}
        for name, ho in sources.items():
            idx = np.fromiter((pos[int(q)] for q in ho.query_rows), dtype=np.int64, count=len(ho))
            ranked = ranked_all[idx]
            m = per_query_metrics(ranked, ho.target_rows, k)
            cp = category_precision_at_k(ranked, ho.query_rows, cat_codes)
            for sl, side_mask in slices.items():
                if side_mask is None:
                    sel = np.ones(len(ho), dtype=bool)
                else:
                    side, mask = side_mask
                    sel = mask[ho.query_rows if side == "query" else ho.target_rows]
                g = ho.groups[sel]
                uq = np.unique(ho.query_rows[sel])
                out_rows.append(
                    {
                        "variant": v.label,
                        "fusion": v.fusion,
                        "modalities": list(v.modalities),
                        "fallback": list(v.fallback) if v.fallback else None,
                        "source": name,
                        "slice": sl,
                        "n": int(sel.sum()),
                        "n_groups": int(len(np.unique(g.astype(str)))) if sel.any() else 0,
                        "hit_rate": _metric_block(m["hit"][sel], g, n_boot, alpha, seed),
                        "mrr": _metric_block(m["rr"][sel], g, n_boot, alpha, seed),
                        "ndcg": _metric_block(m["ndcg"][sel], g, n_boot, alpha, seed),
                        "category_precision": _metric_block(cp[sel], g, n_boot, alpha, seed),
                        "coverage": catalog_coverage(ranked_all[[pos[int(q)] for q in uq]], len(catalog))
                        if len(uq)
                        else math.nan,
                    }
                )
    log.close()
    refs = [v.label for v in vlist if isinstance(v, Reference)]
    flags = slice_flags(out_rows, metric="hit_rate", references=refs)
    coverage = _target_coverage(sources, ev, catalog)
    return {
        "kind": "retrieval",
        "flags": flags,
        "click_coverage": coverage,
        "config": {
            "k": k,
            "test_fraction": test_fraction,
            "seed": seed,
            "n_boot": n_boot,
            "alpha": alpha,
            "max_pairs": max_pairs,
            "exclude_group": exclude_group,
            "protocol": split.info.get("protocol", protocol),
            "variants": [v.as_dict() for v in vlist],
            "prod2vec": asdict(prod2vec) if prod2vec is not None else asdict(rec.prod2vec)
            if hasattr(rec, "prod2vec")
            else None,
            "catalog": {"source": catalog.source, "n_products": len(catalog)},
            "modalities": {
                m: {"spec": e.spec, "n_present": e.n_present}
                for m, e in ev.modality_data().items()
            },
            "bootstrap_unit": {"sessions": "held-out session", "pairs": "query product"},
        },
        "split": {**split.info, "leak_check": leak},
        "heldout": {
            name: {"n": len(ho), "n_groups": int(len(np.unique(ho.groups.astype(str)))), **ho.info}
            for name, ho in sources.items()
        },
        "rows": out_rows,
        "seconds": time.perf_counter() - t0,
    }


def _target_coverage(sources: Mapping[str, HeldOut], ev: Any, catalog: Any) -> dict:
    """Share of queries, targets and catalog products without a (retrained) click vector.

    With an honest protocol the targets' share is close to the catalog's; a much larger one
    means the split itself marks the answers (see :mod:`prodfusion.evaluation.protocol`).
    """
    if "clicks" not in ev.embeddings_:
        return {}
    has = np.asarray(ev.embeddings_["clicks"].mask, dtype=bool)
    out = {"catalog_no_clicks": float(1.0 - has.mean()) if len(has) else math.nan}
    for name, ho in sources.items():
        out[name] = {
            "queries_no_clicks": float(1.0 - has[ho.query_rows].mean()) if len(ho) else math.nan,
            "targets_no_clicks": float(1.0 - has[ho.target_rows].mean()) if len(ho) else math.nan,
        }
    return out


class _Progress:
    """Messages for long steps: a tqdm line when ``True``, a callback, or nothing."""

    def __init__(self, progress: bool | Callable) -> None:
        self.progress = progress

    def __call__(self, msg: str) -> None:
        if callable(self.progress):
            self.progress(msg)
        elif self.progress:
            import sys

            from tqdm.auto import tqdm

            tqdm.write(f"[evaluate] {msg}", file=sys.stderr)

    def close(self) -> None:
        pass
