"""A made-up price-comparison site's offer feed, to try prodfusion as a new user would
(fifty-second session, docs/first_hour.md): 160 products in 6 categories, each sold by two
to six of eight shops, so the catalog has one row per *offer* (``offers.csv``: ``offer_id``,
the shop's own ``title``, ``shop``, ``ean``, ``category``, ``price``, ``image``). The shops
write a product's title each their own way (``Sony WH-1000XM5 Black``, ``SONY WH-1000XM5
(Black) - Headphones``, ``WH-1000XM5 schwarz | Sony``) and send each their own copy of the
maker's photo (resized, padded, recompressed); two shops give no EAN, one writes it as a
spreadsheet does, without its leading zero. The click log (``clicks.csv``: ``visitor``,
``offer_id``, ``ts``) has visits of a product's offers one after another (a visitor
comparing prices), then of a similar product's (same category, often the same brand).

    python benchmarks/price_comparison.py --out /tmp/q52
    prodfusion build --catalog /tmp/q52/offers.csv --id-col offer_id --title-col title \\
        --category-col category --image-col image --group-col ean \\
        --interactions /tmp/q52/clicks.csv --session-cols visitor --item-col offer_id \\
        --time-col ts --out /tmp/q52/model
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

#: category → (title word, German word, brands, models, variants)
CATEGORIES = {
    "Headphones": ("Headphones", "Kopfhörer", ["Sony", "Bose", "Sennheiser", "JBL"],
                   ["WH-1000XM5", "QC45", "Momentum 4", "Tune 760NC", "WH-CH720N",
                    "700", "HD 450BT", "Live 660NC"], ["Black", "Silver", "Blue"]),
    "Smartphones": ("Smartphone", "Handy", ["Samsung", "Apple", "Xiaomi", "Google"],
                    ["Galaxy S23", "iPhone 15", "Redmi Note 13", "Pixel 8", "Galaxy A54",
                     "iPhone 14", "Pixel 7a"], ["128GB Black", "256GB Black", "128GB Green"]),
    "Laptops": ("Laptop", "Notebook", ["Lenovo", "HP", "Dell", "Asus"],
                ["ThinkPad E14", "Pavilion 15", "XPS 13", "ZenBook 14", "IdeaPad 5",
                 "Inspiron 15"], ["16GB 512GB", "8GB 256GB"]),
    "Coffee machines": ("Coffee Machine", "Kaffeemaschine", ["DeLonghi", "Philips", "Krups"],
                        ["Magnifica S", "EP2220", "Evidence", "Dedica EC685", "LatteGo 5400"],
                        ["Black", "Silver"]),
    "Running shoes": ("Running Shoes", "Laufschuhe", ["Asics", "Nike", "Adidas", "Brooks"],
                      ["Gel-Nimbus 25", "Pegasus 40", "Ultraboost Light", "Ghost 15",
                       "Gel-Kayano 30", "Vomero 17"], ["Size 42", "Size 44"]),
    "TVs": ("TV", "Fernseher", ["LG", "Samsung", "Sony", "Philips"],
            ["OLED55C3", "QE55Q80C", "KD-55X85L", "55PUS8508", "OLED65B3"],
            ["55 inch", "65 inch"]),
}
GERMAN = {"Black": "schwarz", "Silver": "silber", "Blue": "blau", "Green": "grün"}
SHOPS = ["alpha-electro", "BestPreis", "city-markt", "DealDirect", "ElektroEck", "FixKauf",
         "GutGünstig", "HandelHaus"]
NO_EAN = {"DealDirect", "HandelHaus"}  # these shops' feeds have no EAN
EXCEL_EAN = {"city-markt"}  # writes the EAN as a number: a leading zero is lost
SHAPES = {"Headphones": "ellipse", "Smartphones": "rectangle", "Laptops": "rectangle",
          "Coffee machines": "ellipse", "Running shoes": "polygon", "TVs": "rectangle"}


def ean13(rng: random.Random, leading_zero: bool) -> str:
    """A valid EAN-13 (check digit computed); a quarter start with 0, as US/Canadian UPCs do."""
    body = ("0" if leading_zero else str(rng.randint(1, 9))) + "".join(
        str(rng.randrange(10)) for _ in range(11))
    s = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - s % 10) % 10)


def shop_title(shop: int, brand: str, model: str, variant: str, word: str, de: str) -> str:
    """The product's title as shop ``shop`` (an index in SHOPS) writes it."""
    de_variant = " ".join(GERMAN.get(w, w) for w in variant.split())
    style = shop % 4
    if style == 0:
        return f"{brand} {model} {variant}"
    if style == 1:
        return f"{brand.upper()} {model} ({variant}) - {word}"
    if style == 2:
        return f"{model} {de_variant} | {brand}"
    return f"{de} {brand} {model}, {variant.lower()}"


