"""Run a command and sample the memory of its whole process tree (Ray's raylet and workers too).

``/usr/bin/time -v`` reports the peak RSS of one process; a Ray run spreads over a driver, the
Ray daemons and one process per actor. This samples every ``--every`` seconds, over the
command and all its descendants: the sum of RSS (counts shared file pages, e.g. memory-mapped
vectors, once per process that touched them), the sum of PSS (shared pages split between the
processes that map them: the tree's real share of memory), the largest single RSS and the
machine's load average. Peaks and the wall time go to ``--json``.

    python benchmarks/tree_mem.py --json out.json -- prodfusion export MODEL --out l.parquet --engine ray
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    t0 = time.time()
    load_before = os.getloadavg()
    proc = subprocess.Popen(cmd)
    root = psutil.Process(proc.pid)
    peak = {"rss_sum_gib": 0.0, "pss_sum_gib": 0.0, "rss_max_one_gib": 0.0, "processes": 0}
    loads = []
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss, pss, one = 0, 0, 0
        for p in procs:
            try:
                r = p.memory_info().rss
            except psutil.Error:
                continue
            rss += r
            one = max(one, r)
            pss += _pss_kib(p.pid) * 1024
        peak["rss_sum_gib"] = max(peak["rss_sum_gib"], rss / 2**30)
        peak["pss_sum_gib"] = max(peak["pss_sum_gib"], pss / 2**30)
        peak["rss_max_one_gib"] = max(peak["rss_max_one_gib"], one / 2**30)
        peak["processes"] = max(peak["processes"], len(procs))
        loads.append(os.getloadavg()[0])
        time.sleep(args.every)
    rc = proc.wait()
    out = {"cmd": cmd, "rc": rc, "seconds": round(time.time() - t0, 1),
           "start_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t0)),
           "end_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "peak": {k: round(v, 2) for k, v in peak.items()},
           "load_avg_1min": {"before": round(load_before[0], 2),
                             "min": round(min(loads), 2) if loads else None,
                             "mean": round(sum(loads) / len(loads), 2) if loads else None,
                             "max": round(max(loads), 2) if loads else None},
           "cpus": os.cpu_count(), "every_s": args.every}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(out), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
