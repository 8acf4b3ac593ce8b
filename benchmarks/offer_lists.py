"""Lists on a price-comparison site's offer feed (fifty-second session): the made-up feed of
``benchmarks/price_comparison.py`` (640 offers of 160 products from 8 shops; 2 shops send
no EAN, 1 drops its leading zero) built the way a new user would first (no group column),
then with ``--group-col ean --one-per-group``; every offer's 15 similar products counted by
the products they are (the generator's truth, not in the files), and the second model's
lists scored on held-out clicks by ``prodfusion evaluate retrieval`` (one product per
group: a listed offer of the target's product is a hit) beside the reference baselines.

    python benchmarks/offer_lists.py --work /tmp/q52b --out docs/benchmarks/offer_lists.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import command_line, machine, write_markdown  # noqa: E402
from price_comparison import make_feed  # noqa: E402

K = 15
BUILD = ["build", "--catalog", "offers.csv", "--id-col", "offer_id", "--title-col", "title",
         "--category-col", "category", "--image-col", "image", "--interactions", "clicks.csv",
         "--session-cols", "visitor", "--item-col", "offer_id", "--time-col", "ts"]
MODELS = {"no group column": [], "--group-col ean --one-per-group":
          ["--group-col", "ean", "--one-per-group"]}


def _run(work: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "prodfusion.cli", *args], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _lists(folder: Path, truth: dict[str, int]) -> dict:
    """Per offer's list: distinct products, slots of the query's own product, slots
    repeating a product listed higher."""
    from prodfusion import Recommender

    rec = Recommender.load(folder)
    ids = list(rec.catalog.ids)
    got, _ = rec.similar_batch(ids, k=K)
    distinct, own, repeat = [], [], []
    for q, row in zip(ids, got, strict=True):
        prods = [truth[str(i)] for i in row if i is not None]
        distinct.append(len(set(prods)))
        own.append(sum(p == truth[q] for p in prods))
        repeat.append(len(prods) - len(set(prods)))
    return {"distinct": float(np.mean(distinct)), "own": float(np.mean(own)),
            "repeat": float(np.mean(repeat)), "own_any": float(np.mean(np.asarray(own) > 0)),
            "n": len(ids)}


def _query_cost(folder: Path, rounds: int = 7) -> list[str]:
    """Seconds to list every offer (``similar_batch``, k=15) with and without
    one_per_group on the same loaded model, alternating, median of ``rounds``."""
    from prodfusion import Recommender

    rec = Recommender.load(folder)
    ids = list(rec.catalog.ids)
    rec.similar_batch(ids[:8], k=K, one_per_group=False)  # the fuser built before timing
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for once in (False, True):
            t0 = time.perf_counter()
            rec.similar_batch(ids, k=K, one_per_group=once)
            times[once].append(time.perf_counter() - t0)
    off, on = (float(np.median(times[x])) for x in (False, True))
    return [f"Listing all {len(ids)} offers (`similar_batch`, k = {K}, the second model, median "
            f"of {rounds} alternating rounds): every offer {off:.3f} s, one per group "
            f"{on:.3f} s ({on / off:.2f}×: each list fetched 4k = {4 * K} long, then "
            "further where that holds fewer than k products)."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path, help="folder for the feed and models")
    ap.add_argument("--out", default=None, help="markdown report to write")
    args = ap.parse_args()
    truth = make_feed(args.work)
    lines = ["# Lists on a price-comparison offer feed", "",
             f"Command: `{command_line()}`  ", f"Machine: {machine()}  ",
             "Data: the made-up feed of `benchmarks/price_comparison.py` (640 offers of 160 "
             "products, 8 shops, 2 without EANs, 1 writing EANs without their leading zero; "
             "15,384 clicks of visitors comparing a product's offers, then a similar "
             "product's). Products counted by the generator's truth.", "",
             "| build | seconds | distinct products among the 15 | slots holding the query's "
             "own product | slots repeating a product listed higher | lists holding the "
             "query's own product |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    folders = {}
    for name, extra in MODELS.items():
        folder = args.work / ("model_" + ("plain" if not extra else "groups"))
        secs = _run(args.work, [*BUILD, *extra, "--out", str(folder)])
        folders[name] = folder
        s = _lists(folder, truth)
        lines.append(f"| {name} | {secs:.0f} | {s['distinct']:.2f} | {s['own']:.2f} | "
                     f"{s['repeat']:.2f} | {s['own_any']:.1%} |")
    lines += ["", *_query_cost(folders["--group-col ean --one-per-group"])]
    ev = args.work / "evaluate"
    _run(args.work, ["evaluate", "retrieval", str(folders["--group-col ean --one-per-group"]),
                     "--interactions", "clicks.csv", "--session-cols", "visitor",
                     "--item-col", "offer_id", "--time-col", "ts", "--out", str(ev)])
    r = json.loads((ev / "results.json").read_text())["retrieval"]
    rows = {x["variant"]: x for x in r["rows"] if x["slice"] == "all"}
    served = r["served"]
    ho = r["heldout"]["sessions"]
    lines += ["", "`prodfusion evaluate retrieval` of the second model (one product per group, "
              f"leave-last-out; {ho['n']} held-out cases, {ho['same_group_left_out']} more "
              "whose target is an offer of the query's own product left out; 95 % bootstrap "
              "intervals):", "", "| lists | HitRate@15 | nDCG@15 |", "| --- | ---: | ---: |"]
    singles = [v for v in rows if ":" in v and "+" not in v and "[" not in v]
    best = max(singles, key=lambda v: rows[v]["ndcg"]["value"])
    shown = [served, best, *[v for v in ("cooc+tfidf", "cooc+category", "popular+category",
                                         "popular", "tfidf") if v in rows]]
    for v in dict.fromkeys(shown):
        x = rows[v]
        tag = " (the model as served)" if v == served else \
            " (best single modality)" if v == best else ""
        lines.append(f"| `{v}`{tag} | {x['hit_rate']['value']:.3f} "
                     f"[{x['hit_rate']['ci_lo']:.3f}, {x['hit_rate']['ci_hi']:.3f}] | "
                     f"{x['ndcg']['value']:.3f} [{x['ndcg']['ci_lo']:.3f}, "
                     f"{x['ndcg']['ci_hi']:.3f}] |")
    lines.append("")
    for p in r["paired"]:
        if p["variant"] == served and p["slice"] == "all":
            d = p["ndcg"]
            lines.append(f"- served − `{p['comparator']}` ({p['kind']}): nDCG@15 "
                         f"{d['value']:+.4f} [{d['ci_lo']:+.4f}, {d['ci_hi']:+.4f}], "
                         f"{p['verdict']}")
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
