"""How long ``prodfusion ab views`` takes on a large event store.

A SQLite event store is filled with ``--events`` verified view events (``--visitors``
visitors, ``--products`` products, one impression each, a reload repeating one in twenty)
through ``EventStore.add`` in batches, as the service writes them; then ``export_views``
writes them to Parquet (``ab views``' path), and ``read_interactions`` + ``clean_sessions``
(``session_gap="30m"``) read the file back as ``build`` would. Seconds and peak RSS of this
process; one run.

    python benchmarks/ab_views_scale.py --events 2000000 --out docs/benchmarks/ab_views_scale.md
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import command_line, machine, write_markdown

from prodfusion.data import clean_sessions, read_interactions
from prodfusion.service.events import Event, open_event_store
from prodfusion.service.views_log import export_views


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--visitors", type=int, default=100_000)
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--out", default="docs/benchmarks/ab_views_scale.md")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pf_ab_views_"))
    rng = np.random.default_rng(0)
    n = args.events
    visitor = rng.integers(0, args.visitors, n)
    product = rng.integers(0, args.products, n)
    ts = np.sort(rng.uniform(0, 30 * 86400, n)) + 1.78e9
    store = open_event_store(tmp / "events.sqlite3", synchronous="NORMAL")
    t0 = time.perf_counter()
    batch = 10_000
    for lo in range(0, n, batch):
        evs = []
        for i in range(lo, min(lo + batch, n)):
            j = i - 1 if i and rng.random() < 0.05 else i  # a reload of the previous page
            evs.append(Event(f"e{i}", "view", "exp", "a", f"v{visitor[j]}", f"r{j}",
                             f"p{product[j]:06d}", received_at=float(ts[i])))
        store.add(evs)
    fill = time.perf_counter() - t0
    size = (tmp / "events.sqlite3").stat().st_size
    t0 = time.perf_counter()
    res = export_views(store, tmp / "views.parquet")
    export = time.perf_counter() - t0
    store.close()
    t0 = time.perf_counter()
    log = read_interactions(tmp / "views.parquet", session_cols="visitor", item_col="product_id",
                            time_col="ts")
    sessions = clean_sessions(log, session_gap="30m")
    read = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    cmd = command_line(argv)
    lines = [
        "# `prodfusion ab views` on a large event store", "",
        f"Command: `{cmd}`. Machine: {machine()}; one run. Store: SQLite ({size / 2**30:.2f} GiB), "
        f"{n:,} view events of {args.visitors:,} visitors on {args.products:,} products over "
        "30 days, one in twenty a reload of the previous impression (same request id), "
        "written through `EventStore.add` in batches of 10,000 (`synchronous=NORMAL` for the fill "
        "only).", "",
        "| step | seconds | rows |",
        "| --- | ---: | ---: |",
        f"| fill the store (not part of the export) | {fill:.1f} | {n:,} events |",
        f"| `export_views` → Parquet (what `ab views` runs) | {export:.1f} | {res['views']:,} "
        f"views of {res['visitors']:,} visitors |",
        f"| `read_interactions` + `clean_sessions(session_gap=\"30m\")` of the file | "
        f"{read:.1f} | {len(sessions):,} sessions, {sessions.n_clicks:,} clicks |",
        "", f"Peak RSS of the process: {rss:.2f} GiB.",
    ]
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
