"""Cost of counting ``cooc`` by proximity (tenth session): ``Cooc.from_sessions(decay=1)``
against the plain counts (``decay=0``, the sparse ``BᵀB`` product) on the same synthetic
sessions, in the same run. Each count runs in its own process, so its peak RSS is its own.

Sessions: geometric lengths (mean about 6 clicks, at most 200), products drawn from a Zipf
law over a catalog of 1,000,000 (a few popular products in many sessions, as in click logs).

Usage::

    python benchmarks/cooc_decay.py --out docs/benchmarks/cooc_decay.md
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np, polars as pl
from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.fusion.cooc import Cooc

n_products, n_sessions, decay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rng = np.random.default_rng(0)
lengths = np.minimum(rng.geometric(0.2, n_sessions) + 1, 200)
sess = np.repeat(np.arange(n_sessions), lengths)
pos = np.arange(len(sess)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
prod = (rng.zipf(1.3, len(sess)) - 1) % n_products
ids = np.char.zfill(np.arange(n_products).astype(str), 7)
frame = pl.DataFrame({"session": sess.astype(str), "position": pos,
                      "product_id": ids[prod], "ts": sess.astype(np.float64)})
sessions = Sessions(frame)
catalog = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
c = Cooc.from_sessions(sessions, catalog, decay=decay)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_kib": peak, "before_kib": before,
                  "clicks": int(len(sess)), "pairs": int((lengths * (lengths - 1) // 2).sum()),
                  "nnz": int(c.matrix.nnz)}))
"""


def run(n_products: int, n_sessions: int, decay: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n_products), str(n_sessions),
                          str(decay)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/cooc_decay.md"))
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--sessions", type=int, nargs="+", default=[300_000, 1_500_000])
    args = ap.parse_args()
    rows = []
    for s in args.sessions:
        plain = run(args.products, s, 0.0)
        near = run(args.products, s, 1.0)
        assert plain["nnz"] == near["nnz"], "a decay changes values, never which pairs co-occur"
        rows.append((s, plain, near))
        print(f"{s:,} sessions: counts {plain['seconds']:.1f}s, decay {near['seconds']:.1f}s",
              flush=True)
    gib = 1024 ** 2
    lines = [
        "# Counting `cooc` by proximity: cost against the plain counts",
        "",
        f"Command: `python benchmarks/cooc_decay.py --products {args.products} --sessions "
        f"{' '.join(map(str, args.sessions))}`  ",
        f"Machine: {platform.platform()}, {platform.machine()}, 2 CPUs; one run each, "
        f"{time.strftime('%Y-%m-%d')}.  ",
        "Data: synthetic sessions (geometric lengths, mean about 6 clicks; Zipf(1.3) products "
        f"over a catalog of {args.products:,}). `Cooc.from_sessions(decay=0)` (the sparse "
        "product BᵀB) against `decay=1` (a pair counts 1/distance: every within-session pair "
        "listed, its nearest occurrences kept per session, chunks of about 20M pairs), each "
        "in its own process; peak RSS includes the sessions (the 'before' column).",
        "",
        "| sessions | clicks | within-session pairs | co-occurring pairs | counts: time / peak RSS "
        "| decay 1: time / peak RSS | time ratio | RSS ratio | before counting |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s, p, q in rows:
        lines.append(
            f"| {s:,} | {p['clicks']:,} | {p['pairs']:,} | {p['nnz']:,} | "
            f"{p['seconds']:.1f} s / {p['peak_kib'] / gib:.2f} GiB | "
            f"{q['seconds']:.1f} s / {q['peak_kib'] / gib:.2f} GiB | "
            f"**{q['seconds'] / p['seconds']:.1f}×** | {q['peak_kib'] / p['peak_kib']:.2f}× | "
            f"{p['before_kib'] / gib:.2f} GiB |")
    lines += ["", "Counting by proximity is the cost of a choice the tuner makes only where "
              "validation shows that click order helps (README, \"Weights, calibration, "
              "tuning and why\"); `--tune off` builds and models tuned to α = 0 count the "
              "plain way. The tuner counts each validation split's co-occurrences once per "
              "exponent tried (twice more with the default `--cooc-decays 0,1`)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
