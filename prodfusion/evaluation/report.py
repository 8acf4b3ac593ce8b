"""Render evaluation results as ``report.md``, a self-contained ``report.html``, PNGs and JSON.

``write_report(results, out_dir)`` takes what :func:`~prodfusion.evaluation.evaluate_clustering`,
:func:`~prodfusion.evaluation.evaluate_retrieval` and :func:`~prodfusion.evaluation.replay`
return (one of them, a list, or a dict of them) and writes into ``out_dir``:

* ``results.json`` — every number and the exact configuration, plus ``meta`` (command line,
  machine, library versions, time), so two reports can be compared by script;
* ``report.md`` — the tables (the paper's Tables II–IV layout) linking the PNG figures;
* ``report.html`` — the same tables with the figures embedded as base64 data URIs: it opens
  offline, nothing is fetched from a CDN;
* the PNG figures (t-SNE map like the paper's Fig. 4, ARI bars, retrieval and CTR charts).

Examples
--------
>>> paths = write_report({"clustering": clu, "retrieval": ret}, "report/")  # doctest: +SKIP
>>> sorted(p.name for p in paths.values())[:2]                               # doctest: +SKIP
['ari_main.png', 'fig4_tsne.png']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodfusion._checks import to_jsonable
from prodfusion.errors import DataError, param_error
from prodfusion.evaluation.documents import (
    Table,
    _bold_max,
    _ci,
    _p,
    _pct,
    _pm,
    _report_meta,
    write_documents,
)
from prodfusion.evaluation.figures import _fig_ari, _fig_replay, _fig_retrieval, _fig_tsne

__all__ = ["write_report", "Table", "normalize_results", "to_jsonable"]

KINDS = ("clustering", "retrieval", "replay")


def normalize_results(results: Any) -> dict[str, dict]:
    """``{kind: result}`` from one result, a list of results, or a dict keyed by kind."""
    if isinstance(results, Mapping) and "kind" in results:
        items = [results]
    elif isinstance(results, Mapping):
        items = [v for k, v in results.items() if k in KINDS and v is not None]
        extra = set(results) - set(KINDS) - {"meta"}
        if extra:
            raise param_error("results", "write_report()", f"keys among {list(KINDS)}", sorted(extra))
    elif isinstance(results, Sequence) and not isinstance(results, str):
        items = list(results)
    else:
        raise param_error("results", "write_report()", "a result dict, a list or a dict of them",
                          type(results).__name__)
    out: dict[str, dict] = {}
    for r in items:
        if not isinstance(r, Mapping) or r.get("kind") not in KINDS:
            raise DataError(
                "write_report(): every result must be a dict returned by evaluate_clustering(), "
                "evaluate_retrieval() or replay() (with 'kind' among "
                f"{list(KINDS)}); got {type(r).__name__} with kind {getattr(r, 'get', lambda _: None)('kind')!r}."
            )
        out[r["kind"]] = dict(r)
    if not out:
        raise DataError("write_report(): no results to report.")
    return out


# --------------------------------------------------------------------------- sections
def _clustering_section(res: Mapping, out: Path, figs: dict) -> tuple[list, list[str]]:
    cfg = res["config"]
    cells = res["cells"]
    blocks: list = []
    intro = (
        f"Products of the N most frequent categories (at most {cfg['max_per_category']} per "
        f"category, sample seed {cfg['sample_seed']}; products: {cfg['products']}), fused "
        f"representation → t-SNE (2-D; {', '.join(res['tsne']['backends']) or '–'}, perplexity "
        f"{cfg['perplexity']}) → k-means++ (k = N) → ARI with the categories. Each cell: mean ± "
        f"std over seeds {cfg['seeds']}. 'direct': k-means++ on the fused representation "
        "without t-SNE (early: the fused vectors; intermediate/late: classical MDS of the fused "
        f"distance matrix). t-SNE: {res['tsne']['runs']} runs, {res['tsne']['seconds_total']:.0f} s "
        f"in all; whole section {res.get('seconds', float('nan')):.0f} s."
    )
    blocks.append(("p", intro))
    sets = res["sets"]
    blocks.append(
        Table(
            "Evaluated product sets",
            ["N", "products", "categories (size)"],
            [
                [str(s["n_categories"]), str(s["n_products"]),
                 ", ".join(f"{c} ({z})" for c, z in zip(s["categories"][:8], s["category_sizes"][:8], strict=False))
                 + (" …" if len(s["categories"]) > 8 else "")]
                for s in sets.values()
            ],
        )
    )
    ns = sorted({c["n_categories"] for c in cells})
    main_n = cfg.get("main_categories") or ns[0]
    fusions = list(dict.fromkeys(c["fusion"] for c in cells if c["n_categories"] == main_n))
    combos = list(dict.fromkeys("+".join(c["combo"]) for c in cells))

    def cell(n, combo, f, key="ari_tsne"):
        c = next((c for c in cells if c["n_categories"] == n and "+".join(c["combo"]) == combo
                  and c["fusion"] == f), None)
        return _pm(c[key]) if c and c.get(key) else "–"

    rows = [[combo] + [cell(main_n, combo, f) for f in fusions] for combo in combos]
    blocks.append(Table(
        f"Table II — ARI (t-SNE + k-means++), N = {main_n} categories",
        ["modalities"] + fusions, rows, bold=_bold_max(rows, range(1, len(fusions) + 1)),
        note="The tfidf reference is one representation (no fusion); it is shown in the "
             "intermediate column." if any(c.get("reference") for c in cells) else "",
    ))
    if cfg.get("direct"):
        rows = [[combo] + [cell(main_n, combo, f, "ari_direct") for f in fusions] for combo in combos]
        blocks.append(Table(
            f"ARI of k-means++ directly on the fused representation (no t-SNE), N = {main_n}",
            ["modalities"] + fusions, rows, bold=_bold_max(rows, range(1, len(fusions) + 1)),
        ))
    if len(ns) > 1:
        t3f = cfg.get("table3_fusions") or fusions
        rows = []
        for f in t3f:
            for combo in combos:
                rows.append([f"{f}: {combo}"] + [cell(n, combo, f) for n in ns])
        blocks.append(Table(
            "Table III — ARI (t-SNE + k-means++) by number of categories",
            ["fusion: modalities"] + [f"N = {n}" for n in ns], rows,
            bold=_bold_max(rows, range(1, len(ns) + 1)),
        ))
    if res.get("figure"):
        p = out / "fig4_tsne.png"
        _fig_tsne(res["figure"], p)
        figs["fig4_tsne"] = p
        blocks.append(("img", p.name, "Fig. 4 — t-SNE of the fused representation, coloured by category"))
    p = out / "ari_main.png"
    _fig_ari(cells, main_n, p)
    figs["ari_main"] = p
    blocks.append(("img", p.name, f"ARI by modality combination and fusion, N = {main_n}"))
    return blocks, []


def _minus(d: Mapping) -> str:
    """The comparator of a paired difference, marked when it is a slice's own best."""
    return d["comparator"] + (" (best in this slice)" if d["kind"].endswith("this slice") else "")


