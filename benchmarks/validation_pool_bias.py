"""How the tuner's validation ranks are counted, and a cooc-first cascade, on **validation**
splits only (eleventh session: the measurement behind the outside-pool sample of
``prodfusion.evaluation.tuning_scorer._Scorer``).

The model is DIGINETICA's catalog of viewed items tuned by ``benchmarks/issue10_fusion.sh``
(``runs/digi1_t``: clicks + cooc, cooc by 1/distance). Its interactions are split as ``tune``
splits them (the test part set aside unread, three validation splits); each validation case
is ranked three ways:

* **pool only** — among each modality's 200 best products and the targets (the tuner until
  the eleventh session; ``n_outside=0``);
* **sampled** — the same, plus 200 products sampled outside the pool, scaled up (the tuner now);
* **exact** — every product of the catalog scored (``n_cand`` = ``n_outside`` = catalog size).

Configurations: cooc alone, the model's tuned weighting, and a **cascade** (cooc's ranking
kept; click similarity, z-scored, breaks its ties and orders the products it leaves at 0; a
product without a click vector counts as the click mean there), scored exactly.

Usage::

    bash benchmarks/issue10_fusion.sh     # once: builds and tunes runs/digi1_t
    python benchmarks/validation_pool_bias.py [--data ../shared/data]
      -> docs/results/validation_pool_bias.md
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
import types
from pathlib import Path

import numpy as np

import prodfusion.evaluation.tuning_scorer as ts
from prodfusion import Recommender
from prodfusion.cli.evaluate_steps import load_interactions
from prodfusion.evaluation.metrics import tie_aware_metric, tie_aware_ranks
from prodfusion.evaluation.retrieval import split_interactions
from prodfusion.evaluation.tuning import _calibration
from prodfusion.fusion.weights import Weighting, intermediate_combine
from prodfusion.recommender import Prod2VecParams

MODEL = Path("runs/digi1_t")


def folds(rec, s_part, n_cand: int, n_outside: int | None) -> list:
    """The tuner's three validation splits, scored with this candidate count."""
    orig = ts._Scorer
    ts._Scorer = functools.partial(orig, n_outside=n_outside) if n_outside is not None \
        else orig
    try:
        _, fs, _, _, _ = ts._validation_folds(
            rec, s_part, None, ("clicks", "cooc"), validate_on="all", val_fraction=0.2,
            seed=0, protocol="leave-last-out", repeats=3, rolling=False, max_queries=2000,
            prod2vec=getattr(rec, "prod2vec", None) or Prod2VecParams(), metric="ndcg",
            k=15, n_candidates=n_cand, with_stats=True, log=lambda *a: None,
            progress=False, where="validation_pool_bias", cooc_decays=())
    finally:
        ts._Scorer = orig
    return fs


