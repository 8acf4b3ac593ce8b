"""Where a learned weighting's query time goes through the indexes: ``cProfile`` of
``Recommender.similar`` (optionally with ``explain``) under the ``trees`` setting of
``benchmarks/fusion_weights.py`` (synthetic catalog, synthetic sessions and trees), after a
warm-up; prints the mean milliseconds per query and the functions with the most own time.

    python benchmarks/learned_profile.py --n 100000 --sessions 150000 --queries 60 [--explain]

One process, one query at a time; nothing is asserted. The twenty-eighth session's figures
in docs/benchmarks/fusion_weights.md came from this script (then a scratch file).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _synthetic  # noqa: E402
import fusion_weights as fw  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--gen-dir", default="/tmp/pf_fw28")
    ap.add_argument("--sessions", type=int, default=150_000)
    ap.add_argument("--queries", type=int, default=60, help="timed queries after 5 warm-ups")
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--top", type=int, default=22)
    args = ap.parse_args()

    from prodfusion.fusion.cooc import Cooc
    from prodfusion.recommender import Recommender

    folder = Path(args.gen_dir) / f"n{args.n}"
    if not (folder / "catalog.parquet").is_file():
        _synthetic.generate(args.n, folder)
    catalog, embs = _synthetic.load(folder)
    rng = np.random.default_rng(0)
    counts = rng.poisson(5, len(catalog))
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate",
                                      vector_dtype="float32", index="hnsw")
    rec.cooc_ = Cooc.from_sessions(fw.synthetic_sessions(catalog, args.sessions), catalog)
    rec.modalities = rec.available_modalities
    for key, value in fw.SETTINGS["trees"].items():
        if key not in ("cooc", "trees"):
            setattr(rec, key, value)
    rec.click_counts_ = counts
    rec.learned_ = fw.synthetic_trees(rec)
    rec.searcher()
    ids = catalog.ids
    q = [ids[i] for i in rng.choice(len(ids), args.queries + 5, replace=False)]
    for x in q[:5]:
        rec.similar(x, k=15, explain=args.explain)
    prof = cProfile.Profile()
    prof.enable()
    t = time.perf_counter()
    for x in q[5:]:
        rec.similar(x, k=15, explain=args.explain)
    per = (time.perf_counter() - t) / args.queries * 1000
    prof.disable()
    print(f"{per:.1f} ms per query ({'similar + explain' if args.explain else 'similar'}, "
          f"{args.queries} queries, {len(catalog):,} products)")
    pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
