"""Issue 10's session-based verdicts on several test windows (rolling origin), pooled.

One test part of DIGINETICA's views is 391 next clicks: a paired difference of ±0.006 nDCG@15
is inside its noise. This script repeats, on ``--windows`` successive blocks of sessions, what
``benchmarks/issue10_fusion.sh`` and ``issue10_purchases.sh`` do once — tune the model on the
data, then score the test part — and pools the test cases of every window into one paired
bootstrap:

- window 0 is the committed run: all sessions, the latest 20 % the test part;
- window ``w + 1`` keeps only window ``w``'s *training* sessions (every session that starts
  before its test block), so its test block is the 20 % before, and no window trains on a
  session later than its own test block (``Sessions.split_by_time``, the split ``evaluate``
  and ``tune`` make);
- in every window the model is tuned afresh (``prodfusion tune``'s options and defaults:
  ``prodfusion.cli.tune.tune_options``) on that window's data only — the tuner sets the
  window's test block aside unread, as ever — then scored as ``evaluate retrieval`` scores it
  (same variants, tie-aware metrics, leave-last-out);
- the windows' test cases are disjoint (different sessions), so pooling them is a larger
  test part: one paired bootstrap over every window's held-out sessions.

H&M's customer-day baskets are windowed the same way; its co-purchase pairs have no time (an
upstream aggregate, split by hash): every window trains on the same training pairs, and only
the baskets are scored and pooled, so there the earlier windows are not strictly
time-respecting.

    python benchmarks/rolling_origin.py [--windows 4] [--only views,whole,purchases,purchases_cc,hm_baskets]
                                        [--tune-args=--rolling --out docs/results/rolling_origin_rolling_validation.md]

The default build's verdicts (thirty-fifth session): ``--only views_default,whole_default,
hm_default`` with ``--model CASE=PATH`` naming the folders ``benchmarks/issue10_default.sh``
built; each window re-tunes the model as ``prodfusion build`` does by default (weights, then
boosted trees where they win out of fold; a window with under 1,000 validation cases learns
no trees, as a build on that little data would not) and scores its own weighting:

    python benchmarks/rolling_origin.py --only hm_default --model hm_default=/tmp/base/hm_def_v30 \
        --out docs/results/rolling_origin_hm_default.md

Forty-fourth session: ``--only views_catpop_default --model
views_catpop_default=/tmp/base/digid_v44`` — DIGINETICA's catalog of viewed items as the
default builds it since the forty-second session (the category and popularity added), under
the protocol that leaves out held-out targets seen nowhere else. Forty-fifth session: ``--only
views_default --model views_default=/tmp/base/digidoff_v45`` — the same catalog built with
``--category-modality off`` (clicks + cooc: ``issue10_default.sh`` ``STEPS=digioff``), under
that protocol.

Needs the ``--tune off`` model folders of ``bash benchmarks/issue10_fusion.sh`` (``runs/digi1``,
``runs/digif``, ``runs/hmc``) and ``bash benchmarks/issue10_purchases.sh`` (``runs/digip``,
``runs/digipc``); their click vectors are retrained on each training part anyway. Writes
``docs/results/rolling_origin.md`` and ``rolling_origin.png`` (differences per window and
pooled; ``--out`` names another), about 30 min. Data: ``../shared/data``
(``PRODFUSION_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
V = "benchmarks/variants/"
_DI = ["--session-cols", "session_id", "--item-col", "item_id", "--time-col",
       "eventdate,timeframe", "--sep", ";"]
_DP = ["--session-cols", "sessionId", "--item-col", "itemId", "--time-col",
       "eventdate,timeframe", "--sep", ";"]
_CP = [V + "single_clicks.json", V + "single_cooc.json", V + "single_category.json",
       V + "single_popularity.json", V + "tuned_digi_catpop.json", V + "paper_digi_catpop.json",
       "cooc", "popular", "cooc+category"]
_CC = [V + "single_clicks.json", V + "single_cooc.json", V + "tuned_digi.json", "cooc", "popular"]
_HM = ["--session-cols", "customer_id,t_dat", "--item-col", "article_id", "--time-col", "t_dat",
       "--pairs", "{data}/hm/copurchase.csv"]
_HV = [V + f"single_{m}.json" for m in ("text", "image", "clicks", "lexical", "cooc")] + [
    V + "paper_int3.json", V + "tuned5.json", "baseline", "cooc", "tfidf", "popular", "cooc+tfidf"]
#: name -> (title, model folder, interactions file, reading options, variants[, tune options]).
#: The sessions
#: (views, purchases, baskets) are windowed; co-interaction pairs, split by hash and not by
#: time, are passed whole to every window and not pooled.
CASES = {
    "views": ("DIGINETICA views, clicks + cooc (catalog of viewed items)", "runs/digi1",
              "diginetica/train-item-views.sample.csv", _DI, _CC),
    "whole": ("DIGINETICA views, whole catalog, clicks + cooc + category + popularity",
              "runs/digif", "diginetica/train-item-views.sample.csv", _DI, _CP),
    "purchases": ("DIGINETICA purchases, whole catalog, clicks + cooc + category + popularity",
                  "runs/digip", "diginetica/train-purchases.csv", _DP, _CP),
    "purchases_cc": ("DIGINETICA purchases, whole catalog, clicks + cooc", "runs/digipc",
                     "diginetica/train-purchases.csv", _DP, _CC),
    "hm_baskets": ("H&M customer-day baskets, five modalities, tuned on the baskets "
                   "(co-purchase pairs train in every window)", "runs/hmc",
                   "hm/transactions.csv", _HM, _HV, ["--validate-on", "sessions"]),
}
#: the cases of a plain run
DEFAULT = tuple(CASES)
_HD = [V + f"single_{m}.json" for m in ("text", "image", "clicks", "lexical", "cooc")] + [
    V + "own5.json", "baseline", "tfidf", "cooc", "popular", "cooc+tfidf"]
#: The default build's verdicts (thirty-fifth session on): the model folders of
#: ``benchmarks/issue10_default.sh`` (``--model NAME=PATH``), re-tuned in every window as
#: ``prodfusion build`` tunes by default — the weights on both kinds of interaction given,
#: then the boosted trees, adopted where they win out of fold (``--tune-learner auto``) —
#: but without the per-source profiles ``--tune-profiles auto`` may add (they leave the
#: model's own weighting, the one scored, unchanged). Same tuple layout as :data:`CASES`.
#: The variants of a default build with the category and popularity (DIGINETICA).
_CPD = [V + "single_clicks.json", V + "single_cooc.json", V + "single_category.json",
        V + "single_popularity.json", V + "own_digi_catpop.json", "cooc", "popular",
        "cooc+category", "popular+category"]
BUILT = {
    "views_default": ("DIGINETICA views (catalog of viewed items), the default build: "
                      "clicks + cooc", "runs/digid", "diginetica/train-item-views.sample.csv",
                      _DI, [V + "single_clicks.json", V + "single_cooc.json",
                            V + "own_digi.json", "cooc", "popular"]),
    "whole_default": ("DIGINETICA views, whole catalog, the default build: clicks + cooc + "
                      "category + popularity", "runs/digifcp",
                      "diginetica/train-item-views.sample.csv", _DI, _CPD),
    # forty-fourth session: the catalog of viewed items as the default builds it since the
    # forty-second (the category and popularity added), under the protocol that leaves out
    # held-out targets seen nowhere else (a catalog made of the log's own products)
    "views_catpop_default": ("DIGINETICA views (catalog of viewed items), the default build: "
                             "clicks + cooc + category + popularity", "runs/digid",
                             "diginetica/train-item-views.sample.csv", _DI, _CPD),
    "hm_default": ("H&M customer-day baskets, the README's default build (co-purchase pairs "
                   "train and tune in every window)", "runs/hm_def", "hm/transactions.csv",
                   _HM, _HD),
    # thirty-eighth session: the same build with the ngrams modality (build --ngrams)
    "hm_ngrams": ("H&M customer-day baskets, the README's build with --ngrams (co-purchase "
                  "pairs train and tune in every window)", "runs/hm_ngrams",
                  "hm/transactions.csv", _HM,
                  [V + f"single_{m}.json" for m in ("text", "image", "clicks", "lexical",
                                                      "cooc", "ngrams")]
                  + [V + "own6.json", "baseline", "tfidf", "cooc", "popular", "cooc+tfidf"]),
}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _period(test, days: dict[str, str] | None) -> str:
    """First and last start day of the test sessions: from the raw file's ``eventdate``
    (DIGINETICA: ``ts`` is a rank of date and time) or from ``ts`` (seconds)."""
    import polars as pl

    if days is not None:
        first = sorted(days[k] for k in test.keys)
    else:
        ts = test.frame.group_by("session").agg(pl.col("ts").min())["ts"].to_numpy()
        first = sorted(time.strftime("%Y-%m-%d", time.gmtime(x)) for x in ts)
    return f"{first[0]} … {first[-1]}"


def _first_days(path: Path, opts: list[str]) -> dict[str, str] | None:
    """Each session's first ``eventdate`` in a DIGINETICA file (None for other files)."""
    import polars as pl

    if "eventdate,timeframe" not in opts:
        return None
    col = opts[opts.index("--session-cols") + 1]
    raw = pl.read_csv(path, separator=";", infer_schema_length=0)
    first = raw.group_by(col).agg(pl.col("eventdate").min())
    return dict(zip(first[col].to_list(), first["eventdate"].to_list(), strict=True))


