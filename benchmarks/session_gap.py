"""What a click log keyed by visitor costs the click modalities, and what ``--session-gap`` wins back.

The demo's synthetic shop (``make_synthetic``, as ``prodfusion demo`` writes it: visits that
stay mostly inside one category, half their clicks to a close variant) has a visit id per
session. Here every visit is given to one of ``--visitors`` visitors (a Zipf-like share per
visitor, so a few heavy visitors have hundreds of visits) and the log is written keyed by
visitor, as a site without visit ids logs it (cookie, time, product). Then, on the same
train / test split of the visits (``Sessions.split_by_time``: the last fifth of the visits by
start time are the test visits; each test visit's last transition q → t is a held-out case):

- **visits**: co-occurrence counts (``Cooc``, the ``cooc`` modality and reference) and
  Prod2Vec trained on the training visits, as a log with visit ids gives them;
- **visitor = session**: the same clicks keyed by visitor, cleaned as ``build
  --session-cols visitor`` cleans them (one session per visitor, cut after 200 clicks);
- **visitor, --session-gap 30m**: the same, cut at pauses of more than 30 minutes
  (``clean_sessions(session_gap="30m")``).

Each held-out target is ranked among every other product by the query's co-occurrences or
click-vector cosine (tie-aware HitRate@15 / nDCG@15: ``tie_aware_metric``); the differences are
paired over the test cases (bootstrap 95 % intervals over the test visits). Repeated over
``--seeds`` draws of the visitors (the shop and the split stay the same). The visits are
given to visitors at random, so pairs across a visitor's visits carry no signal here: the
worst case for keying by visitor (a real visitor's visits share interests).

    python benchmarks/session_gap.py --out docs/benchmarks/session_gap.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from _report import command_line, machine, write_markdown

from prodfusion.data import clean_sessions, make_synthetic, read_catalog, read_interactions
from prodfusion.demo import SIMILAR_RATE
from prodfusion.encoders.clicks import Prod2Vec
from prodfusion.evaluation.metrics import bootstrap_ci, tie_aware_metric
from prodfusion.fusion.cooc import Cooc

K = 15


def _cases(test, catalog) -> tuple[np.ndarray, np.ndarray]:
    """Rows of each test visit's last transition (query, target)."""
    row = {pid: i for i, pid in enumerate(catalog.frame["product_id"].to_list())}
    q, t = [], []
    for s in test:
        q.append(row[s[-2]])
        t.append(row[s[-1]])
    return np.array(q), np.array(t)


def _score(scores: np.ndarray, q: int, t: int) -> tuple[float, float]:
    """Tie-aware HitRate@K and nDCG@K of target ``t`` among every product but ``q``."""
    s = scores.copy()
    s[q] = np.nan
    valid = ~np.isnan(s)
    ahead = int((s[valid] > s[t]).sum())
    ties = int((s[valid] == s[t]).sum()) - 1
    return (float(tie_aware_metric([ahead], [ties], K, "hitrate")[0]),
            float(tie_aware_metric([ahead], [ties], K, "ndcg")[0]))


def _evaluate(sessions, catalog, q: np.ndarray, t: np.ndarray, workers: int) -> dict:
    """Per-case (hit, ndcg) of cooc alone and Prod2Vec alone trained on ``sessions``."""
    n = len(catalog)
    cooc = Cooc.from_sessions(sessions, catalog)
    emb = Prod2Vec(workers=workers, seed=0).fit(sessions).encode(catalog)
    v = emb.vectors.astype(np.float32)
    norms = np.linalg.norm(v, axis=1)
    v = v / np.where(norms > 0, norms, 1.0)[:, None]
    out = {"cooc": [], "clicks": []}
    for qi, ti in zip(q, t, strict=True):
        row = np.zeros(n, np.float32)  # no co-occurrence: 0, tied with every other such product
        r = cooc.sim[qi]
        row[r.indices] = r.data
        out["cooc"].append(_score(row, qi, ti))
        if emb.mask[qi]:
            cos = v @ v[qi]
            cos[~emb.mask] = -2.0  # products without a click vector: below every other
        else:
            cos = np.zeros(n, np.float32)  # a query without one: every product tied
        out["clicks"].append(_score(cos, qi, ti))
    return {m: np.array(x) for m, x in out.items()}