def _served_note(res: Mapping) -> tuple[str, str] | None:
    """The section's first paragraph: which row is the model as a site serves it, how it
    scores and how it compares (:func:`~prodfusion.evaluation.retrieval.served_summary`)."""
    from prodfusion.evaluation.retrieval import served_summary

    summary = served_summary(res)
    if not summary:
        return None
    k = res["config"]["k"]
    parts = []
    for s in summary:
        r = s["row"]
        vs = "; ".join(f"minus {_minus(d)} ({d['kind']}): {_ci(d['ndcg'], signed=True)}, "
                       f"{d['verdict']}" for d in s["paired"])
        parts.append(f"held-out {s['source']} ({r['n']:,} cases): HitRate@{k} "
                     f"{_ci(r['hit_rate'])}, nDCG@{k} {_ci(r['ndcg'])}"
                     + (f" — nDCG@{k} {vs}" if vs else ""))
    return ("p", f"**The model as served** is the row `{res['served']}` (its own fusion, "
                 "modalities and weighting, as `prodfusion similar` and the service rank): "
            + "; ".join(parts) + ".")


def _retrieval_section(res: Mapping, out: Path, figs: dict) -> tuple[list, list[str]]:
    cfg = res["config"]
    k = cfg["k"]
    blocks: list = []
    if (served := _served_note(res)) is not None:
        blocks.append(served)
    split = res["split"]
    parts = []
    for src in ("sessions", "pairs"):
        if src in split:
            s = split[src]
            if src == "sessions":
                parts.append(
                    f"sessions split {s['split']}: {s['n_train_sessions']:,} train / "
                    f"{s['n_test_sessions']:,} held-out sessions, {s['n_test_pairs']:,} held-out "
                    "consecutive pairs"
                )
            else:
                parts.append(
                    f"pairs split {s['split']}: {s['n_train_pairs']:,} train / {s['n_test_pairs']:,} "
                    f"held-out pairs ({s['n_test_pairs_seen_in_training_dropped']:,} held-out pairs "
                    "dropped because they co-occur in a training session)"
                )
    leak = split.get("leak_check", {})
    blocks.append(("p",
        f"Test fraction {cfg['test_fraction']}, k = {k}, seed {cfg['seed']}. " + "; ".join(parts)
        + f". Prod2Vec retrained on the training part only (leak check passed: "
        f"{leak.get('test_sessions_checked', 0):,} held-out sessions and "
        f"{leak.get('test_pairs_checked', 0):,} held-out pairs verified absent from training). "
        f"95% bootstrap intervals ({cfg['n_boot']} resamples) over held-out sessions (pairs: over "
        "query products). Category precision: share of the k shown that share the query's "
        "category (a configuration fusing the category modality raises it by construction). "
        "Coverage: share of the catalog shown at least once."
    ))
    if cfg.get("ties") == "mean":
        blocks.append(("p",
            "Ties: a held-out target tied with other candidates counts at the mean of its "
            "possible ranks (McSherry & Najork 2008; `tune` validates the same way), so the "
            "catalog's row order, which breaks ties in the lists served, neither helps nor "
            "hurts a configuration. The lists as served are compared in the last table "
            "(`--ties row` scores them throughout); category precision and coverage are of "
            "the lists served."))
    if cfg.get("one_per_group"):
        left = sum(ho.get("same_group_left_out", 0) for ho in res["heldout"].values())
        blocks.append(("p",
            "One product per group (`--one-per-group`): every configuration's lists hold at "
            "most one product of each group of the catalog's group column (its best ranked) "
            "and none of the query's own, as `similar` serves them so; a listed product of "
            "the target's group counts as a hit (the visitor reaches that product, by "
            f"whichever of its rows). {left:,} held-out case(s) whose target is in the "
            "query's own group (a visitor comparing one product's offers or variants) are "
            "left out: no such list holds them."))
    if (retired := _retired_note(cfg)) is not None:
        blocks.append(retired)
    if (lc := _log_catalog_note(split)) is not None:
        blocks.append(lc)
    cov = res.get("click_coverage") or {}
    for src in res["heldout"]:
        if src in cov:
            blocks.append(("p",
                f"Held-out {src}: {_pct(cov[src]['targets_no_clicks'], 1)} of targets and "
                f"{_pct(cov[src]['queries_no_clicks'], 1)} of queries have no training click "
                f"vector, against {_pct(cov['catalog_no_clicks'], 1)} of the catalog "
                f"(protocol: {cfg.get('protocol', 'whole')})."))
    flags = res.get("flags") or []
    if flags:
        blocks.append(Table(
            "FLAGGED — gains that come from one slice only (HitRate, over the best single "
            "modality or reference baseline)",
            ["source", "configuration", "comparator", "overall gain", "slice", "its share",
             "complementary slice", "its share"],
            [[f["source"], f["variant"], f["comparator"], f"{f['gain']:+.4f}", f["slice"],
              f"{f['slice_contribution']:+.4f}", f["other_slice"],
              f"{f['other_contribution']:+.4f}"] for f in flags],
        ))
    paired = res.get("paired") or []
    if paired:
        blocks.append(Table(
            "Paired differences — each fused configuration minus the best single modality and "
            "the best reference baseline (by overall nDCG; in a slice also the slice's own best "
            "where it scores higher there), on the same held-out cases: mean "
            "difference [95% bootstrap interval resampling the same groups for both]; "
            "verdict on nDCG"
            + ("; † compared as the lists are served (ties broken by catalog row): "
               + ("lists kept to one product per group are scored so" if cfg.get("one_per_group")
                  else "as `--ties row` asks" if cfg.get("ties") == "row"
                  else "one of the two is searched approximately and scored so") if any(
                   d.get("ties") == "as served" for d in paired) else ""),
            ["source", "configuration", "minus", "slice", "cases", f"Δ HitRate@{k}",
             f"Δ nDCG@{k}", "found only by it / only by the other", "verdict"],
            [[d["source"], d["variant"],
              _minus(d) + (" †" if d.get("ties") == "as served" else ""), d["slice"],
              f"{d['n']:,}",
              _ci(d["hit_rate"], signed=True), _ci(d["ndcg"], signed=True),
              f"{d['only_variant']} / {d['only_comparator']}", d["verdict"]] for d in paired],
        ))
    for src, ho in res["heldout"].items():
        sub = f" (sampled from {ho['subsampled_from']:,})" if ho.get("subsampled_from") else ""
        slices = list(dict.fromkeys(r["slice"] for r in res["rows"] if r["source"] == src))
        for sl in slices:
            sel = [r for r in res["rows"] if r["source"] == src and r["slice"] == sl]
            if not sel or sel[0]["n"] == 0:
                blocks.append(("p", f"Held-out {src}, slice '{sl}': no test cases."))
                continue
            rows = [[r["variant"], _ci(r["hit_rate"]), _ci(r["mrr"]), _ci(r["ndcg"]),
                     _ci(r["category_precision"]), _pct(r["coverage"], 1)] for r in sel]
            blocks.append(Table(
                f"Held-out {src} — {sl} ({sel[0]['n']:,} test cases in {sel[0]['n_groups']:,} "
                f"groups{sub if sl == 'all' else ''})",
                ["variant", f"HitRate@{k}", f"MRR@{k}", f"nDCG@{k}", f"cat. precision@{k}", "coverage"],
                rows, bold=_bold_max(rows, range(1, 5)),
            ))
        served = [r for r in res["rows"] if r["source"] == src and r["slice"] == "all"
                  and r.get("served") and r.get("ties") == "mean"]
        if served:
            blocks.append(Table(
                f"Held-out {src} — all: tie-aware (the tables above) and as served (ties broken "
                "by catalog row)",
                ["variant", f"HitRate@{k}", "as served", f"MRR@{k}", "as served", f"nDCG@{k}",
                 "as served"],
                [[r["variant"]] + [f"{x:.3f}" for key in ("hit_rate", "mrr", "ndcg")
                                   for x in (r[key]["value"], r["served"][key])]
                 for r in served],
            ))
        p = out / f"retrieval_{src}.png"
        _fig_retrieval(res["rows"], src, k, p)
        figs[f"retrieval_{src}"] = p
        blocks.append(("img", p.name, f"HitRate@{k} on held-out {src}"))
    return blocks, []


