"""make_synthetic keeps its promises: counts, two languages, category-drawn photos, sessions."""

from __future__ import annotations

import os
import re

import numpy as np
import polars as pl
import pytest
from PIL import Image, UnidentifiedImageError

from prodfusion.data import make_synthetic, read_interactions
from prodfusion.data.synthetic import CATEGORIES
from prodfusion.errors import ParameterError


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    paths = make_synthetic(tmp_path_factory.mktemp("shop"))  # the defaults, as the demo uses them
    catalog = paths.read_catalog()
    return paths, catalog


def test_counts_ids_and_categories(shop):
    paths, cat = shop
    assert paths.n_products == len(cat) == 2400 and paths.n_categories == 12
    assert re.fullmatch(r"0\d{5}", cat.ids[0]) and cat.ids[122] == "000123"
    names = cat.frame["category"].unique().sort().to_list()
    assert names == sorted(paths.categories) and len(names) == 12
    assert {"dresses", "shoes", "watches", "bags", "phones", "laptops", "sofas", "lamps",
            "bicycles", "perfumes", "books", "headphones"} == set(names)
    sizes = cat.frame.group_by("category").len()["len"]
    assert sizes.min() == sizes.max() == 200
    assert cat.frame.columns == ["product_id", "title", "image", "category", "brand", "price",
                                 "language"]
    assert (cat.frame["price"].cast(pl.Float64) > 0).all()


def test_titles_in_two_languages_carry_their_category(shop):
    _, cat = shop
    lang = np.array(cat.frame["language"].to_list())
    assert 0.45 < (lang == "tr").mean() < 0.55
    spec = {c.name: c for c in CATEGORIES}
    for title, c, lg in zip(cat.titles, cat.categories, lang, strict=True):
        nouns = spec[c].tr_nouns if lg == "tr" else spec[c].en_nouns
        assert any(n.lower() in title.lower() for n in nouns), (title, c, lg)
    tr_titles = [t for t, lg in zip(cat.titles, lang, strict=True) if lg == "tr"]
    assert sum(bool(re.search("[çğıöşüÇĞİÖŞÜ]", t)) for t in tr_titles) > 0.5 * len(tr_titles)
    en_titles = [t for t, lg in zip(cat.titles, lang, strict=True) if lg == "en"]
    assert not any(re.search("[çğıöşü]", t) for t in en_titles)


def test_images_exist_some_absent_some_corrupt(shop):
    _, cat = shop
    paths = cat.image_paths
    empty = sum(p is None for p in paths)
    missing = sum(p is not None and not os.path.exists(p) for p in paths)
    assert empty == 60 and missing == 60  # 5% of 2,400, half each way
    corrupt = 0
    for p in paths:
        if p is None or not os.path.exists(p):
            continue
        try:
            with Image.open(p) as im:
                assert im.size == (96, 96)
        except UnidentifiedImageError:
            corrupt += 1
    assert corrupt == 2


def test_images_separate_categories(shop):
    """Nearest class mean on 12x12 thumbnails, fitted on half and scored on the other half."""
    _, cat = shop
    xs, ys = [], []
    for p, c in zip(cat.image_paths, cat.categories, strict=True):
        try:
            with Image.open(p) as im:
                xs.append(np.asarray(im.convert("RGB").resize((12, 12)), dtype=np.float32).ravel())
                ys.append(c)
        except (OSError, AttributeError, TypeError):
            continue
    x, y = np.stack(xs), np.array(ys)
    train = np.arange(len(y)) % 2 == 0
    labels = np.unique(y)
    means = np.stack([x[train & (y == c)].mean(0) for c in labels])
    d = ((x[~train, None, :] - means[None]) ** 2).sum(-1)
    accuracy = (labels[d.argmin(1)] == y[~train]).mean()
    assert accuracy > 0.9