def run_case(name: str, data: Path, windows: int, tune_args: list[str] = (),
             seed: int | None = None, models: dict[str, str] | None = None) -> list[dict]:
    """One result per window: the tuning record, ``evaluate_retrieval``'s result (with
    ``cases``) and the window's session count. ``seed`` replaces the model's Prod2Vec seed
    everywhere (``--p2v-seed``: the tuner's split r retrains from ``seed + r``, the test
    part's Prod2Vec from ``seed``); ``models`` replaces a case's model folder."""
    from prodfusion.cli.evaluate_steps import _run_retrieval, load_interactions
    from prodfusion.cli.main import build_parser
    from prodfusion.cli.tune import tune_options
    from prodfusion.recommender import Recommender

    built = name in BUILT
    _, model, inter, opts, variants, *tune_only = (BUILT if built else CASES)[name]
    model = str(REPO / (models or {}).get(name, model))
    if not Path(model, "manifest.json").exists():
        raise SystemExit(f"{model} is missing: run " + (
            "benchmarks/issue10_default.sh first (it builds it) and name it with --model "
            f"{name}=PATH" if built else "benchmarks/issue10_fusion.sh and "
            "benchmarks/issue10_purchases.sh first (they build it)") + ".")
    opts = [o.replace("{data}", str(data)) for o in opts]
    reading = ["--interactions", str(data / inter), *opts, "--workers", "1",
               *(["--p2v-seed", str(seed)] if seed is not None else [])]
    common = [model, *reading, "--quiet"]
    parser = build_parser()
    targs = parser.parse_args(["tune", *common, *(tune_only[0] if tune_only else ()),
                               *tune_args])
    if built:  # the build's own tuning; --catalog and --out are not read by it
        bargs = parser.parse_args(["build", "--catalog", "-", "--out", "-", *reading,
                                   *tune_args])
        bargs.tune_profiles = "off"
    eargs = parser.parse_args(["evaluate", "retrieval", *common, "--variants", *variants])
    sessions = pairs = None
    days = _first_days(data / inter, opts)
    out = []
    from prodfusion.evaluation.split import model_clicked

    for w in range(windows):
        rec = Recommender.load(model)
        clicked = model_clicked(rec)  # the whole log's, before tuning counts the window's
        if sessions is None:
            sessions, pairs = load_interactions(targs, rec.catalog)
        _log(f"{name} window {w}: {len(sessions):,} sessions; tuning")
        t = time.perf_counter()
        if built:
            from prodfusion.cli.build import _tune_after_build

            tuning, trees = _tune_after_build(bargs, rec, interactions=(sessions, pairs))
            if tuning is None:  # the build would keep the paper's weights: nothing to score
                raise SystemExit(f"{name} window {w}: the build's tuning declined (see "
                                 "above); fewer --windows leave more sessions per window.")
            tuning = dict(tuning, trees={k: v for k, v in (trees or {}).items()
                                         if k != "record"})
        else:
            tuning = rec.tune(sessions, pairs, **tune_options(targs, rec))
        t_tune = time.perf_counter() - t
        _log(f"{name} window {w}: tuned in {t_tune:.0f} s; scoring the test part")
        res = _run_retrieval(eargs, rec, sessions, pairs, keep_cases=True, clicked=clicked)
        out.append({"window": w, "n_sessions": len(sessions), "tuning": tuning, "result": res,
                    "tune_seconds": t_tune})
        train, test = sessions.split_by_time(targs.test_fraction, seed=targs.eval_seed)
        out[-1]["test_period"] = _period(test, days)
        sessions = train  # the next window: only what started before this test block
        del rec
        gc.collect()
    return out


