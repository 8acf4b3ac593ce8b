"""The A/B report: CTR and jump rate per variant and per category, with intervals and tests.

Definitions (one *impression* = one recommendation list shown, identified by its ``request_id``):

* ``views``  — impressions with a ``view`` event;
* ``clicks`` — of those, impressions with at least one ``click`` (``click_events`` counts all);
* ``jumps``  — of those, impressions with at least one ``jump`` (left for the merchant);
* ``ctr = clicks / views`` and ``jr = jumps / views``: proportions, so the Wilson interval
  and the two-proportion z-test of :mod:`prodfusion.evaluation.stats` apply;
* every non-control variant is compared with the control: difference, its 95 % interval,
  relative lift (``rate_b / rate_a - 1``), z and two-sided p-value;
* ``srm``: chi-square of distinct viewing visitors per variant (since the current allocation
  took effect) against the allocated shares, flagged below p = 0.001 (a mismatch means the
  assignment or the logging is broken, and the comparison cannot be trusted).

* ``excluded``: quarantined events (request id that does not verify, variant mismatch,
  click target not in the list served, later than the attribution window;
  :mod:`prodfusion.service.attribution`), counted by reason, type and variant — stored, never
  in a rate; ``repeated_views``: further views of an impression already counted (one per
  visitor and request id);
* ``daily``: views, clicks, jumps, CTR and JR per variant and UTC day of the impression.

An impression is one (visitor, ``request_id``) with a view.

This is the layout of Table IV of the paper (CTR and JR per variant), on your own traffic.
"""

from __future__ import annotations

import math
from collections import defaultdict

from prodfusion._checks import check_real, to_jsonable
from prodfusion.errors import ParameterError
from prodfusion.evaluation.stats import SRM_ALPHA, proportion_ci, srm_check, two_proportion_test

__all__ = ["experiment_report", "format_report", "NO_CATEGORY"]

NO_CATEGORY = "(none)"


def _rates(c: dict, alpha: float) -> dict:
    views = c["views"]
    out = dict(c)
    for num, rate in (("clicks", "ctr"), ("jumps", "jr")):
        out[rate] = c[num] / views if views else math.nan
        out[f"{rate}_ci"] = list(proportion_ci(c[num], views, alpha=alpha))
    return out


def _compare(rows: list[dict], control: str, alpha: float) -> None:
    ctrl = next((r for r in rows if r["variant"] == control), None)
    for r in rows:
        if ctrl is None or r["variant"] == control:
            r["ctr_vs_control"] = None
            r["jr_vs_control"] = None
            continue
        r["ctr_vs_control"] = two_proportion_test(
            ctrl["clicks"], ctrl["views"], r["clicks"], r["views"], alpha=alpha)
        r["jr_vs_control"] = two_proportion_test(
            ctrl["jumps"], ctrl["views"], r["jumps"], r["views"], alpha=alpha)


def experiment_report(store, experiment: str, *, control: str | None = None,
                      alpha: float = 0.05) -> dict | None:
    """Build the report of ``experiment`` from the event store (None if it is unknown).

    Parameters
    ----------
    store : EventStore
    experiment : str
    control : str, optional
        Variant to compare with; default: the first variant of the latest allocation.
    alpha : float
        1 − confidence level of the intervals.

    Returns
    -------
    dict
        ``experiment``, ``control``, ``allocation`` (version, shares, since), ``variants`` (one
        row per variant: counts, rates, intervals, comparisons), ``categories`` (the same per
        category of the viewed product), ``srm``, ``without_view`` and ``definitions``.
        Undefined numbers are None.
    """
    check_real(alpha, "alpha", "experiment_report() (CLI: --alpha)", low=0, high=1,
               low_open=True, high_open=True, expected="a float in (0, 1), e.g. 0.05")
    alloc = store.latest_allocation(experiment)
    rows = store.impressions(experiment)
    if alloc is None and not rows:
        return None
    names = list(alloc.names) if alloc else []
    for r in rows:
        if r["variant"] not in names:
            names.append(r["variant"])
    if control is not None and control not in names:
        raise ParameterError(f"control {control!r} (CLI: --control) is not a variant of "
                             f"experiment {experiment!r}; it has {names}.")
    control = control or (names[0] if names else None)
    zero = dict(views=0, clicks=0, jumps=0, click_events=0, jump_events=0)
    per_variant = {n: dict(zero) for n in names}
    per_cat: dict[str, dict[str, dict]] = defaultdict(lambda: {n: dict(zero) for n in names})
    without_view = repeated_views = 0
    for r in rows:
        cat = r["category"] if r["category"] is not None else NO_CATEGORY
        without_view += r["without_view"]
        repeated_views += r.get("repeated_views", 0)
        for key in zero:
            per_variant[r["variant"]][key] += r[key]
            per_cat[cat][r["variant"]][key] += r[key]
    variants = [_rates({"variant": n, **per_variant[n]}, alpha) for n in names]
    _compare(variants, control, alpha)
    categories = []
    for cat in sorted(per_cat):
        vrows = [_rates({"variant": n, **per_cat[cat][n]}, alpha) for n in names]
        _compare(vrows, control, alpha)
        categories.append({"category": cat, "variants": vrows})

    srm = None
    if alloc is not None and len(alloc.names) >= 2:
        shares = alloc.shares()
        live = [n for n in alloc.names if shares[n] > 0]
        visitors = store.visitors(experiment, since=alloc.created_at)
        observed = {n: visitors.get(n, 0) for n in alloc.names}
        if len(live) >= 2:
            res = srm_check([observed[n] for n in live], [shares[n] for n in live])
        else:
            res = dict(chi2=math.nan, p_value=math.nan, flagged=False)
        unexpected = sum(observed[n] for n in alloc.names if shares[n] == 0)
        srm = {"unit": "visitors with a view since the allocation took effect",
               "observed": observed, "expected_share": shares, "alpha": SRM_ALPHA,
               **res, "flagged": bool(res["flagged"] or unexpected > 0)}
    report = {
        "experiment": experiment,
        "control": control,
        "alpha": alpha,
        "allocation": None if alloc is None else {
            "version": alloc.version, "salt_sha256_prefix": _salt_hint(alloc.salt),
            "shares": alloc.shares(), "weights": dict(zip(alloc.names, alloc.weights, strict=True)),
            "since": alloc.created_at,
        },
        "variants": variants,
        "categories": categories,
        "srm": srm,
        "without_view": without_view,
        "repeated_views": repeated_views,
        "excluded": _excluded(store.excluded(experiment)),
        "daily": _daily(store.daily(experiment), alpha),
        "definitions": {
            "views": "impressions (visitor, request_id) with a verified view event",
            "clicks": "of those, impressions with >= 1 verified click",
            "jumps": "of those, impressions with >= 1 verified jump",
            "excluded": "quarantined events (unverified request id, variant mismatch, click "
                        "target not served, late): stored, in no rate",
            "ctr": "clicks / views", "jr": "jumps / views",
            "ci": f"Wilson {100 * (1 - alpha):g}% interval",
            "test": "two-sided two-proportion z-test against the control (pooled SE)",
        },
    }
    return to_jsonable(report)


