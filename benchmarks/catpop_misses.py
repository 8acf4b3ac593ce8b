"""Which exact top-15 products the approximate search misses with ``category`` + ``popularity``.

The synthetic catalog of ``benchmarks/fusion_weights.py`` (``--n`` products, seed 0), the
``catpop+zmean`` setting (text 1, image 0.5, clicks 2, category 1, popularity 0.5, ``zmean``),
``--queries`` random query products: for every product of the exact fuser's top 15 that the
approximate search (``Recommender.searcher()``) does not return, whether it shares the query's
category, its click count and its rank in the vector index's own order (up to 2,000; -1 beyond).
docs/benchmarks/fusion_weights.md quotes it (sixth session), run on the code before and after
the category's most popular products became candidates.

Usage: python benchmarks/catpop_misses.py [--n 100000] [--queries 200] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fusion_weights as fw  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--gen-dir", default="/tmp/pf_fusion_weights")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from prodfusion.fusion.category import CategoryMatch
    from prodfusion.fusion.popularity import PopularityPrior
    from prodfusion.recommender import Recommender

    catalog, embs = fw.load(argparse.Namespace(n=args.n, gen_dir=args.gen_dir, data=None,
                                               vectors=None))
    n = len(catalog)
    rng = np.random.default_rng(0)
    counts = rng.poisson(5, n)  # as fusion_weights.py draws them
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate",
                                      vector_dtype="float32", index="hnsw")
    rec.category_ = CategoryMatch.from_catalog(catalog)
    rec.popularity_ = PopularityPrior(counts)
    rec.modalities = rec.available_modalities
    setting = {k: v for k, v in fw.SETTINGS["catpop+zmean"].items()
               if k not in ("category", "popularity")}
    for key, value in setting.items():
        setattr(rec, key, value)
    rec.click_counts_ = counts
    approx, exact = rec.searcher(), rec.fuser()
    rows = rng.choice(n, args.queries, replace=False)
    er, _ = exact.topk(rows, 15)
    ar, _ = approx.topk(rows, 15)
    vr, _ = approx.dense.topk(rows, 2000)
    codes = rec.category_.codes
    miss = []
    for i, q in enumerate(rows):
        for j in sorted(set(er[i].tolist()) - set(ar[i].tolist())):
            pos = np.flatnonzero(vr[i] == j)
            miss.append((bool(codes[q] == codes[j]), int(counts[j]),
                         int(pos[0]) if len(pos) else -1))
    lines = [f"`python benchmarks/catpop_misses.py --n {args.n} --queries {args.queries}`: "
             f"{len(miss)} of {len(rows) * 15} exact top-15 results missed by the approximate "
             f"search (recall@15 {1 - len(miss) / (len(rows) * 15):.3f})."]
    if miss:
        same, cnt, pos = zip(*miss, strict=True)
        lines.append(f"In the query's category: {sum(same)} of {len(miss)}; click counts "
                     f"{min(cnt)}–{max(cnt)} (Poisson(5) catalog); rank in the vector "
                     f"index's order {min(pos)}–{max(pos)} (-1: beyond 2,000).")
    text = "\n\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
