"""How alike are the top-15 lists of clicks + cooc weightings on the DIGINETICA model of viewed
items (docs/results/README.md, seventh section: why a thousandth of z-scored clicks under
``n0`` is not a tie-break). Reads no held-out data: lists only, on the built model.

Usage: python benchmarks/issue10_tiebreak_lists.py [--model runs/digi1]
       (the model folder of benchmarks/issue10_fusion.sh; writes
       docs/results/issue10_tiebreak_lists.md)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prodfusion import Recommender
from prodfusion.evaluation.retrieval import parse_variant

CC = ["clicks", "cooc"]
VARIANTS = {
    "cooc alone": {"modalities": ["cooc"], "weights": {"cooc": 1}, "calibration": "none"},
    "tie-break, none": {"modalities": CC, "weights": {"cooc": 1, "clicks": 0.001},
                        "calibration": "none"},
    "tie-break, zscore": {"modalities": CC, "weights": {"cooc": 0.999, "clicks": 0.000999},
                          "calibration": "zscore"},
    "tie-break, zscore, n0 2": {"modalities": CC, "weights": {"cooc": 0.999, "clicks": 0.000999},
                                "calibration": "zscore", "n0": 2.0},
    "mix 0.143, zscore, n0 2": {"modalities": CC, "weights": {"cooc": 0.857, "clicks": 0.143},
                                "calibration": "zscore", "n0": 2.0},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/digi1")
    ap.add_argument("--out", type=Path, default=Path("docs/results/issue10_tiebreak_lists.md"))
    ap.add_argument("--queries", type=int, default=1000)
    a = ap.parse_args()
    rec = Recommender.load(a.model)
    rows = np.random.default_rng(0).choice(np.flatnonzero(rec.cooc_.mask), a.queries,
                                           replace=False)
    lists = {name: parse_variant(dict(d, fusion="intermediate", name=name)).recommend(
        rec, rows, 15) for name, d in VARIANTS.items()}
    n_cooc = np.diff(rec.cooc_.sim.indptr)[rows]
    names = list(lists)
    lines = [
        "# Top-15 lists of clicks + cooc weightings, compared (issue 10, seventh session)", "",
        f"Command: `python benchmarks/issue10_tiebreak_lists.py --model {a.model}`; model: the "
        "DIGINETICA catalog of viewed items built by `benchmarks/issue10_fusion.sh` (all "
        f"interactions; no held-out data is read). {len(rows):,} random query products with "
        f"co-occurrences, seed 0; median co-occurring products {np.median(n_cooc):.0f}, "
        f"{(n_cooc < 15).mean():.1%} of the queries have fewer than 15.", "",
        "Mean share of the top 15 two weightings have in common:", "",
        "| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for x in names:
        lines.append(f"| {x} | " + " | ".join(
            f"{np.mean([len(set(p) & set(q)) / 15 for p, q in zip(lists[x], lists[y], strict=True)]):.3f}"
            for y in names) + " |")
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
