"""How often the next product of a session stays in the previous one's category, on the shared
data and the demo's shop: the figure ``prodfusion build --category-modality auto`` decides by
(:func:`prodfusion.data.stats.sessions_stay_in_category`: how far the share is from what
chance would give towards always).

    python benchmarks/category_share.py --out docs/benchmarks/category_share.md

Data: ``../shared/data`` (``PRODFUSION_SHARED_DATA``); the demo's shop is generated.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import polars as pl
from _report import command_line, machine, write_markdown

from prodfusion.data import Catalog, clean_sessions, read_catalog, read_interactions, read_pairs
from prodfusion.data.stats import CATEGORY_AUTO_SHARE, sessions_stay_in_category


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA", "../shared/data"))
    ap.add_argument("--out", default="docs/benchmarks/category_share.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    data = Path(args.data)
    hm = read_catalog(data / "hm" / "articles.csv", id_col="article_id", title_col="prod_name",
                      category_col="product_type_name", image_col=None)
    cats = (pl.read_csv(data / "diginetica" / "product-categories.csv", separator=";",
                        schema_overrides={"itemId": pl.Utf8, "categoryId": pl.Utf8})
            .rename({"itemId": "product_id", "categoryId": "category"}))
    digi = Catalog(cats.with_columns(pl.col("product_id").alias("title")))
    from prodfusion.data.synthetic import make_synthetic
    from prodfusion.demo import SIMILAR_RATE

    tmp = tempfile.TemporaryDirectory(prefix="pf_share_")
    demo = make_synthetic(tmp.name, n_products=2400, seed=0, similar_rate=SIMILAR_RATE)
    demo_catalog = demo.read_catalog()
    d = data / "diginetica"
    sets = [
        ("H&M customer-day baskets (`transactions.csv`, customer_id + t_dat)", hm,
         clean_sessions(read_interactions(data / "hm" / "transactions.csv",
                                          session_cols=("customer_id", "t_dat"),
                                          item_col="article_id", time_col="t_dat"), hm)),
        ("H&M co-purchase pairs (`copurchase.csv`)", hm,
         clean_sessions(read_pairs(data / "hm" / "copurchase.csv", a_col="article_id",
                                   b_col="partner_article_id"), hm, max_length=None)),
        ("DIGINETICA next views (`train-item-views.sample.csv`)", digi,
         clean_sessions(read_interactions(d / "train-item-views.sample.csv",
                                          session_cols="session_id", item_col="item_id",
                                          time_col="eventdate,timeframe", sep=";"), digi)),
        ("DIGINETICA purchases (`train-purchases.csv`)", digi,
         clean_sessions(read_interactions(d / "train-purchases.csv", session_cols="sessionId",
                                          item_col="itemId", time_col="eventdate,timeframe",
                                          sep=";"), digi)),
        ("the demo's shop (`make_synthetic(seed=0)`, as `prodfusion demo`)", demo_catalog,
         clean_sessions(read_interactions(demo.interactions, time_col="timestamp"),
                        demo_catalog)),
    ]
    lines = [
        "# How often the next product stays in the category", "",
        f"Command: `{command_line(argv)}` ({time.perf_counter() - t0:.0f} s in all). "
        f"Machine: {machine()}. Steps: two different consecutive products of a cleaned "
        "session, both with a category (H&M: `product_type_name`; DIGINETICA: `categoryId`; "
        "the demo: its planted categories). Chance: Σ p_c q_c, p and q the categories' "
        "shares among the steps' first and second products (the share of steps in one "
        "category if the second were drawn independently of the first); beyond chance: "
        "(share − chance) / (1 − chance), Cohen's kappa. `build --category-modality auto` "
        "adds the category and popularity modalities where it is at least "
        f"{CATEGORY_AUTO_SHARE:.0%} (`prodfusion.data.stats.sessions_stay_in_category`; "
        "until the forty-third session: where the share was).", "",
        "| data | steps | in one category | chance | beyond chance | `auto` |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, catalog, sessions in sets:
        b = sessions_stay_in_category(catalog, sessions)
        lines.append(f"| {label} | {b.steps:,} | {b.share:.1%} | {b.chance:.1%} | "
                     f"{b.beyond_chance:.1%} | {'on' if b.holds else 'off'} |")
    write_markdown(lines, args.out)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
