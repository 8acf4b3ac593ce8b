"""HNSW over rows of equal norm against the plain inner-product graph (thirty-first session).

``HNSWIndex`` stores each row ``y`` with one more coordinate ``sqrt(R² − ‖y‖²)`` so every
stored row has norm ``R`` (queries get ``0``: inner products unchanged). This script builds
both graphs — ``equal`` (today's) and ``plain`` (``HNSWIndex(..., equal_norms=False)``, the
graph of earlier versions) — with the default ``IndexSettings`` over the same rows and
reports, against brute force on the full vectors (the exact re-scoring's order):

* recall@15 with 128 candidates (a plain ``similar`` query's fetch) and recall@200 with
  1,600 (a learned weighting's pool of 200 per modality, over-fetched 8×);
* how often the query's nearest row is among those candidates (the learned weighting's
  ``gap`` features need it);
* build seconds and query milliseconds (one batch of queries, one thread).

Data: each vector modality of the model folders given (its present rows, unit length, as a
single-modality index sees them), the early fusion of the rows having every one of them
(unit blocks scaled by 1/sqrt(M), the early index's rows), and with ``--synthetic N`` the
scale benchmarks' synthetic catalog (``benchmarks/_synthetic.py``). A third row per set,
``projection alone``, searches the index space by brute force (no graph): what the
projection by itself loses (its times are NumPy's, not comparable). ``--adversarial`` adds
unit rows of which half are shortened to norm 0.7 before indexing: raw inner-product data
the library's indexes never receive (their rows have equal norm before the projection),
where the extra coordinate is known to hurt (it dominates the graph's geometry).

    python benchmarks/hnsw_norms.py MODEL_DIR... [--synthetic 50000] [--adversarial]
        [--queries 300] [--repeats 1] [--out docs/benchmarks/hnsw_norms.md]

With ``--backend ivfpq`` the same sets go through ``IVFPQIndex`` (thirty-second session):
``plain`` (inner-product codes, the only way before), ``equal norms`` (the extra coordinate
and the L2 metric) and ``chosen`` (the default: the better of the two on the training
sample, named in the row); nprobe and the code size are the defaults'.

    python benchmarks/hnsw_norms.py MODEL_DIR... --backend ivfpq [--synthetic 100000]
        [--out docs/benchmarks/ivfpq_norms.md]

``--pq-m 32,64`` builds each IVF-PQ row once per code size (``IndexSettings.pq_m``: the
sub-quantisers of 8 bits, so bytes per product; thirty-fourth session).

Nothing is asserted; FAISS runs on one thread so that both graphs are reproducible.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

FETCHES = ((15, 128), (200, 1600))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _sets_of_model(folder: str) -> dict[str, np.ndarray]:
    from prodfusion.recommender import Recommender

    rec = Recommender.load(folder)
    out, blocks, masks = {}, [], []
    name = Path(folder).name
    for m, d in rec.embeddings_.items():  # the vector modalities
        v = d.vectors
        mask = np.asarray(d.mask, bool)
        out[f"{name} {m}"] = _unit(np.asarray(v)[mask])
        blocks.append(_unit(np.asarray(v)))
        masks.append(mask)
    if len(blocks) > 1:
        both = np.logical_and.reduce(masks)
        out[f"{name} early ({'+'.join(k.split()[-1] for k in out)})"] = np.hstack(
            [b[both] / np.sqrt(len(blocks)) for b in blocks])
    return out


def _sets_synthetic(n: int) -> dict[str, np.ndarray]:
    import _synthetic

    folder = tempfile.mkdtemp(prefix="hnsw_norms_")
    _synthetic.generate(n, folder, seed=0)
    out, blocks, masks = {}, [], []
    for m in _synthetic.DIMS:
        v = np.load(f"{folder}/emb_{m}.npy")
        mask = np.load(f"{folder}/mask_{m}.npy").astype(bool)
        out[f"synthetic {n:,} {m}"] = _unit(v[mask])
        blocks.append(_unit(v))
        masks.append(mask)
    both = np.logical_and.reduce(masks)
    out[f"synthetic {n:,} early (text+image+clicks)"] = np.hstack(
        [b[both] / np.sqrt(len(blocks)) for b in blocks])
    return out


def _adversarial(n: int = 6000, d: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(n, d)))
    return x * np.where(rng.random((n, 1)) < 0.5, 0.7, 1.0).astype(np.float32)


class _BruteForce:
    """The projection alone: brute force over the index space (no graph)."""

    def __init__(self, idx, x: np.ndarray) -> None:
        self.idx, self.y = idx, idx.project(x)
        self.index_dim = idx.index_dim

    def search(self, q: np.ndarray, k: int):
        from prodfusion.index.exact import topk_rows

        return topk_rows(self.idx.project(q) @ self.y.T, k)


def _geometry(x: np.ndarray) -> str:
    """Mean cosine of 2,000 random pairs; the indexed rows' norms after the projection."""
    from prodfusion.index import IndexSettings
    from prodfusion.index.faiss_index import HNSWIndex

    rng = np.random.default_rng(2)
    a, b = rng.integers(0, len(x), 2000), rng.integers(0, len(x), 2000)
    cos = float(np.mean(np.einsum("ij,ij->i", x[a], x[b])))
    sample = x[np.sort(rng.choice(len(x), min(len(x), 32_768), replace=False))]
    idx = HNSWIndex(x.shape[1], IndexSettings()).train(sample)
    n = np.linalg.norm(idx.project(sample), axis=1)
    return f"{cos:.3f} | {np.quantile(n, 0.01):.2f}–{n.max():.2f}"


