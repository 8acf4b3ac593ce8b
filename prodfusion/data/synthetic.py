"""A synthetic shop whose right answer is known: categories planted in titles, photos and clicks.

:func:`make_synthetic` writes a catalog with Turkish and English titles, Pillow-drawn photos
whose shape and palette depend on the category, and click sessions that mostly stay inside one
category. Every modality therefore separates the categories, which tests and the demo check.

Examples
--------
>>> import tempfile
>>> paths = make_synthetic(tempfile.mkdtemp(), n_products=60, n_categories=3, n_sessions=40,
...                        image_size=32)
>>> paths.n_products, paths.categories
(60, ('dresses', 'shoes', 'watches'))
>>> catalog = paths.read_catalog()
>>> catalog.ids[0]
'000001'
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from prodfusion._checks import check_real, is_int
from prodfusion.errors import param_error

if TYPE_CHECKING:
    from prodfusion.data.catalog import Catalog
    from prodfusion.data.sessions import Sessions

__all__ = ["make_synthetic", "SyntheticPaths", "CATEGORIES"]


class _Category(NamedTuple):
    name: str
    en_nouns: tuple[str, ...]
    tr_nouns: tuple[str, ...]
    en_adjs: tuple[str, ...]
    tr_adjs: tuple[str, ...]
    en_for: tuple[str, ...]  # audience words; "" for none
    tr_for: tuple[str, ...]
    shape: str
    hue: tuple[int, int, int]  # base colour of the drawn object
    background: tuple[int, int, int]
    price: float  # median price


#: The categories, in the order ``make_synthetic`` uses them (the first ``n_categories``).
CATEGORIES: tuple[_Category, ...] = (
    _Category("dresses", ("dress", "maxi dress", "summer dress", "evening dress"),
              ("elbise", "maxi elbise", "yazlık elbise", "abiye elbise"),
              ("floral", "sleeveless", "cotton", "long", "pleated"),
              ("çiçekli", "kolsuz", "pamuklu", "uzun", "pliseli"),
              ("women's",), ("kadın",), "triangle", (200, 40, 90), (250, 225, 235), 40.0),
    _Category("shoes", ("sneakers", "running shoes", "boots", "loafers"),
              ("spor ayakkabı", "koşu ayakkabısı", "bot", "makosen ayakkabı"),
              ("leather", "suede", "waterproof", "casual", "lace-up"),
              ("deri", "süet", "su geçirmez", "günlük", "bağcıklı"),
              ("men's", "women's"), ("erkek", "kadın"), "wedge", (120, 70, 30), (235, 225, 205), 70.0),
    _Category("watches", ("wristwatch", "smart watch", "chronograph watch"),
              ("kol saati", "akıllı saat", "kronograf saat"),
              ("stainless steel", "analog", "digital", "water resistant"),
              ("çelik", "analog", "dijital", "suya dayanıklı"),
              ("men's", "women's", ""), ("erkek", "kadın", ""), "ring", (90, 90, 100),
              (210, 215, 225), 150.0),
    _Category("bags", ("handbag", "shoulder bag", "backpack", "tote bag"),
              ("el çantası", "omuz çantası", "sırt çantası", "çanta"),
              ("leather", "canvas", "quilted", "large", "mini"),
              ("deri", "kanvas", "kapitone", "büyük", "mini"),
              ("women's", ""), ("kadın", ""), "bag", (150, 30, 30), (245, 230, 215), 60.0),
    _Category("phones", ("smartphone", "mobile phone", "5G phone"),
              ("akıllı telefon", "cep telefonu", "5G telefon"),
              ("128 GB", "256 GB", "dual SIM", "unlocked"),
              ("128 GB", "256 GB", "çift hatlı", "kilitsiz"),
              ("",), ("",), "phone", (20, 20, 30), (200, 225, 250), 500.0),
    _Category("laptops", ("laptop", "notebook computer", "gaming laptop", "ultrabook"),
              ("dizüstü bilgisayar", "laptop", "oyun bilgisayarı", "ultrabook"),
              ("15.6 inch", "16 GB RAM", "1 TB SSD", "ultra thin"),
              ("15.6 inç", "16 GB RAM", "1 TB SSD", "ultra ince"),
              ("",), ("",), "laptop", (60, 60, 70), (225, 235, 240), 900.0),
    _Category("sofas", ("sofa", "corner sofa", "three-seater couch", "sofa bed"),
              ("kanepe", "köşe koltuk", "üçlü koltuk", "çekyat"),
              ("velvet", "fabric", "modern", "chesterfield"),
              ("kadife", "kumaş", "modern", "chester"),
              ("",), ("",), "sofa", (40, 110, 70), (240, 235, 220), 700.0),
    _Category("lamps", ("table lamp", "floor lamp", "desk lamp", "pendant lamp"),
              ("masa lambası", "lambader", "çalışma lambası", "sarkıt avize"),
              ("LED", "dimmable", "vintage", "metal"),
              ("LED", "dimmerli", "vintage", "metal"),
              ("",), ("",), "lamp", (240, 190, 30), (40, 40, 60), 45.0),
    _Category("bicycles", ("mountain bike", "city bicycle", "road bike", "folding bike"),
              ("dağ bisikleti", "şehir bisikleti", "yol bisikleti", "katlanır bisiklet"),
              ("21-speed", "aluminium", "26 inch", "disc brake"),
              ("21 vites", "alüminyum", "26 jant", "disk frenli"),
              ("men's", "kids'", ""), ("erkek", "çocuk", ""), "bicycle", (20, 90, 200),
              (230, 245, 230), 400.0),
    _Category("perfumes", ("eau de parfum", "perfume", "eau de toilette", "cologne"),
              ("parfüm", "esans", "edt parfüm", "kolonya"),
              ("100 ml", "50 ml", "floral", "woody", "fresh"),
              ("100 ml", "50 ml", "çiçeksi", "odunsu", "ferah"),
              ("men's", "women's"), ("erkek", "kadın"), "bottle", (180, 120, 220),
              (250, 245, 255), 80.0),
    _Category("books", ("novel", "cookbook", "children's book", "history book"),
              ("roman", "yemek kitabı", "çocuk kitabı", "tarih kitabı"),
              ("hardcover", "paperback", "illustrated", "bestselling"),
              ("ciltli", "karton kapak", "resimli", "çok satan"),
              ("",), ("",), "book", (30, 60, 140), (250, 250, 240), 15.0),
    _Category("headphones", ("wireless headphones", "earbuds", "over-ear headphones"),
              ("kablosuz kulaklık", "kulak içi kulaklık", "kulak üstü kulaklık"),
              ("bluetooth", "noise cancelling", "foldable", "bass boosted"),
              ("bluetooth", "gürültü önleyici", "katlanabilir", "güçlü baslı"),
              ("",), ("",), "headphones", (10, 10, 10), (255, 220, 180), 90.0),
    _Category("sunglasses", ("sunglasses", "aviator sunglasses", "cat eye sunglasses"),
              ("güneş gözlüğü", "pilot güneş gözlüğü", "kedi gözü güneş gözlüğü"),
              ("polarized", "UV400", "oversized", "retro"),
              ("polarize", "UV400", "büyük çerçeveli", "retro"),
              ("men's", "women's", ""), ("erkek", "kadın", ""), "glasses", (30, 30, 30),
              (255, 240, 150), 35.0),
    _Category("coffee makers", ("coffee machine", "espresso maker", "drip coffee maker"),
              ("kahve makinesi", "espresso makinesi", "filtre kahve makinesi"),
              ("automatic", "1.5 litre", "stainless steel", "programmable"),
              ("otomatik", "1.5 litre", "paslanmaz çelik", "programlanabilir"),
              ("",), ("",), "cup", (100, 60, 40), (235, 240, 235), 120.0),
    _Category("toys", ("teddy bear", "toy car", "building blocks", "doll"),
              ("oyuncak ayı", "oyuncak araba", "yapı blokları", "oyuncak bebek"),
              ("plush", "remote control", "educational", "colourful"),
              ("peluş", "uzaktan kumandalı", "eğitici", "renkli"),
              ("kids'", ""), ("çocuk", ""), "blocks", (230, 60, 40), (200, 240, 255), 25.0),
    _Category("jackets", ("jacket", "winter coat", "raincoat", "puffer jacket"),
              ("ceket", "kışlık mont", "yağmurluk", "şişme mont"),
              ("hooded", "quilted", "denim", "waterproof"),
              ("kapüşonlu", "kapitone", "kot", "su geçirmez"),
              ("men's", "women's"), ("erkek", "kadın"), "jacket", (60, 90, 60),
              (235, 235, 235), 110.0),
)

_COLOURS_EN = ("red", "black", "white", "blue", "green", "grey", "pink", "beige", "navy",
               "brown", "silver", "yellow")
_COLOURS_TR = ("kırmızı", "siyah", "beyaz", "mavi", "yeşil", "gri", "pembe", "bej", "lacivert",
               "kahverengi", "gümüş", "sarı")
_BRANDS = ("Nordia", "Velto", "Kariva", "Lumera", "Orsan", "Tavira", "Bellon", "Quenta", "Miravo",
           "Solen", "Draxa", "Ekinoks", "Pelin", "Zafira", "Kuzey", "Aster")


@dataclass(frozen=True)
class SyntheticPaths:
    """Where :func:`make_synthetic` wrote its files, and what it planted.

    ``catalog`` and ``interactions`` read with the defaults of :func:`read_catalog` and
    :func:`read_interactions` (``time_col="timestamp"``); see :meth:`read_catalog` and
    :meth:`read_sessions`.
    """

    catalog: Path
    interactions: Path
    images: Path
    n_products: int
    n_categories: int
    categories: tuple[str, ...] = ()

    def read_catalog(self) -> Catalog:
        """The catalog, read with :func:`prodfusion.data.read_catalog`."""
        from prodfusion.data.io import read_catalog

        return read_catalog(self.catalog)

    def read_sessions(self, catalog: Catalog | None = None, **clean_options) -> Sessions:
        """The sessions, read with ``time_col="timestamp"`` and cleaned against ``catalog``."""
        from prodfusion.data.interactions import clean_sessions, read_interactions

        log = read_interactions(self.interactions, time_col="timestamp")
        return clean_sessions(log, catalog, **clean_options)


# --------------------------------------------------------------------------- titles
def _title(cat: _Category, lang: str, rng: np.random.Generator) -> tuple[str, int]:
    """A title and the index of its noun (the product type inside the category)."""
    nouns, adjs, aud, colours = (
        (cat.en_nouns, cat.en_adjs, cat.en_for, _COLOURS_EN) if lang == "en"
        else (cat.tr_nouns, cat.tr_adjs, cat.tr_for, _COLOURS_TR)
    )
    words = []
    if rng.random() < 0.4:
        words.append(_BRANDS[rng.integers(len(_BRANDS))])
    if rng.random() < 0.8:
        words.append(colours[rng.integers(len(colours))])
    words.append(adjs[rng.integers(len(adjs))])
    words.append(aud[rng.integers(len(aud))])
    noun = int(rng.integers(len(nouns)))
    words.append(nouns[noun])
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:], noun


# --------------------------------------------------------------------------- images
def _draw(cat: _Category, size: int, rng: np.random.Generator):
    """One product photo: the category's object and palette, jittered per product."""
    from PIL import Image, ImageDraw

    s = size
    shade = rng.integers(-35, 36, size=3)
    fg = tuple(int(v) for v in np.clip(np.array(cat.hue) + shade, 0, 255))
    bg = tuple(int(v) for v in np.clip(np.array(cat.background) + rng.integers(-12, 13, 3), 0, 255))
    im = Image.new("RGB", (s, s), bg)
    d = ImageDraw.Draw(im)
    cx = s / 2 + rng.uniform(-0.08, 0.08) * s
    cy = s / 2 + rng.uniform(-0.08, 0.08) * s
    r = rng.uniform(0.28, 0.4) * s
    w = max(1, int(s / 24))
    box = (cx - r, cy - r, cx + r, cy + r)
    shape = cat.shape
    if shape == "triangle":  # a dress: narrow top, wide hem
        d.polygon([(cx - r * 0.3, cy - r), (cx + r * 0.3, cy - r), (cx + r, cy + r), (cx - r, cy + r)],
                  fill=fg)
    elif shape == "wedge":  # a shoe: sole and upper
        d.polygon([(cx - r, cy + r * 0.5), (cx + r, cy + r * 0.5), (cx + r, cy + r * 0.1),
                   (cx - r * 0.1, cy - r * 0.2), (cx - r * 0.6, cy - r * 0.6), (cx - r, cy - r * 0.2)],
                  fill=fg)
        d.rectangle((cx - r, cy + r * 0.5, cx + r, cy + r * 0.7), fill=(30, 30, 30))
    elif shape == "ring":  # a watch: strap and face
        d.rectangle((cx - r * 0.3, cy - r * 1.2, cx + r * 0.3, cy + r * 1.2), fill=fg)
        d.ellipse((cx - r * 0.6, cy - r * 0.6, cx + r * 0.6, cy + r * 0.6), fill=(240, 240, 240),
                  outline=fg, width=3 * w)
        d.line((cx, cy, cx + r * 0.3, cy - r * 0.2), fill=(0, 0, 0), width=w)
    elif shape == "bag":
        d.arc((cx - r * 0.5, cy - r * 1.1, cx + r * 0.5, cy - r * 0.1), 180, 360, fill=fg, width=2 * w)
        d.rounded_rectangle((cx - r, cy - r * 0.5, cx + r, cy + r), radius=r * 0.2, fill=fg)
    elif shape == "phone":
        d.rounded_rectangle((cx - r * 0.5, cy - r, cx + r * 0.5, cy + r), radius=r * 0.15, fill=fg)
        d.rectangle((cx - r * 0.42, cy - r * 0.85, cx + r * 0.42, cy + r * 0.8), fill=(70, 140, 230))
    elif shape == "laptop":
        d.rectangle((cx - r * 0.8, cy - r * 0.7, cx + r * 0.8, cy + r * 0.3), fill=fg)
        d.rectangle((cx - r * 0.7, cy - r * 0.6, cx + r * 0.7, cy + r * 0.2), fill=(150, 200, 240))
        d.polygon([(cx - r * 0.8, cy + r * 0.3), (cx + r * 0.8, cy + r * 0.3), (cx + r, cy + r * 0.55),
                   (cx - r, cy + r * 0.55)], fill=fg)
    elif shape == "sofa":
        d.rectangle((cx - r, cy - r * 0.1, cx + r, cy + r * 0.5), fill=fg)
        d.rectangle((cx - r * 0.8, cy - r * 0.6, cx + r * 0.8, cy), fill=fg)
        d.rectangle((cx - r * 1.1, cy - r * 0.3, cx - r * 0.8, cy + r * 0.5), fill=fg)
        d.rectangle((cx + r * 0.8, cy - r * 0.3, cx + r * 1.1, cy + r * 0.5), fill=fg)
        d.line((cx - r * 0.9, cy + r * 0.5, cx - r * 0.9, cy + r * 0.8), fill=(40, 30, 20), width=2 * w)
        d.line((cx + r * 0.9, cy + r * 0.5, cx + r * 0.9, cy + r * 0.8), fill=(40, 30, 20), width=2 * w)
    elif shape == "lamp":
        d.polygon([(cx - r * 0.3, cy - r), (cx + r * 0.3, cy - r), (cx + r * 0.7, cy - r * 0.2),
                   (cx - r * 0.7, cy - r * 0.2)], fill=fg)
        d.line((cx, cy - r * 0.2, cx, cy + r * 0.8), fill=(180, 180, 180), width=2 * w)
        d.rectangle((cx - r * 0.4, cy + r * 0.8, cx + r * 0.4, cy + r), fill=(180, 180, 180))
    elif shape == "bicycle":
        for x in (cx - r * 0.6, cx + r * 0.6):
            d.ellipse((x - r * 0.45, cy - r * 0.05, x + r * 0.45, cy + r * 0.85), outline=fg, width=2 * w)
        d.line([(cx - r * 0.6, cy + r * 0.4), (cx, cy + r * 0.4), (cx + r * 0.3, cy - r * 0.3),
                (cx - r * 0.2, cy - r * 0.3), (cx - r * 0.6, cy + r * 0.4)], fill=fg, width=2 * w)
        d.line([(cx + r * 0.3, cy - r * 0.3), (cx + r * 0.6, cy + r * 0.4)], fill=fg, width=2 * w)
    elif shape == "bottle":
        d.rounded_rectangle((cx - r * 0.6, cy - r * 0.4, cx + r * 0.6, cy + r), radius=r * 0.2, fill=fg)
        d.rectangle((cx - r * 0.2, cy - r * 0.8, cx + r * 0.2, cy - r * 0.4), fill=(210, 180, 60))
    elif shape == "book":
        d.rectangle((cx - r * 0.7, cy - r, cx + r * 0.7, cy + r), fill=fg)
        d.rectangle((cx - r * 0.7, cy - r, cx - r * 0.5, cy + r), fill=(20, 20, 40))
        d.rectangle((cx - r * 0.3, cy - r * 0.6, cx + r * 0.5, cy - r * 0.3), fill=(240, 220, 120))
    elif shape == "headphones":
        d.arc(box, 180, 360, fill=fg, width=3 * w)
        d.rounded_rectangle((cx - r * 1.05, cy - r * 0.1, cx - r * 0.6, cy + r * 0.6), radius=r * 0.15,
                            fill=fg)
        d.rounded_rectangle((cx + r * 0.6, cy - r * 0.1, cx + r * 1.05, cy + r * 0.6), radius=r * 0.15,
                            fill=fg)
    elif shape == "glasses":
        for x in (cx - r * 0.5, cx + r * 0.5):
            d.ellipse((x - r * 0.42, cy - r * 0.35, x + r * 0.42, cy + r * 0.35), fill=fg)
        d.line((cx - r * 0.1, cy - r * 0.1, cx + r * 0.1, cy - r * 0.1), fill=fg, width=2 * w)
    elif shape == "cup":
        d.rectangle((cx - r * 0.7, cy - r, cx + r * 0.5, cy + r * 0.9), fill=fg)
        d.rectangle((cx - r * 0.45, cy - r * 0.4, cx + r * 0.25, cy + r * 0.2), fill=(40, 40, 40))
        d.ellipse((cx - r * 0.25, cy + r * 0.3, cx + r * 0.05, cy + r * 0.6), fill=(250, 250, 250))
    elif shape == "blocks":
        colours = ((230, 60, 40), (40, 160, 60), (40, 90, 220), (250, 200, 30))
        for i, (dx, dy) in enumerate(((-0.5, 0.4), (0.5, 0.4), (0.0, -0.4))):
            c = colours[(i + int(rng.integers(4))) % 4]
            d.rectangle((cx + (dx - 0.45) * r, cy + (dy - 0.4) * r, cx + (dx + 0.45) * r,
                         cy + (dy + 0.4) * r), fill=c)
    elif shape == "jacket":
        d.polygon([(cx - r * 0.4, cy - r), (cx + r * 0.4, cy - r), (cx + r, cy - r * 0.6),
                   (cx + r, cy + r * 0.2), (cx + r * 0.6, cy + r * 0.2), (cx + r * 0.6, cy + r),
                   (cx - r * 0.6, cy + r), (cx - r * 0.6, cy + r * 0.2), (cx - r, cy + r * 0.2),
                   (cx - r, cy - r * 0.6)], fill=fg)
        d.line((cx, cy - r, cx, cy + r), fill=(20, 20, 20), width=w)
    else:  # pragma: no cover - every category names a shape above
        raise AssertionError(shape)
    pixels = np.asarray(im, dtype=np.int16) + rng.integers(-10, 11, size=(s, s, 1), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- the shop
def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    bad = not is_int(value) or value < low or (high is not None and value > high)
    if bad:
        rng = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise param_error(name, "make_synthetic()", rng, value)


def make_synthetic(
    out_dir: str | Path,
    *,
    n_products: int = 2400,
    n_categories: int = 12,
    n_sessions: int = 6000,
    image_size: int = 96,
    missing_image_rate: float = 0.05,
    never_clicked_rate: float = 0.1,
    in_category_rate: float = 0.85,
    n_corrupt_images: int = 2,
    similar_rate: float = 0.0,
    seed: int = 0,
) -> SyntheticPaths:
    """Write a synthetic shop with planted categories to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created; existing files of the same names are replaced).
    n_products : int
        Products, spread evenly over the categories in a shuffled order.
    n_categories : int
        How many of :data:`CATEGORIES` to use (2 to 16), in that order.
    n_sessions : int
        Sessions written to ``sessions.csv`` (some hold one click or immediate repeats, so
        cleaning has something to do).
    image_size : int
        Side of the square PNG photos in pixels.
    missing_image_rate : float
        Share of products without a usable photo: half have an empty ``image`` cell, half
        name a file that does not exist.
    never_clicked_rate : float
        Share of products that no session clicks.
    in_category_rate : float
        Probability that a click stays in the session's category (the rest is noise).
    n_corrupt_images : int
        Products whose ``image`` names a file that exists but is not an image.
    similar_rate : float
        Probability that a click goes to a close variant of the previous product — same
        category and same product type (the title's noun: "running shoes", "koşu
        ayakkabısı") — as visitors comparing offers do; 0 (default) keeps the earlier
        sessions exactly (no extra random draw).
    seed : int
        Everything is a function of the seed.

    Returns
    -------
    SyntheticPaths
        ``catalog.csv`` (``product_id`` such as ``"000123"``, ``title``, ``image`` as
        ``images/<id>.png`` or empty, ``category``, ``brand``, ``price``, ``language``
        ``"en"``/``"tr"``), ``images/`` and ``sessions.csv`` (``session_id``, ``product_id``,
        ``timestamp`` as ISO datetimes increasing within a session).
    """
    _check_int("n_categories", n_categories, 2, len(CATEGORIES))
    _check_int("n_products", n_products, 2 * n_categories)
    _check_int("n_sessions", n_sessions, 1)
    _check_int("image_size", image_size, 16, 1024)
    _check_int("n_corrupt_images", n_corrupt_images, 0, n_products)
    for name, value in (("missing_image_rate", missing_image_rate),
                        ("never_clicked_rate", never_clicked_rate),
                        ("in_category_rate", in_category_rate),
                        ("similar_rate", similar_rate)):
        check_real(value, name, "make_synthetic()", low=0, high=1, high_open=True,
                   expected="a float in [0, 1)")

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    cats = CATEGORIES[:n_categories]
    ids = [f"{i + 1:06d}" for i in range(n_products)]
    category = rng.permutation(np.arange(n_products) % n_categories)
    language = np.where(rng.random(n_products) < 0.5, "en", "tr")

    # photos: missing (empty cell or absent file), corrupt, or drawn
    order = rng.permutation(n_products)
    n_missing = int(round(missing_image_rate * n_products))
    no_cell = set(order[: n_missing // 2].tolist())
    no_file = set(order[n_missing // 2 : n_missing].tolist())
    corrupt = set(order[n_missing : n_missing + n_corrupt_images].tolist())
    image_cells = []
    for i, pid in enumerate(ids):
        rel = f"images/{pid}.png"
        target = out / rel
        if i in no_cell:
            image_cells.append("")
            continue
        image_cells.append(rel)
        if i in no_file:
            target.unlink(missing_ok=True)
        elif i in corrupt:
            target.write_bytes(b"this is not a PNG file\n")
        else:
            _draw(cats[category[i]], image_size, rng).save(target, compress_level=1)

    noun = np.zeros(n_products, dtype=np.int64)
    with (out / "catalog.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "title", "image", "category", "brand", "price", "language"])
        for i, pid in enumerate(ids):
            c = cats[category[i]]
            price = c.price * float(np.exp(rng.normal(0, 0.35)))
            title, noun[i] = _title(c, language[i], rng)
            w.writerow([pid, title, image_cells[i], c.name,
                        _BRANDS[rng.integers(len(_BRANDS))], f"{price:.2f}", language[i]])

    # clicks: Zipf popularity inside each category, some products never clicked
    clickable = np.ones(n_products, dtype=bool)
    clickable[rng.choice(n_products, int(round(never_clicked_rate * n_products)), replace=False)] = False
    pools, weights = [], []
    for c in range(n_categories):
        members = rng.permutation(np.flatnonzero((category == c) & clickable))
        pools.append(members)
        p = 1.0 / np.arange(1, len(members) + 1) ** 1.1
        weights.append(p / p.sum())
    everyone = np.flatnonzero(clickable)
    kind = category * 16 + noun  # category and product type
    variants = {int(x): np.flatnonzero((kind == x) & clickable) for x in np.unique(kind)}
    start = dt.datetime(2024, 3, 1)
    starts = np.sort(rng.uniform(0, 30 * 86400, n_sessions))
    with (out / "sessions.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["session_id", "product_id", "timestamp"])
        for s in range(n_sessions):
            c = int(rng.integers(n_categories))
            length = 1 if rng.random() < 0.05 else int(min(2 + rng.geometric(0.25), 25))
            t = float(starts[s])
            prev = -1
            for _ in range(length):
                if prev >= 0 and rng.random() < 0.05:
                    item = prev  # a reload: an immediate repeat
                elif similar_rate > 0 and prev >= 0 and rng.random() < similar_rate \
                        and len(variants[int(kind[prev])]) > 1:
                    close = variants[int(kind[prev])]  # a close variant of the previous one
                    item = int(close[rng.integers(len(close))])
                elif rng.random() < in_category_rate and len(pools[c]):
                    item = int(pools[c][rng.choice(len(pools[c]), p=weights[c])])
                else:
                    item = int(everyone[rng.integers(len(everyone))])
                stamp = (start + dt.timedelta(seconds=int(t))).isoformat()
                w.writerow([f"s{s + 1:05d}", ids[item], stamp])
                t += float(rng.uniform(5, 120))
                prev = item
    return SyntheticPaths(
        catalog=out / "catalog.csv",
        interactions=out / "sessions.csv",
        images=images,
        n_products=n_products,
        n_categories=n_categories,
        categories=tuple(c.name for c in cats),
    )
