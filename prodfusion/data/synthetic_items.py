"""What one synthetic product is made of: its category (title words in English and Turkish,
the shape and colours of its photo, its price level), its title and its drawn photo.
:func:`prodfusion.data.synthetic.make_synthetic` assembles a shop from these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["CATEGORIES"]


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
