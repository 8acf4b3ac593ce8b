"""DIGINETICA has no titles or photos: the catalogs the issue 10 scripts build from it.

``viewed``: the items of ``train-item-views.sample.csv`` in order of first view, with their
``categoryId`` (7,139 items) → ``runs/digi_catalog.csv``. ``whole``: every item of
``product-categories.csv`` (184,047) in file order → ``runs/digi_full_catalog.csv``. Titles
are ``"item <id>"`` placeholders (builds pass ``--text none``).

    python benchmarks/diginetica_catalogs.py viewed|whole [--data ../shared/data/diginetica]
"""

from __future__ import annotations

import argparse

import polars as pl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=["viewed", "whole"])
    ap.add_argument("--data", default="../shared/data/diginetica")
    args = ap.parse_args()
    c = pl.read_csv(f"{args.data}/product-categories.csv", separator=";", infer_schema=False)
    if args.which == "viewed":
        v = pl.read_csv(f"{args.data}/train-item-views.sample.csv", separator=";",
                        infer_schema=False)
        items = v.select(pl.col("item_id").unique(maintain_order=True))
        items.join(c, left_on="item_id", right_on="itemId", how="left").select(
            pl.col("item_id").alias("product_id"), ("item " + pl.col("item_id")).alias("title"),
            pl.col("categoryId").alias("category")).write_csv("runs/digi_catalog.csv")
    else:
        c.select(pl.col("itemId").alias("product_id"), ("item " + pl.col("itemId")).alias("title"),
                 pl.col("categoryId").alias("category")).unique(
            "product_id", keep="first", maintain_order=True).write_csv("runs/digi_full_catalog.csv")


if __name__ == "__main__":
    main()
