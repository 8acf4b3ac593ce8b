"""Top-15 category precision of the tuned fusion like for like (thirteenth session, issue 10):
each single modality against the tuned intermediate fusion on the *same* queries — the
products that have that modality — every product of the catalog a query.

``prodfusion demo`` prints one share per modality over 300 random queries, where a modality
alone serves only the queries that have it (photos alone: the 2,278 of 2,400 with a photo),
so its share and the fusion's are not over the same queries. This script answers whether the
fusion's 0.999 against the photos' 1.000 is such a coverage difference.

    prodfusion demo                      # prints "Try: prodfusion similar MODEL_DIR …"
    python benchmarks/demo_precision_slices.py MODEL_DIR [--k 15]

Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a model folder with categories (e.g. the demo's)")
    ap.add_argument("--k", type=int, default=15)
    args = ap.parse_args()
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model)
    cats = np.asarray(rec.catalog.categories)
    queries = np.arange(len(cats))

    def hits(fuser) -> tuple[np.ndarray, np.ndarray]:
        r, _ = fuser.topk(queries, args.k)
        valid = r >= 0
        return (cats[np.where(valid, r, 0)] == cats[:, None]) & valid, valid

    tuned = hits(rec.fuser("intermediate"))
    print("| queries | n | modality alone | tuned fusion | tuned: recommendations "
          "outside the category |\n| --- | ---: | ---: | ---: | ---: |")
    for m, e in rec.embeddings_.items():
        has = np.asarray(e.mask, bool)
        alone = hits(rec.fuser("intermediate", [m]))
        share = [float(s[has].sum() / v[has].sum()) for s, v in (alone, tuned)]
        wrong = int(tuned[1][has].sum() - tuned[0][has].sum())
        print(f"| with {m} | {int(has.sum()):,} | {share[0]:.4f} | {share[1]:.4f} | {wrong:,} |")
    off = tuned[1] & ~tuned[0]  # the tuned fusion's off-category recommendations
    if "clicks" in rec.embeddings_:
        cold = ~np.asarray(rec.embeddings_["clicks"].mask, bool)
        print(f"\ntuned fusion, off-category recommendations over every query: "
              f"{int(off.sum()):,}; from the {int(cold.sum()):,} queries without clicks: "
              f"{int(off[cold].sum()):,}; from the others: {int(off[~cold].sum()):,}")


if __name__ == "__main__":
    main()
