"""What reading one event type of a large mixed log costs: ``read_interactions`` with
``keep_rows={"event": ["view"]}`` against reading every row, and against the file a user
would otherwise write first (the views alone, filtered with polars beforehand).

The log: ``--rows`` events (80 % ``view``, 15 % ``addtocart``, 5 % ``transaction``) of
``--visitors`` visitors on ``--products`` products, Unix times in ms, written as CSV (the
usual export) or Parquet. Each variant reads in a fresh process (so peak RSS is its own),
``--repeats`` times, alternating; the table gives the median seconds and the ratio to
reading every row.

    python benchmarks/keep_rows_scale.py --rows 20000000 --out docs/benchmarks/keep_rows_scale.md
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from _report import command_line, machine, run_children, write_markdown

VARIANTS = {
    "every row": ("log", None),
    "keep_rows event=view": ("log", {"event": ["view"]}),
    "a file of the views, filtered beforehand": ("views", None),
}


def _write_logs(folder: Path, rows: int, visitors: int, products: int, fmt: str,
                seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({
        "visitor": pl.Series([f"v{x:07d}" for x in range(visitors)]).gather(
            rng.integers(0, visitors, rows)),
        "event": pl.Series(["view", "addtocart", "transaction"]).gather(
            rng.choice(3, rows, p=[0.8, 0.15, 0.05])),
        "product_id": pl.Series([f"p{x:07d}" for x in range(products)]).gather(
            rng.integers(0, products, rows)),
        "ts": np.sort(rng.integers(1_780_000_000_000, 1_782_600_000_000, rows)),
    })
    out = {"log": folder / f"log.{fmt}", "views": folder / f"views.{fmt}"}
    for name, part in (("log", frame), ("views", frame.filter(pl.col("event") == "view"))):
        part.write_csv(out[name]) if fmt == "csv" else part.write_parquet(out[name])
    return out


def _child(path: str, keep: str) -> None:
    from prodfusion.data import read_interactions

    t = time.perf_counter()
    log = read_interactions(path, session_cols="visitor", item_col="product_id",
                            time_col="ts", keep_rows=json.loads(keep))
    secs = time.perf_counter() - t
    print(json.dumps({"seconds": secs, "rows": log.height,
                      "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--visitors", type=int, default=1_000_000)
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--format", choices=["csv", "parquet"], default="csv")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="docs/benchmarks/keep_rows_scale.md")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="pf_keep_rows_"))
    paths = _write_logs(tmp, args.rows, args.visitors, args.products, args.format)
    runs = run_children(__file__, {name: [str(paths[which]), json.dumps(keep)]
                                   for name, (which, keep) in VARIANTS.items()}, args.repeats)
    base = statistics.median(r["seconds"] for r in runs["every row"])
    lines = [
        "# Reading one event type of a large mixed log (`--keep-rows`)", "",
        f"Command: `{command_line(argv)}` ({time.perf_counter() - t0:.0f} s in all). "
        f"Machine: {machine()}. Log: {args.rows:,} events of {args.visitors:,} visitors on "
        f"{args.products:,} products ({args.format.upper()}, 80 % views, 15 % carts, 5 % "
        "purchases, times in ms). `read_interactions` timed in a fresh process per run, "
        f"{args.repeats} run(s) per variant, alternating; median seconds; peak RSS is the "
        "process's. The last row reads a second file holding the views alone, which a user "
        "would otherwise write first (its writing not timed).", "",
        "| variant | seconds (median) | ratio to every row | rows read out | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        lines.append(f"| {name} | {med:.1f} | {med / base:.2f}× | {rs[0]['rows']:,} | "
                     f"{max(x['rss_gib'] for x in rs):.2f} GiB |")
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
