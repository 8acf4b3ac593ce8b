"""The honest held-out protocol: leave-last-out splits, slices of target and query, flags.

Why: when whole sessions are held out, products seen *only* in held-out sessions get no click
vector, so held-out targets lack clicks far more often than the catalog does (61–91 % against
17–20 % on the data of issue 10). A fusion that ranks products lacking a modality higher then
"wins" by recognising held-out products. Leave-last-out keeps the click model's coverage of
the targets what it is in production:

* **sessions** — the latest ``test_fraction`` of sessions (by the time of their first event;
  by a seeded hash without times) are test sessions; the *last transition* of each is the
  test case, and everything before it (the session minus its last click, when ≥ 2 clicks are
  left) stays in the training corpus, keyed ``"h:<session>"``;
* **pairs** (no time, e.g. co-purchases) — a seeded ``test_fraction`` of the products with at
  least two distinct partners are test queries; one of each query's pairs (chosen by a seeded
  hash) is held out, both directions, and every other pair stays in training.

**A catalog made of the log's own products** (forty-fourth session). Where the catalog lists
only products someone clicked (a catalog of viewed items), a product whose only clicks are
held out would not have been in it when the model was built; under leave-last-out it is
there, without training clicks, and far more often a target than the catalog's other
products (DIGINETICA's viewed items: 62 % of the held-out targets against 10 % of the
catalog), so a fusion — and a tuning — can learn to recognise it. :func:`log_catalog_cases`
drops the held-out cases whose target has no training interaction where the split looks
like that (``"leave-last-out"``: at least :data:`LOG_CATALOG_SHARE` of the targets, 20 or
more, and :data:`LOG_CATALOG_RATIO` times the catalog's share; ``"leave-last-out-log-catalog"``
always, ``"leave-last-out-all-cases"`` never: the rule until then). Those products stay
candidates (click-less, never a target); a catalog from a product feed, whose products
without clicks are many, keeps every case.

Every metric is also reported by slice of the **query** and of the **target** (has training
clicks / has none; has an image / has none), and :func:`slice_flags` flags a configuration
whose gain over the best single modality or reference baseline comes from one slice only.
:func:`paired_differences` says by how much a fused configuration beats (or trails) those
comparators on the *same* held-out cases, with a paired bootstrap interval: two unpaired
intervals that overlap say little, since both configurations see the same cases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prodfusion._checks import PROTOCOLS

if TYPE_CHECKING:
    from prodfusion.data.sessions import Sessions

__all__ = ["PROTOCOLS", "leave_last_out_sessions", "leave_one_out_pairs", "log_catalog_cases",
           "log_catalog_line",
           "slice_masks", "slice_flags", "paired_differences", "SLICE_PARTITIONS",
           "LOG_CATALOG_SHARE", "LOG_CATALOG_RATIO", "LOG_CATALOG_MIN_CASES"]

# PROTOCOLS (listed in prodfusion._checks, so that the CLI need not load this module):
# "leave-last-out-v24" is "leave-last-out" as it was until the twenty-fourth session, kept to
# reproduce the figures made with it: a held-out session's prefix trained with its target (a
# revisit, [a, b, a] held out as b → a, then co-occurred in training), co-interaction pairs
# equal to a held-out session transition trained too, and pair queries were the products with
# two partners in the file's first column only.

# "leave-last-out-all-cases" is "leave-last-out" until the forty-fourth session (every held-out
# case kept, whatever the catalog); "leave-last-out-log-catalog" drops the cases of
# log_catalog_cases() whatever the shares say.

#: :func:`log_catalog_cases`: the split looks like one of a catalog made of the log's own
#: products where at least this share of the held-out targets have no training interaction …
LOG_CATALOG_SHARE = 0.25
#: … and that share is at least this many times the catalog's …
LOG_CATALOG_RATIO = 3.0
#: … and they are at least this many cases (fewer say nothing of the catalog, and cannot
#: teach a tuning much; the tuner's smallest slice, ``min_slice_cases``, is as many).
LOG_CATALOG_MIN_CASES = 20

#: Pairs of complementary slices; a gain made in only one of a pair is flagged.
SLICE_PARTITIONS: tuple[tuple[str, str], ...] = (
    ("query: with training clicks", "query: no training clicks"),
    ("target: with training clicks", "target: no training clicks"),
    ("query: with image", "query: no image"),
    ("target: with image", "target: no image"),
)


def leave_last_out_sessions(te: Sessions, catalog: Any, *, revisits: str = "drop-target"):
    """Test cases (last transition of each session) and the prefixes that stay in training.

    Returns ``(query_rows, target_rows, groups, prefixes, info)``; ``prefixes`` are Sessions
    (same keys) holding every click but the last, for sessions left with at least 2 clicks.
    A test session's prefix trains **without its target** (``revisits="drop-target"``): in
    ``[a, b, a]`` held out as ``b → a`` the prefix ``[a, b]`` would otherwise put the held-out
    pair in training (the answer, from the very session being scored; on DIGINETICA's views
    17 % of the test cases go back to a product viewed earlier in their session).
    ``revisits="keep"`` is the rule before the twenty-fifth session.
    """
    from prodfusion.data.sessions import Sessions

    f = te.frame
    lengths = te.lengths
    ends = np.cumsum(lengths) - 1
    keys = np.asarray(te.keys, dtype=object)
    pid = f["product_id"].to_numpy()
    a, b = pid[ends - 1], pid[ends]
    ok_len = lengths >= 2
    qa, oka = catalog.lookup(list(a))
    qb, okb = catalog.lookup(list(b))
    ok = ok_len & oka & okb & (a != b)
    keep_len = np.repeat(lengths - 1, lengths)
    pos = f["position"].to_numpy()
    in_prefix = pos < keep_len
    n_removed = 0
    if revisits == "drop-target":  # the target's earlier clicks of a scored session
        target = np.repeat(np.where(ok, b, None), lengths)
        hit = in_prefix & (pid == target)
        n_removed = int(hit.sum())
        in_prefix &= ~hit
    kept = pl.Series(in_prefix)
    prefixes = f.filter(kept)
    n_left = prefixes.group_by("session").agg(pl.col("product_id").n_unique().alias("n"))
    prefixes = prefixes.filter(pl.col("session").is_in(
        n_left.filter(pl.col("n") >= 2)["session"].implode()))  # a co-click needs two
    prefixes = Sessions(prefixes.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("session").alias("position")))
    info = {
        "n_revisit_target_clicks_removed_from_prefixes": n_removed,
        "n_test_cases": int(ok.sum()),
        "n_prefix_sessions_in_training": len(prefixes),
        "n_prefix_clicks_in_training": prefixes.n_clicks,
        "n_unknown_products": int((ok_len & ~(oka & okb)).sum()),
    }
    return qa[ok], qb[ok], np.asarray(["s:" + str(k) for k in keys[ok]], dtype=object), prefixes, info


def log_catalog_cases(heldout: dict, train: Sessions | None, catalog: Any, *,
                      mode: str = "auto", clicked: np.ndarray | None = None
                      ) -> tuple[dict, dict]:
    """Drop the held-out cases whose target has no training interaction where the catalog
    looks made of the log's own products (module docstring).

    ``mode``: ``"auto"`` drops where at least :data:`LOG_CATALOG_SHARE` of the targets (every
    source together), and :data:`LOG_CATALOG_MIN_CASES` of them, have no interaction in
    ``train`` and that share is at least :data:`LOG_CATALOG_RATIO` times the catalog's;
    ``"drop"`` always; ``"keep"`` never.
    The catalog's share is of the products without an interaction in ``train``; given
    ``clicked`` (bool per catalog row: clicked in the log the model was built from, e.g. its
    click counts > 0), the products that log clicks but this split's data never names — an
    earlier window of the same log (``tune --rolling``, ``benchmarks/rolling_origin.py``):
    products first clicked after it — are left out of that share, so an earlier window
    decides as a split of the whole log would. (A tuning's validation splits are such a
    window, the test part their later log: whether the catalog is made of the log's products
    is a fact about the whole log, so the decision reads which products the whole log
    clicks — never which held-out case goes where; what it leaves out is decided by the
    fitting part alone.)
    Returns ``(heldout, info)``: the sources with the kept cases (a source left without
    any is left out) and what was measured and done.

    Raises
    ------
    DataError
        Where no held-out case would be left.

    Examples
    --------
    A catalog of the seven products the log holds; the held-out target ``g`` is clicked
    nowhere else, the only one of the catalog without training clicks (1 in 7, against 1 of
    the 2 targets) — one case, too few for ``"auto"`` to conclude; ``"drop"`` leaves it out:

    >>> from types import SimpleNamespace
    >>> from prodfusion.data.sessions import Sessions
    >>> from prodfusion.evaluation.split import HeldOut
    >>> ids = list("abcdefg")
    >>> cat = SimpleNamespace(ids=np.array(ids, dtype=object), lookup=lambda x: (
    ...     np.array([ids.index(i) for i in x]), np.ones(len(x), bool)))
    >>> train = Sessions.from_lists([["a", "b", "c"], ["d", "e", "f"]])
    >>> ho = HeldOut("sessions", np.array([0, 3]), np.array([1, 6]), np.array(["s:1", "s:2"]))
    >>> log_catalog_cases({"sessions": ho}, train, cat)[1]["applied"]
    False
    >>> kept, info = log_catalog_cases({"sessions": ho}, train, cat, mode="drop")
    >>> kept["sessions"].target_rows.tolist(), info["applied"], info["n_cases_dropped"]
    ([1], True, {'sessions': 1})
    """
    from prodfusion.errors import DataError

    n = len(catalog.ids)
    seen = np.zeros(n, dtype=bool)
    if train is not None and len(train):
        counts = train.product_counts()
        rows, ok = catalog.lookup(list(counts))
        seen[np.asarray(rows)[np.asarray(ok, dtype=bool)]] = True
    targets = np.concatenate([ho.target_rows for ho in heldout.values()]
                             or [np.zeros(0, np.int64)]).astype(np.int64)
    n_unseen = int((~seen[targets]).sum())
    t_share = n_unseen / len(targets) if len(targets) else 0.0
    c_share = float((~seen).mean()) if n else 0.0
    c_rule, later_out = c_share, False
    if clicked is not None and len(clicked) == n:
        named = seen.copy()  # the products this split's data names
        for ho in heldout.values():
            named[ho.query_rows] = named[ho.target_rows] = True
        later = np.asarray(clicked, dtype=bool) & ~named  # clicked after this data only
        if later.any() and (~later).any():
            c_rule, later_out = float((~seen[~later]).mean()), True
    applied = mode == "drop" or (mode == "auto" and n_unseen >= LOG_CATALOG_MIN_CASES
                                 and t_share >= LOG_CATALOG_SHARE
                                 and t_share >= LOG_CATALOG_RATIO * c_rule)
    info = {"mode": mode, "targets_without_training_interactions": t_share,
            "catalog_without_training_interactions": c_share,
            "catalog_share_compared": c_rule, "later_products_left_out": later_out,
            "applied": bool(applied), "n_cases_dropped": {name: 0 for name in heldout}}
    if not applied:
        return heldout, info
    out = {}
    for name, ho in heldout.items():
        keep = seen[ho.target_rows]
        info["n_cases_dropped"][name] = int((~keep).sum())
        if keep.any():
            out[name] = ho.take(np.flatnonzero(keep))
    if not out:
        raise DataError(
            f"No held-out case is left: the target of every one ({len(targets):,}) has no "
            "interaction outside the held-out part, so a catalog made of the log's own "
            "products would not have held it when the model was built. Pass more "
            "interactions, or --protocol leave-last-out-all-cases to score them anyway (a "
            "catalog from a product feed lists products nobody clicked yet).")
    return out, info


def log_catalog_line(info: dict | None, part: str = "held-out") -> str | None:
    """One line saying which cases :func:`log_catalog_cases` left out and why (what
    ``evaluate``, ``replay`` and the tuning's validation splits print), or None."""
    if not info or not info.get("applied"):
        return None
    n = sum(info["n_cases_dropped"].values())
    later = " (less the products the log clicks only later)" \
        if info.get("later_products_left_out") else ""
    return (f"{n:,} {part} case(s) not scored: their target has no interaction outside the "
            f"{part} part ({100 * info['targets_without_training_interactions']:.0f}% of the "
            f"targets against {100 * info.get('catalog_share_compared', info['catalog_without_training_interactions']):.1f}% "
            f"of the catalog{later}), so a catalog made of the log's own products would not "
            "have held it (--protocol leave-last-out-all-cases scores them)")


def pair_key(x: str, y: str) -> str:
    """The unordered key of a pair of product ids.

    >>> pair_key("b", "a") == pair_key("a", "b")
    True
    """
    return x + "\x1f" + y if x < y else y + "\x1f" + x


def leave_one_out_pairs(pf: pl.DataFrame, test_fraction: float, seed: int, hash_unit, *,
                        undirected: bool = True):
    """Which pair rows are held out, and the held-out ``(a, b)`` per test query product.

    ``pf`` has columns ``session``, ``a``, ``b`` (one row per pair). Products with at least two
    distinct partners are eligible — counted over both columns (``undirected``; before the
    twenty-fifth session over the first column only, so a product only ever in the second
    was never a query); a seeded ``test_fraction`` of them are test queries, and for each the
    pair with the smallest seeded hash of its unordered key is held out.
    Returns ``(is_test (rows), test_a, test_b, info)``.
    """
    a = pf["a"].to_list()
    b = pf["b"].to_list()
    keys = [pair_key(x, y) for x, y in zip(a, b, strict=True)]
    rows = keys  # the file's rows, which is_test marks
    if undirected:  # each pair as seen from both of its products
        a, b, keys = a + b, b + a, keys + keys
    frame = pl.DataFrame({"a": a, "b": b, "key": keys,
                          "h": hash_unit(keys, seed + 1)}).unique(["a", "key"], keep="first",
                                                                    maintain_order=True)
    n_partners = frame.group_by("a").agg(pl.len().alias("n"))
    eligible = n_partners.filter(pl.col("n") >= 2)["a"].to_list()
    chosen = [p for p, u in zip(eligible, hash_unit(eligible, seed), strict=True)
              if u < test_fraction]
    picked = (frame.filter(pl.col("a").is_in(pl.Series(chosen, dtype=pl.Utf8).implode()))
              .sort(["a", "h"]).group_by("a", maintain_order=True).first())
    test_keys = set(picked["key"].to_list())
    is_test = np.fromiter((k in test_keys for k in rows), dtype=bool, count=len(rows))
    info = {"n_eligible_query_products": len(eligible), "n_test_query_products": len(chosen)}
    return is_test, np.asarray(picked["a"].to_list(), dtype=object), \
        np.asarray(picked["b"].to_list(), dtype=object), info


def slice_masks(rec: Any, ev: Any) -> dict[str, tuple[str, np.ndarray] | None]:
    """``slice name -> (side, mask over catalog rows)`` (``None`` for ``"all"``).

    ``side`` is ``"query"`` or ``"target"``. Click slices use the *retrained* click vectors
    (``ev``); without any, every product is "no training clicks" when the model has clicks.
    """
    n = len(rec.catalog)
    out: dict[str, tuple[str, np.ndarray] | None] = {"all": None}
    clicks = None
    if "clicks" in ev.embeddings_:
        clicks = np.asarray(ev.embeddings_["clicks"].mask, dtype=bool)
    elif "clicks" in rec.embeddings_:
        clicks = np.zeros(n, dtype=bool)
    image = np.asarray(ev.embeddings_["image"].mask, dtype=bool) if "image" in ev.embeddings_ \
        else None
    for side in ("query", "target"):
        if clicks is not None:
            out[f"{side}: with training clicks"] = (side, clicks)
            out[f"{side}: no training clicks"] = (side, ~clicks)
        if image is not None:
            out[f"{side}: with image"] = (side, image)
            out[f"{side}: no image"] = (side, ~image)
    return out


def _val(row: Mapping, metric: str) -> float:
    v = row[metric]["value"]
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def slice_flags(rows: Sequence[Mapping], *, metric: str = "hit_rate",
                references: Sequence[str] = ()) -> list[dict]:
    """Configurations whose overall gain over the best comparator comes from one slice.

    The comparator of a configuration is the best (overall ``metric``) of the single-modality
    configurations and the ``references`` (baselines), other than itself. Its gain ``G`` is
    decomposed over each pair of complementary slices (``SLICE_PARTITIONS``):
    ``G = Σ_s (n_s / n) · (m_s − m_ref,s)``. A flag is raised when ``G ≥ 0.5 / n`` (half a
    case: tie-aware figures differ by fractions of one otherwise) and, in some pair,
    only one slice contributes a positive share (the other contributes ≤ 0).
    """
    flags = []
    for src in dict.fromkeys(r["source"] for r in rows):
        by = {(r["variant"], r["slice"]): r for r in rows if r["source"] == src}
        variants = list(dict.fromkeys(r["variant"] for r in rows if r["source"] == src))
        comparators = [v for v in variants
                       if v in references or len(by[(v, "all")].get("modalities") or ()) == 1]
        for v in variants:
            cands = [c for c in comparators if c != v]
            if not cands:
                continue
            ref = max(cands, key=lambda c: _val(by[(c, "all")], metric))
            n_all = by[(v, "all")]["n"]
            gain = _val(by[(v, "all")], metric) - _val(by[(ref, "all")], metric)
            if not n_all or gain < 0.5 / n_all:  # under half a case: tie-aware rounding,
                continue                             # not a gain that could come from a slice
            for pair in SLICE_PARTITIONS:
                if any((v, s) not in by or (ref, s) not in by or not by[(v, s)]["n"]
                       for s in pair):
                    continue  # an empty slice: the gain cannot come from "one of two" there
                contrib = {s: by[(v, s)]["n"] / n_all
                           * (_val(by[(v, s)], metric) - _val(by[(ref, s)], metric)) for s in pair}
                pos = [s for s in pair if contrib[s] > 1e-12]
                if len(pos) == 1:
                    other = next(s for s in pair if s != pos[0])
                    flags.append({
                        "source": src, "variant": v, "comparator": ref, "metric": metric,
                        "gain": gain, "slice": pos[0], "slice_contribution": contrib[pos[0]],
                        "other_slice": other, "other_contribution": contrib[other],
                    })
    return flags


def _comparators(rows: Sequence[Mapping], src: str, references: Sequence[str],
                 metric: str, sl: str = "all") -> tuple[list[str], dict[str, str]]:
    """``(fused variants, {kind: comparator})``: the best single modality and the best
    reference baseline of one source (by ``metric`` in slice ``sl``)."""
    by = {r["variant"]: r for r in rows if r["source"] == src and r["slice"] == sl}
    singles = [v for v, r in by.items() if v not in references
               and len(r.get("modalities") or ()) == 1]
    refs = [v for v in by if v in references]
    fused = [v for v in by if v not in references and v not in singles]
    comp = {}
    for kind, cands in (("best single modality", singles), ("best reference", refs)):
        if cands:
            comp[kind] = max(cands, key=lambda c: _val(by[c], metric))
    return fused, comp


def paired_differences(rows: Sequence[Mapping], per_case: Mapping[tuple[str, str], Mapping], *,
                       references: Sequence[str] = (), metric: str = "ndcg",
                       n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> list[dict]:
    """Each fused configuration minus the best single modality and the best reference, paired.

    ``rows`` are :func:`~prodfusion.evaluation.retrieval.evaluate_retrieval`'s rows (they
    name the comparators: the single-modality configuration and the reference baseline with
    the best overall ``metric`` per source, and in each slice also the best of that slice
    where it is another one — kind ``"… in this slice"``: the bar "at least the best single
    modality in every slice"); ``per_case[(variant, source)]`` holds that
    configuration's per-case ``hit`` and ``ndcg`` arrays, the cases' bootstrap ``groups`` and
    ``slices`` (``{slice name: boolean selection}``), in the same case order for every
    configuration; optionally ``tie_aware`` (whether ``hit`` / ``ndcg`` count ties at their
    mean rank; default true) and ``served`` (the same arrays of the lists as served): two
    configurations scored differently — one searched approximately is scored as served, the
    references tie-aware — are both compared as served (the row's ``ties``: ``"as served"``),
    so neither gains from how ties are counted. Each row gives, per slice, the mean
    difference of HitRate and nDCG with a percentile bootstrap interval that resamples the
    same groups for both configurations
    (:func:`~prodfusion.evaluation.metrics.bootstrap_ci` of the per-case differences), the
    cases only one of the two finds (``only_variant``, ``only_comparator``: the discordant
    pairs of McNemar's test; with tie-aware hits, a case counts for the part by which one side
    finds it more often) and a verdict: ``"above"`` or ``"below"`` when the interval of
    the ``metric`` difference excludes 0, ``"equal"`` when every case scores the same,
    ``"inside the noise"`` otherwise.

    >>> rows = [{"variant": v, "source": "s", "slice": "all", "modalities": m,
    ...          "ndcg": {"value": x}} for v, m, x in
    ...         (("a", ["text"], 0.5), ("a+b", ["text", "image"], 0.6))]
    >>> g = np.arange(4)
    >>> pc = {("a", "s"): {"hit": np.array([1., 1, 0, 0]), "ndcg": np.array([1., .5, 0, 0]),
    ...                    "groups": g, "slices": {"all": np.ones(4, bool)}},
    ...       ("a+b", "s"): {"hit": np.array([1., 1, 1, 0]), "ndcg": np.array([1., 1, .4, 0]),
    ...                      "groups": g, "slices": {"all": np.ones(4, bool)}}}
    >>> d = paired_differences(rows, pc, n_boot=200)[0]
    >>> d["variant"], d["comparator"], round(d["ndcg"]["value"], 3), d["only_variant"], d["verdict"]
    ('a+b', 'a', 0.225, 1, 'inside the noise')
    """
    out = []
    for src in dict.fromkeys(r["source"] for r in rows):
        fused, comp = _comparators(rows, src, references, metric)
        pairs = {sl: _slice_comparators(rows, src, references, metric, sl, comp)
                 for sl in dict.fromkeys(r["slice"] for r in rows if r["source"] == src)}
        for v in fused:
            a = per_case.get((v, src))
            for sl, comps in pairs.items():
                sel = None if a is None else a["slices"].get(sl)
                if sel is None or not sel.any():
                    continue
                for kind, c in comps:
                    b = per_case.get((c, src))
                    if b is not None:
                        out.append({"source": src, "variant": v, "comparator": c, "kind": kind,
                                    "slice": sl, **_paired_row(a, b, sel, metric, n_boot,
                                                               alpha, seed)})
    return out


def _slice_comparators(rows: Sequence[Mapping], src: str, references: Sequence[str],
                       metric: str, sl: str, comp: Mapping[str, str]) -> list[tuple[str, str]]:
    """``[(kind, comparator)]`` of slice ``sl``: the overall ones (``comp``), and the slice's
    own best where another configuration scores higher there."""
    pairs = list(comp.items())
    if sl != "all":
        here = {r["variant"]: r for r in rows if r["source"] == src and r["slice"] == sl}
        for kind, c in _comparators(rows, src, references, metric, sl)[1].items():
            o = comp.get(kind)
            if o is None or _val(here[c], metric) > _val(here[o], metric) + 1e-12:
                pairs.append((kind + " in this slice", c))
    return pairs


def _paired_row(a: Mapping, b: Mapping, sel: np.ndarray, metric: str, n_boot: int,
                alpha: float, seed: int) -> dict:
    """The paired differences ``a − b`` over the cases ``sel`` (:func:`paired_differences`)."""
    from prodfusion.evaluation.metrics import bootstrap_ci

    g = a["groups"][sel]
    aware_a, aware_b = a.get("tie_aware", True), b.get("tie_aware", True)
    if aware_a != aware_b and "served" in a and "served" in b:  # compare alike
        a, b = a["served"], b["served"]
        aware_a = aware_b = False
    row: dict = {"n": int(sel.sum()), "ties": "mean" if aware_a and aware_b else
                 "as served" if not (aware_a or aware_b) else "mixed"}
    for m, name in (("hit", "hit_rate"), ("ndcg", "ndcg")):
        # rounded: tie-aware values of the same ranking may differ in the last bits
        diff = np.round(a[m][sel] - b[m][sel], 12)
        mean, lo, hi = bootstrap_ci(diff, g, n_boot=n_boot, alpha=alpha, seed=seed)
        row[name] = {"value": mean, "ci_lo": lo, "ci_hi": hi}
    # tie-aware hits are probabilities over the orders of the ties: a case counts for the
    # part by which one side finds it more often (the plain counts where hits are 0 or 1;
    # two configurations that rank alike count 0 / 0)
    dh = np.round(a["hit"][sel] - b["hit"][sel], 12)
    only_a = round(float(np.clip(dh, 0, None).sum()), 6)
    only_b = round(float(np.clip(-dh, 0, None).sum()), 6)
    row["only_variant"] = int(only_a) if only_a.is_integer() else round(only_a, 1)
    row["only_comparator"] = int(only_b) if only_b.is_integer() else round(only_b, 1)
    d = row["hit_rate" if metric == "hit_rate" else "ndcg"]
    row["verdict"] = ("equal" if d["ci_lo"] == d["ci_hi"] == 0 else "above" if d["ci_lo"] > 0
                      else "below" if d["ci_hi"] < 0 else "inside the noise")
    return row