def photo(rng: random.Random, category: str, colour: tuple, seed: int):
    """The maker's photo of one product: a shape of the category in the product's colour."""
    from PIL import Image, ImageDraw

    r = random.Random(seed)
    img = Image.new("RGB", (160, 160), (255, 255, 255))
    d = ImageDraw.Draw(img)
    box = (20 + r.randrange(20), 30 + r.randrange(20), 120 + r.randrange(20),
           120 + r.randrange(20))
    if SHAPES[category] == "ellipse":
        d.ellipse(box, fill=colour)
    elif SHAPES[category] == "polygon":
        d.polygon([(box[0], box[3]), (box[2], box[3]), (box[2], box[1]),
                   ((box[0] + box[2]) // 2, box[1] + 20)], fill=colour)
    else:
        d.rectangle(box, fill=colour)
    d.rectangle((box[0] + 10, box[1] + 10, box[0] + 30, box[1] + 30),
                fill=tuple(255 - c for c in colour))
    return img


def shop_copy(img, rng: random.Random):
    """A shop's copy of the maker's photo: resized, sometimes padded or cropped."""
    from PIL import ImageOps

    size = rng.choice([120, 200, 300, 400])
    out = img.resize((size, size))
    if rng.random() < 0.4:
        out = ImageOps.expand(out, border=size // 10, fill=(255, 255, 255))
    elif rng.random() < 0.3:
        m = size // 20
        out = out.crop((m, m, size - m, size - m))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    make_feed(ap.parse_args().out)


def make_feed(out: Path, n_products: int = 160, n_visits: int = 4000,
              seed: int = 52) -> dict[str, int]:
    """Write the feed (module docstring) into ``out``; returns each offer's product (the
    truth a benchmark scores lists by, not in the files)."""
    rng = random.Random(seed)
    (out / "img").mkdir(parents=True, exist_ok=True)
    products = []  # (product index, category, brand, title parts, ean)
    cats = list(CATEGORIES)
    for p in range(n_products):
        cat = cats[p % len(cats)]
        word, de, brands, models, variants = CATEGORIES[cat]
        brand, model, variant = rng.choice(brands), rng.choice(models), rng.choice(variants)
        colour = tuple(rng.randrange(30, 226) for _ in range(3))
        products.append({"p": p, "cat": cat, "brand": brand, "parts": (brand, model, variant,
                         word, de), "ean": ean13(rng, rng.random() < 0.25), "colour": colour,
                         "price": round(rng.uniform(30, 1500), 2), "offers": []})
    rows = []
    for prod in products:
        base = photo(rng, prod["cat"], prod["colour"], seed * 1000 + prod["p"])
        for shop in sorted(rng.sample(range(len(SHOPS)), rng.randint(2, 6))):
            oid = f"o{len(rows):05d}"
            name = SHOPS[shop]
            ean = "" if name in NO_EAN else prod["ean"]
            if name in EXCEL_EAN:
                ean = ean.lstrip("0")
            img = f"img/{oid}.jpg"
            shop_copy(base, rng).save(out / img, quality=rng.choice([70, 85, 95]))
            price = round(prod["price"] * rng.uniform(0.9, 1.12), 2)
            rows.append((oid, shop_title(shop, *prod["parts"]), name, ean, prod["cat"],
                         f"{price:.2f}", img))
            prod["offers"].append(oid)
    with open(out / "offers.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["offer_id", "title", "shop", "ean", "category", "price", "image"])
        w.writerows(rows)
    popularity = [1 / (1 + i) ** 0.8 for i in range(n_products)]
    rng.shuffle(popularity)
    clicks = []
    start = datetime(2024, 3, 1, 8)
    for v in range(n_visits):
        prod = rng.choices(products, weights=popularity)[0]
        t = start + timedelta(minutes=5 * v)
        for _hop in range(rng.randint(1, 3)):
            for oid in rng.sample(prod["offers"], min(len(prod["offers"]), rng.randint(1, 3))):
                clicks.append((f"v{v}", oid, t.isoformat(sep=" ")))
                t += timedelta(seconds=rng.randint(10, 90))
            same = [q for q in products if q["cat"] == prod["cat"] and q is not prod]
            brand = [q for q in same if q["brand"] == prod["brand"]]
            prod = rng.choice(brand if brand and rng.random() < 0.5 else same)
    with open(out / "clicks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["visitor", "offer_id", "ts"])
        w.writerows(clicks)
    print(f"wrote {len(rows)} offers of {n_products} products and {len(clicks):,} clicks "
          f"to {out}")
    return {oid: prod["p"] for prod in products for oid in prod["offers"]}


if __name__ == "__main__":
    main()
