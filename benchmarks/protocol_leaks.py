"""The two leaks of the old leave-last-out protocol, counted on the shared data (issue 10,
twenty-fifth session; found by an audit on hand-made data, docs/results/README.md).

Under the old rule (``protocol="leave-last-out-v24"``) a held-out session transition
``q → t`` reached training

* through its own session's prefix when the visitor had viewed ``t`` earlier (a revisit):
  counted on DIGINETICA's viewed items;
* through a co-interaction pair equal to it: counted on H&M's baskets against the untimed
  ``copurchase.csv``.

For each, the `cooc` reference (training co-occurrence counts, ties at their mean rank) is
scored on the cases the leak reaches and on the others.

    python benchmarks/diginetica_catalogs.py viewed --data ../shared/data/diginetica
    python benchmarks/protocol_leaks.py [--data ../shared/data] [--out docs/results/protocol_leaks.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
K = 15


def _metrics(row: np.ndarray, q: int, t: int) -> tuple[float, float]:
    """HitRate@K and nDCG@K of target ``t`` in the co-occurrence row of ``q`` (ties at their
    mean rank; products never co-occurring are not ranked)."""
    s = row.astype(float)
    s[q] = -np.inf
    s[s <= 0] = -np.inf
    if not np.isfinite(s[t]):
        return 0.0, 0.0
    ahead, ties = int((s > s[t]).sum()), int((s == s[t]).sum()) - 1
    r = np.arange(ahead + 1, ahead + ties + 2)
    return float(np.mean(r <= K)), float(np.mean(np.where(r <= K, 1 / np.log2(r + 1), 0)))


def _scores(C, ho) -> np.ndarray:
    return np.array([_metrics(C[q].toarray().ravel(), q, t)
                     for q, t in zip(ho.query_rows, ho.target_rows, strict=True)])


def revisits(data: Path) -> list[str]:
    from prodfusion.data import Catalog, clean_sessions, read_interactions
    from prodfusion.evaluation.baselines import cooc_matrix
    from prodfusion.evaluation.split import split_interactions

    c = pl.read_csv(REPO / "runs/digi_catalog.csv", infer_schema=False)
    cat = Catalog(c.select("product_id", "title", "category"))
    raw = read_interactions(data / "diginetica/train-item-views.sample.csv",
                            session_cols=["session_id"], item_col="item_id",
                            time_col=["eventdate", "timeframe"], sep=";")
    out, rv = [], None
    for protocol in ("leave-last-out-v24", "leave-last-out"):
        sp = split_interactions(cat, clean_sessions(raw, cat), None, test_fraction=0.2, seed=0,
                                protocol=protocol)
        ho = sp.heldout["sessions"]
        if rv is None:  # the old rule's prefixes still hold a revisited target
            prefix = {"s:" + k[2:]: set(s) for k, s in zip(sp.train.keys, sp.train, strict=True)
                      if k.startswith("h:")}
            rv = np.array([cat.ids[t] in prefix.get(g, set())
                           for g, t in zip(ho.groups, ho.target_rows, strict=True)])
        m = _scores(cooc_matrix(sp.train, cat).tocsr(), ho)
        out.append(f"| DIGINETICA views, `{protocol}` | {len(ho):,} | {int(rv.sum())} revisits "
                   f"({rv.mean():.0%}) | {m[:, 0].mean():.3f} / {m[:, 1].mean():.3f} | "
                   f"{m[rv, 0].mean():.3f} | {m[~rv, 0].mean():.3f} |")
    return out


def pairs_leak(data: Path) -> list[str]:
    from prodfusion.data import Catalog, clean_sessions, read_interactions, read_pairs
    from prodfusion.evaluation.baselines import cooc_matrix
    from prodfusion.evaluation.protocol import pair_key
    from prodfusion.evaluation.split import split_interactions

    h = data / "hm"
    raw = read_interactions(h / "transactions.csv", session_cols=["customer_id", "t_dat"],
                            item_col="article_id", time_col=["t_dat"])
    a = pl.read_csv(h / "articles.csv", infer_schema=False).select(
        pl.col("article_id").alias("product_id"), pl.col("prod_name").alias("title"))
    cat = Catalog(a)
    sessions = clean_sessions(raw, cat, check_unknown=False)
    pairs = clean_sessions(read_pairs(h / "copurchase.csv", a_col="article_id",
                                      b_col="partner_article_id"), cat, check_unknown=False)
    pf = pl.read_csv(h / "copurchase.csv", infer_schema=False)
    in_file = {pair_key(x, y) for x, y in zip(pf["article_id"], pf["partner_article_id"],
                                             strict=True)}
    out, seen = [], None
    for protocol in ("leave-last-out-v24", "leave-last-out"):
        sp = split_interactions(cat, sessions, pairs, test_fraction=0.2, seed=0,
                                protocol=protocol)
        ho = sp.heldout["sessions"]
        if seen is None:  # the cases whose exact pair the pairs file holds
            seen = np.array([pair_key(cat.ids[q], cat.ids[t]) in in_file
                             for q, t in zip(ho.query_rows, ho.target_rows, strict=True)])
        m = _scores(cooc_matrix(sp.train, cat).tocsr(), ho)
        out.append(f"| H&M baskets + `copurchase.csv`, `{protocol}` | {len(ho):,} | "
                   f"{int(seen.sum())} with their pair in the file ({seen.mean():.0%}) | "
                   f"{m[:, 0].mean():.3f} / {m[:, 1].mean():.3f} | {m[seen, 0].mean():.3f} | "
                   f"{m[~seen, 0].mean():.3f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared/data"))
    ap.add_argument("--out", default=str(REPO / "docs/results/protocol_leaks.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = revisits(Path(args.data)) + pairs_leak(Path(args.data))
    text = "\n".join([
        "# The two leaks of the old leave-last-out protocol, counted",
        "",
        f"Command: `python benchmarks/protocol_leaks.py` ({{secs}} s; DIGINETICA's viewed "
        "catalog from `python benchmarks/diginetica_catalogs.py viewed`). Machine: "
        f"{platform.machine()}, {platform.system()}, 2-core VM. Test fraction 0.2, seed 0. "
        "`cooc`: training co-occurrence counts, ties at their mean rank, K = 15. The leaked "
        "cases are those of the old rule's split (the held-out sessions are the same under "
        "both rules).",
        "",
        "| data, protocol | test cases | cases the leak reaches | `cooc` HitRate / nDCG | "
        "HitRate on those | HitRate on the others |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]).replace("{secs}", f"{time.perf_counter() - t0:.0f}") + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
