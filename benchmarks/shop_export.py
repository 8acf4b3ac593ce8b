"""A made-up shop system's product export whose photos are URLs (Shopify's product CSV
layout: a row per variant and per further photo, the product's fields on its first row,
``Image Src`` URLs), served by a local HTTP server standing in for the shop's CDN, built
three ways (forty-seventh session, docs/first_hour.md):

1. the same photos as local files (the baseline: what a user had to arrange before);
2. the export as it is, photos named by URL, a fresh embedding cache (every photo fetched);
3. the same again with that cache (a rebuild, or an interrupted build run again).

Writes ``docs/benchmarks/photo_urls.md``: wall times, ratios to the baseline, the server's
request counts, and whether the image vectors equal the baseline's.

    python benchmarks/shop_export.py --out /tmp/q47/bench [--products 2000] [--latency-ms 50]

The server adds ``--latency-ms`` to every answer (a CDN is not on the same machine); what a
real CDN costs depends on it and on the network.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["Dress", "Shirt", "Scarf", "Boot", "Bag", "Hat"]
COLOURS = {"Red": (200, 30, 30), "Blue": (30, 60, 200), "Green": (30, 150, 60),
           "Black": (15, 15, 15), "Sand": (210, 190, 140)}


def make_export(out: Path, n: int, base_url: str) -> None:
    """``products_export.csv`` (photos by URL) and ``products_local.csv`` (the same rows,
    photos by local path), and the photos under ``out/files``."""
    from PIL import Image, ImageDraw

    random.seed(7)
    (out / "files").mkdir(parents=True, exist_ok=True)
    header = ["Handle", "Title", "Body (HTML)", "Vendor", "Type", "Option1 Name",
              "Option1 Value", "Variant SKU", "Variant Price", "Image Src", "Image Position"]
    url_rows, local_rows = [], []
    for i in range(n):
        kind, colour = random.choice(KINDS), random.choice(list(COLOURS))
        handle = f"{colour.lower()}-{kind.lower()}-{i}"
        photos = []
        for k in range(random.choice([1, 1, 2, 3])):
            name = f"{handle}-{k + 1}.jpg"
            im = Image.new("RGB", (256, 256), (250, 250, 250))
            d = ImageDraw.Draw(im)
            x = 40 + 10 * KINDS.index(kind) + 5 * k
            d.ellipse((x, x, 256 - x, 256 - x // 2), fill=COLOURS[colour])
            im.save(out / "files" / name, quality=90)
            photos.append(name)
        sizes = random.choice([["S", "M", "L"], ["One size"], ["38", "39", "40", "41"]])
        for r in range(max(len(sizes), len(photos))):
            first = r == 0
            photo = photos[r] if r < len(photos) else ""
            row = [handle, f"{colour} {kind} No. {i}" if first else "",
                   "<p>made up</p>" if first else "", "Acme" if first else "",
                   kind if first else "", "Size" if first else "",
                   sizes[r] if r < len(sizes) else "", f"{handle}-{r}", "19.90"]
            url_rows.append(row + [f"{base_url}/files/{photo}" if photo else "",
                                   str(r + 1) if photo else ""])
            local_rows.append(row + [f"files/{photo}" if photo else "",
                                     str(r + 1) if photo else ""])
    for name, rows in (("products_export.csv", url_rows), ("products_local.csv", local_rows)):
        with open(out / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def serve(folder: Path, latency_s: float):
    hits: Counter = Counter()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            hits["GET"] += 1
            time.sleep(latency_s)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, hits


def build(out: Path, catalog: str, cache: str, model: str) -> float:
    cmd = [sys.executable, "-m", "prodfusion.cli", "build", "--catalog", str(out / catalog),
           "--id-col", "Handle", "--title-col", "Title", "--image-col", "Image Src",
           "--category-col", "Type", "--duplicate-ids", "first", "--text", "none",
           "--lexical", "tfidf:64", "--image", "effnet-lite0", "--tune", "off",
           "--cache-dir", str(out / cache), "--out", str(out / model)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=open(out / f"{model}.log", "w"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks" / "photo_urls.md")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    httpd, hits = serve(out, args.latency_ms / 1000)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    make_export(out, args.products, base)
    n_photos = len(list((out / "files").glob("*.jpg")))
    runs = []
    for label, catalog, cache, model in (
            ("photos as local files (baseline)", "products_local.csv", "cache_local", "m_local"),
            ("photos by URL, fresh cache", "products_export.csv", "cache_url", "m_url"),
            ("photos by URL, the same cache again", "products_export.csv", "cache_url",
             "m_url2")):
        before = hits["GET"]
        seconds = build(out, catalog, cache, model)
        runs.append((label, seconds, hits["GET"] - before, model))
        print(f"{label}: {seconds:.1f} s, {hits['GET'] - before} requests", flush=True)
    httpd.shutdown()

    from prodfusion.recommender import Recommender

    ref = Recommender.load(out / "m_local").embeddings_["image"]
    lines = [
        "# Photos named by URL: a shop export built as it is",
        "",
        f"`python benchmarks/shop_export.py --out {out} --products {args.products} "
        f"--latency-ms {args.latency_ms:g}` on {platform.machine()}, {os.cpu_count()} cores "
        "(the 2-core VM of docs/results/README.md, nothing else running); a made-up Shopify-"
        f"layout export of {args.products:,} products ({n_photos:,} photos of 256×256 px, "
        "each product's first photo used), served by a local HTTP server that waits "
        f"{args.latency_ms:g} ms before each answer. Each run: `prodfusion build --duplicate-ids "
        "first --text none --lexical tfidf:64 --image effnet-lite0 --tune off` (no clicks; "
        "the photos dominate).",
        "",
        "| run | wall time | × baseline | requests to the server | image vectors |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, seconds, requests, model in runs:
        emb = Recommender.load(out / model).embeddings_["image"]
        same = (np.array_equal(emb.mask, ref.mask)
                and np.allclose(emb.vectors, ref.vectors, rtol=0, atol=1e-5))
        lines.append(f"| {label} | {seconds:.1f} s | {seconds / runs[0][1]:.2f} | {requests:,} "
                     f"| {emb.n_present:,} present, {'equal to' if same else 'NOT equal to'} "
                     "the baseline's |")
    lines += ["", "The first URL run fetches the photos (16 at a time, into memory, four "
              "batches ahead of the model) beside the baseline's encoding; the second finds "
              "their vectors in the cache under their URLs and asks the server for nothing (a "
              "rebuild from local files with its cache is as quick: the photos' encoding is "
              "what the cache saves). One run each: timings "
              "on this shared VM move by several percent from run to run.", ""]
    args.report.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
