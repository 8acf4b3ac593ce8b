"""A made-up German shop's export, to try prodfusion as a new user would (forty-sixth
session, docs/first_hour.md): 600 products in 5 categories, a `;`-separated CSV with a UTF-8
byte-order mark and CRLF line ends, German column names, ids with leading zeros, titles
carrying ``&amp;``, every seventh product without a photo, and a click log
``sitzung;artikel;zeit`` with millisecond times (each visit picks a category, then 2–6
products of it at random: nothing beyond the category to learn). Beside them, the same
export as a shop system or a colleague might hand it over: the catalog in cp1252, with
Windows image paths, gzipped, and the click log gzipped and with German dates.

    python benchmarks/german_shop.py --out /tmp/q46
    prodfusion build --catalog /tmp/q46/katalog.csv --id-col Artikelnummer \\
        --title-col Bezeichnung --category-col Kategorie --image-col Bild \\
        --interactions /tmp/q46/clicks.csv --session-cols sitzung --item-col artikel \\
        --time-col zeit --out /tmp/q46/model
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import shutil
from datetime import datetime, timezone
from pathlib import Path

COLOURS = {"rot": (200, 20, 20), "blau": (20, 20, 200), "grün": (20, 160, 20),
           "schwarz": (10, 10, 10)}
TYPES = [("Laufschuh", "shoes"), ("Winterjacke", "jackets"), ("Rucksack", "bags"),
         ("Sonnenbrille", "glasses"), ("Armbanduhr", "watches")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    out = ap.parse_args().out
    from PIL import Image

    random.seed(1)
    (out / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(600):
        kind, cat = random.choice(TYPES)
        colour = random.choice(list(COLOURS))
        pid = f"{i:06d}"
        title = f"{kind} {colour} Größe {random.choice(['S', 'M', 'L', 'XL'])} &amp; mehr"
        img = f"img/{pid}.jpg" if i % 7 else ""
        if img:
            Image.new("RGB", (64, 64), COLOURS[colour]).save(out / img)
        rows.append((pid, title, cat, img))
    header = ["Artikelnummer", "Bezeichnung", "Kategorie", "Bild"]
    with open(out / "katalog.csv", "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)
    clicks = []
    t0 = 1700000000000
    for s in range(3000):
        cat = random.choice(TYPES)[1]
        items = [r[0] for r in rows if r[2] == cat]
        t = t0 + s * 100000
        for j in range(random.randint(2, 6)):
            clicks.append((f"s{s}", random.choice(items), t + j * 20000))
    with open(out / "clicks.csv", "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(["sitzung", "artikel", "zeit"])
        w.writerows(clicks)
    # the same data as it may arrive
    with open(out / "katalog_cp1252.csv", "w", newline="", encoding="cp1252") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)
    with open(out / "katalog_win.csv", "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(header)
        w.writerows((p, t, c, i.replace("/", "\\")) for p, t, c, i in rows)
    with open(out / "clicks_de.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(["sitzung", "artikel", "zeit"])
        w.writerows((s, p, datetime.fromtimestamp(t / 1000, timezone.utc)
                     .strftime("%d.%m.%Y %H:%M:%S")) for s, p, t in clicks)
    for name in ("katalog.csv", "clicks.csv"):
        with open(out / name, "rb") as a, gzip.open(out / f"{name}.gz", "wb") as b:
            shutil.copyfileobj(a, b)
    print(f"wrote {len(rows)} products, {len(clicks):,} clicks and their variants to {out}")


if __name__ == "__main__":
    main()
