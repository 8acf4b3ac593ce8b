"""A made-up Japanese shop's export, to try prodfusion as a new user would (fifty-first
session, docs/first_hour.md): 600 products in 5 categories, the catalog as Japanese Excel
saves a CSV (Shift_JIS, Windows' cp932, CRLF line ends), Japanese column names, titles
written the way shop systems mix notations — brand, sizes and letters in full-width
(``ＡＣＭＥ``, ``２６．５ｃｍ``) or ASCII, the katakana of a third of the products in
half-width (``ﾗﾝﾆﾝｸﾞｼｭｰｽﾞ`` for ``ランニングシューズ``, as older POS and mail-order systems
write it), words parted by an ideographic space (U+3000) or an ASCII one — and a click log
``セッションID,商品コード,日時`` in UTF-8 with times written ``2023/01/02 10:00:00``
(each visit picks a category, then 2–6 products of it at random: nothing beyond the
category to learn). Beside them the catalog in UTF-8 (``katalog_utf8.csv``).

    python benchmarks/japanese_shop.py --out /tmp/q51
    prodfusion build --catalog /tmp/q51/shohin.csv --encoding cp932 --id-col 商品コード \\
        --title-col 商品名 --category-col カテゴリ --image-col 画像 \\
        --interactions /tmp/q51/clicks.csv --session-cols セッションID --item-col 商品コード \\
        --time-col 日時 --out /tmp/q51/model
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

#: (full-width katakana, half-width katakana, category)
TYPES = [("ランニングシューズ", "ﾗﾝﾆﾝｸﾞｼｭｰｽﾞ", "靴"),
         ("ダウンジャケット", "ﾀﾞｳﾝｼﾞｬｹｯﾄ", "アウター"),
         ("リュックサック", "ﾘｭｯｸｻｯｸ", "バッグ"),
         ("サングラス", "ｻﾝｸﾞﾗｽ", "アイウェア"),
         ("クォーツウォッチ", "ｸｫｰﾂｳｫｯﾁ", "時計")]
COLOURS = {"赤": (200, 20, 20), "青": (20, 20, 200), "緑": (20, 160, 20), "黒": (10, 10, 10)}
BRANDS = ["ACME", "KOBO", "ZENITH", "YAMATO", "SORA", "HIKARI"]
SIZES = ["S", "M", "L", "24.5cm", "26cm", "27.5cm"]


def full_width(s: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (``A`` → ``Ａ``)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def title_of(rng: random.Random, kind: int, colour: str) -> str:
    full, half, _ = TYPES[kind]
    wide = rng.random() < 0.5  # letters and digits in full-width
    brand, size = rng.choice(BRANDS), rng.choice(SIZES)
    if wide:
        brand, size = full_width(brand), full_width(size)
    name = half if rng.random() < 1 / 3 else full
    sp = "\u3000" if rng.random() < 0.5 else " "
    return sp.join([brand, name, colour, size])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    make_shop(ap.parse_args().out)


def make_shop(out: Path) -> None:
    """Write the export (module docstring) into ``out``."""
    from PIL import Image

    rng = random.Random(51)
    (out / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(600):
        kind = rng.randrange(len(TYPES))
        colour = rng.choice(list(COLOURS))
        pid = f"JP{i:05d}"
        img = f"img/{pid}.jpg" if i % 7 else ""
        if img:
            Image.new("RGB", (64, 64), COLOURS[colour]).save(out / img)
        rows.append((pid, title_of(rng, kind, colour), TYPES[kind][2], img))
    header = ["商品コード", "商品名", "カテゴリ", "画像"]
    for name, encoding in (("shohin.csv", "cp932"), ("katalog_utf8.csv", "utf-8")):
        with open(out / name, "w", newline="", encoding=encoding) as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(header)
            w.writerows(rows)
    clicks = []
    start = datetime(2023, 1, 2, 10)
    for s in range(3000):
        cat = rng.choice(TYPES)[2]
        items = [r[0] for r in rows if r[2] == cat]
        for j in range(rng.randint(2, 6)):
            t = start + timedelta(minutes=s * 7 + j)
            clicks.append((f"v{s}", rng.choice(items), t.strftime("%Y/%m/%d %H:%M:%S")))
    with open(out / "clicks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["セッションID", "商品コード", "日時"])
        w.writerows(clicks)
    print(f"wrote {len(rows)} products and {len(clicks):,} clicks to {out}")


if __name__ == "__main__":
    main()