def _log_catalog_note(split: Mapping) -> tuple | None:
    """The paragraph saying which held-out cases the protocol left out as a catalog made of
    the log's own products would not have held their targets
    (:func:`~prodfusion.evaluation.protocol.log_catalog_cases`), or None."""
    lc = split.get("log_catalog")
    if not lc or not lc.get("applied"):
        return None
    dropped = ", ".join(f"{n:,} {src}" for src, n in lc["n_cases_dropped"].items())
    return ("p",
        f"**A catalog made of the log's own products**: {_pct(lc['targets_without_training_interactions'], 1)} "
        "of the held-out targets have no training interaction, against "
        f"{_pct(lc.get('catalog_share_compared', lc['catalog_without_training_interactions']), 1)} "
        "of the catalog's products"
        + (" (less those the model's log clicks only after these interactions)"
           if lc.get("later_products_left_out") else "") + ", "
        "so those are products seen only in the held-out part, which such a catalog would "
        "not have held when the model was built (and which a fusion could learn to "
        f"recognise). Their cases are not scored ({dropped} dropped; they stay candidates); "
        "`--protocol leave-last-out-all-cases` scores them.")


def _retired_note(cfg: Mapping) -> tuple | None:
    """The paragraph on a model's retired products, where it has any (retrieval, replay)."""
    n_retired = (cfg.get("catalog") or {}).get("n_retired")
    cols = (cfg.get("catalog") or {}).get("on_offer_cols")
    rule = (cfg.get("catalog") or {}).get("on_offer")
    source = (f"The catalog's columns {' and '.join(repr(c) for c in cols if c)} "
              "(`--on-offer-cols`) and the log's clicks tell when each product was on offer."
              if cols else "The log's clicks stand for the site's record of when each listing "
                           "was online.")
    served = ("Each view shows the configuration's list read deep enough to hold "
              f"{cfg.get('k', 15)} products on offer at its time." if "design" in cfg else
              "A configuration searched approximately (HNSW), `--ties row`, lists of one "
              "product per group and the lists' category precision score each case's list "
              "read deep enough to hold "
              f"{cfg.get('k', 15)} products on offer at its time; the coverage counts the "
              "lists served now.")
    if not n_retired:
        if rule and cols:
            return ("p", f"Each case ranked among the products on offer at its time, as the "
                         f"tuning validates: {rule.split(': ', 1)[-1]}. {source} {served}")
        return None
    if rule:
        return ("p", f"{n_retired:,} of the model's {cfg['catalog']['n_products']:,} products "
                     "are retired (`build --recommend-rows`, `add --retire-missing`): the lists "
                     "served leave them out; here a held-out click may have been made while "
                     f"one was on offer (a listing sold since), so {rule}, as the tuning "
                     f"validates. {source} {served}")
    return ("p", f"{n_retired:,} of the model's {cfg['catalog']['n_products']:,} products are "
                 "retired (`build --recommend-rows`, `add --retire-missing`): the lists served "
                 "leave them out, but here they are ranked as any other product, because a "
                 "held-out click may have been made while they were on offer (a listing sold "
                 "since). Nothing here tells when each product was on offer (the clicks "
                 "have no times), so every "
                 "case ranks all of them, also those sold before its click or listed after "
                 "it: where products come and go within days (a classifieds site), the "
                 "figures rank among more products than a visitor's list did, which favours "
                 "the modalities that tell contemporaries apart (clicks, co-occurrences) over "
                 "the titles.")


