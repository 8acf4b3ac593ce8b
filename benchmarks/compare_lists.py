"""Compare two exported lists files (``prodfusion export``) row by row.

    python benchmarks/compare_lists.py A.parquet B.parquet --json out.json

Reports: rows whose ids differ, of those how many hold the same set in another order and how
many a different set, the largest score gap between products exchanged at the list's end, and
the absolute score differences (max, mean, share of scores that differ at all). Used for the
1M local-vs-Ray comparison in docs/benchmarks/export.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def compare(a_path, b_path) -> dict:
    import pyarrow.parquet as pq

    a, b = pq.read_table(a_path), pq.read_table(b_path)
    if a.column("product_id").to_pylist() != b.column("product_id").to_pylist():
        raise SystemExit("the two files list different products (or in another order)")
    ia, ib = a.column("ids").to_pylist(), b.column("ids").to_pylist()
    sa, sb = a.column("scores").to_pylist(), b.column("scores").to_pylist()
    fa = np.array([x for r in sa for x in r], np.float32)
    fb = np.array([x for r in sb for x in r], np.float32)
    if fa.shape != fb.shape:
        raise SystemExit("the lists have different lengths")
    d = np.abs(fa - fb)
    diff = [i for i in range(len(ia)) if ia[i] != ib[i]]
    setdiff = [i for i in diff if set(ia[i]) != set(ib[i])]
    gaps = []
    for r in setdiff:  # score gap between the products only one of the lists holds
        only_a, only_b = set(ia[r]) - set(ib[r]), set(ib[r]) - set(ia[r])
        gaps += [abs(sa[r][ia[r].index(p)] - sb[r][ib[r].index(q)])
                 for p in only_a for q in only_b]
    return {"rows": len(ia), "rows_ids_differ": len(diff),
            "rows_same_set_other_order": len(diff) - len(setdiff),
            "rows_set_differs": len(setdiff), "first_rows_ids_differ": diff[:10],
            "max_abs_score_diff": float(d.max(initial=0)),
            "mean_abs_score_diff": float(d.mean()) if d.size else 0.0,
            "share_scores_differing": float((d > 0).mean()) if d.size else 0.0,
            "max_score_gap_of_exchanged_products": float(max(gaps, default=0.0))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    res = compare(args.a, args.b)
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
