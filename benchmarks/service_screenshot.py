"""Screenshot of the web page (docs/screenshot.png, linked from the README).

Default (``--source synthetic``): a catalog of drawn products (T-shirts, trousers, dresses,
bags in ten colours and three patterns, images made with Pillow) with planted embeddings —
same category first, then similar colour — served as a two-variant experiment. That is what
docs/screenshot.png shows: nothing in it comes from a third-party data set.

``--source hm`` builds a real model on a subset of the H&M evaluation data (packaged text and
image encoders, co-purchase pairs as Prod2Vec sessions) for a look on real products. The H&M
photos may not be redistributed: never commit that screenshot.

    python benchmarks/service_screenshot.py --out docs/screenshot.png --product 1051

Needs /usr/bin/chromium (and for ``hm`` the shared data).
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


COLORS = {"red": (200, 50, 50), "orange": (230, 130, 40), "yellow": (225, 200, 60),
          "green": (70, 150, 80), "teal": (40, 140, 140), "blue": (50, 90, 190),
          "navy": (30, 40, 90), "purple": (120, 70, 160), "black": (35, 35, 35),
          "beige": (210, 190, 150)}
PATTERNS = ("plain", "striped", "dotted")
KINDS = ("T-shirt", "Trousers", "Dress", "Bag")


def _shape(kind: str, w: int, h: int) -> list[tuple[int, int]]:
    if kind == "T-shirt":
        return [(70, 40), (110, 30), (130, 50), (150, 30), (190, 40), (235, 95), (200, 115),
                (185, 95), (185, 290), (75, 290), (75, 95), (60, 115), (25, 95)]
    if kind == "Trousers":
        return [(75, 30), (185, 30), (200, 300), (150, 300), (130, 110), (110, 300), (60, 300)]
    if kind == "Dress":
        return [(100, 30), (115, 30), (125, 70), (135, 70), (145, 30), (160, 30), (165, 110),
                (215, 300), (45, 300), (95, 110)]
    return [(45, 120), (215, 120), (225, 290), (35, 290)]


def draw_product(path: Path, kind: str, color: tuple, pattern: str) -> None:
    from PIL import Image, ImageDraw

    w, h = 260, 340
    img = Image.new("RGB", (w, h), (246, 246, 244))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon(_shape(kind, w, h), fill=255)
    fill = Image.new("RGB", (w, h), color)
    d = ImageDraw.Draw(fill)
    light = tuple(min(255, c + 70) for c in color)
    if pattern == "striped":
        for y in range(0, h, 22):
            d.rectangle([0, y, w, y + 8], fill=light)
    elif pattern == "dotted":
        for y in range(10, h, 26):
            for x in range(10 + (y // 26 % 2) * 13, w, 26):
                d.ellipse([x - 5, y - 5, x + 5, y + 5], fill=light)
    img.paste(fill, (0, 0), mask)
    if kind == "Bag":
        ImageDraw.Draw(img).arc([85, 60, 175, 180], 180, 360, fill=tuple(c // 2 for c in color),
                                width=9)
    ImageDraw.Draw(img).polygon(_shape(kind, w, h), outline=tuple(c // 2 for c in color))
    img.save(path, quality=90)


def build_synthetic(folder: Path, seed: int) -> Path:
    import numpy as np
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings
    from prodfusion.recommender import Recommender

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows, feats = [], []
    names = list(COLORS)
    for k, kind in enumerate(KINDS):
        for c, cname in enumerate(names):
            for p, pattern in enumerate(PATTERNS):
                pid = f"{k + 1}{c:02d}{p}"
                path = folder / "images" / f"{pid}.jpg"
                draw_product(path, kind, COLORS[cname], pattern)
                title = f"{'' if pattern == 'plain' else pattern.capitalize() + ' '}{cname} {kind}"
                rows.append((pid, title[0].upper() + title[1:], str(path), kind))
                rgb = np.array(COLORS[cname]) / 255.0
                feats.append(np.concatenate([np.eye(len(KINDS))[k] * 3, rgb * 2,
                                             np.eye(len(PATTERNS))[p]]))
    frame = pl.DataFrame(rows, schema=["product_id", "title", "image", "category"], orient="row")
    x = np.array(feats)
    emb = {m: Embeddings((x + rng.normal(scale=0.15, size=x.shape)).astype(np.float32),
                         np.ones(len(x), bool), f"synthetic-{m}") for m in ("text", "image", "clicks")}
    rec = Recommender.from_embeddings(Catalog(frame, source="<drawn>"), emb, fusion="intermediate")
    model = rec.save(folder / "model")
    cfg = folder / "serve.toml"
    cfg.write_text(f"""[service]
events = "events.sqlite3"
shop_url = "https://shop.example/p/{{product_id}}"

[experiment]
name = "fusion-vs-prod2vec"

[[experiment.variants]]
name = "baseline"
model = "{model}"
modalities = ["clicks", "text"]

[[experiment.variants]]
name = "fusion"
model = "{model}"
modalities = ["text", "image", "clicks"]
""")
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA",
                                                     str(REPO.parent / "shared" / "data")))
    ap.add_argument("--source", choices=["synthetic", "hm"], default="synthetic")
    ap.add_argument("--products", type=int, default=600, help="hm: catalog subset size")
    ap.add_argument("--product", default=None, help="product to show (default: the first)")
    ap.add_argument("--model", default=None, help="reuse a model folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.service.helpers import free_port, start_server, stop_server

    work = Path(tempfile.mkdtemp(prefix="pf-shot-"))
    if args.model:
        target = Path(args.model)
    elif args.source == "synthetic":
        target = build_synthetic(work, args.seed)
    else:
        target = build(Path(args.data), work / "model", args.products, args.seed)
    port = free_port()
    server = start_server(target, port, work / "server.log", "--events",
                          str(work / "events.sqlite3"))
    try:
        import httpx
        from playwright.sync_api import sync_playwright

        base = f"http://127.0.0.1:{port}"
        pid = args.product or httpx.get(f"{base}/v1/products?limit=1").json()["items"][0]["product_id"]
        visitor = "screenshot-visitor"
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync"])
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "pf_visitor", "value": visitor, "url": base}])
            page = context.new_page()
            page.goto(f"{base}/#p={pid}")
            page.wait_for_selector("#recs a.card")
            page.wait_for_function(
                "[...document.querySelectorAll('img')].every(i => i.complete)")
            time.sleep(0.3)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        stop_server(server)
    print(f"wrote {args.out} ({target}, product {pid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