def _measure(x: np.ndarray, n_queries: int, graph: str, backend: str = "hnsw",
             probes=(None,), pq_m: int | None = None) -> list[dict]:
    """One row per value of ``IVFPQIndex.PROBE_ROWS_PER_CANDIDATE`` in ``probes`` (``None``:
    the library's), all searching the same built index; ``pq_m``: that code size instead of
    the default ``IndexSettings``'."""
    from prodfusion.index import IndexSettings
    from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex

    st = IndexSettings() if pq_m is None else IndexSettings(pq_m=pq_m)
    rng = np.random.default_rng(st.seed)
    sample = x[np.sort(rng.choice(len(x), min(len(x), st.train_sample), replace=False))]
    t = time.perf_counter()
    if backend == "ivfpq":
        eq = {"plain": False, "equal norms": True}.get(graph)
        idx = IVFPQIndex(x.shape[1], st, n_expected=len(x), equal_norms=eq).train(sample)
    else:
        idx = HNSWIndex(x.shape[1], st, n_expected=len(x),
                        equal_norms=graph == "equal norms").train(sample)
    if graph == "projection alone":
        idx = _BruteForce(idx, x)
    else:
        idx.add(x)
    build = time.perf_counter() - t
    qs = np.random.default_rng(1).choice(len(x), min(n_queries, len(x)), replace=False)
    truth = x[qs] @ x.T
    truth[np.arange(len(qs)), qs] = -np.inf
    rows = []
    default = IVFPQIndex.PROBE_ROWS_PER_CANDIDATE
    for probe in probes:
        IVFPQIndex.PROBE_ROWS_PER_CANDIDATE = default if probe is None else probe
        try:
            rows.append(_searched(idx, x, qs, truth, build, probe))
        finally:
            IVFPQIndex.PROBE_ROWS_PER_CANDIDATE = default
    return rows


def _searched(idx, x, qs, truth, build, probe) -> dict:
    row = {"build_s": build, "dim": idx.index_dim, "choice": getattr(idx, "choice_", None),
           "probe": probe, "pq_m": _codes(idx)}
    for k, fetch in FETCHES:
        kk = min(fetch + 1, len(x))
        t = time.perf_counter()
        lab, _ = idx.search(x[qs], kk)
        row[f"ms_{fetch}"] = (time.perf_counter() - t) / len(qs) * 1000
        rec, near = [], []
        for i in range(len(qs)):
            c = lab[i][(lab[i] >= 0) & (lab[i] != qs[i])][:fetch]
            top = np.argpartition(-truth[i], k)[:k]
            got = c[np.argsort(-truth[i][c], kind="stable")[:k]]
            rec.append(len(set(top.tolist()) & set(got.tolist())) / k)
            near.append(int(np.argmax(truth[i])) in set(c.tolist()))
        row[f"recall_{k}"] = float(np.mean(rec))
        row[f"nearest_{fetch}"] = float(np.mean(near))
    return row


