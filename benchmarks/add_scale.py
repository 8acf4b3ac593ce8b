"""What a daily ``prodfusion add`` costs against the rebuild it replaces, by catalog size
(eighteenth session): synthetic shops built with ``--tune off`` (the baseline of the same
run), then three ``add`` runs on copies of the model, in subprocesses under ``/usr/bin/time
-v`` (wall time and peak RSS):

* ``feed``: today's feed — the whole catalog with 1 % of the titles changed, plus 1 % new
  products (titles and categories copied from existing ones, new ids);
* ``same feed again``: nothing to do (the check alone: reading the feed, comparing it);
* ``feed + clicks``: the feed plus ``--interactions`` (Prod2Vec retrained and co-occurrences
  counted again on the whole click log).

Writes ``docs/benchmarks/add_scale.md``.

    python benchmarks/add_scale.py [--products 30000,100000] [--index auto]
                                   [--out docs/benchmarks/add_scale.md]

The shops are :func:`prodfusion.data.make_synthetic` as in ``benchmarks/tune_scale.py``
(``similar_rate=0.5``, one session per product, ``missing_image_rate=0.999``; the builds use
``--image none``), so the encoding cost is the default text encoder's and the lexical
modality's; a catalog with photos pays the image encoder for new and changed photos only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tune_scale import REPO, _log, timed_run  # noqa: E402


def _feed(catalog: Path, out: Path, share: float) -> tuple[int, int]:
    """The catalog with ``share`` of its titles changed (each the title of the product half
    the catalog away) plus ``share`` new products; returns (changed, new)."""
    f = pl.read_csv(catalog, infer_schema_length=0)
    n = f.height
    step = max(1, round(1 / share))
    titles = f["title"].to_list()
    changed = list(range(0, n, step))
    for i in changed:
        titles[i] = titles[(i + n // 2) % n]
    new = f.head(len(changed)).with_columns(("new" + pl.col("product_id")).alias("product_id"))
    pl.concat([f.with_columns(pl.Series("title", titles)), new]).write_csv(out)
    return len(changed), new.height


def measure(n: int, tmp: Path, args) -> dict:
    from prodfusion.data import make_synthetic

    paths = make_synthetic(tmp / "data", n_products=n, n_sessions=n, seed=0,
                           similar_rate=0.5, missing_image_rate=0.999)
    inter = ["--interactions", str(paths.interactions), "--session-cols", "session_id",
             "--item-col", "product_id", "--time-col", "timestamp"]
    model = tmp / "model"
    _log(f"{n:,} products: building (--tune off)")
    build = timed_run([sys.executable, "-m", "prodfusion.cli", "build", "--catalog",
                       str(paths.catalog), *inter, "--workers", "1", "--image", "none",
                       "--cache-dir", "none", "--tune", "off", "--index", args.index,
                       "--out", str(model)])
    feed = tmp / "feed.csv"
    n_changed, n_new = _feed(paths.catalog, feed, args.share)
    rows = {"products": n, "changed": n_changed, "new": n_new,
            "build": build[:2]}
    runs = (("feed", []), ("feed + clicks", ["--interactions", str(paths.interactions)]))
    for name, extra in runs:
        work = tmp / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(model, work)
        _log(f"{n:,} products: add ({name})")
        rows[name] = timed_run([sys.executable, "-m", "prodfusion.cli", "add", str(work),
                                "--catalog", str(feed), "--cache-dir", "none", *extra])[:2]
        if name == "feed":
            _log(f"{n:,} products: add (same feed again)")
            rows["same feed again"] = timed_run(
                [sys.executable, "-m", "prodfusion.cli", "add", str(work), "--catalog",
                 str(feed), "--cache-dir", "none"])[:2]
    _log(str(rows))
    return rows


def report(rows: list[dict], args, seconds: float) -> str:
    lines = [
        "# A daily `prodfusion add` against a rebuild, by catalog size",
        "",
        f"Command: `python benchmarks/add_scale.py --products {args.products} --index "
        f"{args.index} --share {args.share:g}` ({seconds / 60:.0f} min).  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, 24 GiB, no GPU.  ",
        "Data: `make_synthetic(n_products=N, n_sessions=N, seed=0, similar_rate=0.5, "
        "missing_image_rate=0.999)`; the baseline is `prodfusion build --image none "
        "--cache-dir none --tune off --workers 1 --index "
        f"{args.index}` (titles encoded by the default text encoder, lexical, Prod2Vec on one "
        "thread, cooc; no tuning — a default build would tune too, several times longer). "
        f"The feed: the whole catalog with {args.share:.0%} of the titles changed and "
        f"{args.share:.0%} new products; each `add` runs on a fresh copy of the model with "
        "`--cache-dir none`. One run per size.",
        "",
        "| products | changed / new | build `--tune off` | add: feed | add: the same feed "
        "again | add: feed + `--interactions` |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        b = r["build"][0]

        def cell(key, r=r, b=b):
            t, gib = r[key]
            return f"{t:.1f} s, {gib:.2f} GiB (**{t / b:.2f}×**)"

        lines.append(f"| {r['products']:,} | {r['changed']:,} / {r['new']:,} | {b:.0f} s, "
                     f"{r['build'][1]:.2f} GiB | {cell('feed')} | {cell('same feed again')} | "
                     f"{cell('feed + clicks')} |")
    lines += [
        "",
        "Times are wall clock including Python start-up, loading the model and the atomic "
        "save of the whole folder (the ratio is to the build of the same run). `feed + "
        "clicks` retrains Prod2Vec on the whole click log as a build does (20 epochs), so it "
        "costs about the build's Prod2Vec share; what it saves is the encoding of every "
        "title and photo and the tuning, and it keeps the model's weights.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", default="30000,100000")
    ap.add_argument("--index", default="auto", help="the builds' --index")
    ap.add_argument("--share", type=float, default=0.01,
                    help="share of titles changed and of new products in the feed")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "add_scale.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = []
    for n in (int(s) for s in args.products.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(n, Path(tmp), args))
    text = report(rows, args, time.perf_counter() - t0)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
