"""Shrinking the tuned weights towards equal weights on the demo (issue 10, twentieth session).

``tune(shrink=True)`` moves the weights the search found along
``w_λ = (1 − λ)·w + λ·(1/M, …)`` as far as validation allows: the largest λ whose score is
within one standard error of the tuned weights' (the one-standard-error rule, preferring the
weighting closest to the paper's equal weights instead of the sparsest). The question for
the demo's open item (tuned fusion's top-15 category precision 0.998 against 1.000 for the
photos alone): what does the rule choose there, and what do the steps of the path cost in
next clicks and buy in category purity **on the test part**, which tuning never reads?

* the demo model is re-tuned exactly as ``prodfusion demo`` tunes it, with ``shrink=True``;
* every λ of the path is scored as ``demo_llr_fusion.py`` scores its rows: Prod2Vec retrained
  on the training part, z-scores (``zmean``) over every product of the catalog, ties at their
  mean rank, the last transition of each test session held out (leave-last-out, test fraction
  0.2, seed 0), a paired 95 % bootstrap interval against λ = 0 (the tuned weights), and the
  off-category products in the top-15 lists of the queries with a photo.

    prodfusion demo --out DIR
    python benchmarks/demo_shrinkage.py DIR [--out docs/results/demo_shrinkage.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    from demo_llr_fusion import DemoTest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_dir", help="the folder of `prodfusion demo --out DIR`")
    ap.add_argument("--out", default=str(REPO / "docs/results/demo_shrinkage.md"))
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    d = Path(args.demo_dir)
    dt = DemoTest(d)  # the model's tuned weights read before the tuning below
    from prodfusion.data import clean_sessions, read_interactions

    sessions = clean_sessions(read_interactions(
        d / "data" / "sessions.csv", session_cols=("session_id",), item_col="product_id",
        time_col="timestamp"), dt.rec.catalog)
    # exactly as `prodfusion demo` tunes (prodfusion/demo.py), plus shrink=True
    res = dt.rec.tune(sessions, objective="ndcg@15", n0_grid=(None,), max_queries=1000,
                      seed=0, shrink=True)
    shr = res["shrinkage"]
    mods = tuple(res["weights"])
    w0 = dict(zip(mods, shr["from"], strict=True))
    assert dt.mods == mods, (dt.mods, mods)
    lams = sorted(set(LAMBDAS) | {shr["lambda"]})
    rows = []
    for lam in lams:
        w = {m: (1 - lam) * w0[m] + lam / len(mods) for m in mods}
        rows.append((lam, w, *dt.scores(dt.fused(dt.zs, w))))
    alone = {f"{m} alone": dt.scores(dt.fused(dt.zs, {m: 1.0})) for m in ("text", "image")}
    alone.update({f"`{b}`": dt.scores(s) for b, s in dt.baselines().items()})
    base = rows[0][3]
    fmt = lambda w: ", ".join(f"{m} {w[m]:.3f}" for m in mods)  # noqa: E731
    lines = [
        "# Shrinking the tuned weights towards equal weights: the demo's test part",
        "",
        f"Command: `prodfusion demo --out DIR`, then `python benchmarks/demo_shrinkage.py DIR` "
        f"({time.perf_counter() - t0:.0f} s). Machine: {platform.machine()}, "
        f"{platform.system()}, 2-core VM. Data: the demo's synthetic shop (seed 0, "
        f"{dt.n:,} products, {len(set(dt.cats))} planted categories). Tuning as "
        "`prodfusion demo` tunes, with `shrink=True`: calibration "
        f"`{res['calibration']}`; validation nDCG@15 of the tuned weights "
        f"{shr['score_from']:.4f}, chosen λ = {shr['lambda']:g} scoring {shr['score']:.4f} "
        f"(one standard error of the paired difference: {shr['se']:.4f}; "
        f"{res['split']['n_validation_cases']:,} validation cases over "
        f"{res['search']['repeats']} splits). Test: Prod2Vec retrained on the training part; "
        f"the last transition of each of the {len(dt.q):,} test sessions (leave-last-out, "
        "test fraction 0.2, seed 0); every product a candidate, ties at their mean rank; "
        "z-scores as `zmean`. Off-category: products of another planted category in the "
        f"top-15 lists of the {len(dt.has):,} queries with a photo "
        f"({len(dt.has) * 15:,} recommendations).",
        "",
        "| λ (0: tuned, 1: equal) | weights | HitRate@15 | nDCG@15 | Δ nDCG@15 vs λ = 0 "
        "[95 % CI] | off-category |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for lam, w, hit, ndcg, off in rows:
        diff = ndcg - base
        lo, hi = dt.paired_ci(diff, args.resamples)
        ci = "–" if lam == 0 else f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
        star = " (chosen)" if lam == shr["lambda"] else ""
        lines.append(f"| {lam:g}{star} | {fmt(w)} | {hit.mean():.4f} | {ndcg.mean():.4f} | "
                     f"{ci} | {off} |")
    for m, (hit, ndcg, off) in alone.items():
        diff = ndcg - base
        lo, hi = dt.paired_ci(diff, args.resamples)
        lines.append(f"| {m} | – | {hit.mean():.4f} | {ndcg.mean():.4f} | "
                     f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}] | {off} |")
    png = Path(args.out).with_suffix(".png")
    _plot(rows, alone, base, dt, args.resamples, png)
    lines += ["", f"![nDCG@15 against off-category recommendations along the path]({png.name})",
              "",
              "The figure: each step of the path (λ beside its point) and each modality alone: "
              "the difference in nDCG@15 from the tuned weights with its paired 95 % bootstrap "
              "interval, against the off-category recommendations of the queries with a photo "
              "(symmetric-log scale: 0 is drawn)."]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if not np.isfinite(base).all():
        raise SystemExit("non-finite scores")


def _plot(rows, alone, base, dt, resamples: int, path: Path) -> None:
    """Δ nDCG@15 against the tuned weights (paired 95 % interval) against off-category
    recommendations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))

    def point(ndcg, off, label, colour, marker, dy):
        d = ndcg - base
        lo, hi = dt.paired_ci(d, resamples)
        m = d.mean()
        ax.errorbar([off], [m], yerr=[[m - lo], [hi - m]], fmt=marker, color=colour, capsize=3)
        ax.annotate(label, (off, m), textcoords="offset points", xytext=(6, dy), fontsize=8)

    for i, (lam, _w, _hit, ndcg, off) in enumerate(rows):
        point(ndcg, off, f"λ = {lam:g}", "tab:blue", "o", 6 if i % 2 else -10)
    for m, (_hit, ndcg, off) in alone.items():
        if m.endswith(" alone"):
            point(ndcg, off, m, "tab:grey", "s", 6)
    ax.axhline(0, ls="--", lw=0.8, color="tab:blue")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(-0.5, 5000)
    ax.set_xlabel("off-category products in the top-15 lists of the queries with a photo")
    ax.set_ylabel("Δ nDCG@15 vs the tuned weights (λ = 0)")
    ax.set_title("Shrinking the tuned weights towards equal weights: the demo's test part",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