def pool(windows: list[dict], n_boot: int = 1000) -> tuple[list[dict], list[dict]]:
    """``(rows, paired)`` over every window's test cases: per-case arrays concatenated (groups
    prefixed by the window, so a bootstrap resamples each held-out session once), rows of
    their means, and :func:`~prodfusion.evaluation.protocol.paired_differences` on them."""
    from prodfusion.evaluation.baselines import ON_REQUEST, REFERENCES
    from prodfusion.evaluation.protocol import paired_differences

    mods = {r["variant"]: r.get("modalities") for r in windows[0]["result"]["rows"]
            if r["source"] == "sessions"}
    slices = sorted({sl for w in windows for c in w["result"]["cases"].values()
                     for sl in c["slices"]}, key=lambda s: (s != "all", s))
    cases: dict = {}
    for w in windows:
        for key, c in w["result"]["cases"].items():
            if key[1] != "sessions":  # pairs: the same test cases in every window
                continue
            d = cases.setdefault(key, {"hit": [], "ndcg": [], "groups": [],
                                       "slices": {s: [] for s in slices}})
            n = len(c["hit"])
            d["hit"].append(np.asarray(c["hit"], float))
            d["ndcg"].append(np.asarray(c["ndcg"], float))
            d["groups"].append(np.asarray([f"w{w['window']}:{g}" for g in c["groups"]],
                                          dtype=object))
            for s in slices:
                d["slices"][s].append(np.asarray(c["slices"].get(s, np.zeros(n, bool)), bool))
    rows = []
    for (v, src), d in cases.items():
        for key in ("hit", "ndcg", "groups"):
            d[key] = np.concatenate(d[key])
        d["slices"] = {s: np.concatenate(m) for s, m in d["slices"].items()}
        for s, m in d["slices"].items():
            rows.append({"variant": v, "source": src, "slice": s, "modalities": mods.get(v),
                         "n": int(m.sum()),
                         "hit_rate": {"value": float(d["hit"][m].mean()) if m.any() else np.nan},
                         "ndcg": {"value": float(d["ndcg"][m].mean()) if m.any() else np.nan}})
    refs = [v for v in mods if v in REFERENCES + ON_REQUEST]
    return rows, paired_differences(rows, cases, references=refs, metric="ndcg", n_boot=n_boot)


