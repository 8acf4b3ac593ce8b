"""How `prodfusion tune` grows with the catalog (issue 10, thirteenth session): synthetic shops
of several sizes, each built with ``--tune off`` (the baseline of the same run) and then tuned
with ``prodfusion tune --dry-run`` (the default options), in subprocesses under
``/usr/bin/time -v`` (wall time and peak RSS). A power law fitted to the sizes measured gives
the exponent, and an *extrapolation* to 1M products, labelled as such. Writes
``docs/benchmarks/tune_scale.md`` and ``tune_scale.png``.

    python benchmarks/tune_scale.py [--products 30000,100000,300000] [--sessions-per-product 1]
                                    [--extrapolate 1000000] [--out docs/benchmarks/tune_scale.md]
                                    [--tune-args "--repeats 1"] [--default-at 30000]

``--tune-args`` adds options to every tune (the table then measures that tune, not the
defaults); ``--default-at N`` also tunes the N-product shop with the default options, so the
report shows, from the same run, how the two compare.

The shops are :func:`prodfusion.data.make_synthetic` (``similar_rate=0.5``, as
``benchmarks/build_tuning.py``; one session per product by default, about 5.7 clicks each),
with almost no photos drawn (``missing_image_rate=0.999``: the builds use ``--image none``
anyway). The build encodes the titles cold (no embedding cache), so its time includes the
text encoder; the tuning retrains Prod2Vec three times on the fitting part, counts the
co-occurrences of each split, and scores 2,000 validation queries per split.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed_run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (GiB) and stdout of ``cmd`` under ``/usr/bin/time -v`` (also
    ``build_tuning.py``'s); its stderr's end in the error if it fails."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return wall, rss / 2**20, p.stdout


def measure(n_products: int, n_sessions: int, tmp: Path, tune_args: list[str],
            default_too: bool = False) -> dict:
    """Generate one shop, build it with ``--tune off`` and tune it (dry run)."""
    from prodfusion.data import make_synthetic

    t = time.perf_counter()
    paths = make_synthetic(tmp / "data", n_products=n_products, n_sessions=n_sessions, seed=0,
                           similar_rate=0.5, missing_image_rate=0.999)
    gen = time.perf_counter() - t
    with open(paths.interactions) as fh:
        clicks = sum(1 for _ in fh) - 1
    inter = ["--interactions", str(paths.interactions), "--session-cols", "session_id",
             "--item-col", "product_id", "--time-col", "timestamp", "--workers", "1"]
    model = tmp / "model"
    _log(f"{n_products:,} products, {clicks:,} clicks (generated in {gen:.0f} s); building")
    build = timed_run([sys.executable, "-m", "prodfusion.cli", "build", "--catalog",
                  str(paths.catalog), *inter, "--image", "none", "--cache-dir", "none",
                  "--tune", "off", "--out", str(model)])
    _log(f"built in {build[0]:.0f} s ({build[1]:.2f} GiB); tuning")
    tune = timed_run([sys.executable, "-m", "prodfusion.cli", "tune", str(model), *inter,
                 "--dry-run", *tune_args])
    _log(f"tuned in {tune[0]:.0f} s ({tune[1]:.2f} GiB)")
    default = None
    if default_too:
        default = timed_run([sys.executable, "-m", "prodfusion.cli", "tune", str(model),
                             *inter, "--dry-run"])
        _log(f"tuned with the default options in {default[0]:.0f} s ({default[1]:.2f} GiB)")
    line = next((ln.strip() for ln in tune[2].splitlines() if ln.startswith("tuned ")), "")
    cases = re.search(r"on ([\d,]+) cases over (\d+) split", tune[2])
    configs = re.search(r"\((\d+) configurations", tune[2])
    return {"products": n_products, "sessions": n_sessions, "clicks": clicks, "gen_s": gen,
            "build_s": build[0], "build_gib": build[1], "tune_s": tune[0],
            "tune_gib": tune[1], "choice": line.split("): ", 1)[-1],
            "cases": cases.group(1) if cases else "?",
            "configs": configs.group(1) if configs else "?",
            "default_s": default[0] if default else None,
            "default_gib": default[1] if default else None}


def fit(xs, ys) -> tuple[float, float]:
    """``(exponent, log-intercept)`` of ``y = exp(b) * x ** a`` by least squares on logs."""
    a, b = np.polyfit(np.log(xs), np.log(ys), 1)
    return float(a), float(b)


def plot(rows: list[dict], target: int, path: Path, tune_args: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([r["products"] for r in rows], float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    tune_label = " ".join(["tune", *tune_args])
    grid = np.geomspace(x.min(), target, 50)
    for key, label, ax in (("build_s", "build --tune off", ax1), ("tune_s", tune_label, ax1),
                           ("build_gib", "build --tune off", ax2), ("tune_gib", tune_label, ax2)):
        y = np.array([r[key] for r in rows], float)
        a, b = fit(x, y)
        line, = ax.plot(x, y, "o-", label=f"{label} (∝ n^{a:.2f})")
        ax.plot(grid, np.exp(b) * grid ** a, ":", color=line.get_color())
    ax1.set(xscale="log", yscale="log", xlabel="products", ylabel="wall time (s)",
            title="time (dotted: fitted power law"
                  + (", extrapolated)" if target > x.max() else ")"))
    ax2.set(xscale="log", yscale="log", xlabel="products", ylabel="peak RSS (GiB)",
            title="memory")
    for ax in (ax1, ax2):
        ax.axvline(target, color="grey", lw=0.5)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(rows: list[dict], args, seconds: float) -> str:
    target = args.extrapolate
    x = [r["products"] for r in rows]
    fits = {k: fit(x, [r[k] for r in rows]) for k in ("build_s", "tune_s", "build_gib",
                                                      "tune_gib")}
    pred = {k: float(np.exp(b) * target ** a) for k, (a, b) in fits.items()}
    lines = [
        "# How `prodfusion tune` grows with the catalog",
        "",
        f"Command: `python benchmarks/tune_scale.py --products {args.products} "
        f"--sessions-per-product {args.sessions_per_product:g}"
        + (f" --tune-args \"{args.tune_args}\"" if args.tune_args else "")
        + (f" --default-at {args.default_at}" if args.default_at else "")
        + f"` ({seconds / 60:.0f} min).  ",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, 24 GiB, no GPU; shared with "
        "other jobs unless said otherwise.  ",
        "Data: `make_synthetic(n_products=N, n_sessions=N × "
        f"{args.sessions_per_product:g}, seed=0, similar_rate=0.5, missing_image_rate=0.999)`; "
        "`prodfusion build --image none --cache-dir none --tune off --workers 1` (titles "
        "encoded cold by the default text encoder, Prod2Vec on one thread, lexical and cooc "
        "modalities), then `prodfusion tune MODEL --interactions sessions.csv --session-cols "
        "session_id --item-col product_id --time-col timestamp --workers 1 --dry-run"
        + (f" {args.tune_args}` (the default options but `{args.tune_args}`)"
           if args.tune_args else "` (the default options)")
        + ". One run per size, no repeats.",
        "",
        "| products | clicks | build `--tune off` | its peak RSS | tune | its peak RSS | tune / "
        "build | validation cases | configurations |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['products']:,} | {r['clicks']:,} | {r['build_s']:.0f} s | "
            f"{r['build_gib']:.2f} GiB | {r['tune_s']:.0f} s | {r['tune_gib']:.2f} GiB | "
            f"**{r['tune_s'] / r['build_s']:.1f}×** | {r['cases']} | {r['configs']} |")
    extrapolated = target > max(x)
    if extrapolated:
        lines.append(
            f"| {target:,} (*extrapolated*) | | ≈ {pred['build_s']:,.0f} s | "
            f"≈ {pred['build_gib']:.1f} GiB | ≈ {pred['tune_s']:,.0f} s | "
            f"≈ {pred['tune_gib']:.1f} GiB | {pred['tune_s'] / pred['build_s']:.1f}× | | |")
    lines += [
        "",
        f"Fitted power laws over the {len(rows)} sizes measured (least squares on logs): tune "
        f"time ∝ n^{fits['tune_s'][0]:.2f}, build time ∝ n^{fits['build_s'][0]:.2f}, tune peak "
        f"RSS ∝ n^{fits['tune_gib'][0]:.2f}."
        + (f" The {target:,}-product row is an extrapolation "
           "of these fits, **not a measurement**: it assumes the same clicks per product and "
           "that nothing changes regime between the largest size measured and it."
           if extrapolated else " Every row is a measurement; nothing is extrapolated."),
        "",
        f"![wall time and peak RSS by catalog size]({Path(args.out).with_suffix('.png').name})",
        "",
        "Choices of the tuner (dry run, not written):",
        "",
    ]
    lines += [f"- {r['products']:,}: {r['choice']}" for r in rows]
    for r in rows:
        if r.get("default_s"):
            lines += ["", f"At {r['products']:,} products the same model was also tuned with the "
                      f"default options (no `{args.tune_args}`): {r['default_s']:.0f} s, "
                      f"{r['default_gib']:.2f} GiB peak RSS — "
                      f"{r['default_s'] / r['tune_s']:.2f}× the time of the tune above."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", default="30000,100000,300000",
                    help="catalog sizes, comma-separated")
    ap.add_argument("--sessions-per-product", type=float, default=1.0)
    ap.add_argument("--extrapolate", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "tune_scale.md"))
    ap.add_argument("--tune-args", default="",
                    help='options added to every tune, e.g. "--repeats 1"')
    ap.add_argument("--default-at", type=int, default=0,
                    help="also tune this size (one of --products) with the default options")
    args = ap.parse_args()
    tune_args = shlex.split(args.tune_args)
    sizes = [int(s) for s in args.products.split(",")]
    if len(sizes) < 2:
        ap.error("--products needs two sizes or more to fit a power law")
    t0 = time.perf_counter()
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(n, max(1, int(n * args.sessions_per_product)), Path(tmp),
                                tune_args, default_too=n == args.default_at))
        _log(str(rows[-1]))
    out = Path(args.out)
    plot(rows, args.extrapolate, out.with_suffix(".png"), tune_args)
    text = report(rows, args, time.perf_counter() - t0)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
