"""Where an export's time goes under a weighting, and whether block searches equal one query
at a time, on ``export_trees.py``'s 100K synthetic catalog (twenty-ninth session).

    python benchmarks/export_trees_check.py profile trees     # cProfile of 1,024 lists
    python benchmarks/export_trees_check.py check             # 300 queries, block vs one

``profile SETTING`` (a setting of ``fusion_weights.py``): one export block of 1,024 rows
(``_range_lists``) under cProfile, the 35 costliest calls by cumulative time.
``check``: for the trees (with a bonus for new products; every 7th product without
clicks), ``cooc+zmean`` and ``catpop+zmean``, the top 15 of 300 random queries searched as
one block and one query at a time (the trees also through ``pair_scores``): how many lists
differ (ids or scores, to the bit) and both times. Nothing here is asserted by tests.
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
from export_trees import model  # noqa: E402
from fusion_weights import load, synthetic_sessions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["profile", "check"])
    ap.add_argument("setting", nargs="?", default="trees")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--gen-dir", default="/tmp/pf_fw28")
    ap.add_argument("--sessions", type=int, default=150_000)
    args = ap.parse_args()
    args.data, args.vectors = None, None

    from prodfusion.batch.export import _range_lists
    from prodfusion.fusion.cooc import Cooc
    from prodfusion.index.exact import topk_rows
    from prodfusion.index.topk import Filters

    catalog, embs = load(args)
    n = len(catalog)
    counts = np.random.default_rng(0).poisson(5, n)
    cooc = Cooc.from_sessions(synthetic_sessions(catalog, args.sessions), catalog)
    if args.what == "profile":
        rec, _ = model(args.setting, catalog, embs, counts, cooc)
        mods = tuple(rec.modalities)
        _range_lists(rec, (0, 64), k=15, fusion="intermediate", modalities=mods)
        pr = cProfile.Profile()
        t = time.perf_counter()
        pr.enable()
        _range_lists(rec, (n // 2, n // 2 + 1024), k=15, fusion="intermediate", modalities=mods)
        pr.disable()
        print(f"{args.setting}: 1,024 lists in {time.perf_counter() - t:.1f} s")
        pstats.Stats(pr).sort_stats("cumulative").print_stats(35)
        return
    counts = counts.copy()
    counts[::7] = 0  # products without clicks: the trees' bonus applies
    rows = np.random.default_rng(3).choice(n, 300, replace=False)
    for name in ("trees", "cooc+zmean", "catpop+zmean"):
        _, searcher = model(name, catalog, embs, counts, cooc, bonus=1.5)
        t = time.perf_counter()
        r, s = searcher.topk(rows, 15)
        t_block = time.perf_counter() - t
        t = time.perf_counter()
        bad = 0
        for i, q in enumerate(rows):
            if name == "trees":  # query by query through pair_scores
                c = searcher.candidates(int(q), Filters())
                one_r, one_s = topk_rows(searcher.pair_scores(int(q), c)[None], 15, c[None])
            else:
                one_r, one_s = searcher.topk([q], 15)
            bad += not (np.array_equal(one_r[0], r[i]) and np.array_equal(one_s[0], s[i]))
        print(f"{name} ({type(searcher).__name__}): {bad} of {len(rows)} lists differ; "
              f"block {t_block:.1f} s, one query at a time {time.perf_counter() - t:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
