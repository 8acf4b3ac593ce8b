"""Lists a day's ``prodfusion add`` should not touch, before and after it (nineteenth session).

Writes the tour's feed from the demo shop's catalog: 30 titles changed (" deluxe edition"),
three pairs of photos swapped, 10 products dropped (retired with ``--retire-missing``), 20
new products (copies of existing rows with new ids and " new model" titles), seed 5. Then
it exports every list of a copy of MODEL, runs ``add`` with the feed, exports again, and
counts the lists that hold no added, re-encoded or retired product and are not of one
whose order or members changed. Apart from new products entering, none should change.

    prodfusion demo --out DIR
    python benchmarks/add_churn.py DIR/model DIR/data/catalog.csv

It printed ``393`` of ``1,776`` changed lists on the code before commit ``cd97e7e``, when
``add`` sampled the calibration statistics again. Run ``git checkout cd97e7e~1`` to
reproduce that. With the statistics kept it prints ``0``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_feed(catalog: Path, out: Path) -> None:
    import polars as pl

    df = pl.read_csv(catalog, schema_overrides={"product_id": pl.Utf8})
    rng = np.random.default_rng(5)
    n = df.height
    titles = df["title"].to_list()
    for i in rng.choice(n, 30, replace=False):
        titles[i] = titles[i] + " deluxe edition"
    imgs = df["image"].to_list()
    sw = rng.choice(n, 6, replace=False)
    for a, b in zip(sw[:3], sw[3:], strict=True):
        imgs[a], imgs[b] = imgs[b], imgs[a]
    df = df.with_columns(pl.Series("title", titles), pl.Series("image", imgs))
    keep = np.setdiff1d(np.arange(n), rng.choice(n, 10, replace=False))
    new = df[rng.choice(n, 20, replace=False).tolist()].with_columns(
        pl.Series("product_id", [f"N{i:05d}" for i in range(20)]),
        (pl.col("title") + " new model").alias("title"))
    pl.concat([df[keep.tolist()], new]).write_csv(out)


def main() -> None:
    import pyarrow.parquet as pq

    from prodfusion.recommender import Recommender

    model, catalog = Path(sys.argv[1]), Path(sys.argv[2])
    cli = [sys.executable, "-m", "prodfusion.cli"]
    tmp = Path(tempfile.mkdtemp(prefix="add_churn_"))
    try:
        feed = catalog.parent / ".add_churn_feed.csv"  # beside it: the image paths resolve
        write_feed(catalog, feed)
        work = tmp / "model"
        shutil.copytree(model, work)
        for step in (["export", str(work), "--out", str(tmp / "before.parquet"), "--quiet"],
                     ["add", str(work), "--catalog", str(feed), "--retire-missing"],
                     ["export", str(work), "--out", str(tmp / "after.parquet"), "--quiet"]):
            subprocess.run([*cli, *step], check=True, capture_output=True)
        feed.unlink()
        rec = Recommender.load(work)
        touched = set(rec._ids[rec.updated_ > 0]) if rec.updated_ is not None else set()
        touched |= set(rec._ids[rec.retired_]) if rec.retired_ is not None else set()
        b = pq.read_table(tmp / "before.parquet").to_pydict()
        a = pq.read_table(tmp / "after.parquet").to_pydict()
        entering = (set(a["product_id"]) - set(b["product_id"])) | touched
        after = dict(zip(a["product_id"], a["ids"], strict=True))
        n = changed = 0
        for p, ids in zip(b["product_id"], b["ids"], strict=True):
            if p in touched or set(ids) & touched:
                continue
            n += 1
            rest = [x for x in after[p] if x not in entering]
            changed += rest != ids[:len(rest)]
        print(json.dumps({"untouched lists": n, "changed (products entering aside)": changed}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
