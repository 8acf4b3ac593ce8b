"""First build and interactions-only rebuild on the H&M catalog, with the packaged encoders.

Runs ``prodfusion build`` in subprocesses (so peak RSS is the build's own) with a fresh
embedding cache, then again with *different interactions only* and the same cache: the second
build re-trains Prod2Vec and re-uses the text and image vectors.

    python benchmarks/hm_build.py [--data ../shared/data] [--out docs/benchmarks/hm_build.md]

Prints a table and writes it (with the command, data and machine) to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import write_markdown

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (GiB) of the child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all waited-for children: report it only when it grew.
    return dt, max(peak, before) / 2**20, p.stdout + p.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "hm_build.md"))
    args = ap.parse_args(argv)
    hm = Path(args.data) / "hm"
    work = Path(tempfile.mkdtemp(prefix="pf-hm-bench-"))
    cache = work / "cache"
    common = [
        sys.executable, "-m", "prodfusion.cli", "build",
        "--catalog", str(hm / "articles.csv"), "--id-col", "article_id", "--title-col", "prod_name",
        "--category-col", "product_type_name", "--image-root", str(hm / "images"),
        "--image-template", "{product_id}.jpg", "--cache-dir", str(cache),
    ]
    first = common + ["--pairs", str(hm / "copurchase.csv"), "--out", str(work / "m1")]
    second = common + [
        "--pairs", str(hm / "copurchase.csv"),
        "--interactions", str(hm / "transactions.csv"), "--session-cols", "customer_id,t_dat",
        "--item-col", "article_id", "--time-col", "t_dat", "--out", str(work / "m2"),
    ]
    rows = []
    load_before = os.getloadavg()
    t1, rss1, log1 = run(first)
    rows.append(("first build (empty cache; co-purchase pairs)", t1, rss1))
    t2, rss2, log2 = run(second)
    rows.append(("rebuild, new interactions only (cache warm; + transactions)", t2, rss2))
    load_after = os.getloadavg()
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, no GPU; "
        f"1-min load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at the end "
        "(other jobs on the machine inflate wall times when it is above the core count)"
    )
    lines = [
        "# Build time and peak memory on the H&M catalog (11,800 products)",
        "",
        f"Command: `python benchmarks/hm_build.py --data {args.data}`  ",
        f"Data: `{hm}` (articles.csv + images; sessions from copurchase.csv pairs, then + transactions.csv baskets)  ",
        f"Machine: {machine}; {time.strftime('%Y-%m-%d')}",
        "",
        "| step | wall time (s) | peak RSS (GiB) |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {t:.1f} | {r:.2f} |" for name, t, r in rows]
    lines += [
        "",
        f"Rebuild / first build time ratio: **{t2 / t1:.2f}**.",
        "Peak RSS is the maximum over the build subprocesses so far (getrusage RUSAGE_CHILDREN), "
        "so the second figure is max(first, second).",
        "",
        "First build output:",
        "```",
        log1.strip()[-2500:],
        "```",
        "Rebuild output:",
        "```",
        log2.strip()[-2500:],
        "```",
    ]
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
