"""Ray with everything in an S3 bucket against the same work in this process (the
forty-ninth and fiftieth sessions' checks, by hand until then).

The demo's synthetic shop (``make_synthetic``, seed 0: 2,400 products with photos) is
uploaded to an S3 server on this machine (moto's ``moto_server``, :mod:`_s3`), then:

1. ``prodfusion build`` from the bucket (catalog, click log, photos relative to the
   catalog) with ``--engine ray --ray-workers 1 --num-cpus-per-worker 0.5`` and without
   (``--text none --tune off``): the photo vectors compared;
2. the local build uploaded as a model folder (``--out s3://…``), this machine's copy
   removed (a fresh machine), then ``prodfusion export s3://…`` with ``--engine ray
   --ray-workers 2 --num-cpus-per-worker 0.5`` and without: the lists compared.

    python benchmarks/ray_bucket_check.py

Writes ``docs/benchmarks/ray_bucket_check.md``. One local Ray on this machine, not a
cluster: what it shows is that Ray's workers read the bucket (photos, the model folder)
as this process does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import command_line, machine, write_markdown  # noqa: E402
from _s3 import local_s3  # noqa: E402

RAY = ["--engine", "ray", "--num-cpus-per-worker", "0.5"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "ray_bucket_check.md"))
    args = ap.parse_args()

    import polars as pl
    import pyarrow.fs as pafs

    from prodfusion.data import make_synthetic, storage
    from prodfusion.recommender import Recommender

    work = Path(tempfile.mkdtemp(prefix="pf-ray-bucket-"))
    paths = make_synthetic(work / "shop", seed=0)
    log = open(work / "run.log", "w")

    def cli(*argv, env):
        subprocess.run([sys.executable, "-m", "prodfusion.cli", *argv], env=env, check=True,
                       stdout=log, stderr=subprocess.STDOUT)

    model_uri = "s3://bench-ray/models/shop"
    with local_s3("bench-ray") as s3:
        pafs.copy_files(str(paths.catalog.parent), "bench-ray/shop",
                        source_filesystem=pafs.LocalFileSystem(), destination_filesystem=s3.fs)
        data = ["--catalog", f"s3://bench-ray/shop/{paths.catalog.name}", "--interactions",
                f"s3://bench-ray/shop/{paths.interactions.name}", "--time-col", "timestamp",
                "--text", "none", "--tune", "off"]
        for name, extra in (("ray", [*RAY, "--ray-workers", "1"]), ("local", [])):
            cli("build", *data, "--cache-dir", str(work / f"cache-{name}"), "--out",
                str(work / f"model-{name}"), *extra, env=s3.env)
        a = Recommender.load(work / "model-ray").embeddings_["image"]
        b = Recommender.load(work / "model-local").embeddings_["image"]
        same_mask = bool((a.mask == b.mask).all())
        n_photos, diff = int(b.mask.sum()), float(np.abs(a.vectors - b.vectors).max())

        os.environ.update(s3.env)
        Recommender.load(work / "model-local").save(model_uri)
        shutil.rmtree(storage._local_home("copies", model_uri))  # a fresh machine
        storage.release_copies()
        for name, extra in (("ray", [*RAY, "--ray-workers", "2"]), ("local", [])):
            cli("export", model_uri, "--out", str(work / f"lists-{name}.parquet"), *extra,
                env=s3.env)
    lists = {n: pl.read_parquet(work / f"lists-{n}.parquet").sort("product_id")
             for n in ("ray", "local")}
    ids = {n: t["ids"].to_list() for n, t in lists.items()}
    same_lists = sum(x == y for x, y in zip(ids["ray"], ids["local"], strict=True))
    scores = {n: t["scores"].to_list() for n, t in lists.items()}
    score_diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                     for x, y in zip(scores["ray"], scores["local"], strict=True)
                     if len(x) == len(y))
    shutil.rmtree(storage._local_home("copies", model_uri), ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)

    write_markdown([
        "# Ray with the data and the model in an S3 bucket, against this process",
        "",
        f"Command: `{command_line()}`; {machine()}; one local Ray (not a cluster), an S3 "
        "server on this machine (moto's `moto_server`). Data: `make_synthetic` (seed 0), "
        "2,400 products with photos, uploaded to the bucket.",
        "",
        "| check | result |",
        "|---|---|",
        f"| `build` from the bucket, photos encoded by one Ray worker (0.5 CPU) vs this "
        f"process | the same products with a photo vector: {'yes' if same_mask else 'no'} "
        f"({n_photos:,}); largest difference {diff:.1e} |",
        f"| `export s3://…` (the model folder in the bucket, no copy on this machine) on two "
        f"Ray workers vs this process | {same_lists:,} of {len(ids['local']):,} lists "
        f"identical; largest score difference {score_diff:.1e} |",
    ] + ([] if same_lists == len(ids["local"]) else [
        "",
        "Lists that differ do so where two products tie to float rounding at the 15th "
        "place: a batch of another size rounds their scores differently.",
    ]), args.out)


if __name__ == "__main__":
    main()
