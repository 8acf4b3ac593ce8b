"""What a batch export (``prodfusion export``) costs under a learned weighting (boosted trees),
against the paper's weighting and the linear weighting the trees re-score, in the same run.

On ``fusion_weights.py``'s synthetic catalog (real dimensions, missing modalities, HNSW
search), one model per setting — ``paper`` (equal weights, raw cosines), ``cooc+zmean``
(the weights the trees re-score, with ``cooc``) and ``trees`` (300 trees of 31 leaves over
them, each modality's own index: :class:`~prodfusion.index.learned.LearnedRescorer`) — is
built in memory, and the export's own unit of work (``batch/export.py: _range_lists``: one
block of ``--batch`` catalog rows through ``Recommender.similar_rows``, into an Arrow table)
is timed on ``--blocks`` blocks at random offsets, the settings in turn per block (so
neither the other jobs on the machine nor caches favour one). Reports lists per second per
setting, the ratio to ``paper``, and the time a one-worker export of the whole catalog
would take at that rate (``prodfusion export --workers N`` divides it by about N). Writes a
markdown table (``--out``) and JSON (``--json``). Nothing here is asserted by tests.

    python benchmarks/export_trees.py --n 100000 --sessions 150000 \\
        --out docs/benchmarks/export_trees.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fusion_weights import SETTINGS, _mem, load, synthetic_sessions, synthetic_trees  # noqa: E402


def model(name: str, catalog, embs, counts, cooc, bonus: float = 0.0):
    """``(rec, searcher)``: an in-memory model of ``fusion_weights.py``'s setting ``name``
    (HNSW search; ``cooc``, category, popularity and trees as the setting asks; the trees
    with ``bonus`` for products without clicks), its searcher built."""
    from prodfusion.fusion.category import CategoryMatch
    from prodfusion.fusion.popularity import PopularityPrior
    from prodfusion.recommender import Recommender

    kw = dict(SETTINGS[name])
    use = {x: kw.pop(x, False) for x in ("cooc", "category", "popularity", "trees")}
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate", index="hnsw")
    if use["cooc"]:
        rec.cooc_ = cooc
    if use["category"]:
        rec.category_ = CategoryMatch.from_catalog(catalog)
    if use["popularity"]:
        rec.popularity_ = PopularityPrior(counts)
    rec.modalities = rec.available_modalities
    for key, value in kw.items():
        setattr(rec, key, value)
    rec.click_counts_ = counts
    if use["trees"]:
        rec.learned_ = synthetic_trees(rec).with_cold_bonus(bonus)
    return rec, rec.searcher()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="generate a catalog of N products")
    ap.add_argument("--gen-dir", default="/tmp/pf_fusion_weights")
    ap.add_argument("--data", default=None, help="a generated folder (benchmarks/scale.py gen)")
    ap.add_argument("--vectors", default=None, help="folder of float16 emb_<m>.npy to map")
    ap.add_argument("--sessions", type=int, default=150_000, help="synthetic sessions (cooc)")
    ap.add_argument("--settings", default="paper,cooc+zmean,trees")
    ap.add_argument("--batch", type=int, default=4096, help="rows per block (export's default)")
    ap.add_argument("--blocks", type=int, default=3, help="blocks timed per setting")
    ap.add_argument("--json", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from prodfusion.batch.export import _range_lists
    from prodfusion.fusion.cooc import Cooc

    names = args.settings.split(",")
    t0 = time.perf_counter()
    catalog, embs = load(args)
    n = len(catalog)
    counts = np.random.default_rng(0).poisson(5, n)
    t = time.perf_counter()
    cooc = Cooc.from_sessions(synthetic_sessions(catalog, args.sessions), catalog)
    print(f"loaded {n:,} products, cooc in {time.perf_counter() - t:.0f} s; "
          f"memory {_mem()}", flush=True)
    recs, builds = {}, {}
    for name in names:
        t = time.perf_counter()
        recs[name], _ = model(name, catalog, embs, counts, cooc)
        builds[name] = time.perf_counter() - t
        print(f"built {name} in {builds[name]:.0f} s; memory {_mem()}", flush=True)

    starts = np.random.default_rng(1).choice(max(1, n - args.batch), args.blocks, replace=False)
    # one small block each first: the fusers' arrays, the trees decoded, first page faults
    for name in names:
        _range_lists(recs[name], (0, 64), k=15, fusion="intermediate",
                     modalities=tuple(recs[name].modalities))
    secs = {name: 0.0 for name in names}
    lists = {name: 0 for name in names}
    order = np.random.default_rng(2)
    for i, lo in enumerate(starts):
        for j in order.permutation(len(names)):
            name = names[j]
            hi = min(n, int(lo) + args.batch)
            t = time.perf_counter()
            table = _range_lists(recs[name], (int(lo), hi), k=15, fusion="intermediate",
                                 modalities=tuple(recs[name].modalities))
            secs[name] += time.perf_counter() - t
            lists[name] += table.num_rows
        print(f"block {i + 1}/{len(starts)}: " + ", ".join(
            f"{x} {lists[x] / secs[x]:.0f} lists/s" for x in names), flush=True)
    rate = {x: lists[x] / secs[x] for x in names}
    base = rate[names[0]]
    rows = [{"setting": x, "lists_per_s": round(rate[x], 1),
             "time_vs_first": round(base / rate[x], 2),
             "whole_catalog_s": round(n / rate[x]), "index_build_s": round(builds[x])}
            for x in names]
    info = {"n": n, "batch": args.batch, "blocks": args.blocks, "sessions": args.sessions,
            "rows": rows, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "load_avg": os.getloadavg(), "seconds": round(time.perf_counter() - t0),
            "memory": _mem()}
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1))
    md = [f"# Batch export under a learned weighting, {n:,} products",
          "",
          f"Command: `python benchmarks/export_trees.py --n {n} --sessions {args.sessions} "
          f"--batch {args.batch} --blocks {args.blocks}` ({info['machine']}; load average at "
          f"the end {info['load_avg'][0]:.1f}; {info['seconds']} s in all). Each setting's "
          f"export unit (`_range_lists`: {args.batch:,} catalog rows through "
          "`similar_rows`, k = 15, into an Arrow table) timed on the same "
          f"{args.blocks} blocks, settings in random order per block; one worker.",
          "",
          "| setting | lists / s | time per list vs " + names[0]
          + " | whole catalog, one worker | index build |",
          "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        w = r["whole_catalog_s"]
        md.append(f"| {r['setting']} | {r['lists_per_s']:,.0f} | {r['time_vs_first']:.2f}× | "
                  + (f"{w} s" if w < 120 else f"{w / 60:.0f} min") + f" | {r['index_build_s']} s |")
    md.append("")
    text = "\n".join(md)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
