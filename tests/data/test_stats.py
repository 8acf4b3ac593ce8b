"""dataset_stats / format_stats on a hand-made catalog with real, missing and corrupt images."""

from __future__ import annotations

import re

import polars as pl
import pytest
from PIL import Image

from prodfusion.data import Catalog, Sessions, dataset_stats, format_stats
from prodfusion.errors import ParameterError


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    Image.new("RGB", (10, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (10, 20)).save(tmp_path / "b.png")
    Image.new("RGB", (30, 40)).save(tmp_path / "c.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    return Catalog(pl.DataFrame({
        "product_id": ["1", "2", "3", "4", "5", "6"],
        "title": ["red shoe", "a big blue hat", "x", "two words", "one", "three more words"],
        "image": [str(tmp_path / n) if n else None
                  for n in ("a.png", "b.png", "c.png", "gone.png", "bad.png", None)],
        "category": ["shoes", "hats", "hats", None, "shoes", "bags"],
    }))


def test_stats_hand_computed(catalog):
    sessions = Sessions.from_lists([["1", "2"], ["2", "3", "1"], ["1", "9"]])
    d = dataset_stats(catalog, sessions, image_sample=100)
    assert d["products"] == 6 and d["categories"] == 3
    assert d["title_words"] == {"min": 1, "max": 4, "mean": 2.17}
    assert d["products_without_title"] == 0
    assert d["images"] == {"no_path": 1, "sampled": 5, "missing": 1, "unreadable": 1,
                           "width_min": 10, "width_max": 30, "height_min": 20, "height_max": 40,
                           "most_common": "10x20", "most_common_count": 2}
    assert (d["sessions"], d["clicks"]) == (3, 7)
    assert d["clicks_per_session"] == {"min": 2, "max": 3, "mean": 2.33}
    assert d["products_clicked"] == 4 and d["products_never_clicked"] == 3  # 4, 5, 6
    assert d["cleaning"]["n_sessions"] == 3
    # steps 1→2 (shoes→hats), 2→3 (hats→hats), 3→1 (hats→shoes); 1→9: 9 has no category
    # chance: firsts shoes 1/3, hats 2/3; seconds hats 2/3, shoes 1/3 → 1/9 + 4/9 = 5/9;
    # beyond chance (1/3 − 5/9) / (1 − 5/9) = −1/2
    assert d["next_in_same_category"] == {"steps": 3, "share": 0.3333, "chance": 0.5556,
                                          "beyond_chance": -0.5}


def test_stats_sample_is_seeded_and_optional(catalog):
    a = dataset_stats(catalog, None, image_sample=2, seed=3)["images"]
    assert a == dataset_stats(catalog, None, image_sample=2, seed=3)["images"]
    assert a["sampled"] == 2
    assert "images" not in dataset_stats(catalog, None, image_sample=0)
    assert set(dataset_stats(None, Sessions.from_lists([["a", "b"]]))) == {
        "sessions", "clicks", "clicks_per_session", "products_clicked", "cleaning"}
    with pytest.raises(ParameterError, match=re.escape(
            "The 'image_sample' parameter of dataset_stats() must be an int >= 0. Got -1 "
            "instead.")):
        dataset_stats(catalog, None, image_sample=-1)


def test_format_stats_aligns_two_columns(catalog):
    text = format_stats(dataset_stats(catalog, None))
    lines = text.splitlines()
    assert lines[0] == "products                      6"
    assert "title_words.mean           2.17" in lines
    assert "images.most_common        10x20" in lines
    assert len({len(line) for line in lines}) == 1
    assert format_stats({}) == ""


def test_products_without_a_title_are_counted_apart_not_a_crash(tmp_path):
    # a CSV with an empty title and one of spaces: `prodfusion stats` crashed on NaN
    (tmp_path / "c.csv").write_text('product_id,title\n"001","red  shoe"\n"002",""\n'
                                    '"003","   "\n"004","big blue hat"\n', encoding="utf-8")
    from prodfusion.data import read_catalog

    cat = read_catalog(tmp_path / "c.csv")  # logs that 2 titles are empty
    d = dataset_stats(cat, None, image_sample=0)
    assert d["title_words"] == {"min": 2, "max": 3, "mean": 2.5}
    assert d["products_without_title"] == 2
    assert "products_without_title" in format_stats(d)


def test_sessions_stay_in_category_corrects_for_chance():
    """Two categories splitting the catalog 90 / 10, steps drawn at random: 82 % of them
    stay in one by chance alone, and the rule sees nothing beyond it; the same catalog with
    steps that stay in their category 90 % of the time holds."""
    import numpy as np

    from prodfusion.data.stats import CATEGORY_AUTO_SHARE, sessions_stay_in_category

    n = 100
    cat = Catalog(pl.DataFrame({"product_id": [str(i) for i in range(n)],
                                "title": ["t"] * n,
                                "category": ["big"] * 90 + ["small"] * 10}))
    rng = np.random.default_rng(0)
    random = [[str(a), str(b)] for a, b in rng.integers(0, n, (3000, 2)) if a != b]
    b = sessions_stay_in_category(cat, Sessions.from_lists(random))
    assert b.share > CATEGORY_AUTO_SHARE and not b.holds  # 82 % stay: chance, not browsing
    assert abs(b.chance - 0.82) < 0.02 and abs(b.beyond_chance) < 0.05

    def within(a):  # the next product of the same category 90 % of the time
        pool = range(90) if a < 90 else range(90, n)
        return int(rng.choice(pool)) if rng.random() < 0.9 else int(rng.integers(0, n))

    browse = [[str(a), str(within(a))] for a in rng.integers(0, n, 3000)]
    b = sessions_stay_in_category(cat, Sessions.from_lists([s for s in browse if s[0] != s[1]]))
    assert b.holds and b.beyond_chance > CATEGORY_AUTO_SHARE
