"""A made-up classifieds site, to try prodfusion as a new user would (fifty-third session,
docs/first_hour.md): private sellers post second-hand items (a PS5, a Bugaboo stroller, an
IKEA sofa) that stay online a few days until sold, so on any day most listings are new and
few have clicks. Titles are the sellers' own (``PS5 disc edition like new!! 🔥``,
``SELLING MY PLAYSTATION 5``, ``Sony Playstation5 + 2 controllers``): one model goes by
several names, in capitals, with emoji, prices and "OBO". A quarter of the listings have no
photo.

Files written into ``--out``:

* ``listings.csv``: every listing of the 45 days (``listing_id``, ``title``, ``category``,
  ``price``, ``city``, ``posted``, ``status`` — ``active``, ``sold`` or ``expired`` on the
  last day —, ``ended`` — when a listing sold or expired left the site, blank while on
  sale — and ``image``, empty where the seller gave none);
* ``live.csv``: the listings still online on the last day (``status`` = ``active``), the
  feed such a site exports each night;
* ``clicks.csv``: anonymous visits (``session``, ``listing_id``, ``ts``): a visitor opens a
  listing, then mostly other listings of the same model that are online the same day,
  sometimes of the same category.

    python benchmarks/classifieds.py --out /tmp/q53
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

#: category → {model: the names sellers give it}
MODELS = {
    "Consoles": {
        "ps5": ["PS5", "Playstation 5", "PlayStation5", "Sony PS 5"],
        "ps4pro": ["PS4 Pro", "Playstation 4 Pro", "PS4 Pro 1TB"],
        "xboxx": ["Xbox Series X", "XBOX series x", "Xbox Series X 1TB"],
        "switch": ["Nintendo Switch OLED", "Switch OLED", "Nintendo switch oled model"],
    },
    "Phones": {
        "iphone12": ["iPhone 12", "Iphone12", "Apple iPhone 12", "IPHONE 12 64GB"],
        "iphone13": ["iPhone 13", "iphone 13 128gb", "Apple iPhone13"],
        "s21": ["Galaxy S21", "Samsung S21", "Samsung Galaxy S21 5G"],
        "pixel6": ["Pixel 6", "Google Pixel 6", "pixel6 128GB"],
    },
    "Strollers": {
        "fox": ["Bugaboo Fox", "Bugaboo Fox 2", "bugaboo fox pram"],
        "priam": ["Cybex Priam", "Cybex Priam stroller", "CYBEX PRIAM"],
        "yoyo": ["Babyzen Yoyo", "Yoyo2 Babyzen", "babyzen yoyo+ buggy"],
    },
    "Sofas": {
        "kivik": ["IKEA Kivik", "Kivik 3 seat sofa", "ikea KIVIK couch"],
        "ektorp": ["IKEA Ektorp", "Ektorp sofa", "Ektorp 2-seater"],
        "corner": ["corner sofa", "L-shaped couch", "Corner couch grey"],
    },
    "Bikes": {
        "marlin": ["Trek Marlin 5", "Trek marlin mtb", "TREK MARLIN 5 size M"],
        "rockhopper": ["Specialized Rockhopper", "Rockhopper 29er", "specialized rockhopper"],
        "citybike": ["city bike 28 inch", "Dutch bike", "Gazelle city bike"],
    },
    "Cameras": {
        "a6000": ["Sony A6000", "Sony Alpha 6000", "a6000 + kit lens"],
        "eos250d": ["Canon EOS 250D", "Canon 250D", "EOS 250D body"],
        "xt30": ["Fujifilm X-T30", "Fuji XT30", "X-T30 silver"],
    },
}
SHAPES = {"Consoles": "rectangle", "Phones": "rectangle", "Strollers": "ellipse",
          "Sofas": "rectangle", "Bikes": "ellipse", "Cameras": "polygon"}
CONDITION = ["like new", "barely used", "good condition", "used", "for parts", "mint",
             "as new", "with box", "no scratches"]
EXTRAS = ["OBO", "pick up only", "price negotiable", "must go", "quick sale", "", "", ""]
EMOJI = ["🔥", "✨", "‼️", "😍", "👍", ""]
CITIES = ["Berlin", "Hamburg", "Munich", "Cologne", "Leipzig"]
PRICE = {"Consoles": 300, "Phones": 350, "Strollers": 400, "Sofas": 250, "Bikes": 350,
         "Cameras": 450}


def seller_title(rng: random.Random, name: str, price: int) -> str:
    """How a private seller writes the listing of ``name``."""
    parts = [name]
    if rng.random() < 0.6:
        parts.append(rng.choice(CONDITION))
    if rng.random() < 0.25:
        parts.append(f"€{price}")
    extra = rng.choice(EXTRAS)
    if extra:
        parts.append(extra)
    t = (" - " if rng.random() < 0.4 else " ").join(parts)
    if rng.random() < 0.2:
        t = "SELLING " + t.upper()
    elif rng.random() < 0.15:
        t = t.lower()
    if rng.random() < 0.3:
        t += "!!"
    e = rng.choice(EMOJI)
    return f"{t} {e}" if e else t


def photo(rng: random.Random, category: str):
    """A seller's snapshot: the category's shape in the item's colour on a room's colour."""
    from PIL import Image, ImageDraw

    bg = tuple(rng.randrange(150, 256) for _ in range(3))
    img = Image.new("RGB", (128, 128), bg)
    d = ImageDraw.Draw(img)
    colour = tuple(rng.randrange(20, 200) for _ in range(3))
    box = (15 + rng.randrange(20), 20 + rng.randrange(20), 90 + rng.randrange(25),
           90 + rng.randrange(25))
    if SHAPES[category] == "ellipse":
        d.ellipse(box, fill=colour)
    elif SHAPES[category] == "polygon":
        d.polygon([(box[0], box[3]), (box[2], box[3]), (box[2], box[1]),
                   ((box[0] + box[2]) // 2, box[1] + 15)], fill=colour)
    else:
        d.rectangle(box, fill=colour)
    return img


def ended(x: dict, now: int, start: datetime = datetime(2024, 5, 1)) -> str:
    """When listing ``x`` left the site (the start of its ``gone`` day) if before day
    ``now``; blank while on sale."""
    return "" if x["gone"] >= now else (start + timedelta(days=x["gone"])).isoformat(sep=" ")


def make_site(out: Path, days: int = 45, posts_per_day: int = 70, visits_per_day: int = 140,
              seed: int = 53) -> list[dict]:
    """Write the site's files (module docstring) into ``out``; returns the listings with
    what the files do not say: each one's ``model``, the ``day`` it was posted and the day
    it was ``gone`` (the truth a benchmark may score by)."""
    rng = random.Random(seed)
    (out / "img").mkdir(parents=True, exist_ok=True)
    start = datetime(2024, 5, 1)
    listings = []
    for day in range(days):
        for _ in range(rng.randint(posts_per_day * 3 // 4, posts_per_day * 5 // 4)):
            cat = rng.choice(list(MODELS))
            model = rng.choice(list(MODELS[cat]))
            price = int(PRICE[cat] * rng.uniform(0.4, 1.4)) // 5 * 5
            lid = f"L{len(listings) + 100000}"
            image = ""
            if rng.random() < 0.75:
                image = f"img/{lid}.jpg"
                photo(rng, cat).save(out / image, quality=80)
            life = 1 + int(rng.expovariate(1 / 6))
            listings.append({
                "listing_id": lid, "title": seller_title(rng, rng.choice(MODELS[cat][model]),
                                                        price),
                "category": cat, "price": price, "city": rng.choice(CITIES),
                "posted": (start + timedelta(days=day, hours=rng.randrange(7, 23))).isoformat(
                    sep=" "), "image": image, "model": model, "day": day,
                "gone": day + life, "sold": rng.random() < 0.7})
    clicks = []
    for day in range(days):
        live = [x for x in listings if x["day"] <= day < x["gone"]]
        by_model: dict[str, list] = {}
        by_cat: dict[str, list] = {}
        for x in live:
            by_model.setdefault(x["model"], []).append(x)
            by_cat.setdefault(x["category"], []).append(x)
        fresh = [1.0 / (1 + day - x["day"]) for x in live]  # new listings are seen more
        for v in range(rng.randint(visits_per_day * 3 // 4, visits_per_day * 5 // 4)):
            x = rng.choices(live, weights=fresh)[0]
            t = start + timedelta(days=day, hours=rng.randrange(7, 23),
                                  minutes=rng.randrange(60))
            s = f"s{day:02d}{v:04d}"
            for _hop in range(rng.randint(1, 6)):
                clicks.append((s, x["listing_id"], t.isoformat(sep=" ")))
                t += timedelta(seconds=rng.randint(20, 240))
                r = rng.random()
                pool = (by_model[x["model"]] if r < 0.65 else
                        by_cat[x["category"]] if r < 0.9 else live)
                others = [y for y in pool if y is not x]
                if not others:
                    break
                x = rng.choice(others)
    fields = ["listing_id", "title", "category", "price", "city", "posted", "status", "ended",
              "image"]
    for name, keep in (("listings.csv", lambda x: True),
                       ("live.csv", lambda x: x["gone"] >= days)):
        with open(out / name, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fields, extrasaction="ignore")
            w.writeheader()
            for x in listings:
                if keep(x):
                    status = ("active" if x["gone"] >= days else
                              "sold" if x["sold"] else "expired")
                    w.writerow({**x, "status": status, "ended": ended(x, days)})
    with open(out / "clicks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["session", "listing_id", "ts"])
        w.writerows(clicks)
    n_live = sum(x["gone"] >= days for x in listings)
    print(f"wrote {len(listings):,} listings ({n_live:,} online on the last day) and "
          f"{len(clicks):,} clicks to {out}")
    return listings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    make_site(ap.parse_args().out)


if __name__ == "__main__":
    main()
