"""Issue 10's pooled rolling-origin verdicts, repeated over Prod2Vec seeds (thirteenth session).

``benchmarks/rolling_origin.py`` tunes and scores every session-based verdict on four test
windows and pools them, with the models' Prod2Vec seed (0). The seventh section's
``seed_noise.sh`` measured training noise on one window with the weights held fixed. This
script does both at once: the whole rolling-origin run — the tuner's three validation splits
(retrained from ``seed``, ``seed + 1``, ``seed + 2``) *and* the test part's Prod2Vec
(``seed``) — repeated for each seed, so each seed is a full replicate of the method, and
reports each seed's pooled verdict against the best single modality and the best reference.

    python benchmarks/rolling_origin_seeds.py [--seeds 0,1,2,3,4] [--only views,whole,...]

Seed 0 is read from ``runs/rolling_origin.pkl`` (the committed ``rolling_origin.py`` run, the
models' own seed) when it holds the case; other seeds are run and kept in
``runs/rolling_origin_seed{S}.pkl`` after each case (a rerun resumes). Needs the model
folders ``rolling_origin.py`` needs. Writes ``docs/results/rolling_origin_seeds.md`` and
``.png``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rolling_origin as ro  # noqa: E402

REPO = ro.REPO
KINDS = ("best single modality", "best reference")


def _tuned(wins: list[dict]) -> str:
    return next(v for v in wins[0]["result"]["config"]["variants"]
                if (v.get("name") or "").startswith("tuned"))["label"]


def results_for(seed: int, names: list[str], data: Path, windows: int) -> dict:
    """``{case: windows}`` for one seed: from the committed run (seed 0), from this script's
    earlier run, or run now (kept after each case)."""
    keep = REPO / "runs" / f"rolling_origin_seed{seed}.pkl"
    results: dict = {}
    if keep.exists():
        with open(keep, "rb") as f:
            results = pickle.load(f)
    committed = REPO / "runs" / "rolling_origin.pkl"
    if seed == 0 and committed.exists():
        with open(committed, "rb") as f:
            res, _, n_win, *_rest = pickle.load(f)
        if n_win == windows:
            results.update({n: w for n, w in res.items() if n in names and n not in results})
    for n in names:
        if n in results:
            continue
        ro._log(f"seed {seed}: {n}")
        results[n] = ro.run_case(n, data, windows, [], None if seed == 0 else seed)
        keep.parent.mkdir(exist_ok=True)
        with open(keep, "wb") as f:
            pickle.dump(results, f)
    return results


def verdicts(results: dict) -> dict:
    """``{case: {kind: paired row, "slices": [paired rows of the slices]}}`` of the pooled
    windows."""
    out = {}
    for n, wins in results.items():
        _, paired = ro.pool(wins)
        tuned = _tuned(wins)
        out[n] = {p["kind"]: p for p in ro._paired_all(paired, tuned)}
        out[n]["slices"] = [p for p in paired if p["variant"] == tuned and p["slice"] != "all"
                            and p["source"] == "sessions"]
    return out


def _short(p: dict) -> str:
    return (f"{p['slice']} vs {p['comparator']}: {p['ndcg']['value']:+.4f} / "
            f"{p['hit_rate']['value']:+.4f} ({p['verdict']})")


def report(per_seed: dict, names: list[str], args, seconds: float) -> str:
    seeds = list(per_seed)
    lines = [
        f"# Issue 10's pooled rolling-origin verdicts over {len(seeds)} Prod2Vec seeds",
        "",
        f"Command: `python benchmarks/rolling_origin_seeds.py --seeds "
        f"{','.join(map(str, seeds))}{' --only ' + args.only if args.only else ''}` "
        f"({seconds / 60:.0f} min this run; seed 0 is the committed `rolling_origin.py` run "
        "where `runs/rolling_origin.pkl` kept it, else run here with the models' own seed).  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, 24 GiB, no GPU (shared with "
        "other jobs unless said otherwise).  ",
        "Data and models: as [rolling_origin.md](rolling_origin.md) (`../shared/data`, "
        "read-only). Each seed is a full replicate: in each of the "
        f"{args.windows} windows the model is tuned afresh with its validation splits' Prod2Vec "
        "retrained from seeds S, S + 1, S + 2, and the test part's Prod2Vec retrained from S; "
        "the test cases are the same for every seed. Figures: pooled over the windows, "
        "tuned fusion minus the comparator, mean [95 % paired bootstrap interval]; the "
        "comparator is the best single modality or the best reference baseline of that seed's "
        "pooled cases.",
        "",
        f"![Δ nDCG@15 per seed]({Path(args.out).with_suffix('.png').name})",
        "",
    ]
    for n in names:
        lines += [f"## {ro.CASES[n][0]}", "",
                  "| seed | comparator | Δ HitRate@15 | Δ nDCG@15 | verdict (nDCG) | slices "
                  "below it (nDCG / HitRate Δ) |",
                  "| ---: | --- | ---: | ---: | --- | --- |"]
        for kind in KINDS:
            for s in seeds:
                p = per_seed[s][n].get(kind)
                if p is None:
                    continue
                # slices where the fusion's point estimate is below this kind of comparator
                # (the best single modality: also the best one *in* the slice)
                low = [x for x in per_seed[s][n]["slices"]
                       if x["kind"].startswith(kind.split(" modality")[0])
                       and min(x["ndcg"]["value"], x["hit_rate"]["value"]) < 0]
                lines.append(f"| {s} | {p['comparator']} ({kind}) | {ro._ci(p['hit_rate'])} | "
                             f"{ro._ci(p['ndcg'])} | {p['verdict']} | "
                             f"{'; '.join(map(_short, low)) or 'none'} |")
        lines.append("")
        for kind in KINDS:
            ps = [per_seed[s][n][kind] for s in seeds if kind in per_seed[s][n]]
            if not ps:
                continue
            nd = np.array([p["ndcg"]["value"] for p in ps])
            hr = np.array([p["hit_rate"]["value"] for p in ps])
            counts = Counter(p["verdict"] for p in ps)
            lines.append(
                f"- vs the {kind}: nDCG@15 Δ {nd.mean():+.4f} on average over the seeds "
                f"(from {nd.min():+.4f} to {nd.max():+.4f}; {int((nd > 0).sum())} of {len(nd)} "
                f"above 0), HitRate@15 Δ {hr.mean():+.4f} ({hr.min():+.4f} to {hr.max():+.4f}); "
                "verdicts: " + ", ".join(f"{v} {c}" for v, c in counts.items()) + ".")
        lines.append("")
    return "\n".join(lines)


def figure(per_seed: dict, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = list(per_seed)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, n in zip(axes[0], names, strict=True):
        items = [(f"seed {s}", kind, per_seed[s][n][kind]["ndcg"]) for s in seeds
                 for kind in KINDS if kind in per_seed[s][n]]
        ro.draw_panel(ax, items, n, "pooled Δ nDCG@15 (95 % CI)")
    ro.save_panels(fig, axes, path, bottom=0.08)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(ro.CASES))
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA",
                                                     str(REPO.parent / "shared" / "data")))
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "rolling_origin_seeds.md"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    names = [n for n in (args.only.split(",") if args.only else ro.DEFAULT) if n]
    for n in names:
        if n not in ro.CASES:
            raise SystemExit(f"--only: unknown case {n!r}; known: {', '.join(ro.CASES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    per_seed = {s: verdicts(results_for(s, names, Path(args.data), args.windows))
                for s in seeds}
    out = Path(args.out)
    out.write_text(report(per_seed, names, args, time.perf_counter() - t0) + "\n")
    figure(per_seed, names, out.with_suffix(".png"))
    ro._log(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