def cascade(sc, st) -> np.ndarray:
    """Per-case nDCG@15 of the cooc-first cascade (module docstring)."""
    p = np.where(sc.both["cooc"], sc.cos["cooc"], 0.0).astype(np.float64)
    wt = Weighting.make({"clicks": 1.0}, "zscore", st, None)
    r = np.asarray(intermediate_combine(wt, ["clicks"], sc.cos, sc.both, q_has=sc.q_has),
                   np.float64)
    fin = np.isfinite(r)
    s = p + 1e-7 * np.where(fin, 0.5 + np.arctan(r) / np.pi, 0.5)
    s[~sc.both["cooc"] & ~fin] = -np.inf
    s[~sc.valid] = -np.inf
    ahead, ties, ok = tie_aware_ranks([s[sc.inv]], sc.tpos)
    return np.where(ok, tie_aware_metric(ahead, ties, sc.k, sc.metric), 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="docs/results/validation_pool_bias.md")
    args = ap.parse_args()
    if not (MODEL / "manifest.json").exists():
        raise SystemExit(f"{MODEL} is missing: run bash benchmarks/issue10_fusion.sh first")
    t0 = time.perf_counter()
    d = Path(args.data) / "diginetica"
    rec = Recommender.load(MODEL)
    a = types.SimpleNamespace(
        interactions=str(d / "train-item-views.sample.csv"), pairs=None,
        session_cols=["session_id"], item_col="item_id", time_col=["eventdate", "timeframe"],
        sep=";", min_session_length=2, max_session_length=0, pair_cols=[])
    sessions, _ = load_interactions(a, rec.catalog)
    outer = split_interactions(rec.catalog, sessions, None, test_fraction=0.2, seed=0,
                               protocol="leave-last-out")
    s_part = ts._part(outer.train, ("s:", "h:"))  # the test part is never read
    tun = json.loads((MODEL / "manifest.json").read_text())["tuning"]
    cal, beta = _calibration(tun["calibration"])

    def tuned(st):
        return Weighting.make(tun["weights"], cal, st, tun["n0"],
                              fallback=tun.get("fallback", True), impute=beta)

    def alone(st):
        return Weighting.make({"cooc": 1.0}, "none", None, None)

    n = len(rec.catalog)
    ways = {"pool only": folds(rec, s_part, 200, 0), "sampled": folds(rec, s_part, 200, None),
            "exact": folds(rec, s_part, n, n)}
    rows, per = [], {}
    for way, fs in ways.items():
        for name, make in (("cooc alone", alone), ("tuned (model weights)", tuned)):
            vals = [sc.values(make(st)) for sc, st in fs]
            per[(way, name)] = np.concatenate(vals)
            rows.append((way, name, float(np.mean([sc.objective(v) for (sc, _), v in
                                                    zip(fs, vals, strict=True)]))))
    fs = ways["exact"]
    vals = [cascade(sc, st) for sc, st in fs]
    casc = np.concatenate(vals)
    rows.append(("exact", "cascade: cooc, then clicks",
                 float(np.mean([sc.objective(v) for (sc, _), v in zip(fs, vals, strict=True)]))))
    groups = ts._case_groups(fs)
    src = np.concatenate([sc.src for sc, _ in fs])
    base = per[("exact", "cooc alone")]

    def vs(v):
        return (f"{np.mean(v - base):+.4f} ± {ts._paired_se(v, base, groups, src):.4f}",
                int((v > base + 1e-12).sum()), int((v < base - 1e-12).sum()))

    lines = [
        "# The tuner's validation ranks: pool only, sampled, exact (eleventh session)", "",
        f"Command: `python benchmarks/validation_pool_bias.py`; model `{MODEL}` "
        "(`bash benchmarks/issue10_fusion.sh`: DIGINETICA's viewed items, clicks + cooc, "
        f"tuned weights {tun['weights']}, calibration {tun['calibration']}, n0 {tun['n0']}); "
        "validation splits only, the test part set aside unread.  ",
        f"Machine: {platform.platform()}, 2 CPUs; {time.strftime('%Y-%m-%d')}; "
        f"{time.perf_counter() - t0:.0f} s.  ",
        f"{len(base):,} validation cases (3 splits of the same latest block; a case counts "
        "once in the standard errors). nDCG@15, tie-aware.", "",
        "| ranks counted | configuration | validation nDCG@15 |", "| --- | --- | ---: |",
        *[f"| {w} | {nm} | {v:.4f} |" for w, nm, v in rows], "",
        "Against cooc alone, exact ranks (mean difference ± standard error; cases won / lost):",
        "", "| configuration | Δ nDCG@15 | won | lost |", "| --- | ---: | ---: | ---: |",
        *[f"| {nm} | {d} | {w} | {lo} |" for nm, (d, w, lo) in
          (("tuned (model weights)", vs(per[("exact", "tuned (model weights)")])),
           ("cascade: cooc, then clicks", vs(casc)))],
        "", "Pool only, a configuration that ties many products (cooc alone: 0 for every "
        "product the query never shared a session with) is ranked against the pool's share of "
        "its tie only; the sample restores the catalog's count.", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
