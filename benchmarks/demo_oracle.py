"""The demo's next clicks against the generator's own probabilities: how much is there to win?

The demo's shop (``make_synthetic(seed=0, similar_rate=SIMILAR_RATE)``) draws each next click
from known probabilities: with probability ``similar_rate`` a close variant of the previous
product (same category and product type, uniformly), else the session's category's Zipf
popularity (85 %) or any clickable product. Ranking every product by those probabilities,
given the query alone, is the **oracle** of an item-to-item list
(:func:`prodfusion.data.synthetic.next_click_probabilities`; ``prodfusion demo`` prints it):
no list built from the query can expect more. (The session's category is not known to a list; its posterior given
the query — ``P(c | q) ∝ 0.85·zipf_c(q)·[c = category(q)] + 0.15 / |clickable|`` — stands
in for it.)

Scored on the held-out next clicks of ``evaluate retrieval`` (leave-last-out, test
fraction 0.2, seed 0; ties at their mean rank) beside the default build's own weighting and
the references, paired over the same cases:

    RUNS=/tmp/base TAG=v42 STEPS=demo bash benchmarks/issue10_default.sh   # the default build
    python benchmarks/demo_oracle.py --model /tmp/base/demod_v42 --out docs/results/demo_oracle.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
from _report import command_line, machine, write_markdown

K = 15
IN_CATEGORY_RATE = 0.85  # make_synthetic's default, as the demo draws


def tie_aware(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-case HitRate@K and nDCG@K of the targets, ties at their mean rank (the library's
    :func:`~prodfusion.evaluation.metrics.tie_aware_metric`, as ``evaluate retrieval``)."""
    from prodfusion.evaluation.metrics import tie_aware_metric, tie_aware_ranks

    ahead, ties, _ = tie_aware_ranks([scores], targets)
    return tie_aware_metric(ahead, ties, K, "hitrate"), tie_aware_metric(ahead, ties, K, "ndcg")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True,
                    help="the default build on the demo's shop (issue10_default.sh STEPS=demo)")
    ap.add_argument("--out", default="docs/results/demo_oracle.md")
    ap.add_argument("--shop", default=None,
                    help="another shop written by make_synthetic(truth=True) (default: the "
                         "demo's, regenerated), with the rates it was drawn with:")
    ap.add_argument("--similar-rate", type=float, default=None)
    ap.add_argument("--in-category-rate", type=float, default=IN_CATEGORY_RATE)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    from prodfusion.data import clean_sessions, read_interactions
    from prodfusion.data.synthetic import make_synthetic, next_click_probabilities
    from prodfusion.demo import SIMILAR_RATE
    from prodfusion.evaluation.metrics import bootstrap_ci
    from prodfusion.evaluation.retrieval import evaluate_retrieval, parse_variant
    from prodfusion.evaluation.split import split_interactions
    from prodfusion.recommender import Recommender
    from prodfusion.variants import Variant

    rec = Recommender.load(args.model)
    tmp = tempfile.TemporaryDirectory(prefix="pf_oracle_")
    similar_rate = SIMILAR_RATE if args.similar_rate is None else args.similar_rate
    if args.shop is None:
        shop = make_synthetic(tmp.name, n_products=2400, seed=0, similar_rate=SIMILAR_RATE,
                              truth=True)
        what = (f"the demo's shop, regenerated with `make_synthetic(n_products=2400, seed=0, "
                f"similar_rate={SIMILAR_RATE}, truth=True)`")
    else:
        d = Path(args.shop)
        shop = SimpleNamespace(interactions=d / "sessions.csv", truth=d / "truth.csv")
        what = (f"the shop in `{d}` (`make_synthetic(…, truth=True)`, drawn with similar_rate "
                f"{similar_rate}, in_category_rate {args.in_category_rate})")
    recorded = ((getattr(rec, "manifest_", None) or {}).get("data") or {}).get(
        "interactions", {}).get("path")
    if recorded and Path(recorded).is_file() and \
            Path(recorded).read_bytes() != shop.interactions.read_bytes():
        raise SystemExit(f"{args.model} was built on other sessions than the demo's shop")
    truth = pl.read_csv(shop.truth, schema_overrides={"product_id": pl.Utf8})
    if truth["product_id"].to_list() != list(rec.catalog.ids):
        raise SystemExit(f"{args.model}'s catalog is not the demo's shop")
    sessions = clean_sessions(read_interactions(shop.interactions, time_col="timestamp"),
                              rec.catalog)
    held = split_interactions(rec.catalog, sessions, test_fraction=0.2, seed=0).heldout[
        "sessions"]
    q, t = np.asarray(held.query_rows), np.asarray(held.target_rows)
    o_hit, o_ndcg = tie_aware(next_click_probabilities(truth, q, similar_rate,
                                                      args.in_category_rate), t)

    mods = tuple(rec.available_modalities)
    own = Variant("intermediate", mods, name="the default build's own weighting")
    refs = ["popular+category", "cooc", "tfidf", "popular"]
    variants = [own, *[parse_variant(r) for r in refs if r != "popular+category"
                       or rec.catalog.has_categories]]
    res = evaluate_retrieval(rec, sessions=sessions, k=K, seed=0, variants=variants,
                             keep_cases=True, progress=False)
    names = [v.label for v in variants]
    cases = {n: res["cases"][(n, "sessions")] for n in names}
    groups = cases[own.label]["groups"]
    if not np.array_equal(np.asarray(groups), np.asarray(held.groups)):
        raise SystemExit("the evaluation's cases are not the split's")

    def ci(x):
        m, lo, hi = bootstrap_ci(x, groups, n_boot=1000, seed=0)
        return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

    def diff(x):
        m, lo, hi = bootstrap_ci(x - o_ndcg, groups, n_boot=1000, seed=0)
        return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    lines = [
        f"# {'The demo' if args.shop is None else 'A synthetic shop'}'s next clicks against "
        "the generator's own probabilities", "",
        f"Command: `{command_line(argv)}` (SECONDS s). Machine: "
        f"{machine()}. Data: {what} (the same sessions the model was built on, checked "
        "byte for byte where its record names them). Model: "
        f"`{args.model}`, weights "
        + ", ".join(f"{m} {w:.3g}" for m, w in (rec.weights or {}).items())
        + f", calibration {rec.calibration}. Test cases: the last transition of each of the "
        f"{len(q):,} held-out sessions (leave-last-out, test fraction 0.2, seed 0), every "
        "other product a candidate, ties at their mean rank; 95 % bootstrap intervals over "
        "the sessions, paired for the differences.", "",
        "The oracle ranks every product by the probability the generator gave it of being "
        "the next click after the query, the session's category (which a list built from "
        "the query cannot know) replaced by its posterior given the query (module docstring "
        "of `benchmarks/demo_oracle.py`): up to that stand-in, no item-to-item list can "
        "expect more; the gap to it is what there is to win. It is scored on the same drawn "
        "clicks as the lists, so its figures carry the same sampling noise.", "",
        "| list | HitRate@15 | nDCG@15 | nDCG@15 minus the oracle's | share of the oracle's "
        "nDCG@15 |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| the oracle (the generator's probabilities given the query) | {ci(o_hit)} | "
        f"{ci(o_ndcg)} | – | 100 % |",
    ]
    for n in names:
        c = cases[n]
        lines.append(f"| {n} | {ci(c['hit'])} | {ci(c['ndcg'])} | {diff(c['ndcg'])} | "
                     f"{c['ndcg'].mean() / o_ndcg.mean():.0%} |")
    # what the fusion could be made of: how well each modality finds the query's kind, and
    # the best linear weighting of its modalities chosen on this test part itself (a
    # ceiling of the form, not a method: it reads the cases it is scored on)
    kind = truth["kind"].to_numpy()
    every = np.arange(len(kind))
    from prodfusion.fusion import Weighting

    lines += ["", "How often each modality's 20 nearest products (raw cosines; every product "
              "a query) are of the query's kind (its category and product type; the query's "
              f"kind holds {np.bincount(kind)[kind].mean():.0f} products on average, a category "
              f"{len(kind) / truth['category'].n_unique():.0f}):", "",
              "| modality | same kind in the 20 nearest |", "| --- | ---: |"]
    for m in [m for m in ("lexical", "text", "cooc", "clicks", "image") if m in mods]:
        r, _ = rec.fuser("intermediate", [m], weighting=Weighting()).topk(every, 20)
        ok = r >= 0
        lines.append(f"| {m} | {((kind[np.where(ok, r, 0)] == kind[:, None]) & ok).sum() / ok.sum():.0%} |")
    grid = [dict(zip(("category", "popularity", "clicks", "text", "cooc", "lexical"), x, strict=True),
                 image=0.0) for x in itertools.product(
        (0.5, 1.0), (0.25, 0.5), (0, 0.25, 0.5), (0, 0.25, 0.5), (0, 0.25), (0, 0.25))]
    grid = [w for w in grid if all(m in mods or not x for m, x in w.items())]
    if grid:
        vs = [Variant("intermediate", mods, weights={m: x for m, x in w.items() if m in mods},
                      name=f"w{i}") for i, w in enumerate(grid)]
        got = evaluate_retrieval(rec, sessions=sessions, k=K, seed=0, variants=vs,
                                 progress=False, n_boot=10)
        best = max((r for r in got["rows"] if r["slice"] == "all"),
                   key=lambda r: r["ndcg"]["value"])
        w = grid[int(best["variant"][1:])]
        lines += ["", f"The best of {len(grid)} linear weightings of the model's modalities "
                  "(its calibration and click confidence; a grid over category, popularity, "
                  "clicks, text, cooc and lexical), chosen **on this test part itself** — a "
                  "ceiling of the form, not a method: "
                  + ", ".join(f"{m} {x:g}" for m, x in w.items() if x)
                  + f", HitRate@15 {best['hit_rate']['value']:.3f}, nDCG@15 "
                  f"{best['ndcg']['value']:.4f} (the tuned weighting: "
                  f"{cases[own.label]['ndcg'].mean():.4f}; the oracle: {o_ndcg.mean():.4f})."]
    lines[2] = lines[2].replace("SECONDS", f"{time.perf_counter() - t0:.0f}", 1)
    write_markdown(lines, args.out)
    Path(args.out).with_suffix(".json").write_text(json.dumps({
        "oracle": {"hit_rate": float(o_hit.mean()), "ndcg": float(o_ndcg.mean())},
        **{n: {"hit_rate": float(cases[n]["hit"].mean()), "ndcg": float(cases[n]["ndcg"].mean())}
           for n in names}, "n": len(q)}, indent=1))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