def _build_and_serve(log: pl.DataFrame, catalog_path, gap: str | None, folder: Path,
                     cache: Path, catalog, q: np.ndarray, t: np.ndarray) -> dict:
    """``prodfusion build`` as a user runs it on the training log (every default: titles,
    photos, clicks, lexical, cooc, tuned), then the served top 15 of each test query: the
    target's HitRate@15 and nDCG@15 (1 / log2(1 + rank) when listed)."""
    from prodfusion.cli import main as cli
    from prodfusion.recommender import Recommender

    path = folder / "train.csv"
    log.select(pl.col("session").alias("key"), "product_id", pl.col("ts").alias("time")
               ).write_csv(path)
    t0 = time.perf_counter()
    code = cli(["build", "--catalog", str(catalog_path), "--interactions", str(path),
                "--session-cols", "key", "--time-col", "time", "--cache-dir", str(cache),
                "--out", str(folder / "model"), "--workers", "1", "--overwrite",
                *(["--session-gap", gap] if gap else [])])
    if code:
        raise SystemExit(f"build failed ({code})")
    secs = time.perf_counter() - t0
    rec = Recommender.load(folder / "model")
    ids = catalog.frame["product_id"].to_list()
    lists, _ = rec.similar_batch([ids[i] for i in q], k=K)
    per = []
    for row, ti in zip(lists, t, strict=True):
        hit = [j for j, x in enumerate(row) if x == ids[ti]]
        per.append((1.0, 1.0 / np.log2(hit[0] + 2.0)) if hit else (0.0, 0.0))
    tuning = rec.manifest_.get("tuning") or {}
    return {"per": np.array(per), "seconds": secs,
            "weights": {m: round(w, 3) for m, w in (tuning.get("weights") or {}).items() if w}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--visitors", type=int, default=1000)
    ap.add_argument("--zipf", type=float, default=0.5,
                    help="a visitor's share of the visits ∝ 1 / rank^zipf")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="Prod2Vec threads (1: reproducible)")
    ap.add_argument("--builds", action="store_true",
                    help="also `prodfusion build` each training log of the first draw with "
                         "every default and score the served lists (minutes)")
    ap.add_argument("--out", default="docs/benchmarks/session_gap.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="pf_session_gap_"))
    paths = make_synthetic(tmp / "shop", seed=0, similar_rate=SIMILAR_RATE)
    catalog = read_catalog(paths.catalog)
    log = read_interactions(paths.interactions, session_cols="session_id",
                            item_col="product_id", time_col="timestamp")
    visits = clean_sessions(log, catalog)
    train, test = visits.split_by_time(0.2)
    q, t = _cases(test, catalog)
    keep = pl.Series(train.keys)
    train_log = log.filter(pl.col("session").is_in(keep.implode()))
    keys = train_log["session"].unique(maintain_order=True)
    share = 1.0 / np.arange(1, args.visitors + 1) ** args.zipf
    share /= share.sum()
    rows, results = [], {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        who = pl.DataFrame({"session": keys, "visitor": [
            f"v{x}" for x in rng.choice(args.visitors, len(keys), p=share)]})
        by_visitor = (train_log.join(who, on="session", how="left", maintain_order="left")
                      .with_columns(pl.col("visitor").alias("session")).drop("visitor"))
        variants = {
            "visits": clean_sessions(train_log, catalog),
            "visitor = session": clean_sessions(by_visitor, catalog),
            "visitor, --session-gap 30m": clean_sessions(by_visitor, catalog, session_gap="30m"),
        }
        same = sorted(map(tuple, variants["visits"])) == sorted(
            map(tuple, variants["visitor, --session-gap 30m"]))
        for name, s in variants.items():
            r = s.report
            res = _evaluate(s, catalog, q, t, args.workers)
            results[(seed, name)] = res
            rows.append({"seed": seed, "variant": name, "sessions": len(s), "clicks": s.n_clicks,
                         "capped_clicks": r.n_capped_clicks, "cut_at_pauses": r.n_split_at_gaps,
                         "equal_to_visits": same if name.endswith("30m") else None,
                         **{f"{m}_{k}": float(res[m][:, j].mean()) for m in res
                            for j, k in enumerate(("hit", "ndcg"))}})
        print(f"seed {seed}: done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    groups = np.arange(len(q))
    deltas = []
    for m in ("cooc", "clicks"):
        for name in ("visitor = session", "visitor, --session-gap 30m"):
            d = np.concatenate([results[(s, "visits")][m][:, 1] - results[(s, name)][m][:, 1]
                                for s in range(args.seeds)])
            g = np.tile(groups, args.seeds)  # a test visit resampled with all its draws
            mean, lo, hi = bootstrap_ci(d, g)
            deltas.append((m, name, mean, lo, hi))
    built = {}
    if args.builds:
        rng = np.random.default_rng(0)  # the first draw's visitors, as above
        who = pl.DataFrame({"session": keys, "visitor": [
            f"v{x}" for x in rng.choice(args.visitors, len(keys), p=share)]})
        by_visitor = (train_log.join(who, on="session", how="left", maintain_order="left")
                      .with_columns(pl.col("visitor").alias("session")).drop("visitor"))
        for name, lg, gap in (("visits", train_log, None),
                              ("visitor = session", by_visitor, None),
                              ("visitor, --session-gap 30m", by_visitor, "30m")):
            folder = tmp / f"build_{len(built)}"
            folder.mkdir()
            built[name] = _build_and_serve(lg, paths.catalog, gap, folder, tmp / "cache",
                                           catalog, q, t)
            print(f"build {name}: {built[name]['seconds']:.0f}s", file=sys.stderr)
    secs = time.perf_counter() - t0
    out = Path(args.out)
    cmd = command_line(argv)
    lines = [
        "# A click log keyed by visitor: the click modalities with and without `--session-gap`", "",
        f"Command: `{cmd}` ({secs:.0f} s). Machine: {machine()}. Data: the demo's synthetic shop "
        f"(`make_synthetic(seed=0, similar_rate={SIMILAR_RATE})`: {len(catalog):,} products, "
        f"{len(visits):,} visits after cleaning); the last fifth of the visits by start time are "
        f"the test visits ({len(q):,} held-out last transitions), the rest train. Their clicks "
        f"are given to {args.visitors} visitors (share ∝ 1/rank^{args.zipf:g}; {args.seeds} "
        "draws) and cleaned three ways (module docstring). Prod2Vec: the library's defaults "
        f"(512 dimensions, window 5, 20 epochs), {args.workers} thread(s), seed 0. "
        "Tie-aware HitRate@15 / nDCG@15 over every product but the query.", "",
        "| draw | training sessions | sessions | clicks | clicks cut by the cap | sessions cut "
        "at pauses | `cooc` HitRate / nDCG | Prod2Vec HitRate / nDCG |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        eq = " (= the visits)" if r["equal_to_visits"] else (
            " (≠ the visits)" if r["equal_to_visits"] is False else "")
        lines.append(
            f"| {r['seed']} | {r['variant']}{eq} | {r['sessions']:,} | {r['clicks']:,} | "
            f"{r['capped_clicks']:,} | {r['cut_at_pauses']:,} | {r['cooc_hit']:.4f} / "
            f"{r['cooc_ndcg']:.4f} | {r['clicks_hit']:.4f} / {r['clicks_ndcg']:.4f} |")
    lines += ["", f"nDCG@15 of the visits minus each visitor-keyed variant, the {args.seeds} "
              "draws' test cases pooled (paired bootstrap 95 % interval; a test visit is resampled "
              "with all its draws):",
              "", "| modality | trained on | Δ nDCG@15 (visits − it) |", "| --- | --- | ---: |"]
    for m, name, mean, lo, hi in deltas:
        lines.append(f"| {'`cooc`' if m == 'cooc' else 'Prod2Vec'} | {name} | "
                     f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}] |")
    if built:
        ref = built["visits"]["per"]
        lines += ["", "`prodfusion build` with every default on each training log of draw 0 "
                  "(`--session-cols key --time-col time`, the gap where named; titles, photos, "
                  "clicks, lexical and cooc, tuned on the log given), then the served top 15 of "
                  "each test query (`similar_batch`): HitRate@15 / nDCG@15 of the held-out "
                  "target, and nDCG@15 of the visits' build minus each:", "",
                  "| training log | build seconds | weights (tuned) | HitRate@15 / nDCG@15 | "
                  "Δ nDCG@15 (visits − it) |", "| --- | ---: | --- | ---: | ---: |"]
        for name, b in built.items():
            m = b["per"].mean(axis=0)
            if name == "visits":
                delta = "–"
            else:
                mean, lo, hi = bootstrap_ci(ref[:, 1] - b["per"][:, 1], groups)
                delta = f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            w = ", ".join(f"{k} {v:g}" for k, v in b["weights"].items())
            lines.append(f"| {name} | {b['seconds']:.0f} | {w} | {m[0]:.4f} / {m[1]:.4f} | "
                         f"{delta} |")
    write_markdown(lines, out)
    out.with_suffix(".json").write_text(json.dumps(
        {"rows": rows, "deltas": [dict(zip(("modality", "variant", "mean", "lo", "hi"), d,
                                           strict=True)) for d in deltas],
         "builds": {n: {"hit": float(b["per"][:, 0].mean()), "ndcg": float(b["per"][:, 1].mean()),
                        "seconds": round(b["seconds"], 1), "weights": b["weights"]}
                    for n, b in built.items()},
         "seconds": round(secs, 1), "args": vars(args)}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
