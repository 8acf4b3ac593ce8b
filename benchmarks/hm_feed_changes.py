"""Write the H&M feed with changed titles used by docs/first_hour.md and docs/service.md
(eighteenth session): ``articles.csv`` with the first ``--n`` products given the titles of
the last ``--n`` (each a real title of another product), for timing ``prodfusion add``.

    python benchmarks/hm_feed_changes.py --out /tmp/hm_feed_titles.csv [--n 50]
    cp -r runs/hm_def /tmp/hmadd       # the README's H&M build (benchmarks/issue10_profiles.sh)
    /usr/bin/time -v prodfusion add /tmp/hmadd --catalog /tmp/hm_feed_titles.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--articles", default=str(DATA / "articles.csv"))
    args = ap.parse_args()
    f = pl.read_csv(args.articles, infer_schema_length=0)
    titles = f["prod_name"].to_list()
    new = list(titles)
    for i in range(args.n):
        new[i] = titles[len(titles) - 1 - i]
    f.with_columns(pl.Series("prod_name", new)).write_csv(args.out)
    print(f"{args.out}: {f.height:,} products, {args.n} titles changed")


if __name__ == "__main__":
    main()
