"""What ``prodfusion export --update`` saves after a day's ``prodfusion add``, by catalog size
(nineteenth session): a synthetic shop built with ``--tune off``, exported in full, given
today's feed (1 % of the titles changed, 1 % new products: ``benchmarks/add_scale.py``'s
feed), then the grown model exported twice — in full (the baseline of the same run) and
with ``--update`` from the first file — in subprocesses under ``/usr/bin/time -v``. The two
files are compared list by list (they must be equal, up to float32 rounding of near-ties).
Writes ``docs/benchmarks/export_update.md``.

    python benchmarks/export_update.py [--products 30000,100000] [--index auto]
                                       [--out docs/benchmarks/export_update.md]

``--index auto`` gives the exact search below 50,000 products and HNSW from there (the
model's default); the update scores each kept list's query against every new or changed
product exactly, so its cost grows with catalog size × products changed.
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from add_scale import _feed  # noqa: E402
from tune_scale import REPO, _log, timed_run  # noqa: E402

CLI = [sys.executable, "-m", "prodfusion.cli"]


def compare_lists(a_path: Path, b_path: Path) -> dict:
    """Two lists files of the same products, list by list: how many name the same products in
    the same order (``identical``), the same products (``members``), and the largest score
    difference of lists of equal length (``worst``). Also ``ray_cluster.py``'s."""
    import pyarrow.parquet as pq

    a = pq.read_table(a_path).to_pydict()
    b = pq.read_table(b_path).to_pydict()
    assert a["product_id"] == b["product_id"], "the two files list other products"
    same = sum(x == y for x, y in zip(a["ids"], b["ids"], strict=True))
    members = sum(set(x) == set(y) for x, y in zip(a["ids"], b["ids"], strict=True))
    worst = max((float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) if len(x) and len(x) ==
                 len(y) else 0.0) for x, y in zip(a["scores"], b["scores"], strict=True))
    return {"lists": len(a["ids"]), "identical": same, "members": members, "worst": worst}


def measure(n: int, tmp: Path, args) -> dict:
    from prodfusion.data import make_synthetic

    paths = make_synthetic(tmp / "data", n_products=n, n_sessions=n, seed=0,
                           similar_rate=0.5, missing_image_rate=0.999)
    model = tmp / "model"
    _log(f"{n:,} products: building (--tune off)")
    timed_run([*CLI, "build", "--catalog", str(paths.catalog), "--interactions",
               str(paths.interactions), "--session-cols", "session_id", "--item-col",
               "product_id", "--time-col", "timestamp", "--workers", "1", "--image", "none",
               "--cache-dir", "none", "--tune", "off", "--index", args.index, "--out",
               str(model)])
    before = tmp / "before.parquet"
    _log(f"{n:,} products: export before the add")
    first = timed_run([*CLI, "export", str(model), "--out", str(before), "--quiet"])
    feed = tmp / "feed.csv"
    n_changed, n_new = _feed(paths.catalog, feed, args.share)
    _log(f"{n:,} products: add ({n_changed:,} changed, {n_new:,} new)")
    add = timed_run([*CLI, "add", str(model), "--catalog", str(feed), "--cache-dir", "none"])
    _log(f"{n:,} products: export in full")
    full = timed_run([*CLI, "export", str(model), "--out", str(tmp / "full.parquet"),
                      "--quiet"])
    _log(f"{n:,} products: export --update")
    upd = timed_run([*CLI, "export", str(model), "--out", str(tmp / "upd.parquet"),
                     "--update", str(before), "--quiet", "--json"])
    import json

    rep = json.loads(upd[2])
    c = compare_lists(tmp / "full.parquet", tmp / "upd.parquet")
    row = {"products": n, "changed": n_changed, "new": n_new, "first export": first[:2],
           "add": add[:2], "full": full[:2], "update": upd[:2],
           "recomputed": rep["recomputed"], "kept": rep["kept"], "lists": c["lists"],
           "identical": c["identical"], "same members": c["members"], "worst score": c["worst"]}
    _log(str(row))
    return row


def report(rows: list[dict], args, seconds: float) -> str:
    cmd = (f"python benchmarks/export_update.py --products "
           f"{','.join(str(r['products']) for r in rows)} --index {args.index}"
           + (f" --share {args.share:g}" if args.share != 0.01 else "")
           + (f" --out {os.path.relpath(args.out, REPO)}"
              if Path(args.out).resolve() != REPO / "docs/benchmarks/export_update.md" else ""))
    lines = [
        "# `export --update` after a day's `add`, against a full export",
        "",
        f"Command: `{cmd}` "
        f"({seconds / 60:.0f} min in all). Machine: {platform.machine()}, {platform.system()}, "
        "a 2-core / 24 GiB VM, no GPU, nothing else running. Data: synthetic shops "
        "(`make_synthetic`, seed 0, one session per product, titles only, `--tune off`, "
        f"`--index {args.index}`); today's feed: {args.share * 100:g} % of the titles changed "
        f"and {args.share * 100:g} % new products (`benchmarks/add_scale.py`'s feed). One run "
        "per size.",
        "",
        "| products | changed / new | `add` | full export | `export --update` | update / full | "
        "lists recomputed | lists equal to the full export's | peak RSS full / update |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['products']:,} | {r['changed']:,} / {r['new']:,} | {r['add'][0]:.1f} s | "
            f"{r['full'][0]:.1f} s | {r['update'][0]:.1f} s | "
            f"{r['update'][0] / r['full'][0]:.2f} | {r['recomputed']:,} of {r['lists']:,} | "
            f"{r['identical']:,} (same members: {r['same members']:,}; largest score "
            f"difference {r['worst score']:.1e}) | {r['full'][1]:.2f} / {r['update'][1]:.2f} GiB |")
    lines += [
        "",
        "Times are wall seconds of the whole command (model load included), one run each. "
        "`export --update` recomputes the lists of the added and re-encoded products, the "
        "lists that hold a re-encoded or retired one, and the lists one of them enters "
        "(each kept list's query scored exactly against every added or re-encoded product); "
        "it keeps the rest. A list counts as equal when it names the same products in the "
        "same order; near-ties can swap where a batch of other queries rounds the last "
        "float32 bit differently (the same is true of two full exports with other batch "
        "sizes).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", default="30000,100000")
    ap.add_argument("--index", default="auto")
    ap.add_argument("--share", type=float, default=0.01)
    ap.add_argument("--out", default=str(REPO / "docs/benchmarks/export_update.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = []
    for n in (int(x) for x in args.products.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix=f"export_update_{n}_"))
        try:
            rows.append(measure(n, tmp, args))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    text = report(rows, args, time.perf_counter() - t0)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
