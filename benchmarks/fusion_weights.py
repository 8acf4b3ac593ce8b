"""Query cost of weighted / calibrated fusion, ``explain`` and ``cooc`` (issue 10), as ratios.

On a synthetic catalog with the real dimensions (benchmarks/_synthetic.py: 512 + 1280 + 512,
missing modalities), for intermediate fusion through the model's search (FAISS HNSW per
presence pattern with exact re-scoring; with ``cooc``, :mod:`prodfusion.index.pairwise`),
it measures single-query latency (p50, p99) of ``Recommender.similar`` under several
settings in the same process and run, and recall@15 against the exact fuser of the same
setting. Settings (``--settings``):

* ``paper`` — equal weights, raw cosines (the baseline of the ratios);
* ``weights`` — text=1, image=0.5, clicks=2;
* ``weights+zscore`` — the same with z-score calibration;
* ``weights+zscore+n0`` — and confidence-weighted clicks (n0 = 5);
* ``weights+zmean`` — z-scores, a modality one product lacks counted as its mean;
* ``cooc+zscore`` / ``cooc+zmean`` — text, image, clicks and the pairwise ``cooc``
  modality (weights 1 / 0.5 / 2 / 1), needs ``--sessions``;
* ``category+zmean`` / ``catpop+zmean`` — text, image, clicks and the pairwise ``category``
  (weight 1; the synthetic catalog's categories), and ``popularity`` (0.5; Poisson(5) click
  counts), ``zmean``;
* ``trees`` — ``cooc+zmean``'s weights re-scored by boosted trees (a learned weighting,
  :mod:`prodfusion.fusion.learned`: 300 trees of 31 leaves, as ``tune --learner gbdt``'s
  free kind at most, trained here to find the query's category on 100 of the catalog's
  products; what they learn does not change their cost), searched by each modality's own
  index (:class:`~prodfusion.index.learned.LearnedRescorer`: each modality's 200 nearest),
  needs ``--sessions``;
* ``clicks+fallback`` / ``clicks+plain-fallback`` — clicks alone with fallback weights
  text 1 / image 0.5 (``zmean``) or the plain fallback; with ``--query-pool no-clicks`` every
  query lacks a click vector, so every query is served through the fallback's own index
  (built during the warm-up, not counted in "index build").

Each setting is timed at every ``--fetch`` (``IndexSettings.min_candidates``, the candidates
fetched per index piece before re-scoring, reported as fetched: 4× under ``n0``; a
query-time setting, no rebuild) and, for the
settings in ``--explain``, with ``explain=True`` at the first fetch. Every query is timed
under every run in turn, in a new random order per query, so neither the other jobs
on the machine nor caches favour one run.

The exact oracle scans every product in blocks (``FusedIndex.exact_topk``; with ``cooc``
the fitted fuser), so it fits in memory at 1M products.

    python benchmarks/fusion_weights.py --n 100000 --queries 300 --recall 100
    python benchmarks/fusion_weights.py --n 100000 --sessions 150000 \\
        --settings paper,weights+zmean,cooc+zscore,cooc+zmean --explain cooc+zmean
    python benchmarks/fusion_weights.py --data /tmp/h14/1m \\
        --vectors /tmp/h14/1m/model-f16-early --settings paper,weights+zscore+n0 \\
        --fetch 128,256 --recall 300

``--vectors DIR`` memory-maps float16 ``emb_<m>.npy`` files (a float16 model folder of the
same catalog) instead of reading the float32 inputs. Results: JSON (``--json``) and a
markdown table (``--out``). Nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _synthetic  # noqa: E402

W3 = {"text": 1.0, "image": 0.5, "clicks": 2.0}
VEC = ("text", "image", "clicks")
SETTINGS = {
    "paper": {},
    "weights": {"weights": W3},
    "weights+zscore": {"weights": W3, "calibration": "zscore"},
    "weights+zscore+n0": {"weights": W3, "calibration": "zscore", "click_n0": 5.0},
    "weights+zmean": {"weights": W3, "calibration": "zmean"},
    "cooc+zscore": {"weights": {**W3, "cooc": 1.0}, "calibration": "zscore", "cooc": True},
    "cooc+zmean": {"weights": {**W3, "cooc": 1.0}, "calibration": "zmean", "cooc": True},
    "cooc+zmean+n0": {"weights": {**W3, "cooc": 1.0}, "calibration": "zmean", "cooc": True,
                      "click_n0": 5.0},
    # the catalog's categories and the products' click counts as pairwise modalities
    "category+zmean": {"weights": {**W3, "category": 1.0}, "calibration": "zmean",
                       "category": True},
    "catpop+zmean": {"weights": {**W3, "category": 1.0, "popularity": 0.5},
                     "calibration": "zmean", "category": True, "popularity": True},
    "trees": {"weights": {**W3, "cooc": 1.0}, "calibration": "zmean", "cooc": True,
              "trees": True},
    # clicks alone with a fallback (what `tune` wrote for H&M pairs): a query without a click
    # vector is routed to an index over the fallback modalities (prodfusion/index/fallback.py)
    "clicks+fallback": {"weights": {"text": 0.0, "image": 0.0, "clicks": 1.0},
                        "calibration": "zmean", "zero_weight_fallback": {"text": 1.0, "image": 0.5}},
    "clicks+plain-fallback": {"weights": {"text": 0.0, "image": 0.0, "clicks": 1.0},
                              "zero_weight_fallback": True},
}


def _pct(x, q):
    return float(np.percentile(np.asarray(x) * 1000, q))


def _mem() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = round(int(rest.split()[0]) / 2**20, 2)  # GiB
    return out


def load(args):
    """Catalog and embeddings: generated (``--n``), read (``--data``) or float16-mapped."""
    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings

    folder = Path(args.data) if args.data else Path(args.gen_dir) / f"n{args.n}"
    if not (folder / "catalog.parquet").is_file():
        _synthetic.generate(args.n, folder)
    if not args.vectors:
        return _synthetic.load(folder)
    import polars as pl

    catalog = Catalog(pl.read_parquet(folder / "catalog.parquet"), source=str(folder))
    embs = {m: Embeddings(np.load(Path(args.vectors) / f"emb_{m}.npy", mmap_mode="r"),
                          np.load(folder / f"mask_{m}.npy"), f"synthetic-{m}") for m in VEC}
    return catalog, embs


def synthetic_sessions(catalog, n_sessions: int, seed: int = 0):
    """Sessions inside one category: a category drawn by its size, 2 + Poisson(2) products
    drawn by a log-normal popularity (σ = 1.5), half of the steps staying in the previous
    product's variation group. Returns :class:`Sessions`."""
    from prodfusion.data.sessions import Sessions

    rng = np.random.default_rng(seed)
    cats = catalog.codes("category")
    groups = catalog.codes("group")
    ids = catalog.ids
    pop = rng.lognormal(0.0, 1.5, len(ids))
    by_cat = {c: np.flatnonzero(cats == c) for c in np.unique(cats)}
    cdf = {c: np.cumsum(pop[r]) / pop[r].sum() for c, r in by_cat.items()}
    by_group: dict[int, np.ndarray] = {}
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for part in np.split(order, bounds):
        by_group[int(groups[part[0]])] = part
    sizes = np.array([len(by_cat[c]) for c in by_cat], float)
    keys = list(by_cat)
    lists = []
    for c in rng.choice(len(keys), n_sessions, p=sizes / sizes.sum()):
        rows, f = by_cat[keys[c]], cdf[keys[c]]
        length = 2 + rng.poisson(2)
        picks = rows[np.minimum(np.searchsorted(f, rng.random(length)), len(rows) - 1)]
        for j in range(1, length):
            if rng.random() < 0.5:
                g = by_group[int(groups[picks[j - 1]])]
                picks[j] = g[rng.integers(len(g))]
        lists.append(ids[picks].tolist())
    return Sessions.from_lists(lists)


