"""One picture of issue 10's verdicts: the default build minus the best single modality and
minus the best simple baseline, nDCG@15 with its paired 95 % bootstrap interval, on every
held-out set of the shared data — read from the committed reports, nothing re-run.

Sources (each the output of a committed command; see the README's "Results"):

- one test split: ``docs/results/{hm_default_v30, diginetica_clicks_cooc_v45,
  diginetica_default_v44, diginetica_category_auto_v42, demo_default_v42}/results.json``
  (``benchmarks/issue10_default.sh``; the v42 and v44 reports: the category and popularity
  the build adds where sessions stay in a category; v44 and v45: the catalog of viewed items
  under the protocol that leaves out targets seen only in held-out sessions; v45: clicks +
  cooc, ``--category-modality off``, ``STEPS=digioff``),
  the ``paired`` entries of the model's own weighting on all cases;
- four test windows pooled: the ``pooled`` rows of
  ``docs/results/rolling_origin_{hm,digi}_default.md`` (its whole-catalog section),
  ``rolling_origin_digi_catpop_v44.md`` and ``rolling_origin_digi_clicks_cooc_v45.md``
  (``benchmarks/rolling_origin.py``).

    python benchmarks/results_summary.py --out docs/results/summary.png

Writes the figure and, beside it, the same numbers as JSON (``summary.json``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

#: (label, report folder, source) of the one-split rows, top to bottom.
ONE_SPLIT = [
    ("H&M co-purchase pairs", "hm_default_v30", "pairs"),
    ("H&M baskets", "hm_default_v30", "sessions"),
    ("DIGINETICA views, clicks + cooc (v45)", "diginetica_clicks_cooc_v45", "sessions"),
    ("DIGINETICA views + category (v44)", "diginetica_default_v44", "sessions"),
    ("DIGINETICA whole catalog", "diginetica_category_auto_v42", "sessions"),
    ("demo shop (synthetic)", "demo_default_v42", "sessions"),
]
#: (label, rolling-origin report, the section's heading start) of the pooled rows.
POOLED = [
    ("H&M baskets", "rolling_origin_hm_default.md", "## H&M customer-day baskets"),
    ("DIGINETICA views, clicks + cooc (v45)", "rolling_origin_digi_clicks_cooc_v45.md",
     "## DIGINETICA views (catalog of"),
    ("DIGINETICA views + category (v44)", "rolling_origin_digi_catpop_v44.md",
     "## DIGINETICA views (catalog of"),
    ("DIGINETICA whole catalog", "rolling_origin_digi_default.md",
     "## DIGINETICA views, whole catalog"),
]
KINDS = ("best single modality", "best reference")
_CI = re.compile(r"\*\*([-+][0-9.]+) \[([-+][0-9.]+), ([-+][0-9.]+)\]\*\*")


def one_split_rows() -> list[dict]:
    rows = []
    for label, folder, source in ONE_SPLIT:
        res = json.loads((RESULTS / folder / "results.json").read_text())["retrieval"]
        row = {"label": label, "protocol": "one test split", "report": f"{folder}/report.md"}
        for p in res["paired"]:
            if (p["source"], p["slice"]) == (source, "all") and \
                    p["variant"].startswith("own weighting") and p["kind"] in KINDS:
                row["n"] = p["n"]
                row[p["kind"]] = {"comparator": p["comparator"], **p["ndcg"]}
        if not all(k in row for k in KINDS):
            raise SystemExit(f"{folder}/results.json: no paired rows of the own weighting "
                             f"on {source}")
        rows.append(row)
    return rows


def pooled_rows() -> list[dict]:
    rows = []
    for label, name, heading in POOLED:
        text = (RESULTS / name).read_text()
        start = next((i for i, line in enumerate(text.splitlines())
                      if line.startswith(heading)), None)
        if start is None:
            raise SystemExit(f"{name}: no section starting {heading!r}")
        lines = text.splitlines()[start:]
        at = next(i for i, line in enumerate(lines) if line.startswith("| **pooled**"))
        row = {"label": label, "protocol": "four test windows pooled", "report": name}
        for kind, line in zip(KINDS, lines[at:at + 2], strict=True):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            ndcg = _CI.search(cells[-2])
            if ndcg is None:
                raise SystemExit(f"{name}: cannot read the pooled nDCG of {line!r}")
            value, lo, hi = (float(x) for x in ndcg.groups())
            comparator = re.sub(r" [0-9.]+ / [0-9.]+$", "", cells[-4])
            row[kind] = {"comparator": comparator, "value": value, "ci_lo": lo, "ci_hi": hi}
            if cells[3]:
                row["n"] = int(cells[3].replace(",", ""))
        rows.append(row)
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 0.42 * len(rows) + 1.5))
    colours = {"best single modality": "tab:blue", "best reference": "tab:orange"}
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        for j, kind in enumerate(KINDS):
            d = row[kind]
            yy = y + (0.12 if j == 0 else -0.12)
            ax.errorbar(d["value"], yy, xerr=[[d["value"] - d["ci_lo"]], [d["ci_hi"] - d["value"]]],
                        fmt="o", color=colours[kind], capsize=3,
                        label=f"minus the {kind}" if i == 0 else None)
    ax.axvline(0, color="grey", lw=0.8)
    for i in range(1, len(rows)):  # a line where the protocol changes
        if rows[i]["protocol"] != rows[i - 1]["protocol"]:
            ax.axhline(len(rows) - i - 0.5, color="lightgrey", lw=0.8, ls="--")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['label']} ({r['protocol']}, {r['n']:,})" for r in reversed(rows)])
    ax.set_xlabel("Δ nDCG@15, the default build minus the comparator (paired 95 % CI)")
    ax.set_title("The default build minus the best single modality and the best simple "
                 "baseline", fontsize=10)
    fig.legend(loc="lower center", ncol=2, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out, dpi=110, bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(RESULTS / "summary.png"))
    args = ap.parse_args()
    rows = one_split_rows() + pooled_rows()
    out = Path(args.out)
    plot(rows, out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    for r in rows:
        print(f"{r['label']:<26} {r['protocol']:<25} {r['n']:>6,}  " + "  ".join(
            f"{k}: {r[k]['comparator']} {r[k]['value']:+.4f} [{r[k]['ci_lo']:+.4f}, "
            f"{r[k]['ci_hi']:+.4f}]" for k in KINDS))
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