#: the variant whose verdicts a report gives: the tuned weighting, or the build's own
_SCORED = ("tuned", "own weighting")


def _ci(d: dict) -> str:
    return f"{d['value']:+.4f} [{d['ci_lo']:+.4f}, {d['ci_hi']:+.4f}]"


def _weights(t: dict) -> str:
    w = ", ".join(f"{m} {x:.3g}" for m, x in t["weights"].items() if x > 0)
    decay = f", α {t['cooc_decay']:g}" if "cooc_decay" in t else ""
    trees = t.get("trees")
    trees = "" if not trees else (  # learnt ones say their gain; others why not learnt
        "; trees adopted" if trees["adopted"] else "; trees not adopted"
        if trees["why"].startswith("gain") else "; trees not learnt")
    return f"{w} ({t['calibration']}{decay}){trees}"


def _paired_all(paired: list[dict], variant: str, slice_: str = "all") -> list[dict]:
    return [p for p in paired if p["variant"] == variant and p["slice"] == slice_
            and p["source"] == "sessions"
            and p["kind"] in ("best single modality", "best reference")]


def report(results: dict[str, list[dict]], pooled: dict, args, seconds: float) -> str:
    lines = [
        f"# Issue 10's session-based verdicts on {args.windows} test windows (rolling origin)",
        "",
        f"Command: `python benchmarks/rolling_origin.py --windows {args.windows}"
        f"{' --only ' + args.only if args.only else ''}"
        f"{' --tune-args ' + repr(args.tune_args) if args.tune_args else ''}"
        f"{' --seed ' + str(args.seed) if args.seed is not None else ''}"
        f"{''.join(' --model ' + m for m in getattr(args, 'model', []))}"
        f"{' --out ' + Path(args.out).name if Path(args.out).name != 'rolling_origin.md' else ''}"
        f"` ({seconds / 60:.0f} min).  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, 24 GiB, no GPU (shared with "
        "other jobs unless said otherwise).  ",
        "Data: `../shared/data` (DIGINETICA's views sample and purchases; H&M's customer-day "
        "baskets, with its co-purchase pairs training in every window"
        + (", tuned on the baskets" if "hm_baskets" in results else "")
        + (", tuned on both (the default build's objective)" if "hm_default" in results
           else "") + "; "
        "read-only, not in the repository). Models: "
        + ("the `--tune off` folders of `issue10_fusion.sh` / `issue10_purchases.sh`, tuned "
           "afresh in every window with `prodfusion tune`'s defaults on that window's "
           "sessions only" if not set(results) & set(BUILT) else "")
        + ("; " if set(results) & set(BUILT) and set(results) - set(BUILT) else "")
        + ("the default builds of `issue10_default.sh` (`_default` cases), re-tuned in "
           "every window on that window's sessions only as `prodfusion build` tunes by "
           "default — the weights, then boosted trees adopted where they beat the weights "
           "and every modality alone out of fold by 1.96 standard errors — without the "
           "per-source profiles (which leave the scored weighting unchanged)"
           if set(results) & set(BUILT) else "") + ".",
        "",
        "Window 0 is the committed test part (the latest 20 % of sessions); window w + 1 keeps "
        "only window w's training sessions, so its test part is the 20 % before, and no window "
        "trains or tunes on a session later than its own test block. The windows' test cases are "
        "disjoint; **pooled** is one paired bootstrap (1,000 resamples of held-out sessions) "
        "over all of them. Figures: tie-aware HitRate@15 / nDCG@15; Δ = tuned fusion minus "
        "the comparator, mean [95 % paired bootstrap interval]; the comparators are the best "
        "single modality and the best reference baseline *of that window* (pooled: of all "
        "windows).",
        "",
        f"![Δ nDCG@15 per window and pooled]({Path(args.out).with_suffix('.png').name})",
        "",
    ]
    for name, wins in results.items():
        title = {**CASES, **BUILT}[name][0]
        tuned = next(v for v in wins[0]["result"]["config"]["variants"]
                     if (v.get("name") or "").startswith(_SCORED))["label"]
        lines += [f"## {title}", "",
                  f"Tuned variant: `{tuned}`.", "",
                  "| window | sessions | test period | cases | tuned weights | tuned | comparator "
                  "| Δ HitRate@15 | Δ nDCG@15 | verdict |",
                  "| --- | ---: | --- | ---: | --- | ---: | --- | ---: | ---: | --- |"]
        for w in wins:
            r = w["result"]
            row = next(x for x in r["rows"] if x["variant"] == tuned and x["slice"] == "all"
                       and x["source"] == "sessions")
            period = w["test_period"]
            for i, p in enumerate(_paired_all(r["paired"], tuned)):
                comp = next(x for x in r["rows"] if x["variant"] == p["comparator"]
                            and x["slice"] == "all" and x["source"] == "sessions")
                lead = (f"| {w['window']} | {w['n_sessions']:,} | {period} | {p['n']:,} | "
                        f"{_weights(w['tuning'])} | {row['hit_rate']['value']:.3f} / "
                        f"{row['ndcg']['value']:.3f} | ") if i == 0 else "| | | | | | | "
                lines.append(lead + f"{p['comparator']} {comp['hit_rate']['value']:.3f} / "
                             f"{comp['ndcg']['value']:.3f} | {_ci(p['hit_rate'])} | "
                             f"{_ci(p['ndcg'])} | {p['verdict']} |")
        rows, paired = pooled[name]
        prow = next(x for x in rows if x["variant"] == tuned and x["slice"] == "all")
        for i, p in enumerate(_paired_all(paired, tuned)):
            comp = next(x for x in rows if x["variant"] == p["comparator"] and x["slice"] == "all")
            lead = (f"| **pooled** | | | {p['n']:,} | | {prow['hit_rate']['value']:.3f} / "
                    f"{prow['ndcg']['value']:.3f} | ") if i == 0 else "| | | | | | | "
            lines.append(lead + f"{p['comparator']} {comp['hit_rate']['value']:.3f} / "
                         f"{comp['ndcg']['value']:.3f} | **{_ci(p['hit_rate'])}** | "
                         f"**{_ci(p['ndcg'])}** | **{p['verdict']}** |")
        sl = [p for p in paired if p["variant"] == tuned and p["slice"] != "all"
              and p["source"] == "sessions"]
        if sl:
            lines += ["", "Pooled, by slice of the test case:", "",
                      "| slice | cases | comparator | Δ HitRate@15 | Δ nDCG@15 | verdict |",
                      "| --- | ---: | --- | ---: | ---: | --- |"]
            for p in sl:
                lines.append(f"| {p['slice']} | {p['n']:,} | {p['comparator']} ({p['kind']}) | "
                             f"{_ci(p['hit_rate'])} | {_ci(p['ndcg'])} | {p['verdict']} |")
        tt = sum(w["tune_seconds"] for w in wins)
        lines += ["", f"Tuning time, all windows: {tt:.0f} s.", ""]
    return "\n".join(lines)