def _excluded(rows: list[dict]) -> dict:
    by_reason: dict[str, int] = defaultdict(int)
    by_variant: dict[str, int] = defaultdict(int)
    by_type: dict[str, int] = defaultdict(int)
    for r in rows:
        by_reason[r["reason"]] += r["events"]
        by_variant[r["variant"]] += r["events"]
        by_type[r["type"]] += r["events"]
    return {"total": sum(by_reason.values()), "by_reason": dict(by_reason),
            "by_type": dict(by_type), "by_variant": dict(by_variant), "rows": rows}


def _daily(rows: list[dict], alpha: float) -> list[dict]:
    import datetime as dt

    out = []
    for r in rows:
        d = dt.date(1970, 1, 1) + dt.timedelta(days=r["day"])
        out.append(_rates({"date": d.isoformat(), "variant": r["variant"], "views": r["views"],
                           "clicks": r["clicks"], "jumps": r["jumps"]}, alpha))
    return out


def _salt_hint(salt: str) -> str:
    import hashlib

    # The salt itself is not published (it would let anybody predict assignments).
    return hashlib.sha256(salt.encode("utf-8")).hexdigest()[:8]


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _ci(ci) -> str:
    if not ci or ci[0] is None:
        return "-"
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def _cmp(c) -> str:
    if not c:
        return "(control)" if c is None else "-"
    lift = "-" if c.get("rel_lift") is None else f"{100 * c['rel_lift']:+.1f}%"
    p = "-" if c.get("p_value") is None else f"{c['p_value']:.3g}"
    return f"{lift} p={p}"


def format_report(report: dict) -> str:
    """The report as a plain-text table (what ``prodfusion ab report`` prints)."""
    head = ["category", "variant", "views", "clicks", "jumps", "CTR", "CTR 95% CI", "CTR lift",
            "JR", "JR 95% CI", "JR lift"]
    lines = []

    def add(cat: str, r: dict) -> None:
        lines.append([cat, r["variant"], str(r["views"]), str(r["clicks"]), str(r["jumps"]),
                      _pct(r["ctr"]), _ci(r["ctr_ci"]), _cmp(r["ctr_vs_control"]),
                      _pct(r["jr"]), _ci(r["jr_ci"]), _cmp(r["jr_vs_control"])])

    for r in report["variants"]:
        add("(all)", r)
    for c in report["categories"]:
        for r in c["variants"]:
            add(c["category"], r)
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [f"Experiment {report['experiment']!r} (control: {report['control']})", "",
           fmt.format(*head).rstrip(), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row).rstrip() for row in lines]
    srm = report.get("srm")
    if srm:
        obs = ", ".join(f"{k}={v}" for k, v in srm["observed"].items())
        exp = ", ".join(f"{k}={v:.2%}" for k, v in srm["expected_share"].items())
        chi2 = "-" if srm["chi2"] is None else f"{srm['chi2']:.3f}"
        p = "-" if srm["p_value"] is None else f"{srm['p_value']:.3g}"
        verdict = "MISMATCH: do not trust the comparison" if srm["flagged"] else "ok"
        out += ["", f"Sample ratio: visitors {obs}; expected {exp}; chi2={chi2} p={p} -> {verdict}"]
    if report.get("without_view"):
        out.append(f"{report['without_view']} impression(s) had clicks/jumps but no view event "
                   "(not counted).")
    if report.get("repeated_views"):
        out.append(f"{report['repeated_views']} repeated view(s) of an impression already "
                   "counted (one per visitor and request id).")
    exc = report.get("excluded") or {}
    if exc.get("total"):
        why = ", ".join(f"{k} {v}" for k, v in sorted(exc["by_reason"].items()))
        per = ", ".join(f"{k} {v}" for k, v in sorted(exc["by_variant"].items()))
        out.append(f"Excluded: {exc['total']} quarantined event(s), not counted anywhere above "
                   f"({why}; by variant: {per}).")
    else:
        out.append("Excluded: 0 quarantined events.")
    return "\n".join(out)
