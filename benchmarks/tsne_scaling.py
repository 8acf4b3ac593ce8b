"""t-SNE on precomputed distance matrices: openTSNE vs scikit-learn at 1,000 / 5,000 / 10,000 points.

The clustering protocol (``prodfusion evaluate clustering``) runs t-SNE on the fused distance
matrix of intermediate and late fusion (``metric="precomputed"``). This script measures how
long that step takes as the number of products grows, for both libraries, through the same
function the evaluation uses (:func:`prodfusion.evaluation.clustering.tsne_2d`).

Distances: by default the mean cosine distance of three synthetic "modalities" (unit vectors
of 512, 1280 and 512 dimensions around 20 planted category centres, like the intermediate
fusion of text, image and clicks); with ``--model DIR`` the real intermediate fused distance
of the first N categorised products of a built model (3 modalities when present).

    python benchmarks/tsne_scaling.py [--sizes 1000,5000,10000] [--threads 2]
        [--backends opentsne,sklearn] [--threads 1,2] [--model runs/hm]
        [--out docs/results/tsne_scaling.md]

Writes a Markdown table (+ PNG) with wall time, the k-means++ ARI of the 2-D map against the
planted/real categories (a sanity check that both maps are meaningful), the machine, and the
load average before each run (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def synthetic_distances(n: int, n_cat: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_cat, size=n)
    d = np.zeros((n, n), dtype=np.float64)
    for dim, noise in ((512, 1.2), (1280, 2.0), (512, 1.5)):
        centres = rng.normal(size=(n_cat, dim))
        v = centres[labels] + noise * rng.normal(size=(n, dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        d += 1.0 - v @ v.T
    d /= 3.0
    np.clip(d, 0.0, 2.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d, labels


def model_distances(model: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    from prodfusion.evaluation.clustering import similarity_to_distance
    from prodfusion.recommender import Recommender

    rec = Recommender.load(model)
    cats = rec.catalog.categories
    ok = np.array([c is not None for c in cats])
    for e in rec.embeddings_.values():
        ok &= e.mask
    rows = np.flatnonzero(ok)[:n]
    if len(rows) < n:
        sys.exit(f"{model}: only {len(rows)} products have a category and every modality")
    f = rec.fuser("intermediate", tuple(rec.embeddings_))
    d = similarity_to_distance(f.similarity(rows, rows), "intermediate", len(f.modalities))
    _, labels = np.unique(np.asarray([cats[r] for r in rows]), return_inverse=True)
    return d, labels


def _child(conn, d, labels, backend, threads, seed) -> None:
    from prodfusion.evaluation.clustering import kmeans_ari, tsne_2d

    y, info = tsne_2d(distances=d, seed=seed, backend=backend, n_jobs=threads)
    ari = kmeans_ari(y, labels, len(np.unique(labels)), seed=seed, n_jobs=threads)
    conn.send((info["seconds"], ari))
    conn.close()


def run_one(d, labels, backend: str, threads: int, seed: int, timeout: float) -> dict:
    """One t-SNE run in a forked child (the matrix is shared, not copied), killed at timeout."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, d, labels, backend, threads, seed))
    t0 = time.perf_counter()
    p.start()
    child.close()
    if parent.poll(timeout):
        seconds, ari = parent.recv()
        p.join()
        return dict(seconds=seconds, ari=ari, done=True)
    p.kill()
    p.join()
    return dict(seconds=time.perf_counter() - t0, ari=float("nan"), done=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--backends", default="opentsne,sklearn")
    ap.add_argument("--threads", default="1,2", help="thread counts to try, e.g. 1,2")
    ap.add_argument("--timeout", type=float, default=900,
                    help="stop one t-SNE run after this many seconds (reported as stopped)")
    ap.add_argument("--model", default=None, help="built model folder (default: synthetic)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "tsne_scaling.md"))
    args = ap.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.backends.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    for n in sizes:
        t = time.perf_counter()
        d, labels = (model_distances(args.model, n) if args.model
                     else synthetic_distances(n, seed=args.seed))
        t_dist = time.perf_counter() - t
        for nt in threads:
            for be in backends:
                load = os.getloadavg()[0]
                r = run_one(d, labels, be, nt, args.seed, args.timeout)
                rows.append(dict(n=n, backend=be, threads=nt, load=load, dist_seconds=t_dist, **r))
                shown = f"{r['seconds']:8.1f} s" if r["done"] else f"> {args.timeout:.0f} s (stopped)"
                print(f"n={n:>6} {be:<9} threads={nt} {shown}  ARI {r['ari']:.3f}  "
                      f"(load {load:.1f}; distances {t_dist:.1f} s)", flush=True)
        del d

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _plot(rows, out.with_suffix(".png"))
    import openTSNE
    import sklearn

    data = (f"intermediate fused distances of `{args.model}` (first N products with a category "
            "and every modality)" if args.model else
            "synthetic: mean cosine distance of 3 modalities (512/1280/512-D) around 20 planted "
            "categories")
    lines = [
        "# t-SNE on a precomputed distance matrix: openTSNE vs scikit-learn",
        "",
        f"Command: `python benchmarks/tsne_scaling.py --sizes {args.sizes} --backends "
        f"{args.backends} --threads {args.threads}" + (f" --model {args.model}" if args.model else "")
        + "`  ",
        f"Data: {data}.  ",
        f"Machine: {platform.machine()} VM, {os.cpu_count()} cores (shared with other jobs: see "
        f"the load average), Python {platform.python_version()}, openTSNE {openTSNE.__version__}, "
        f"scikit-learn {sklearn.__version__}, no GPU; {time.strftime('%Y-%m-%d')}.  ",
        f"Both: 2-D, perplexity 30, seed {args.seed}, default iterations "
        "(openTSNE 250 exaggerated + 500; scikit-learn 1000 max), Barnes-Hut gradients below "
        "10,000 points for openTSNE (FFT above), Barnes-Hut for scikit-learn. openTSNE starts from "
        "a spectral layout of the affinities, scikit-learn from a random one (it cannot "
        "PCA-initialise from distances).",
        "",
        "| products | library | threads | t-SNE wall time (s) | ARI of k-means++ on the map "
        "| load avg at start |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        secs = f"{r['seconds']:.1f}" if r["done"] else f"> {args.timeout:.0f} (stopped)"
        ari = f"{r['ari']:.3f}" if r["done"] else "–"
        lines.append(f"| {r['n']:,} | {r['backend']} | {r['threads']} | {secs} | {ari} | "
                     f"{r['load']:.1f} |")
    lines += ["", f"![t-SNE wall time]({out.with_suffix('.png').name})", ""]
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    return 0


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in dict.fromkeys((r["backend"], r["threads"]) for r in rows):
        sel = [r for r in rows if (r["backend"], r["threads"]) == key and r["done"]]
        ax.plot([r["n"] for r in sel], [r["seconds"] for r in sel], "o-",
                label=f"{key[0]}, {key[1]} thread(s)")
    ax.set_xlabel("products (precomputed N × N distances)")
    ax.set_ylabel("t-SNE wall time (s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