def test_sessions_planted_structure(shop):
    paths, cat = shop
    log = read_interactions(paths.interactions, time_col="timestamp")
    assert log["session"].n_unique() == 6000
    # timestamps increase within each session
    diffs = log.with_columns(d=pl.col("ts").diff().over("session")).filter(pl.col("d").is_not_null())
    assert (diffs["d"] > 0).all()
    s = paths.read_sessions(cat)
    assert s.report.n_unknown_rows == 0 and s.report.n_repeats_collapsed > 0
    assert s.report.n_short_dropped > 0
    counts = s.product_counts()
    never = len(cat) - len(counts)
    assert 0.08 * len(cat) <= never <= 0.12 * len(cat)
    # Zipf: the top 10% of products get far more than 10% of the clicks
    top = sorted(counts.values(), reverse=True)
    assert sum(top[: len(cat) // 10]) > 0.35 * s.n_clicks
    # most consecutive clicks stay in one category
    category = dict(zip(cat.ids.tolist(), cat.categories, strict=True))
    same = total = 0
    for sess in s:
        for a, b in zip(sess, sess[1:], strict=False):
            same += category[a] == category[b]
            total += 1
    assert same / total > 0.6


def test_deterministic_and_validated(tmp_path):
    a = make_synthetic(tmp_path / "a", n_products=40, n_categories=4, n_sessions=30, image_size=16)
    b = make_synthetic(tmp_path / "b", n_products=40, n_categories=4, n_sessions=30, image_size=16)
    assert a.catalog.read_bytes() == b.catalog.read_bytes()
    assert a.interactions.read_bytes() == b.interactions.read_bytes()
    c = make_synthetic(tmp_path / "c", n_products=40, n_categories=4, n_sessions=30, image_size=16,
                       seed=1)
    assert c.catalog.read_bytes() != a.catalog.read_bytes()
    with pytest.raises(ParameterError, match=re.escape(
            "The 'n_categories' parameter of make_synthetic() must be an int in [2, 16]. Got 17 "
            "instead.")):
        make_synthetic(tmp_path / "d", n_categories=17)
    with pytest.raises(ParameterError, match=re.escape(
            "The 'missing_image_rate' parameter of make_synthetic() must be a float in [0, 1). "
            "Got 1.5 instead.")):
        make_synthetic(tmp_path / "d", missing_image_rate=1.5)


def test_close_variant_browsing_keeps_the_catalog_and_plants_product_types(tmp_path):
    """similar_rate sends clicks to the previous product's type (same category and noun);
    0 (the default) draws exactly the earlier sessions, and the catalog never changes."""
    kw = dict(n_products=240, n_categories=4, n_sessions=300, image_size=16, seed=3)
    plain = make_synthetic(tmp_path / "a", **kw)
    close = make_synthetic(tmp_path / "b", similar_rate=0.6, **kw)
    assert plain.catalog.read_bytes() == close.catalog.read_bytes()
    again = make_synthetic(tmp_path / "c", similar_rate=0.0, **kw)
    assert plain.interactions.read_bytes() == again.interactions.read_bytes()

    def same_type_share(paths):
        cat = paths.read_catalog()
        kind = {p: (c, t.split()[-1]) for p, c, t in zip(cat.ids, cat.categories, cat.titles,
                                                          strict=True)}
        log = read_interactions(paths.interactions, time_col="timestamp")
        f = log.frame if hasattr(log, "frame") else log
        rows = f.sort(["session", "ts"]).select("session", "product_id").rows()
        pairs = [(a[1], b[1]) for a, b in zip(rows, rows[1:], strict=False)
                 if a[0] == b[0] and a[1] != b[1]]
        return np.mean([kind[a] == kind[b] for a, b in pairs])

    # (the last title word is the noun in one language: a lower bound on same-type pairs)
    assert same_type_share(close) > same_type_share(plain) + 0.1


@pytest.mark.parametrize("n", [1, 2, 7, 3000])
def test_the_zipf_draws_are_rng_choices_draws(n):
    """make_synthetic's clicks draw by cumulative weights computed once; the draws (and the
    generator's state after them) are those of ``rng.choice(n, p=weights)``, so a shop of a
    given seed is the one earlier versions wrote."""
    from prodfusion.data.synthetic import _draw_rank, _zipf_cdf

    p = 1.0 / np.arange(1, n + 1) ** 1.1
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    cdf = _zipf_cdf(n)
    assert [int(a.choice(n, p=p / p.sum())) for _ in range(500)] == [_draw_rank(cdf, b) for _ in range(500)]
    assert a.random() == b.random()


def test_truth_is_what_the_sessions_were_drawn_from_and_changes_nothing(tmp_path):
    """``truth=True`` writes each product's kind, clickability and Zipf probability without
    touching the shop; the clicks follow them: never-clickable products never appear, a
    category's probabilities sum to 1, the most probable products are clicked most, and with
    ``similar_rate`` a step stays in its kind far more often than the kinds' sizes give."""
    kw = dict(n_products=240, n_categories=4, n_sessions=600, image_size=16, seed=3,
              similar_rate=0.5)
    plain = make_synthetic(tmp_path / "a", **kw)
    told = make_synthetic(tmp_path / "b", truth=True, **kw)
    assert plain.truth is None and told.truth == tmp_path / "b" / "truth.csv"
    for f in ("catalog", "interactions"):
        assert getattr(plain, f).read_bytes() == getattr(told, f).read_bytes()
    t = pl.read_csv(told.truth, schema_overrides={"product_id": pl.Utf8})
    assert t["product_id"].to_list() == told.read_catalog().ids.tolist()
    sums = t.group_by("category").agg(pl.col("zipf_p").sum())["zipf_p"].to_numpy()
    assert np.allclose(sums, 1.0)
    assert (t.filter(~pl.col("clickable"))["zipf_p"] == 0).all()
    log = read_interactions(told.interactions, time_col="timestamp")
    f = log.frame if hasattr(log, "frame") else log
    clicked = f.group_by("product_id").len().join(t, on="product_id")
    assert clicked["clickable"].all()  # never-clickable products are never clicked
    top = clicked.sort("zipf_p", descending=True).head(12)["len"].mean()
    rest = clicked.sort("zipf_p", descending=True).tail(60)["len"].mean()
    assert top > 3 * rest
    kind = dict(zip(t["product_id"], t["kind"], strict=True))
    rows = f.sort(["session", "ts"]).select("session", "product_id").rows()
    same = [kind[a[1]] == kind[b[1]] for a, b in zip(rows, rows[1:], strict=False)
            if a[0] == b[0] and a[1] != b[1]]
    sizes = t.group_by("kind").len()["len"].to_numpy()
    chance = float((sizes.astype(float) ** 2).sum()) / len(t) ** 2  # 7 % here
    assert np.mean(same) > 4 * chance


def test_next_click_probabilities_rank_the_drawn_next_clicks_first(tmp_path):
    """The shop's own odds (``SyntheticPaths.next_click_probabilities``) put the clicks the
    sessions drew in their top 15 more often than the category's bestsellers do, sum to at
    most 1 over the other products, and never favour a product that is never clicked."""
    shop = make_synthetic(tmp_path, n_products=240, n_categories=4, n_sessions=800,
                          image_size=16, seed=3, similar_rate=0.5, truth=True)
    assert (shop.similar_rate, shop.in_category_rate) == (0.5, 0.85)
    ids = shop.read_catalog().ids.tolist()
    row = {p: i for i, p in enumerate(ids)}
    log = read_interactions(shop.interactions, time_col="timestamp")
    f = log.frame if hasattr(log, "frame") else log
    r = f.sort(["session", "ts"]).select("session", "product_id").rows()
    steps = np.array([(row[a[1]], row[b[1]]) for a, b in zip(r, r[1:], strict=False)
                      if a[0] == b[0] and a[1] != b[1]])
    q, t = steps[:, 0], steps[:, 1]
    p = shop.next_click_probabilities(q)
    assert np.isneginf(p[np.arange(len(q)), q]).all()
    finite = np.where(np.isfinite(p), p, 0.0)
    assert (finite.sum(1) <= 1 + 1e-9).all() and (finite.sum(1) > 0.5).all()
    truth = pl.read_csv(shop.truth, schema_overrides={"product_id": pl.Utf8})
    assert (finite[:, ~truth["clickable"].to_numpy()] == 0).all()

    def hit15(scores):
        at = scores[np.arange(len(t)), t][:, None]
        return float(((scores > at).sum(1) < 15).mean())

    cat = np.unique(truth["category"].to_numpy(), return_inverse=True)[1]
    best_sellers = np.where(cat[None, :] == cat[q][:, None], truth["zipf_p"].to_numpy(), -1.0)
    best_sellers[np.arange(len(q)), q] = -np.inf
    assert hit15(p) > hit15(best_sellers) + 0.1  # 0.66 against 0.43 here
