"""How far below the fused scores the zero-weight fallback must sit (issue 10, twenty-first
session): a probe on the tuner's own validation cases.

When tuning gives the titles weight 0 (clicks and co-occurrences predict the next click
better), a product *without* clicks shares no positive-weight modality with a clicked query.
Such a pair is ranked by the fallback (the titles, z-scored) at ``-FALLBACK_OFFSET`` (1000):
below every pair the weighted modalities rank, so a new product never enters a clicked
product's list, and the validation slice "target: no training clicks" scores 0 where the
titles alone score more. This probe asks whether a smaller offset, one the tuner could
choose, would let the right new products in without pushing the clicked ones out.

It generates :func:`prodfusion.data.make_synthetic`'s shop (``similar_rate=0.5``, almost no
photos, one session per product, as ``benchmarks/tune_scale.py``), builds it with
``--tune off``, tunes it with the defaults but ``repeats`` validation splits, and scores the
tuned weighting on the same validation cases with the offset replaced.

    python benchmarks/fallback_offset.py [--products 100000] [--repeats 1]
                                         [--out docs/results/fallback_offset.md]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import write_markdown

REPO = Path(__file__).resolve().parents[1]
OFFSETS = (1000.0, 20.0, 10.0, 6.0, 5.0, 4.5, 4.0, 3.0, 2.0, 1.0, 0.0)


def plot(rows: list, path: Path) -> None:
    """nDCG@15 of all cases and of the targets without training clicks, by offset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cold = "target: no training clicks"
    x = [float(r[0]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(x, [r[1] for r in rows], "o-", label="all validation cases")
    ax.plot(x, [r[2][cold][0] for r in rows], "s-", label=f"{cold} ({rows[0][2][cold][1]:,})")
    ax.set(xscale="symlog", xlabel="offset of the fallback tier (library: 1000)",
           ylabel="validation nDCG@15",
           title="Letting products without clicks in: the cold slice gains,\n"
                 "the clicked products are pushed out")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tuned_folds(products: int, repeats: int, workdir: str | None):
    """The synthetic shop built (once, under ``workdir``) and tuned with the defaults but
    ``repeats`` validation splits: ``(tuning record, [(scorer, stats)] of the splits,
    weighting(stats) → the tuned Weighting, whether the shop was built now)`` (also
    ``new_product_slot.py``'s)."""
    import prodfusion.evaluation.tuning as tuning
    from prodfusion.data import clean_sessions, make_synthetic, read_interactions
    from prodfusion.encoders.clicks import Prod2VecParams
    from prodfusion.fusion.weighting import Weighting
    from prodfusion.recommender import Recommender

    work = Path(workdir or tempfile.mkdtemp(prefix="fallback-offset-"))
    data, model = work / "data", work / "model"
    inter = ["--interactions", str(data / "sessions.csv"), "--session-cols", "session_id",
             "--item-col", "product_id", "--time-col", "timestamp", "--workers", "1"]
    built = not (model / "manifest.json").exists()
    if built:
        make_synthetic(data, n_products=products, n_sessions=products, seed=0,
                       similar_rate=0.5, missing_image_rate=0.999)
        subprocess.run([sys.executable, "-m", "prodfusion.cli", "build", "--catalog",
                        str(data / "catalog.csv"), *inter, "--image", "none", "--cache-dir",
                        "none", "--tune", "off", "--out", str(model)], check=True)
    rec = Recommender.load(model)
    sessions = clean_sessions(read_interactions(
        data / "sessions.csv", session_cols=("session_id",), item_col="product_id",
        time_col="timestamp"), rec.catalog)

    captured = {}
    folds_of = tuning._validation_folds

    def spy(*a, **k):  # keep the tuner's validation scorers to score other rules on
        captured["folds"] = out = folds_of(*a, **k)
        return out

    tuning._validation_folds = spy
    try:
        res = tuning.tune_weights(rec, sessions=sessions, repeats=repeats,
                                  prod2vec=Prod2VecParams(workers=1, seed=0))
    finally:
        tuning._validation_folds = folds_of
    fb = res.get("fallback")

    def weighting(st):
        return Weighting.make(res["weights"], res["calibration"],
                              st if res["calibration"] != "none" or isinstance(fb, dict)
                              else None, res.get("n0"), fallback=fb or False,
                              fallback_missing=tuning.FALLBACK_MISSING)

    return res, captured["folds"][1], weighting, built


def slice_cells(sl: dict, names) -> str:
    """The slice columns of a report row: each slice's nDCG@15 and, in brackets, its cases
    (also ``new_product_slot.py``'s)."""
    return " | ".join(f"{sl[k][0]:.4f} ({sl[k][1]:,})" for k in names)


def measure_folds(folds: list, values) -> tuple[float, dict]:
    """The objective over the splits (their mean) and ``{slice: (value, cases)}`` of the
    per-case ``values(scorer, stats)``, as the tuner measures a weighting."""
    per, sl = [], {}
    for sc, st in folds:
        v = values(sc, st)
        per.append(sc.objective(v))
        for name, mask in sc.slices.items():
            sl.setdefault(name, []).append((sc.objective(v, mask), int(mask.sum())))
    return float(np.mean(per)), {k: (float(np.nanmean([x for x, _ in v])),
                                     sum(n for _, n in v)) for k, v in sl.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="keep the shop and model here")
    ap.add_argument("--out", default=str(REPO / "docs/results/fallback_offset.md"))
    args = ap.parse_args()

    import prodfusion.fusion.weights as weights
    from prodfusion.fusion.weighting import Weighting

    t0 = time.perf_counter()
    res, folds, weighting, built = tuned_folds(args.products, args.repeats, args.workdir)
    fb = res.get("fallback")

    def measure(make):
        return measure_folds(folds, lambda sc, st: sc.values(make(st)))

    rows = []
    saved = weights.FALLBACK_OFFSET
    try:
        for off in OFFSETS:
            weights.FALLBACK_OFFSET = off
            rows.append((f"{off:g}", *measure(weighting)))
    finally:
        weights.FALLBACK_OFFSET = saved
    for m in res["weights"]:  # the floor of every slice: each modality alone, raw cosine
        rows.append((f"{m} alone", *measure(lambda st, m=m: Weighting.make({m: 1.0}))))
    names = list(rows[0][2])
    w = ", ".join(f"{m} {x:.3g}" for m, x in res["weights"].items())
    lines = [
        "# The zero-weight fallback's offset, probed on the tuner's validation cases",
        "",
        f"Command: `python benchmarks/fallback_offset.py --products {args.products} "
        f"--repeats {args.repeats}` ({time.perf_counter() - t0:.0f} s"
        f"{' with the build' if built else '; the shop was built before'}). Machine: "
        f"{platform.machine()}, {platform.system()}, 2-core VM. Data: `make_synthetic("
        f"n_products={args.products}, n_sessions={args.products}, seed=0, similar_rate=0.5, "
        "missing_image_rate=0.999)`, built with `--image none --cache-dir none --tune off "
        f"--workers 1`, tuned with the defaults but {args.repeats} validation split(s). The "
        f"tuned weighting: {w}, calibration {res['calibration']}, n0 {res.get('n0')}, "
        f"fallback {fb}. Each row scores it on the same validation cases with the fallback "
        "tier at `-offset` instead of −1000 (nDCG@15, ties at their mean rank; cases in "
        "brackets).",
        "",
        "| offset (or a modality alone) | all | " + " | ".join(names) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for off, score, sl in rows:
        lines.append(f"| {off} | {score:.4f} | "
                     + slice_cells(sl, names) + " |")
    png = Path(args.out).with_suffix(".png")
    plot([r for r in rows if r[0][0].isdigit()], png)
    lines += ["", f"![overall and cold-target nDCG@15 by offset]({png.name})"]
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