def synthetic_trees(rec, seed: int = 0, n_queries: int = 100, n_cand: int = 2000):
    """Boosted trees over ``rec``'s modalities (:class:`LearnedScorer`, 300 trees of at most
    31 leaves, no early stop) trained on pair features of ``n_queries`` random queries
    against ``n_cand`` random products and the query's category (label: same category)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from prodfusion.fusion.learned import LearnedScorer, pair_features, query_best
    from prodfusion.fusion.weights import Weighting, intermediate_combine
    from prodfusion.index.pairwise import row_similarities

    rng = np.random.default_rng(seed)
    mods = rec.available_modalities
    linear = Weighting.make({m: rec.weights.get(m, 1.0) for m in mods})
    data = rec.modality_data()
    norms = {m: np.linalg.norm(np.asarray(d.vectors, np.float32), axis=1)
             for m, d in data.items() if hasattr(d, "vectors")}
    cats = rec.catalog.codes("category")
    logs = np.log1p(np.asarray(rec.click_counts_, np.float32))
    X, y = [], []
    for q in rng.choice(len(cats), n_queries, replace=False):
        same = np.flatnonzero(cats == cats[q])
        c = np.unique(np.concatenate([rng.choice(len(cats), n_cand, replace=False),
                                      same[:200]]))
        c = c[c != q]
        cos, both, _ = row_similarities(data, norms, mods, int(q), c)
        lin = intermediate_combine(linear, mods, cos, both)  # the weights' raw mean
        X.append(pair_features(mods, cos, both, query_best(mods, cos, both), logs[[q]],
                               logs[c], lin)[0])
        y.append(cats[c] == cats[q])
    clf = HistGradientBoostingClassifier(max_iter=300, max_leaf_nodes=31, early_stopping=False,
                                         random_state=seed).fit(np.concatenate(X),
                                                                np.concatenate(y))
    return LearnedScorer.from_estimator(clf, mods)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="generate a catalog of N products")
    ap.add_argument("--gen-dir", default="/tmp/pf_fusion_weights")
    ap.add_argument("--data", default=None, help="a generated folder (benchmarks/scale.py gen)")
    ap.add_argument("--vectors", default=None, help="folder of float16 emb_<m>.npy to map")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--query-pool", choices=["text", "no-clicks"], default="text",
                    help="draw the queries among products with a title (default) or among "
                         "those with a title and no click vector")
    ap.add_argument("--recall", type=int, default=100, help="queries checked against exact")
    ap.add_argument("--settings", default="paper,weights,weights+zscore,weights+zscore+n0")
    ap.add_argument("--fetch", default="128", help="min_candidates values, comma-separated")
    ap.add_argument("--dense-fetch", default="",
                    help="with cooc: vector candidates per wanted result, comma-separated "
                         "(PairwiseIntermediateIndex.dense_over_fetch; 'default': its own)")
    ap.add_argument("--explain", default="weights+zscore+n0")
    ap.add_argument("--sessions", type=int, default=0, help="synthetic sessions for cooc")
    ap.add_argument("--json", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from prodfusion.fusion.category import CategoryMatch
    from prodfusion.fusion.cooc import Cooc
    from prodfusion.fusion.popularity import PopularityPrior
    from prodfusion.recommender import Recommender

    names = args.settings.split(",")
    fetches = [int(x) for x in args.fetch.split(",")]
    dense_fetches = [None if x == "default" else int(x)
                     for x in args.dense_fetch.split(",") if x] or [None]
    explain = [x for x in args.explain.split(",") if x in names]
    t0 = time.perf_counter()
    catalog, embs = load(args)
    n = len(catalog)
    dtype = next(iter(embs.values())).vectors.dtype.name
    rng = np.random.default_rng(0)
    counts = rng.poisson(5, n)
    cooc, info = None, {}
    if any(SETTINGS[s].get("cooc") for s in names):
        if not args.sessions:
            ap.error("cooc settings need --sessions N")
        t = time.perf_counter()
        sessions = synthetic_sessions(catalog, args.sessions)
        cooc = Cooc.from_sessions(sessions, catalog)
        info["cooc"] = {**cooc.info, "seconds": round(time.perf_counter() - t, 1),
                        "mean_neighbours": round(cooc.info["nnz"] / max(cooc.n_present, 1), 1)}
        print("cooc:", info["cooc"], flush=True)
    ids = catalog.ids
    pool = embs["text"].mask.copy()
    if args.query_pool == "no-clicks":
        pool &= ~np.asarray(embs["clicks"].mask, bool)
    q_ids = [ids[i] for i in rng.choice(np.flatnonzero(pool), args.queries, replace=False)]
    print(f"loaded {n:,} products ({dtype}) in {time.perf_counter() - t0:.1f} s; "
          f"memory {_mem()}", flush=True)
    recs, builds, searchers = {}, {}, {}
    for name in names:
        kw = dict(SETTINGS[name])
        use_cooc = kw.pop("cooc", False)
        use_cat, use_pop = kw.pop("category", False), kw.pop("popularity", False)
        use_trees = kw.pop("trees", False)
        rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate",
                                          vector_dtype=dtype, index="hnsw")
        if use_cooc:
            rec.cooc_ = cooc
        if use_cat:
            rec.category_ = CategoryMatch.from_catalog(catalog)
        if use_pop:
            rec.popularity_ = PopularityPrior(counts)
        if use_cooc or use_cat or use_pop:
            rec.modalities = rec.available_modalities
        for key, value in kw.items():
            setattr(rec, key, value)
        rec.click_counts_ = counts
        if use_trees:
            t = time.perf_counter()
            rec.learned_ = synthetic_trees(rec)
            info["trees"] = {"n_trees": rec.learned_.n_trees,
                             "seconds": round(time.perf_counter() - t, 1)}
            print("trees:", info["trees"], flush=True)
        t = time.perf_counter()
        searchers[name] = rec.searcher()
        builds[name] = time.perf_counter() - t
        recs[name] = rec
        print(f"built {name} in {builds[name]:.1f} s; load {os.getloadavg()}; "
              f"memory {_mem()}", flush=True)

    def dense(s):  # the FusedIndex whose fetch the setting controls
        s = getattr(s, "main", s)  # a FallbackRoutedIndex: its main index
        return s.dense if hasattr(s, "dense") else s

    def learned(name):  # a learned weighting's searcher: each modality's pool, no fetch
        return hasattr(searchers[name], "pool")

    base_settings = {name: dense(s).settings for name, s in searchers.items()
                     if not learned(name)}
    # the pairwise searchers' own dense fetch (None: k·over_fetch, as the cooc neighbours)
    own = {name: getattr(s, "dense_over_fetch", None) for name, s in searchers.items()}
    def fetch_values(name):  # pairwise searchers: the dense fetch; others: min_candidates
        if learned(name):
            return [(None, None)]
        return [(None, d) for d in dense_fetches] if hasattr(
            getattr(searchers[name], "main", searchers[name]), "dense") \
            else [(f, None) for f in fetches]

    runs = [(name, f, False) for name in names for f in fetch_values(name)]
    runs += [(name, fetch_values(name)[0], True) for name in explain]
    lat = {r: [] for r in runs}
    got = {r: {} for r in runs}

    def one(run, pid, timed=True):
        name, (f, d), ex = run
        if f is not None:
            dense(searchers[name]).settings = replace(base_settings[name], min_candidates=f)
        elif not learned(name):
            searchers[name].dense_over_fetch = own[name] if d is None else d
        t = time.perf_counter()
        r = recs[name].similar(pid, k=15, explain=ex)
        dt = time.perf_counter() - t
        if timed:
            lat[run].append(dt)
            got[run][pid] = set(r[0].tolist())

    for pid in q_ids[:10]:  # warm-up: calibration statistics, first page faults
        for run in runs:
            one(run, pid, timed=False)
    t = time.perf_counter()
    shuffle = np.random.default_rng(1)
    for i, pid in enumerate(q_ids):
        # a new random order per query: a run that always followed a similar one would find
        # the query's rows and graph nodes in the CPU caches (a fixed rotation did that)
        for j in shuffle.permutation(len(runs)):
            one(runs[j], pid)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(q_ids)} queries, {time.perf_counter() - t:.0f} s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    load_timing = os.getloadavg()
    qr = catalog.rows_of(q_ids[: args.recall])
    exact, exact_s = {}, {}
    for name in names:
        t = time.perf_counter()
        s = searchers[name]
        er, _ = s.exact_topk(qr, 15) if hasattr(s, "exact_topk") else recs[name].fuser().topk(qr, 15)
        exact[name] = [set(ids[r[r >= 0]].tolist()) for r in er]
        recs[name]._fusers = {}  # a fitted fuser holds every row's fused vectors: free them
        exact_s[name] = time.perf_counter() - t
        print(f"exact {name}: {exact_s[name]:.1f} s; memory {_mem()}", flush=True)
    rows = []
    for run in runs:
        name, (f, d), ex = run
        per = [len(got[run][p] & exact[name][i]) / max(len(exact[name][i]), 1)
               for i, p in enumerate(q_ids[: args.recall])]
        if f is not None:  # candidates per piece as the index fetches them (_n_fetch)
            ix = dense(searchers[name])
            f = max(f * getattr(ix, "_fetch_factor", lambda: 1)(),
                    math.ceil(15 * ix.settings.over_fetch) + 1)  # + the query itself
            f = -(-f // 32) * 32
        elif learned(name):
            f = f"each modality's {searchers[name].pool}"
        else:  # the vector candidates of a pairwise search, per wanted result
            s = searchers[name]
            used = (own[name] if d is None else d) or s.over_fetch
            f = f"dense 15×{used}" + (" (default)" if d is None else "")
        rows.append({"setting": name, "fetch": f, "explain": ex, "build_s": builds[name],
                     "p50": _pct(lat[run], 50), "p99": _pct(lat[run], 99),
                     "recall": float(np.mean(per)), "recall_min": float(np.min(per))})
        print(rows[-1], flush=True)
    base = next(r for r in rows if r["setting"] == names[0] and not r["explain"])
    load_end = os.getloadavg()
    result = {"n": n, "vector_dtype": dtype, "queries": len(q_ids), "recall_queries": len(qr),
              "machine": {"arch": platform.machine(), "cpus": os.cpu_count(),
                          "load_after_timing": load_timing, "load_end": load_end},
              "memory_gib": _mem(), "exact_seconds": exact_s, "rows": rows, **info,
              "argv": sys.argv[1:]}
    lines = [
        f"`python benchmarks/fusion_weights.py {' '.join(sys.argv[1:])}`: {n:,} products "
        f"({dtype} vectors), {platform.machine()}, {os.cpu_count()} cores shared with other "
        f"jobs (load average {load_timing[0]:.1f} / {load_timing[1]:.1f} / "
        f"{load_timing[2]:.1f} after the timed queries). {len(q_ids)} single queries, k = 15, "
        f"each under every run in a random order; recall@15 over the first {len(qr)} against the exact fuser "
        f"(mean, worst query). Fetch: candidates per index piece (`min_candidates`, 4× under "
        f"n0). Peak RSS {result['memory_gib'].get('VmHWM')} GiB.",
        "",
        "| setting | fetch | index build (s) | p50 (ms) | p99 (ms) | p50 / paper | p99 / paper "
        "| recall@15 vs exact (worst) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        label = r["setting"] + (" + explain" if r["explain"] else "")
        lines.append(f"| {label} | {r['fetch']} | {r['build_s']:.1f} | {r['p50']:.2f} | "
                     f"{r['p99']:.2f} | {r['p50'] / base['p50']:.2f} | "
                     f"{r['p99'] / base['p99']:.2f} | {r['recall']:.3f} ({r['recall_min']:.2f}) |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
