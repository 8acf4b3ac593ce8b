"""Screenshot of the web page on real products (docs/screenshot.png, linked from the README).

Builds a small model on a subset of the H&M evaluation data (titles with the packaged text
encoder, photos with the packaged image encoder, co-purchase pairs as 2-item sessions for
Prod2Vec), serves it with ``prodfusion serve``, opens one product page in Debian's headless
Chromium and saves a full-page screenshot.

    python benchmarks/service_screenshot.py --out docs/screenshot.png

Needs the shared evaluation data (``$PRODFUSION_SHARED_DATA`` or ``../shared/data``) and
/usr/bin/chromium. The data is only read; nothing of it is copied into the repository except
the screenshot itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(data: Path, out: Path, n: int, seed: int) -> Path:
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.recommender import Recommender

    arts = pl.read_csv(data / "hm" / "articles.csv", schema_overrides={"article_id": pl.Utf8},
                       infer_schema_length=0)
    top = arts["product_type_name"].value_counts().sort("count", descending=True)
    types = top["product_type_name"].head(8).to_list()
    sub = arts.filter(pl.col("product_type_name").is_in(types)).sample(n=n, seed=seed)
    frame = sub.select(
        pl.col("article_id").alias("product_id"),
        pl.col("prod_name").alias("title"),
        (pl.lit(str(data / "hm" / "images") + "/") + pl.col("article_id") + pl.lit(".jpg"))
        .alias("image"),
        pl.col("product_type_name").alias("category"),
    )
    catalog = Catalog(frame, source="H&M subset")
    ids = set(frame["product_id"].to_list())
    pairs = pl.read_csv(data / "hm" / "copurchase.csv", infer_schema_length=0)
    sessions = [[a, b] for a, b in pairs.select("article_id", "partner_article_id").iter_rows()
                if a in ids and b in ids]
    rec = Recommender(fusion="intermediate", clicks="prod2vec", progress=False).build(
        catalog, sessions if sessions else None)
    return rec.save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA",
                                                     str(REPO.parent / "shared" / "data")))
    ap.add_argument("--products", type=int, default=600)
    ap.add_argument("--product", default=None, help="product to show (default: the first)")
    ap.add_argument("--model", default=None, help="reuse a model folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.service.helpers import free_port, start_server, stop_server

    work = Path(tempfile.mkdtemp(prefix="pf-shot-"))
    model = Path(args.model) if args.model else build(Path(args.data), work / "model",
                                                      args.products, args.seed)
    port = free_port()
    server = start_server(model, port, work / "server.log", "--events",
                          str(work / "events.sqlite3"))
    try:
        import httpx
        from playwright.sync_api import sync_playwright

        base = f"http://127.0.0.1:{port}"
        pid = args.product or httpx.get(f"{base}/v1/products?limit=1").json()["items"][0]["product_id"]
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/#p={pid}")
            page.wait_for_selector("#recs a.card")
            page.wait_for_function(
                "[...document.querySelectorAll('img')].every(i => i.complete)")
            time.sleep(0.3)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        stop_server(server)
    print(f"wrote {args.out} (model {model}, product {pid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
