"""A build whose catalog, click log and photos are in an S3 bucket against the same build
from the local files (forty-ninth session).

A synthetic shop (``make_synthetic``: 2,400 products with photos, 6,000 sessions) is
uploaded to an S3 server on this machine (moto's ``moto_server``, in a process of its own;
the ``test`` extra installs it), then built with ``prodfusion build``'s defaults but
``--tune off`` and no embedding cache, once from the files and once from the bucket
(``s3://…`` catalog whose photos are relative to it, a folder of two Parquet click parts),
alternating, ``--repeats`` rounds. The report gives each build's seconds, the ratio, and
whether the two models hold the same vectors.

    python benchmarks/object_storage.py [--products 2400] [--repeats 2]

Writes ``docs/benchmarks/object_storage.md``. A local S3 server answers in well under a
millisecond; a real bucket is farther away, so this measures what reading through
``pyarrow.fs`` costs, not a network.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import command_line, machine, write_markdown  # noqa: E402
from _s3 import local_s3  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=2400)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "object_storage.md"))
    args = ap.parse_args()

    import polars as pl
    import psutil
    import pyarrow.fs as pafs

    from prodfusion.data import make_synthetic
    from prodfusion.recommender import Recommender

    work = Path(tempfile.mkdtemp(prefix="pf-s3-bench-"))
    paths = make_synthetic(work / "shop", n_products=args.products,
                           n_sessions=args.products * 5 // 2, seed=0)
    clicks = pl.read_csv(paths.interactions, infer_schema=False)
    half = clicks.height // 2
    (work / "clicks").mkdir()
    clicks[:half].write_parquet(work / "clicks" / "part-0.parquet")
    clicks[half:].write_parquet(work / "clicks" / "part-1.parquet")

    with local_s3("bench-shop") as s3:
        env, fs, server = s3.env, s3.fs, s3.process
        local_fs = pafs.LocalFileSystem()
        t0 = time.perf_counter()
        pafs.copy_files(str(paths.catalog.parent), "bench-shop/shop",
                        source_filesystem=local_fs, destination_filesystem=fs)
        pafs.copy_files(str(work / "clicks"), "bench-shop/clicks",
                        source_filesystem=local_fs, destination_filesystem=fs)
        upload_s = time.perf_counter() - t0
        sources = {
            "local files": [str(paths.catalog), str(work / "clicks")],
            "S3 bucket": [f"s3://bench-shop/shop/{paths.catalog.name}", "s3://bench-shop/clicks/"],
        }
        seconds: dict[str, list[float]] = {k: [] for k in sources}
        server_cpu: list[float] = []  # the S3 server's CPU seconds during each bucket build
        proc = psutil.Process(server.pid)
        for r in range(args.repeats):
            for name, (cat, log) in sources.items():
                out = work / f"model-{name.split()[0]}-{r}"
                c0 = sum(proc.cpu_times()[:2])
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "prodfusion.cli", "build", "--catalog", cat,
                                "--interactions", log, "--time-col", "timestamp",
                                "--category-col", "category", "--tune", "off",
                                "--cache-dir", "none", "--out", str(out)],
                               env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=open(work / "build.log", "a"))
                seconds[name].append(time.perf_counter() - t0)
                if name == "S3 bucket":
                    server_cpu.append(sum(proc.cpu_times()[:2]) - c0)
                print(f"{name} round {r}: {seconds[name][-1]:.1f}s", flush=True)

    a = Recommender.load(work / "model-local-0")
    b = Recommender.load(work / "model-S3-0")
    rows = []
    for mod in ("text", "image", "lexical"):
        ea, eb = a.embeddings_.get(mod), b.embeddings_.get(mod)
        if ea is None or eb is None:
            continue
        same_mask = bool((ea.mask == eb.mask).all())
        diff = float(np.abs(ea.vectors - eb.vectors).max())
        rows.append(f"| {mod} | {int(ea.mask.sum()):,} / {int(eb.mask.sum()):,} | "
                    f"{'yes' if same_mask else 'no'} | {diff:.1e} |")
    ids_a, _ = a.similar_batch(list(a.catalog.ids[:200]), 15)
    ids_b, _ = b.similar_batch(list(b.catalog.ids[:200]), 15)
    same_lists = int((ids_a == ids_b).all(axis=1).sum())
    shutil.rmtree(work, ignore_errors=True)

    med = {k: float(np.median(v)) for k, v in seconds.items()}
    lines = [
        "# A build from an S3 bucket against the same build from local files",
        "",
        f"Command: `{command_line()}`; {machine()}; shared with other jobs (timings are "
        "upper bounds). Data: `make_synthetic` (seed 0), "
        f"{args.products:,} products with photos ({args.products * 5 // 2:,} sessions), "
        "uploaded to an S3 server on this machine (moto's `moto_server`, its own process) "
        f"in {upload_s:.1f} s; the click log as two Parquet parts. Each build: `prodfusion "
        "build --catalog … --interactions … --time-col timestamp --category-col category "
        "--tune off --cache-dir none` (text usem3, photos effnet-lite0, lexical, clicks, "
        "cooc, category, popularity), in a fresh process, the two sources alternating, "
        f"{args.repeats} rounds.",
        "",
        "| source | seconds per build | median |",
        "|---|---|---:|",
    ]
    for name, v in seconds.items():
        lines.append(f"| {name} | {', '.join(f'{s:.1f}' for s in v)} | {med[name]:.1f} |")
    lines += [
        "",
        f"Bucket / files: **{med['S3 bucket'] / med['local files']:.2f}×** (median over "
        "median). The S3 server, a Python (Flask) process on the same 2 cores, used "
        f"{', '.join(f'{c:.1f}' for c in server_cpu)} CPU seconds during the bucket's builds: "
        "CPU the build did not have, which a remote store does not take from it.",
        "",
        "The first round's two models:",
        "",
        "| modality | products with a vector (files / bucket) | same products | max abs "
        "difference |",
        "|---|---|---|---:|",
        *rows,
        "",
        f"Top-15 lists of the first 200 products equal in both models: {same_lists} of 200.",
        "",
        "A local S3 server answers in well under a millisecond; a real bucket is farther "
        "away (photos are read 16 at a time, as from a CDN, so a remote store's latency is "
        "spread over those threads), so this measures what reading through `pyarrow.fs` "
        "costs, not a network.",
    ]
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
