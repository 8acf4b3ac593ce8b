"""Summarise benchmarks/seed_noise.sh: how issue 10's test figures move when only the test
part's Prod2Vec seed changes (seed 0: the committed reports in docs/results; seeds 1-4: the
re-runs under runs/seed_noise).

Usage: python benchmarks/seed_noise.py --runs runs/seed_noise --committed docs/results
                                       --out docs/results/seed_noise.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

REPORTS = {  # report folder -> (held-out source, what it is)
    "hm_baskets_fusion": ("sessions", "H&M baskets, model tuned on baskets"),
    "hm_pairs_fusion": ("pairs", "H&M co-purchase pairs, model tuned on pairs"),
    "diginetica_fusion": ("sessions", "DIGINETICA next views, clicks + cooc"),
    "diginetica_fusion_category": ("sessions",
                                   "DIGINETICA next views, whole catalog, 4 modalities"),
    "diginetica_purchases_fusion": ("sessions", "DIGINETICA purchases, whole catalog, 4 modalities"),
}


def _load(path: Path) -> dict | None:
    f = path / "results.json"
    return json.loads(f.read_text())["retrieval"] if f.exists() else None


def _fmt(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f} [{min(xs):.3f}, {max(xs):.3f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--committed", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    lines = [
        "# Run-to-run noise of the issue 10 test figures (Prod2Vec seed of the test part)",
        "",
        "Command: `bash benchmarks/seed_noise.sh` (re-runs each committed report with "
        "`prodfusion evaluate retrieval … --p2v-seed S`, S = 1…4; seed 0 is the committed "
        "report itself), then `python benchmarks/seed_noise.py --runs runs/seed_noise "
        "--committed docs/results --out docs/results/seed_noise.md`. Only the click vectors of "
        "the test part are retrained from another seed; the split, the held-out cases, the "
        "tuned weights (chosen once, in the model folders), `cooc`, the category and popularity "
        "are the same in every run. Machine: " + f"{platform.machine()} {platform.system()}, "
        "the 2-core / 24 GiB VM. Figures: mean ± standard deviation [min, max] over the 5 "
        "seeds, all test cases of the report.",
        "",
    ]
    for name, (src, what) in REPORTS.items():
        runs = [(0, _load(a.committed / name))]
        runs += [(s, _load(a.runs / f"{name}_s{s}")) for s in range(1, 5)]
        runs = [(s, r) for s, r in runs if r is not None]
        if not runs:
            continue
        lines += [f"## {what} (`{name}`, {len(runs)} seeds: {', '.join(str(s) for s, _ in runs)})",
                  "", "| configuration | HitRate@15 | nDCG@15 |", "| --- | ---: | ---: |"]
        variants = [r["variant"] for r in runs[0][1]["rows"]
                    if r["source"] == src and r["slice"] == "all"]
        for v in variants:
            hr, nd = [], []
            for _, res in runs:
                row = next(r for r in res["rows"] if r["source"] == src and r["slice"] == "all"
                           and r["variant"] == v)
                hr.append(row["hit_rate"]["value"])
                nd.append(row["ndcg"]["value"])
            lines.append(f"| {v} | {_fmt(hr)} | {_fmt(nd)} |")
        lines += ["", "Paired differences of each fused configuration (per seed; the "
                  "comparator is the best of its kind in that run; the verdict is on nDCG):", "",
                  "| seed | configuration | minus | Δ HitRate@15 [95 % paired interval] | "
                  "Δ nDCG@15 [95 % paired interval] | verdict |",
                  "| ---: | --- | --- | ---: | ---: | --- |"]
        for s, res in runs:
            for d in res.get("paired", []):
                if d["source"] == src and d["slice"] == "all":
                    cells = [f"{x['value']:+.4f} [{x['ci_lo']:+.4f}, {x['ci_hi']:+.4f}]"
                             for x in (d["hit_rate"], d["ndcg"])]
                    lines.append(f"| {s} | {d['variant']} | {d['comparator']} | "
                                 f"{' | '.join(cells)} | {d['verdict']} |")
        lines.append("")
    a.out.write_text("\n".join(lines))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
