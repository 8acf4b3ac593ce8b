"""Resident memory right after ``Recommender.load`` (does loading read the vector pages?).

Each configuration loads the model in a fresh subprocess and reports the process's resident
set (``VmRSS``, split into anonymous and file-backed pages from ``/proc/self/status``) just
after ``load`` returns, and after one ``similar`` query. The baseline is the same process
before ``load``: a lazy, memory-mapped load should add about the size of the catalog and
masks, not of the vectors.

    python benchmarks/load_rss.py --model /tmp/pfs/1m/model [--out docs/benchmarks/load_rss.md]

Drop the page cache first (``sync; echo 1 > /proc/sys/vm/drop_caches`` as root) for a cold
measurement; file-backed RSS counts only pages this process touched either way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from _report import write_markdown

CHILD = r"""
import json, sys, time
def rss():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) / 2**20  # GiB
    return out
from prodfusion.recommender import Recommender
before = rss()
t = time.perf_counter()
rec = Recommender.load(sys.argv[1], mmap=sys.argv[2] == "1", verify=sys.argv[3] == "1")
load_s = time.perf_counter() - t
after = rss()
rec.similar(rec.catalog.ids[len(rec.catalog) // 2], k=15)
query = rss()
print(json.dumps({"before": before, "after_load": after, "after_query": query, "load_s": load_s}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", default=None, help="markdown file to write (default: print only)")
    args = ap.parse_args(argv)
    model = Path(args.model)
    vec_gib = sum(p.stat().st_size for p in model.glob("emb_*.npy")) / 2**30
    rows = []
    for mmap, verify in ((True, False), (True, True), (False, False)):
        p = subprocess.run([sys.executable, "-c", CHILD, str(model), str(int(mmap)),
                            str(int(verify))], capture_output=True, text=True, check=True)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append((mmap, verify, r))
    lines = [
        "# Resident memory right after `Recommender.load`",
        "",
        f"Command: `python benchmarks/load_rss.py --model {model}`  ",
        f"Model: {model.name}, vectors on disk {vec_gib:.2f} GiB (`emb_*.npy`).  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", load average at the end {os.getloadavg()[0]:.1f} (shared VM).  ",
        "Each row is a fresh process; RSS in GiB (anonymous + file-backed pages this process "
        "touched); 'added' is after load minus before (imports excluded).",
        "",
        "| mmap | verify | load s | RSS before | RSS after load | added by load (anon / file) "
        "| RSS after 1 query |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for mmap, verify, r in rows:
        b, a, q = r["before"], r["after_load"], r["after_query"]
        lines.append(
            f"| {mmap} | {verify} | {r['load_s']:.2f} | {b['VmRSS']:.2f} | {a['VmRSS']:.2f} | "
            f"{a['VmRSS'] - b['VmRSS']:.2f} ({a['RssAnon'] - b['RssAnon']:.2f} / "
            f"{a['RssFile'] - b['RssFile']:.2f}) | {q['VmRSS']:.2f} |")
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
