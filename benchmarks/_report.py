"""What the benchmark scripts share: the markdown report printed and, where asked, written
(its folder made), its command and machine lines, and variants timed in fresh processes."""

from __future__ import annotations

from pathlib import Path


def write_markdown(lines: list[str], out: str | Path | None = None) -> str:
    """``lines`` joined into a markdown text, printed, and written to ``out`` (UTF-8; its
    folder created) when given; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    return text


def case_ci(d, seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of the per-case values ``d`` (the
    cases resampled with replacement ``n`` times, seeded)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (n, len(d)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def command_line(argv: list[str] | None = None) -> str:
    """``python benchmarks/<this script> <its arguments>``: how the report was made."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    return f"python benchmarks/{Path(sys.argv[0]).name}" + "".join(f" {a}" for a in args)


def machine() -> str:
    """The machine in words for a report's head (no GPU is used by the benchmarks)."""
    import os
    import platform

    return f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, no GPU"


def run_children(script: str, variants: dict[str, list[str]], repeats: int) -> dict[str, list[dict]]:
    """Run ``python script --child ARGS…`` for every variant, ``repeats`` rounds, the variants
    alternating within a round (so a busy spell hits them alike); each child prints one JSON
    line last. Returns each variant's parsed lines in order; prints its seconds."""
    import json
    import subprocess
    import sys

    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, args in variants.items():
            out = subprocess.run([sys.executable, script, "--child", *args], check=True,
                                 capture_output=True, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"{name}: {runs[name][-1]['seconds']:.1f}s", file=sys.stderr)
    return runs