def _replay_section(res: Mapping, out: Path, figs: dict, top: int = 15) -> tuple[list, list[str]]:
    cfg = res["config"]
    la, lb = cfg["a"]["label"], cfg["b"]["label"]
    blocks: list = [("p",
        f"A = {la}; B = {lb}. Design: {cfg['design']}. A view is a held-out consecutive pair "
        f"a → b; it is a click for a variant when b is among the {cfg['k']} products it shows "
        "for a. CTR intervals: Wilson 95%; difference: B − A with the two-proportion z-test "
        + ("(independent samples; conservative for the paired design) and McNemar's exact test "
           "on the views clicked by only one variant." if cfg["design"] == "paired" else
           "and a sample-ratio-mismatch check.")
    )]
    once = cfg.get("one_per_group") or {}
    if any(once.values()):
        left = sum(t.get("n_views_same_group_left_out", 0) for t in res["sources"].values())
        arms = " and ".join(x for x, on in (("A", once.get("a")), ("B", once.get("b"))) if on)
        blocks.append(("p",
            f"One product per group: {arms} list{'s' if arms != 'A and B' else ''} at most "
            "one product of each group of the catalog's group column, as the model serves "
            "them; for both variants a view is a click when a product of b's group is shown "
            f"(the visitor reaches that product, by whichever of its rows). {left:,} view(s) "
            "whose b is in a's own group are left out: no such list shows them."))
    if (retired := _retired_note(cfg)) is not None:
        blocks.append(retired)
    if (lc := _log_catalog_note(res.get("split") or {})) is not None:
        blocks.append(lc)
    for src, t in res["sources"].items():
        tot = t["total"]
        rows = [[
            f"{tot['views_a']:,} / {tot['views_b']:,}",
            f"{_pct(tot['ctr_a'])} [{_pct(tot['ctr_a_ci'][0])}, {_pct(tot['ctr_a_ci'][1])}]",
            f"{_pct(tot['ctr_b'])} [{_pct(tot['ctr_b_ci'][0])}, {_pct(tot['ctr_b_ci'][1])}]",
            f"{_pct(tot['diff'])} [{_pct(tot['diff_ci_lo'])}, {_pct(tot['diff_ci_hi'])}]",
            _pct(tot["rel_lift"], 1), _p(tot["p_value"]), _p(tot.get("mcnemar_p")),
        ]]
        blocks.append(Table(
            f"Table IV — simulated CTR on held-out {src} ({t['n_views']:,} views, "
            f"{t['n_sessions']:,} {'sessions' if src == 'sessions' else 'query products'})",
            ["views A / B", "CTR A", "CTR B", "B − A", "rel. lift", "p (z-test)", "p (McNemar)"],
            rows,
            note=(f"SRM check: p = {_p(t['srm']['p_value'])}" + (" — FLAGGED" if t["srm"]["flagged"] else "")
                  if "srm" in t else ""),
        ))
        rows = [[c["category"], f"{c['views_a']:,}", _pct(c["ctr_a"]), _pct(c["ctr_b"]),
                 _pct(c["diff"]), _p(c["p_value"])] for c in t["categories"][:top]]
        more = len(t["categories"]) - top
        blocks.append(Table(
            f"Simulated CTR per category of the viewed product, held-out {src} (most viewed first)",
            ["category", "views", "CTR A", "CTR B", "B − A", "p (z-test)"], rows,
            note=f"{more} more categories in results.json." if more > 0 else "",
        ))
        p = out / f"replay_{src}.png"
        _fig_replay(t, (f"A: {la}", f"B: {lb}"), src, p)
        figs[f"replay_{src}"] = p
        blocks.append(("img", p.name, f"Simulated CTR per category, held-out {src}"))
    return blocks, []


