"""Cost of the deterministic cut of ``topk_rows`` (eighth session): the kernel keeps the lowest
rows among the products tied at the k-th place, where ``numpy.argpartition`` alone kept an
arbitrary few. Baseline in the same run: the argpartition-only kernel it replaced.

Usage::

    python benchmarks/topk_ties.py --out docs/benchmarks/topk_ties.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _report import write_markdown

from prodfusion.index.topk import topk_rows


def argpartition_only(scores: np.ndarray, k: int):
    """The kernel before the fix (ties at the cut: whatever argpartition kept)."""
    q, n = scores.shape
    labels = np.broadcast_to(np.arange(n, dtype=np.int64), (q, n))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    ps = np.take_along_axis(scores, part, axis=1)
    pl_ = np.take_along_axis(labels, part, axis=1)
    order = np.lexsort((pl_, -ps), axis=1)
    return np.take_along_axis(pl_, order, axis=1), np.take_along_axis(ps, order, axis=1)


def timed(f, s, k, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(s, k)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/topk_ties.md"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n in (100_000, 1_000_000):
        cases = {
            "continuous (cosines)": rng.random((64, n), dtype=np.float32),
            "counts 0–3 (every row tied at the cut)": rng.integers(0, 4, (64, n)).astype(np.float32),
            "sparse counts (≤ 20 nonzero, rest -inf)": np.where(
                rng.random((64, n)) < 20 / n, rng.integers(1, 3, (64, n)), -np.inf
            ).astype(np.float32),
        }
        for name, s in cases.items():
            base = timed(argpartition_only, s, 15, args.repeats)
            new = timed(topk_rows, s, 15, args.repeats)
            rows.append((n, name, base * 1e3, new * 1e3, new / base))
    lines = [
        "# Top-k kernel: cost of the deterministic cut",
        "",
        f"`python {' '.join(sys.argv)}` on {platform.machine()} {platform.system()}, "
        f"{__import__('os').cpu_count()} CPUs; 64 queries × n candidates, k = 15, median of "
        f"{args.repeats} runs; baseline: the argpartition-only kernel it replaced, same run.",
        "",
        "| n | scores | argpartition only (ms) | topk_rows (ms) | ratio |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {n:,} | {name} | {b:.1f} | {w:.1f} | {r:.2f}× |" for n, name, b, w, r in rows]
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
