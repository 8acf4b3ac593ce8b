"""Every held-out query as a new product: the lists a product without training sessions gets.

``evaluate retrieval`` reports the slice "query: no training clicks", but on a catalog whose
test queries are products people bought or viewed it holds a handful of cases (H&M's
co-purchase pairs: 2 of 2,199), while the lists of the products without a training session
are served all the same (H&M: 237 of 11,800 products; every new product of a shop until its
first sessions are learnt). This benchmark scores **every** test case of the same
split as if its query were such a product: the query's ``clicks`` and ``cooc`` are hidden
(what a product without training sessions lacks), everything else is the model as
``evaluate retrieval`` scores it (Prod2Vec retrained on the training part, leave-last-out,
exact search through the library's own fusers with their fallback tiers and backfill, ties
at the mean of their ranks). The candidates keep their clicks; a pair needs both sides, so
for a query without clicks that changes nothing.

Rows: the model's own weighting and each of its profiles, cold; what the simple methods
give such a query (titles alone, which the paper's baseline "Prod2Vec, text fallback" falls
back to; the ``tfidf`` reference, which ``cooc+tfidf`` falls back to; ``popular``); each
content modality alone. Paired differences against titles alone and ``tfidf``, 95 %
bootstrap intervals resampling the same groups. The warm rows (nothing hidden) check that
the script scores as ``evaluate retrieval`` does.

Products seen only once or a few times in training are nearly as cold: Prod2Vec barely moved
their vectors. More tables show what that does: the warm rankings' nDCG@15 by how often
the query was seen in the training part, and, over the whole catalog with the model's own
vectors, the share of each clicked product's top 15 taken by products without any click
vector, by how often the product was clicked; and why: the click cosines' random-pair mean
and spread (what ``zmean`` z-scores by) and the z-scores of each product's best click
neighbours, by the same buckets.

Intermediate fusion, exact search only: a model that searches approximately (above the HNSW
threshold) has its rows marked "not scored" and no differences.

    python benchmarks/cold_queries.py MODEL_DIR --interactions … --pairs … [--out FILE.md]
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from prodfusion.evaluation.tuning_scorer import NEW_PRODUCT_LACKS

HIDDEN = NEW_PRODUCT_LACKS  # what a product without training sessions lacks

REPO = Path(__file__).resolve().parents[1]
K = 15


def cold_copy(ev, rows: np.ndarray):
    """``ev`` with ``rows`` lacking the modalities of :data:`HIDDEN` (fresh fuser caches)."""
    from prodfusion.encoders.base import Embeddings

    out = copy.copy(ev)
    out._fusers, out._searchers = {}, {}
    embs = dict(ev.embeddings_)
    if "clicks" in embs:
        e = embs["clicks"]
        mask = np.asarray(e.mask, bool).copy()
        mask[rows] = False
        vec = np.array(e.vectors, np.float32)
        vec[rows] = 0
        embs["clicks"] = Embeddings(vec, mask, e.spec, dict(e.info))
    out.embeddings_ = embs
    if getattr(ev, "cooc_", None) is not None:
        c = copy.copy(ev.cooc_)
        c.mask = np.asarray(ev.cooc_.mask, bool).copy()
        c.mask[rows] = False
        out.cooc_ = c
    return out


#: Buckets of a query's training occurrences (the counts ``n0`` weighs clicks by).
BUCKETS = ((1, 1), (2, 4), (5, 19), (20, None))


def _bucket_name(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else (f"{lo}" if lo == hi else f"{lo}–{hi}")


def _buckets(counts: np.ndarray) -> list[np.ndarray]:
    """One selection of ``counts`` per bucket of :data:`BUCKETS`."""
    return [(counts >= lo) & (counts <= (hi if hi is not None else np.inf))
            for lo, hi in BUCKETS]


def rare_query_table(ev, ho, fused, singles, *, seen_in: str) -> list[str]:
    """nDCG@15 of the warm rankings (nothing hidden) by how often the query was seen in the
    training part: a product seen once or a few times has a click vector Prod2Vec barely
    moved, so its click similarities say little."""
    from prodfusion.evaluation.retrieval import _tie_aware
    from prodfusion.variants import BASELINE, Variant

    cnt = np.asarray(ev.click_counts_)[ho.query_rows]
    rows = fused + [s for s in singles if s[0].startswith("text")] + [
        ("clicks alone (raw)", Variant(fusion="intermediate", modalities=("clicks",), paper=True)),
        ("baseline (Prod2Vec, text fallback)", BASELINE)]
    vals = {name: _tie_aware(v, ev, ho, K, None) for name, v in rows}
    heads = [_bucket_name(lo, hi) for lo, hi in BUCKETS]
    sel = _buckets(cnt)
    out = [f"{seen_in}, warm (nothing hidden), nDCG@15 by the query's occurrences in the "
           "training part:", "",
           "| ranking | " + " | ".join(f"seen {h} ({int(m.sum()):,} cases)"
                                       for h, m in zip(heads, sel, strict=True)) + " |",
           "| --- |" + " ---: |" * len(heads)]
    for name, m in vals.items():
        if m is None:
            continue
        out.append(f"| {name} | " + " | ".join(
            f"{m['ndcg'][x].mean():.4f}" if x.any() else "–" for x in sel) + " |")
    return out + [""]


def clickless_share_table(rec, fused) -> list[str]:
    """Over the whole catalog, with the model's own vectors: the share of each clicked
    product's top 15 that are products without a click vector, by how often the product was
    clicked (the model's counts)."""
    if "clicks" not in rec.embeddings_ or getattr(rec, "click_counts_", None) is None:
        return []
    has = np.asarray(rec.embeddings_["clicks"].mask, bool)
    cnt = np.asarray(rec.click_counts_)
    q = np.flatnonzero(has)
    sel = _buckets(cnt[q])
    out = ["## The model's own lists: products without clicks in the top 15 of clicked products",
           "", f"{int((~has).sum()):,} of {len(has):,} products ({(~has).mean():.1%}) have no "
           "click vector. Share of the top-15 places of each clicked product that they take, "
           "by the product's training occurrences:", "",
           "| ranking | " + " | ".join(f"seen {_bucket_name(lo, hi)} ({int(m.sum()):,})"
                                       for (lo, hi), m in zip(BUCKETS, sel, strict=True))
           + " | all |", "| --- |" + " ---: |" * (len(BUCKETS) + 1)]
    for name, v in fused:
        rows, _ = v.recommend_scored(rec, q, K)
        share = ((rows >= 0) & ~has[np.maximum(rows, 0)]).mean(axis=1)
        out.append(f"| {name} | " + " | ".join(
            f"{share[m].mean():.3f}" if m.any() else "–" for m in sel)
            + f" | {share.mean():.3f} |")
    return out + [""] + click_z_table(rec, q, sel)


def click_z_table(rec, q: np.ndarray, sel: list[np.ndarray], sample: int = 300) -> list[str]:
    """Why: the click cosine's mean and spread over random pairs (the z-score's ``μ``, ``σ``,
    as ``zmean`` estimates them) and, per bucket, the median z of a product's best and
    15th-best click neighbour (up to ``sample`` products per bucket, the first rows). Under
    ``zmean`` a product without clicks counts as z = 0 against the query."""
    from prodfusion.fusion.weights import estimate_stats

    e = rec.embeddings_["clicks"]
    mu, sd = estimate_stats(rec.modality_data(), ["clicks"], seed=getattr(rec, "seed", 0))["clicks"]
    v = np.asarray(e.vectors[q], np.float32)
    u = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    out = [f"Click cosines over random pairs: mean {mu:.3f}, standard deviation {sd:.3f}. "
           f"The z-score of a clicked product's best and 15th-best click neighbour (median over "
           f"up to {sample} products per bucket):", "",
           "| | " + " | ".join(f"seen {_bucket_name(lo, hi)}" for lo, hi in BUCKETS) + " |",
           "| --- |" + " ---: |" * len(BUCKETS)]
    best, fifteenth = [], []
    for m in sel:
        rows = np.flatnonzero(m)[:sample]
        if not len(rows):
            best.append("–")
            fifteenth.append("–")
            continue
        z = (u[rows] @ u.T - mu) / sd
        z[np.arange(len(rows)), rows] = -np.inf  # the product itself
        top = np.sort(z, axis=1)[:, -K:]
        best.append(f"{np.median(top[:, -1]):+.2f}")
        fifteenth.append(f"{np.median(top[:, 0]):+.2f}")
    return out + ["| best neighbour | " + " | ".join(best) + " |",
                  f"| {K}th-best neighbour | " + " | ".join(fifteenth) + " |", ""]


def main() -> None:
    from prodfusion.cli.evaluate_steps import load_interactions
    from prodfusion.cli.options import add_interaction_options
    from prodfusion.evaluation.baselines import Reference
    from prodfusion.evaluation.metrics import bootstrap_ci
    from prodfusion.evaluation.retrieval import _tie_aware
    from prodfusion.evaluation.split import heldout_recommender, split_interactions
    from prodfusion.fusion.weighting import format_weights
    from prodfusion.recommender import Prod2VecParams, Recommender
    from prodfusion.variants import BASELINE, Variant

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    add_interaction_options(ap)
    ap.add_argument("--out", default=None, help="markdown report (default: print only)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="the split seed (evaluate's --seed)")
    ap.add_argument("--workers", type=int, default=1,
                    help="Prod2Vec threads of the retraining (default 1: gensim is bit-reproducible "
                         "on one thread only; the issue 10 scripts evaluate with --workers 1)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rec = Recommender.load(args.model)
    sessions, pairs = load_interactions(args, rec.catalog)
    split = split_interactions(rec.catalog, sessions, pairs, test_fraction=0.2, seed=args.seed,
                               protocol="leave-last-out")
    p2v = replace(rec.prod2vec or Prod2VecParams(), workers=args.workers)
    ev = heldout_recommender(rec, split.train, prod2vec=p2v, progress=False)
    mods = tuple(ev.modalities)
    content = tuple(m for m in mods if m not in HIDDEN)
    fused = [("the model's own weighting", Variant(fusion="intermediate", modalities=mods))]
    fused += [(f"profile `{p}`", Variant(fusion="intermediate", modalities=mods, profile=p))
              for p in sorted(ev.profiles_)]
    singles = [(f"{m} alone (raw)", Variant(fusion="intermediate", modalities=(m,), paper=True))
               for m in content]
    refs = [(f"`{r}` reference", Reference(r)) for r in ("tfidf", "popular")]
    lines = [f"# {__doc__.splitlines()[0]}", "",
             f"`python benchmarks/cold_queries.py {' '.join(sys.argv[1:])}`; model "
             f"`{args.model}` ({', '.join(mods)}); {platform.machine()}, "
             f"{platform.python_version()}; leave-last-out, test fraction 0.2, seed "
             f"{args.seed}; hidden in every query: {', '.join(HIDDEN)}.", ""]
    for src, ho in split.heldout.items():
        q = ho.query_rows
        cold = cold_copy(ev, np.unique(q))
        scored: dict = {}
        for name, v in fused:
            scored[f"{name}, warm (nothing hidden)"] = _tie_aware(v, ev, ho, K, None)
        for name, v in fused + singles:
            scored[name] = _tie_aware(v, cold, ho, K, None)
        for name, v in [("baseline (Prod2Vec, text fallback)", BASELINE)] + refs:
            scored[name] = _tie_aware(v, cold, ho, K, None)
        groups = np.asarray(ho.groups).astype(str)
        has_clicks = np.asarray(ev.embeddings_["clicks"].mask, bool)[q] \
            if "clicks" in ev.embeddings_ else np.zeros(len(q), bool)
        lines += [f"## {src}: {len(q):,} test cases ({int(has_clicks.sum()):,} of whose "
                  "queries have training clicks, hidden here)", "",
                  "| ranking | HitRate@15 | nDCG@15 | Δ nDCG vs titles alone [95 % CI] | "
                  "Δ nDCG vs `tfidf` [95 % CI] |", "| --- | ---: | ---: | ---: | ---: |"]
        base_t = (scored.get("text alone (raw)") or {}).get("ndcg")
        base_f = (scored["`tfidf` reference"] or {}).get("ndcg")
        for name, m in scored.items():
            if m is None:
                lines.append(f"| {name} | (searched approximately: not scored) | | | |")
                continue
            cells = []
            for b in (base_t, base_f):
                if b is None:  # no titles: no such comparator
                    cells.append("–")
                    continue
                d = m["ndcg"] - b
                if not np.any(d):
                    cells.append("equal")
                    continue
                mean, lo, hi = bootstrap_ci(d, groups, n_boot=args.resamples, seed=1)
                cells.append(f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
            lines.append(f"| {name} | {m['hit'].mean():.4f} | {m['ndcg'].mean():.4f} | "
                         + " | ".join(cells) + " |")
        lines.append("")
        lines += rare_query_table(ev, ho, fused, singles, seen_in=src)
        print("\n".join(lines[-len(scored) - 16:]), flush=True)
    lines += clickless_share_table(rec, fused)
    for name, v in fused:
        wt = v.weighting_for(ev)
        w = wt if wt is not None else ev.weighting(mods)
        fb = w.to_dict().get("fallback")
        lines.append(f"- {name}: {format_weights(dict(w.weights or {}))}, calibration "
                     f"`{w.calibration}`" + (f", fallback weights {format_weights(fb)}"
                                             if isinstance(fb, dict) else ""))
    lines += ["", f"Wall time {time.perf_counter() - t0:.0f} s (the model loaded and Prod2Vec "
              "retrained included)."]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