def draw_panel(ax, items: list, title: str, xlabel: str) -> None:
    """One panel of differences with their 95 % intervals: ``items`` are ``(row label,
    comparator kind, paired difference)``; a row per label, the best single modality drawn
    just above the best reference."""
    labels = list(dict.fromkeys(lbl for lbl, _, _ in items))
    for kind, dy, colour in (("best single modality", -0.12, "C0"),
                             ("best reference", 0.12, "C1")):
        sel = [(labels.index(lbl), d) for lbl, k, d in items if k == kind]
        if not sel:
            continue
        y = np.array([i for i, _ in sel], float) + dy
        x = np.array([d["value"] for _, d in sel])
        lo = x - np.array([d["ci_lo"] for _, d in sel])
        hi = np.array([d["ci_hi"] for _, d in sel]) - x
        ax.errorbar(x, y, xerr=[lo, hi], fmt="o", color=colour, capsize=3,
                    label=f"vs {kind}")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)


def save_panels(fig, axes, path: Path, bottom: float = 0.07) -> None:
    """The shared legend under the panels, then the file."""
    import matplotlib.pyplot as plt

    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure(results: dict, pooled: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        wins = results[name]
        tuned = next(v for v in wins[0]["result"]["config"]["variants"]
                     if (v.get("name") or "").startswith(_SCORED))["label"]
        items = []  # (label, kind, d)
        for w in wins:
            for p in _paired_all(w["result"]["paired"], tuned):
                items.append((f"window {w['window']}", p["kind"], p["ndcg"]))
        for p in _paired_all(pooled[name][1], tuned):
            items.append(("pooled", p["kind"], p["ndcg"]))
        draw_panel(ax, items, name, "Δ nDCG@15, tuned − comparator (95 % CI)")
    save_panels(fig, axes, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated subset of "
                    + ",".join([*CASES, *BUILT]) + " (default: " + ",".join(DEFAULT) + ")")
    ap.add_argument("--model", action="append", default=[], metavar="CASE=PATH",
                    help="the model folder of a case (repeatable), e.g. "
                    "hm_default=/tmp/base/hm_def_v30")
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA",
                                                     str(REPO.parent / "shared" / "data")))
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "rolling_origin.md"))
    ap.add_argument("--tune-args", default="",
                    help="extra `prodfusion tune` options for every window, e.g. '--rolling'")
    ap.add_argument("--seed", type=int, default=None,
                    help="Prod2Vec seed for the tuner's splits and the test part (default: the "
                    "model's); benchmarks/rolling_origin_seeds.py repeats the run over seeds")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from runs/rolling_origin.pkl (the last run)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    names = [n for n in (args.only.split(",") if args.only else DEFAULT) if n]
    for n in names:
        if n not in CASES and n not in BUILT:
            raise SystemExit(f"--only: unknown case {n!r}; known: "
                             f"{', '.join([*CASES, *BUILT])}")
    models = {}
    for m in args.model:
        case, sep, path = m.partition("=")
        if not sep or case not in names:
            raise SystemExit(f"--model {m!r}: expected CASE=PATH with CASE one of "
                             f"{', '.join(names)}")
        models[case] = path
    t0 = time.perf_counter()
    results, pooled = {}, {}
    # the windows' results, which --report-only rereads
    keep = REPO / "runs" / (Path(args.out).stem + ".pkl")
    if args.report_only:
        with open(keep, "rb") as f:
            results, seconds, args.windows, args.only, *rest = pickle.load(f)
            args.tune_args = rest[0] if rest else ""
    else:
        keep.parent.mkdir(exist_ok=True)
        for n in names:
            results[n] = run_case(n, Path(args.data), args.windows, args.tune_args.split(),
                                  args.seed, models)
            seconds = time.perf_counter() - t0
            with open(keep, "wb") as f:  # after each case: a later failure loses no window
                pickle.dump((results, seconds, args.windows, args.only, args.tune_args), f)
    for n in results:
        pooled[n] = pool(results[n])
    out = Path(args.out)
    out.write_text(report(results, pooled, args, seconds) + "\n")
    figure(results, pooled, out.with_suffix(".png"))
    _log(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