def write_report(
    results: Any,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    meta: Mapping | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, the PNG figures and ``results.json``.

    Parameters
    ----------
    results : dict or list
        One result of ``evaluate_clustering`` / ``evaluate_retrieval`` / ``replay``, a list
        of them, or a dict keyed by kind (``{"clustering": ..., "retrieval": ...}``).
    out_dir : path
        Created if needed; existing report files are overwritten.
    title : str, optional
        Default: the title recorded in a re-rendered ``results.json``, else
        ``"prodfusion evaluation report"``.
    meta : dict, optional
        Extra facts recorded in ``results.json["meta"]["notes"]`` and shown in the report
        header (e.g. ``{"data": "H&M subset, 11,800 products"}``). When ``results`` is a
        loaded ``results.json`` (it has a ``"meta"`` entry), its meta is kept: the report is
        re-rendered with the original date, command and machine.

    Returns
    -------
    dict
        Name → path of every file written (``report_md``, ``report_html``, ``results_json``
        and one entry per figure).
    """
    res = normalize_results(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = _report_meta(results, meta)
    title = title or m.get("title") or "prodfusion evaluation report"
    m["title"] = title
    figs: dict[str, Path] = {}
    sections: list[tuple[str, list]] = []
    for kind, fn, heading in (
        ("clustering", _clustering_section, "1. Clustering protocol (paper's Tables II–III, Fig. 4)"),
        ("retrieval", _retrieval_section, "2. Retrieval of held-out co-interactions"),
        ("replay", _replay_section, "3. Offline A/B replay (paper's Table IV)"),
    ):
        if kind in res:
            blocks, _ = fn(res[kind], out, figs)
            sections.append((heading, blocks))

    write_documents(out, title, m, {"meta": m, **res}, sections,
                    "Every number below is in results.json, with the exact configuration.")
    paths = {"report_md": out / "report.md", "report_html": out / "report.html",
             "results_json": out / "results.json"}
    paths.update(figs)
    return paths
