"""A made-up marketplace catalog nobody tuned on, to try every command as a new user would
(docs/first_hour.md, forty-fifth session).

1,500 products (Parquet): ids ``SKU-00012``, the title column ``name`` with empty, missing
and 800-character titles, photos in a sub-folder (some missing, two corrupt files, grayscale
JPEGs and RGBA PNGs; 5 % without a path), a category column ``dept`` with gaps; a click log
keyed by visitor (``visitor, sku, ts``: Unix milliseconds, several visits a visitor, 80 % of
the clicks inside the visitor's department, half of them Zipf-popular), with an unknown
product id and duplicate rows. ``catalog_with_duplicates.parquet`` and
``events_with_empty_id.parquet`` also hold three repeated products and an empty product id,
which ``build`` refuses with the row; ``catalog.parquet`` and ``events.parquet`` are the same
without them.

    python benchmarks/marketplace_catalog.py --out /tmp/u45
    prodfusion build --catalog /tmp/u45/catalog.parquet --id-col sku --title-col name \\
        --image-col photo --image-root /tmp/u45/img --category-col dept \\
        --interactions /tmp/u45/events.parquet --session-cols visitor --item-col sku \\
        --time-col ts --session-gap 30m --out /tmp/u45/model

No shared data is read; a seed fixes everything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

DEPTS = ["Garden", "Küche", "Outdoor", "Toys", "Bad", None]
NOUNS = {"Garden": ["hose", "rake", "shovel", "planter"], "Küche": ["Pfanne", "Messer", "Topf"],
         "Outdoor": ["tent", "sleeping bag", "lantern"], "Toys": ["puzzle", "doll", "kite"],
         "Bad": ["Handtuch", "Spiegel"], None: ["thing"]}
COLOURS = {"Garden": (40, 160, 40), "Küche": (200, 50, 50), "Outdoor": (30, 60, 200),
           "Toys": (230, 200, 20), "Bad": (120, 220, 230), None: (128, 128, 128)}


def make(out: Path, n: int = 1500, visitors: int = 3000, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    (out / "img" / "sub").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        d = DEPTS[rng.integers(len(DEPTS))] if rng.random() > 0.05 else None
        noun = NOUNS[d][rng.integers(len(NOUNS[d]))]
        title = f"{rng.choice(['Acme', 'Zeta', 'Nordic', 'Ünal'])} {noun} {rng.integers(1, 5) * 10} cm"
        if i % 97 == 0:
            title = None
        if i % 131 == 0:
            title = ""
        if i % 211 == 0:
            title = "x " * 400
        sku = f"SKU-{i:05d}"
        img = f"sub/{sku}.jpg"
        r = rng.random()
        if r < 0.05:
            img = None
        elif r < 0.08:
            img = f"sub/missing_{sku}.jpg"
        else:
            c = np.array(COLOURS[d]) + rng.integers(-20, 20, 3)
            a = np.clip(np.ones((64, 48, 3)) * c + rng.normal(0, 10, (64, 48, 3)), 0, 255)
            im = Image.fromarray(a.astype("uint8"))
            if i % 50 == 0:
                im = im.convert("L")
            if i % 77 == 0:
                img = f"sub/{sku}.png"
                im = im.convert("RGBA")
            im.save(out / "img" / img)
        if i % 333 == 0 and img and img.endswith(".jpg") and (out / "img" / img).exists():
            (out / "img" / img).write_text("not an image")
        rows.append({"sku": sku, "name": title, "dept": d, "photo": img,
                     "price": float(rng.integers(5, 500))})
    cat = pl.DataFrame(rows)
    dup = pl.concat([cat, cat.head(3)])
    dup.write_parquet(out / "catalog_with_duplicates.parquet")
    cat.write_parquet(out / "catalog.parquet")
    # clicks drawn from the rows of the file with the repeats (the first three products a
    # little likelier): the log of the forty-fifth session's figures
    skus, depts = dup["sku"].to_list(), dup["dept"].to_list()
    by: dict = {}
    for s, d in zip(skus, depts, strict=True):
        by.setdefault(d, []).append(s)
    ev = []
    t0 = 1_700_000_000_000
    for v in range(visitors):
        t = t0 + int(rng.integers(0, 60 * 86400_000))
        d = DEPTS[rng.integers(len(DEPTS))]
        for _ in range(int(rng.integers(1, 4))):  # visits, three hours apart
            for _ in range(int(rng.integers(1, 8))):
                pool = by[d] if rng.random() < 0.8 else skus
                zipf = rng.random() < 0.5
                item = pool[min(int(rng.zipf(1.5)) - 1, len(pool) - 1)] if zipf \
                    else pool[rng.integers(len(pool))]
                ev.append({"visitor": f"v{v}", "sku": item, "ts": t})
                t += int(rng.integers(5_000, 300_000))
            t += 3 * 3600_000
    ev += [{"visitor": "v1", "sku": "UNKNOWN-1", "ts": t0}, {"visitor": "v2", "sku": None, "ts": t0}]
    ev = pl.DataFrame(ev)
    ev = pl.concat([ev, ev.head(50)])
    ev.write_parquet(out / "events_with_empty_id.parquet")
    ev.drop_nulls("sku").write_parquet(out / "events.parquet")
    print(f"wrote {out}: {cat.height:,} products, {ev.height - 1:,} events")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    make(args.out, seed=args.seed)


if __name__ == "__main__":
    main()
