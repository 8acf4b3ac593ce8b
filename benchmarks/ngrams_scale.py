"""The ``ngrams`` modality at scale: fit, memory, disk and per-query cost up to a million titles.

``ngrams`` (``build --ngrams``) keeps the titles' character 3–5-gram TF-IDF sparse and scores
it exactly. Its per-query work is a sparse product of the query's row with the whole
catalog: on a catalog of short titles most products share some common n-gram with the
query, so that product touches a large part of the matrix. Measured here, each case in its
own process (its peak RSS its own), for every size:

* **fit**: ``TitleNgrams.from_titles`` (vocabulary, IDF, every title encoded), the
  transposed copy the queries read (made on first use), the matrix's and the transpose's
  memory, ``ngrams.npz``'s size and save / load time, the calibration statistics;
* **neighbours**: a query's nearest titles, as many as the served search adds to its
  candidates (``max(kp × over-fetch, n / 256)``, ``kp`` = ``k`` 15 × over-fetch 8) for 200
  random queries, by the library's
  posting-list path (``TitleNgrams.neighbours``) and, in the same run, by the sparse
  product ``x_q · Xᵀ`` it replaced (the thirty-eighth session's code, reproduced here): wall
  p50 / p99 and whether the lists are identical;
* **tuner rows**: a query's cosines to every product (``TitleNgrams.scores``, the blocks
  the weights' search and the evaluation read), both paths, per query;
* **reference**: the exact scan of a dense 256-dimensional float32 matrix (what the
  ``lexical`` modality, the same TF-IDF reduced by SVD, costs a query without an index).

Titles: ``shop``, the synthetic shop's generator (16 categories, English and Turkish,
brands, colours, sizes; ``benchmarks/lexical_fit.py``) and ``hm-words``, titles drawn from
H&M's title words (``../shared/data/hm/articles.csv``: a random title's word count, words by
their frequency in H&M's titles), each with a 4-digit model number appended.

    python benchmarks/ngrams_scale.py [--sizes 100000,1000000] [--out docs/benchmarks/ngrams_scale.md]

**Served** (``--served MODEL --out FILE``): a model folder of ``benchmarks/scale.py build``
(synthetic text, image and click vectors, intermediate fusion's HNSW index) is loaded, given
an ``ngrams`` modality fitted on ``shop`` titles of its size (in memory: the folder is not
changed), and queried one product at a time (``Recommender.similar``, k 15) with equal
weights over its three vector modalities and with ``ngrams`` added at an equal weight,
interleaved query by query; each list is also checked against the exact fusion of the same
weighting (recall@15, every product scanned).

    python benchmarks/scale.py gen --n 1000000 --out /tmp/scale1m
    python benchmarks/scale.py build --data /tmp/scale1m --fusions intermediate
    python benchmarks/ngrams_scale.py --served /tmp/scale1m/model --out docs/benchmarks/ngrams_served_1m.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _report import write_markdown

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("shop", "hm-words")


def served_limit(n: int) -> int:
    """The n-gram neighbours a served query adds on ``n`` products with the default index
    settings (kp = max(15 × over-fetch, 64), the library's own rule)."""
    from prodfusion.index import IndexSettings
    from prodfusion.index.pairwise import ngrams_limit

    over_fetch = IndexSettings().over_fetch
    return ngrams_limit(n, max(15 * over_fetch, 64), over_fetch)


def hm_words_titles(n: int, data: Path, seed: int = 0) -> list[str]:
    """``n`` titles of H&M's words: a random H&M title's word count, words drawn by their
    frequency in H&M's titles, a 4-digit model number appended."""
    import polars as pl

    names = pl.read_csv(data / "hm" / "articles.csv", columns=["prod_name"],
                        infer_schema_length=0)["prod_name"].drop_nulls().to_list()
    words, counts = np.unique([w for t in names for w in t.split()], return_counts=True)
    lengths = np.array([len(t.split()) for t in names])
    rng = np.random.default_rng(seed)
    p = counts / counts.sum()
    ln = rng.choice(lengths, size=n)
    drawn = rng.choice(len(words), size=int(ln.sum()), p=p)
    out, at = [], 0
    for k in ln:
        out.append(" ".join(words[drawn[at:at + k]]) + f" {rng.integers(10_000):04d}")
        at += k
    return out


def titles_by_category(categories: Sequence[str], seed: int = 0) -> list[str]:
    """``shop`` titles whose category follows the product's own (``c`` → the shop's
    category ``c`` mod 16), so that a product's title agrees with its vectors' category."""
    from prodfusion.data.synthetic_items import CATEGORIES, _title

    rng = np.random.default_rng(seed)
    codes, inv = np.unique(np.asarray(categories), return_inverse=True)
    langs = np.where(rng.random(len(inv)) < 0.5, "en", "tr")
    return [f"{_title(CATEGORIES[c % len(CATEGORIES)], lang, rng)[0]} "
            f"{rng.integers(10_000):04d}" for c, lang in zip(inv, langs, strict=True)]


def titles_for(source: str, n: int, data: Path) -> list[str]:
    if source == "shop":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from lexical_fit import titles_of

        return titles_of(n)
    return hm_words_titles(n, data)


def _sparse_product_neighbours(g, row: int, limit: int) -> np.ndarray:
    """The thirty-eighth session's ``TitleNgrams.neighbours``: ``x_row · Xᵀ`` as a sparse
    product, then every sharing row sorted (the baseline of this benchmark)."""
    s = (g.matrix[int(row)] @ g._transposed()).tocsr()
    cols, vals = s.indices.astype(np.int64), s.data
    keep = (cols != row) & (vals > 0)
    cols, vals = cols[keep], vals[keep]
    return cols[np.lexsort((cols, -vals))][:limit]


def _pct(a: list[float]) -> dict:
    x = np.asarray(a) * 1e3
    return {"p50_ms": float(np.percentile(x, 50)), "p99_ms": float(np.percentile(x, 99)),
            "mean_ms": float(x.mean())}


def one_case(source: str, n: int, queries: int, data: Path) -> dict:
    from prodfusion.fusion.ngrams import TitleNgrams

    titles = titles_for(source, n, data)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t = time.perf_counter()
    g = TitleNgrams.from_titles(titles)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    tr = g._transposed()
    tr_s = time.perf_counter() - t

    def mib(m) -> float:
        return (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 2**20

    t = time.perf_counter()
    g.stats()
    stats_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        entry = g.save(Path(tmp))
        save_s = time.perf_counter() - t
        disk = (Path(tmp) / entry["file"]).stat().st_size / 2**20
        t = time.perf_counter()
        TitleNgrams.load(Path(tmp), entry)
        load_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    qs = rng.choice(np.flatnonzero(g.mask), queries, replace=False)
    limit = served_limit(n)
    for q in qs[:10]:  # warm both paths
        g.neighbours(int(q), limit)
        _sparse_product_neighbours(g, int(q), limit)
    new, old, same, share = [], [], 0, []
    for q in qs:
        q = int(q)
        t = time.perf_counter()
        a = g.neighbours(q, limit)
        new.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = _sparse_product_neighbours(g, q, limit)
        old.append(time.perf_counter() - t)
        same += bool(np.array_equal(a, b))
        share.append(int(np.count_nonzero(g.row_scores(q))) / n)
    rows_new, rows_old, rows_same = [], [], 0
    for q in qs[:50]:
        t = time.perf_counter()
        a = g.scores([int(q)])
        rows_new.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = np.minimum(np.asarray((g.matrix[[int(q)]] @ tr).toarray(), np.float32), 1.0)
        rows_old.append(time.perf_counter() - t)
        rows_same += bool(np.array_equal(a, b))
    dense = np.random.default_rng(2).standard_normal((n, 256), dtype=np.float32)
    dense_lat = []
    for q in qs[:50]:
        t = time.perf_counter()
        s = dense @ dense[int(q)]
        np.argpartition(-s, limit)[:limit]
        dense_lat.append(time.perf_counter() - t)
    del dense
    return {
        "source": source, "n": n, "queries": queries, "limit": limit, "fit_s": fit_s,
        "transpose_s": tr_s,
        "nnz": int(g.matrix.nnz), "n_ngrams": len(g.vocabulary), "matrix_mib": mib(g.matrix),
        "transpose_mib": mib(tr), "npz_mib": disk, "save_s": save_s, "load_s": load_s,
        "stats_s": stats_s, "peak_rss_gib": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 2**20, "rss_before_fit_gib": rss0,
        "neighbours_new": _pct(new), "neighbours_old": _pct(old), "identical": same,
        "sharing_share_median": float(np.median(share)),
        "rows_new": _pct(rows_new), "rows_old": _pct(rows_old), "rows_identical": rows_same,
        "rows_queries": len(rows_new), "dense256_scan": _pct(dense_lat),
    }


KINDS = {"by-category": "titles by the vectors' category",
         "independent": "titles independent of the vectors"}


def served(model: Path, queries: int, recall: int, warmup: int = 50,
           kinds: Sequence[str] = tuple(KINDS), fetches: Sequence[int] = ()) -> dict:
    """Query cost of a served model with and without ``ngrams`` (module docstring)."""
    from prodfusion.fusion.ngrams import TitleNgrams
    from prodfusion.fusion.weighting import Weighting
    from prodfusion.index.pairwise import NGRAMS_SHARE
    from prodfusion.recommender import Recommender

    rec = Recommender.load(model)
    n = len(rec.catalog)
    vec = tuple(m for m in ("text", "image", "clicks") if m in rec.embeddings_)
    rng = np.random.default_rng(0)
    present = np.zeros(n, bool)
    for e in rec.embeddings_.values():
        present |= np.asarray(e.mask, bool)
    ids = rec.catalog.ids
    pool = np.flatnonzero(present)
    out: dict = {"model": str(model), "n": n, "queries": queries, "recall_queries": recall,
                 "latency": {}, "recall_at_15": {}, "ngrams_fit_s": {}}
    lat: dict[str, list[float]] = {"vectors": []}  # the vectors' over both rounds
    cats = rec.catalog.frame["category"].to_list()
    makers = {"by-category": lambda: titles_by_category(cats),
              "independent": lambda: titles_for("shop", n, Path("."))}
    for kind, titles in ((KINDS[k], makers[k]) for k in kinds):
        t = time.perf_counter()
        rec.ngrams_ = TitleNgrams.from_titles(titles())
        out["ngrams_fit_s"][kind] = time.perf_counter() - t
        for cache in (rec._searchers, rec._fusers):  # those holding the previous titles
            for key in [k for k in cache if "ngrams" in repr(k)]:
                del cache[key]
        rec._calibration_stats.pop("ngrams", None)
        weightings = {"vectors": {m: 1.0 for m in vec},
                      f"vectors + ngrams, {kind}": {**{m: 1.0 for m in vec}, "ngrams": 1.0}}
        for w in weightings.values():  # the first query builds what the weighting needs
            for pid in ids[rng.choice(pool, warmup, replace=False)]:
                rec.similar(pid, k=15, fusion="intermediate", modalities=tuple(w), weights=w)
        searchers = [s for s in rec._searchers.values() if hasattr(s, "ngrams_fetch")]
        kp = max(15 * searchers[0].over_fetch, 64)
        rule = searchers[0].ngrams_limit(kp)
        runs = [("vectors", weightings["vectors"], None)]  # (name, weights, n-gram limit)
        for limit, how in ((kp, f"kp = {kp} n-gram neighbours (before this session)"),
                           (kp * searchers[0].over_fetch,
                            f"kp × over_fetch = {kp * searchers[0].over_fetch}"),
                           (None, f"max(kp × over_fetch, n / {round(1 / NGRAMS_SHARE)}) = "
                                  f"{rule} (now)"),
                           *((kp * f, f"kp × {f} = {kp * f}") for f in fetches)):
            if limit == rule and limit is not None:
                continue  # the same as the rule's row
            runs.append((f"vectors + ngrams, {kind}, {how}",
                         weightings[f"vectors + ngrams, {kind}"], limit))
        lat.update({name: [] for name, _, _ in runs if name != "vectors"})

        def query(pid, w, limit, searchers=searchers):
            for s in searchers:
                s.ngrams_fetch = limit
            return rec.similar(pid, k=15, fusion="intermediate", modalities=tuple(w), weights=w)

        for pid in ids[rng.choice(pool, queries, replace=False)]:
            for name, w, fetch in runs:
                t = time.perf_counter()
                query(pid, w, fetch)
                lat[name].append(time.perf_counter() - t)
        for name, w, fetch in runs:
            if name in out["recall_at_15"]:
                continue
            mods = tuple(w)
            exact = rec.fuser("intermediate", mods, Weighting.make(w, rec.calibration))
            got = []
            for q in np.random.default_rng(1).choice(pool, recall, replace=False):
                a = query(ids[q], w, fetch)[0]
                b = ids[exact.topk(np.array([q]), 15)[0][0]]
                got.append(len(set(a) & set(b)) / 15)
            out["recall_at_15"][name] = float(np.mean(got))
            del exact
            rec._fusers.clear()  # an exact fuser holds normalised copies: 9 GB a weighting at 1M
            print(name, _pct(lat[name]), out["recall_at_15"][name], flush=True)
    out["latency"] = {name: _pct(v) for name, v in lat.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "docs/benchmarks/ngrams_scale.md"))
    ap.add_argument("--served", metavar="MODEL",
                    help="a model folder of `benchmarks/scale.py build`: its query cost with "
                         "and without ngrams (module docstring) instead of the other cases")
    ap.add_argument("--recall", type=int, default=100,
                    help="--served: queries checked against the exact fusion")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="--served: which titles (by-category, independent)")
    ap.add_argument("--fetch", default="",
                    help="--served: more numbers of n-gram neighbours to measure, as multiples "
                         "of kp (e.g. 16,32)")
    ap.add_argument("--one", nargs=2, metavar=("SOURCE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        res = one_case(args.one[0], int(args.one[1]), args.queries, Path(args.data))
        Path(args.json).write_text(json.dumps(res))
        return
    t_all = time.perf_counter()
    if args.served:
        served_report(served(Path(args.served), args.queries, args.recall,
                             kinds=args.kinds.split(","),
                             fetches=[int(x) for x in args.fetch.split(",") if x]),
                      args, time.perf_counter() - t_all)
        return
    results = []
    for source in args.sources.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            with tempfile.NamedTemporaryFile(suffix=".json") as fh:
                subprocess.run([sys.executable, __file__, "--one", source, str(n), "--json",
                                fh.name, "--queries", str(args.queries), "--data", args.data],
                               check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                results.append(json.loads(Path(fh.name).read_text()))
            r = results[-1]
            print(f"{source} {n:,}: fit {r['fit_s']:.1f} s, neighbours p50 "
                  f"{r['neighbours_new']['p50_ms']:.1f} ms (sparse product "
                  f"{r['neighbours_old']['p50_ms']:.1f} ms)", flush=True)
    lines = [
        "# The `ngrams` modality at scale: fit, memory, disk and per-query cost",
        "",
        f"Command: `python benchmarks/ngrams_scale.py --sizes {args.sizes} --sources "
        f"{args.sources}` ({time.perf_counter() - t_all:.0f} s). Machine: "
        f"{platform.machine()}, {platform.system()}, 2-core VM, no GPU, one thread "
        "(`OMP_NUM_THREADS=1`), each case in its own process. Titles: `shop` (the synthetic "
        "shop's generator) and `hm-words` (H&M's title words by frequency), each with a "
        "4-digit model number (the script's docstring). Per-query figures: wall time over "
        f"{args.queries} random queries with a title (tuner rows: the first 50), after 10 "
        "warm-up queries; both paths in the same process, interleaved query by query.",
        "",
        "**Fit, memory, disk** (`TitleNgrams.from_titles`; the transpose is made on the "
        "first query; peak RSS of the whole case, titles and a 256-dimensional reference "
        "matrix included):",
        "",
        "| titles | n | n-grams | nonzeros | fit | matrix | + transpose | ngrams.npz | save / "
        "load | statistics | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['source']} | {r['n']:,} | {r['n_ngrams']:,} | {r['nnz']:,} | "
            f"{r['fit_s']:.1f} s | {r['matrix_mib']:.0f} MiB | {r['transpose_mib']:.0f} MiB "
            f"({r['transpose_s']:.1f} s) | {r['npz_mib']:.0f} MiB | {r['save_s']:.1f} / "
            f"{r['load_s']:.1f} s | {r['stats_s']:.2f} s | {r['peak_rss_gib']:.2f} GiB |")
    lines += [
        "",
        "**Per query** (wall ms, p50 / p99). *Neighbours*: the nearest titles a served query "
        "adds (`max(960, n / 256)`: 960 at 100,000, 3,907 at 1,000,000), the "
        "posting-list path (`TitleNgrams.neighbours`, this session) against the sparse "
        "product it replaced, and whether their lists are identical; *tuner rows*: cosines "
        "to every product (`TitleNgrams.scores`), both paths, identical float32 values; "
        "*dense 256-d scan*: one query against a dense n × 256 float32 matrix (the "
        "`lexical` modality without an index, for scale):",
        "",
        "| titles | n | products sharing an n-gram (median) | neighbours, posting lists | "
        "neighbours, sparse product | ratio | identical lists | tuner row, posting lists | "
        "tuner row, sparse product | identical rows | dense 256-d scan |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        a, b = r["neighbours_new"], r["neighbours_old"]
        ra, rb, d = r["rows_new"], r["rows_old"], r["dense256_scan"]
        lines.append(
            f"| {r['source']} | {r['n']:,} | {r['sharing_share_median']:.0%} | "
            f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | "
            f"{a['p50_ms'] / b['p50_ms']:.2f}× | {r['identical']} / {r['queries']} | "
            f"{ra['p50_ms']:.1f} / {ra['p99_ms']:.1f} | {rb['p50_ms']:.1f} / "
            f"{rb['p99_ms']:.1f} | {r['rows_identical']} / {r['rows_queries']} | "
            f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} |")
    big = max(results, key=lambda r: (r["n"], r["neighbours_new"]["p50_ms"]))
    hours = big["n"] * big["neighbours_new"]["mean_ms"] / 1e3 / 3600
    lines += [
        "",
        f"- Every list of every export at {big['n']:,} `{big['source']}` titles costs the "
        f"n-gram neighbours alone about {hours:.1f} core-hours ({big['n']:,} × "
        f"{big['neighbours_new']['mean_ms']:.1f} ms mean), beside the vector index's search "
        "and the candidates' exact scores.",
    ]
    (Path(args.out).with_suffix(".json")).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(lines, args.out)


def served_report(r: dict, args, seconds: float) -> None:
    lines = [
        "# A served model with and without the `ngrams` modality",
        "",
        f"Command: `python benchmarks/ngrams_scale.py --served {args.served} --queries "
        f"{args.queries} --recall {args.recall}"
        + (f" --kinds {args.kinds}" if args.kinds != ",".join(KINDS) else "")
        + (f" --fetch {args.fetch}" if args.fetch else "")
        + f"` ({seconds:.0f} s). Machine: "
        f"{platform.machine()}, {platform.system()}, 2-core VM, no GPU. Model: "
        f"`benchmarks/scale.py build --fusions intermediate` on its synthetic catalog of "
        f"{r['n']:,} products (text, image and click vectors, HNSW), with `ngrams` fitted "
        "in memory on `shop` titles of that size (rows name which: titles by the vectors' "
        "category, the shop's category being the catalog's mod 16; or titles drawn "
        "independently of the vectors). "
        "The searcher with `ngrams` took as many n-gram neighbours as each row says "
        "(`PairwiseIntermediateIndex.ngrams_fetch`; `now`: its default rule, "
        "`ngrams_limit`). "
        f"`Recommender.similar`, k 15, one query at a time, the weightings interleaved "
        f"query by query over {r['queries']} random products per kind of titles (the vectors' "
        "weighting in both rounds, pooled) after 50 warm-up queries each; "
        f"recall@15 against the exact fusion of the same weighting on {r['recall_queries']} "
        "more (the same products for every weighting).",
        "",
        "| weighting (equal weights) | p50 | p99 | mean | ratio p50 | recall@15 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = r["latency"]["vectors"]["p50_ms"]
    for name, lat in r["latency"].items():
        lines.append(f"| {name} | {lat['p50_ms']:.2f} ms | {lat['p99_ms']:.2f} ms "
                     f"| {lat['mean_ms']:.2f} ms | {lat['p50_ms'] / base:.2f}× | "
                     f"{r['recall_at_15'][name]:.3f} |")
    Path(args.out).with_suffix(".json").parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).with_suffix(".json").write_text(json.dumps(r, indent=1) + "\n")
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
