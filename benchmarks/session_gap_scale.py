"""What cutting a visitor-keyed log at pauses costs at scale: ``clean_sessions`` with and without
``session_gap`` on a synthetic log of tens of millions of clicks.

The log: ``--rows`` clicks of ``--visitors`` visitors (string ids, a Zipf-like share per
visitor) on ``--products`` products, Unix times in milliseconds over 30 days in file order,
visits of a few clicks a minute apart. Each variant runs in a fresh process (so peak RSS is its
own), ``--repeats`` times, alternating; the table gives the median seconds and the ratio.

    python benchmarks/session_gap_scale.py --rows 20000000 --out docs/benchmarks/session_gap_scale.md
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


def _write_log(path: Path, rows: int, visitors: int, products: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    share = 1.0 / np.arange(1, visitors + 1) ** 0.5
    share /= share.sum()
    n_visits = rows // 5
    who = rng.choice(visitors, n_visits, p=share)
    start = np.sort(rng.uniform(0, 30 * 86400, n_visits))
    length = rng.integers(2, 9, n_visits)
    visit = np.repeat(np.arange(n_visits), length)[:rows]
    step = np.arange(len(visit)) - np.repeat(np.cumsum(length) - length, length)[:rows]
    ts = ((1.78e9 + start[visit] + 60.0 * step) * 1000).astype(np.int64)
    frame = pl.DataFrame({
        "visitor": pl.Series([f"v{x:07d}" for x in range(visitors)]).gather(who[visit]),
        "product_id": pl.Series([f"p{x:07d}" for x in range(products)]).gather(
            rng.integers(0, products, len(visit))),
        "ts": ts,
    })
    frame.write_parquet(path)


def _child(path: str, gap: str | None) -> None:
    from prodfusion.data import clean_sessions, read_interactions

    log = read_interactions(path, session_cols="visitor", item_col="product_id", time_col="ts")
    t = time.perf_counter()
    s = clean_sessions(log, session_gap=gap)
    secs = time.perf_counter() - t
    print(json.dumps({"seconds": secs, "sessions": len(s), "clicks": s.n_clicks,
                      "split": s.report.n_split_at_gaps, "capped_clicks": s.report.n_capped_clicks,
                      "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--visitors", type=int, default=1_000_000)
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="docs/benchmarks/session_gap_scale.md")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], None if args.child[1] == "-" else args.child[1])
        return 0
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="pf_gap_scale_"))
    path = tmp / "log.parquet"
    _write_log(path, args.rows, args.visitors, args.products)
    runs = run_children(__file__, {gap: [str(path), gap] for gap in ("-", "30m")},
                        args.repeats)
    base = statistics.median(r["seconds"] for r in runs["-"])
    lines = [
        "# `clean_sessions` with and without `session_gap` on a large visitor-keyed log", "",
        f"Command: `{command_line(argv)}` ({time.perf_counter() - t0:.0f} s in all). "
        f"Machine: {machine()}. Log: {args.rows:,} clicks of "
        f"{args.visitors:,} visitors on {args.products:,} products (Parquet, times in ms), "
        "read by `read_interactions` outside the timing; `clean_sessions` timed in a fresh "
        f"process per run, {args.repeats} runs per variant, alternating; median seconds. Peak "
        "RSS is the process's (reading included).", "",
        "| `session_gap` | seconds (median) | ratio | sessions | clicks kept | cut at pauses | "
        "clicks cut by the cap | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for gap, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        r = rs[0]
        lines.append(f"| {'none (a visitor is a session)' if gap == '-' else gap} | {med:.1f} | "
                     f"{med / base:.2f}× | {r['sessions']:,} | {r['clicks']:,} | {r['split']:,} "
                     f"| {r['capped_clicks']:,} | {max(x['rss_gib'] for x in rs):.2f} GiB |")
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