def _codes(idx) -> int | None:
    """Sub-quantisers of an IVF-PQ index as FAISS built it (None for other indexes)."""
    inner = getattr(idx, "index_", None)
    pq = getattr(inner, "pq", None)
    return None if pq is None else int(pq.M)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--synthetic", type=int, default=0)
    ap.add_argument("--adversarial", action="store_true")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=1,
                    help="builds of each graph, alternating; times are their medians")
    ap.add_argument("--backend", choices=("hnsw", "ivfpq"), default="hnsw")
    ap.add_argument("--graphs", default=None,
                    help="comma-separated subset of the rows per set (e.g. 'chosen')")
    ap.add_argument("--probe-rows", default=None,
                    help="IVF-PQ: comma-separated values of IVFPQIndex.PROBE_ROWS_PER_CANDIDATE "
                         "to search each built index with (0: nprobe alone, the rule before "
                         "the thirty-third session)")
    ap.add_argument("--pq-m", default=None,
                    help="IVF-PQ: comma-separated IndexSettings.pq_m values, each its own "
                         "built index (default: the library's default alone)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)
    sets: dict[str, np.ndarray] = {}
    for folder in args.models:
        sets.update(_sets_of_model(folder))
    if args.synthetic:
        sets.update(_sets_synthetic(args.synthetic))
    if args.adversarial:
        sets["adversarial: half the rows at norm 0.7 (not a library input)"] = _adversarial()
    head = ("| data | rows × dim → indexed | mean pair cosine | indexed norms (1 %–max) | "
            "search | recall@15 (128) | recall@200 (1,600) | "
            "nearest in 128 / 1,600 | build (s) | query ms (128 / 1,600) |")
    lines = [head, "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    graphs = ("projection alone", "plain", "equal norms")
    if args.backend == "ivfpq":
        graphs += ("chosen",)
    if args.graphs:
        graphs = tuple(g.strip() for g in args.graphs.split(","))
    probes = ((None,) if args.probe_rows is None
              else tuple(int(v) for v in args.probe_rows.split(",")))
    pq_ms = (None,) if args.pq_m is None else tuple(int(v) for v in args.pq_m.split(","))
    if args.pq_m is not None:  # one row per (search, code size)
        graphs = tuple((g, m) for g in graphs for m in pq_ms)
    else:
        graphs = tuple((g, None) for g in graphs)
    for name, x in sets.items():
        geo = _geometry(x)
        runs: dict = {}
        for _ in range(args.repeats):  # the graphs alternate, so drift hits both alike
            for graph in graphs:
                for j, r in enumerate(_measure(x, args.queries, graph[0], args.backend,
                                               probes, graph[1])):
                    runs.setdefault((graph, j), []).append(r)
        for graph, j in [(g, j) for g in graphs for j in range(len(probes))]:
            r = dict(runs[graph, j][0])  # recall: one FAISS thread, the same every repeat
            for key in ("build_s", "ms_128", "ms_1600"):
                r[key] = float(np.median([m[key] for m in runs[graph, j]]))
            label = graph[0]
            if graph[1] is not None:
                label += f", pq_m {graph[1]}" + (f" (built with {r['pq_m']})"
                                                 if r["pq_m"] not in (None, graph[1]) else "")
            if r["probe"] is not None:
                label += f", probe rows {r['probe']}" + (" (nprobe alone)" if r["probe"] == 0
                                                         else "")
            if r.get("choice"):
                c = r["choice"]
                label += (f": {c['chosen']} (sample recall plain {c['recall_plain']:.3f}, "
                          f"equal {c['recall_equal norms']:.3f})")
            line = (f"| {name} | {x.shape[0]:,} × {x.shape[1]} → {r['dim']} | {geo} | "
                    f"{label} | {r['recall_15']:.3f} | "
                    f"{r['recall_200']:.3f} | {r['nearest_128']:.3f} / {r['nearest_1600']:.3f} | "
                    f"{r['build_s']:.1f} | {r['ms_128']:.2f} / {r['ms_1600']:.2f} |")
            print(line, flush=True)
            lines.append(line)
    cmd = "python benchmarks/hnsw_norms.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.backend == "ivfpq":
        title = "IVF-PQ: plain inner-product codes vs rows of equal norm (L2)"
        from prodfusion.index import IndexSettings

        conf = ("nlist 4·sqrt(n) capped at sample/39, nprobe 32 (raised to 4 probed rows per "
                f"candidate since the thirty-third session), {IndexSettings().pq_m} codes of "
                "8 bits unless `pq_m` is named in the row (fewer bits on small samples)")
    else:
        title = "HNSW over rows of equal norm vs the plain inner-product graph"
        conf = "M 32, efConstruction 64, efSearch max(128, fetch)"
    text = (f"# {title}\n\n`{cmd}` on "
            f"{platform.node()} ({platform.machine()}, Python {platform.python_version()}), "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; FAISS on one thread, default "
            f"`IndexSettings` ({conf}, projection to "
            f"256 above 256 dims), {args.queries} queries per row set (rows of the set, "
            f"themselves left out), truth: brute force on the full unit vectors; times: median "
            f"of {args.repeats} alternating build(s) per graph.\n\n"
            + "\n".join(lines) + "\n")
    if args.out:
        Path(args.out).write_text(text)
        print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
