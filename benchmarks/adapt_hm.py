"""ConVIRT adaptation of the title encoder on the whole H&M catalog (frozen image side): time and memory.

Runs in subprocesses (so peak RSS is the child's own):

1. baseline — one inference pass of the base encoder over every title (what ``build --text
   st:…`` costs without a cache);
2. ``prodfusion adapt convirt`` on all 11,800 products with the documented default epochs,
   the image features coming from the embedding cache (computed once by any earlier build).

    python benchmarks/adapt_hm.py [--data ../shared/data] [--epochs N] [--out docs/benchmarks/adapt_hm.md]
                                  [--model-out DIR]

Writes a table (wall time, peak RSS, adaptation / encoding ratio, loss per epoch, load average
sampled every 10 s during the run) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _report import write_markdown

REPO = Path(__file__).resolve().parents[1]

BASELINE = """
import sys, time, polars as pl
from prodfusion.training._st import load_st_model, embed_pooled
titles = pl.read_csv(sys.argv[1], columns=["prod_name"])["prod_name"].to_list()
m = load_st_model("st:all-MiniLM-L6-v2"); m.max_seq_length = 24
t = time.perf_counter(); embed_pooled(m, titles, batch_size=256)
print(f"encoded {len(titles)} titles in {time.perf_counter() - t:.1f}s")
"""


class LoadSampler(threading.Thread):
    """1-minute load average every ``every`` seconds until stopped."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self._halt = every, [], threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(os.getloadavg()[0])
            self._halt.wait(self.every)

    def stop(self) -> list[float]:
        self._halt.set()
        self.join()
        return self.samples


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (GiB) of the children so far, and the output."""
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return dt, peak, p.stdout + p.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("PRODFUSION_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--epochs", type=int, default=None, help="default: the command's default")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "adapt_hm.md"))
    ap.add_argument("--model-out", default=None, help="keep the adapted encoder here (default: temp)")
    args = ap.parse_args(argv)
    hm = Path(args.data) / "hm"
    model_out = Path(args.model_out or tempfile.mkdtemp(prefix="pf-adapt-hm-")) / "hm_convirt"
    cmd = [sys.executable, "-m", "prodfusion.cli", "adapt", "convirt",
           "--catalog", str(hm / "articles.csv"), "--id-col", "article_id", "--title-col", "prod_name",
           "--category-col", "product_type_name", "--image-root", str(hm / "images"),
           "--image-template", "{product_id}.jpg", "--out", str(model_out)]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    sampler = LoadSampler()
    sampler.start()
    t0, _, log0 = run([sys.executable, "-c", BASELINE, str(hm / "articles.csv")])
    t1, rss, log1 = run(cmd)
    loads = sampler.stop()
    manifest = json.loads((model_out / "adaptation.json").read_text())
    hp = manifest["hyperparameters"]
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, no GPU, "
               f"shared with other jobs; 1-min load average during the run: mean {sum(loads) / len(loads):.1f}, "
               f"min {min(loads):.1f}, max {max(loads):.1f} ({len(loads)} samples)")
    shown = " ".join(c if " " not in c else repr(c) for c in cmd[2:])
    lines = [
        "# ConVIRT adaptation on the whole H&M catalog (frozen image side)",
        "",
        f"Command: `python benchmarks/adapt_hm.py --data {args.data}"
        f"{f' --epochs {args.epochs}' if args.epochs else ''}`, which runs `python -m {shown}`  ",
        f"Data: `{hm}` — {manifest['n_pairs']:,} (title, photo) pairs; image features "
        f"({manifest['image_encoder']}) from the embedding cache  ",
        f"Machine: {machine}; {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
        f"Settings: base {hp['base']}, {hp['epochs']} epoch(s), batch {hp['batch_size']}, AdamW lr {hp['lr']} "
        f"(projection heads {hp['head_lr']}), weight decay {hp['weight_decay']}, τ {manifest['temperature']}, "
        f"α {hp['alpha']}, projection {hp['projection_dim']}, max {hp['max_seq_length']} tokens.",
        "",
        "| step | wall time (s) | peak RSS (GiB) |",
        "| --- | ---: | ---: |",
        f"| baseline: encode every title once with the base model | {t0:.1f} | – |",
        f"| `prodfusion adapt convirt`, {hp['epochs']} epoch(s) | {t1:.1f} | {rss:.2f} |",
        "",
        f"Adaptation / one encoding pass: **{t1 / t0:.1f}×**; per epoch {t1 / hp['epochs']:.0f} s "
        f"({t1 / hp['epochs'] / t0:.1f}× an encoding pass). Target: under 30 min (1800 s) for the default "
        f"epochs: **{'met' if t1 < 1800 else 'not met'}** at this load.",
        f"Loss per epoch: {', '.join(f'{x:.4f}' for x in manifest['loss_per_epoch'])} "
        f"(chance level ln 32 = 3.466).",
        "Peak RSS is the maximum over the subprocesses (getrusage RUSAGE_CHILDREN). The two steps run "
        "one after the other, so a load that changes between them distorts the ratio.",
        "",
        "Output:",
        "```",
        (log0.strip()[-500:] + "\n" + "\n".join(
            line for line in log1.strip().splitlines() if "it/s" not in line and "s/it" not in line)[-2000:]),
        "```",
    ]
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
