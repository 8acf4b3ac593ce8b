"""Titles per second of a text encoder, on one core and on all cores, each in its own process.

A fresh process per measurement keeps thread pools honest: for "one core" the child is pinned
to one CPU (``os.sched_setaffinity``, Linux) and every thread pool it could use is set to one
thread before anything is imported (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``RAYON_NUM_THREADS`` for Hugging Face tokenizers, torch's
intra-op threads); for "all cores" nothing is restricted. Model loading and a warm-up batch
are not timed; then the titles are encoded batch by batch (no cache) until all are done or
a third of ``seconds`` has passed, three times; titles/s is the best of the three passes
(other jobs on a shared machine only ever slow a pass down).

Run directly: ``python -m prodfusion.evaluation.text_speed SPEC TITLES.txt --threads 1``
(prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

__all__ = ["measure_speed"]

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")


def measure_speed(spec: str, titles: Sequence[str], *, seconds: float = 5.0, batch_size: int = 256,
                  device: str = "cpu") -> dict:
    """``{"one_core": titles/s, "all_cores": titles/s, ...}`` for ``spec`` on ``titles``."""
    titles = list(dict.fromkeys(titles))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(t.replace("\n", " ") for t in titles))
        path = fh.name
    try:
        out = {"n_titles": len(titles), "batch_size": batch_size,
               "load_average": round(os.getloadavg()[0], 1)}
        for key, threads in (("one_core", 1), ("all_cores", 0)):
            env = dict(os.environ)
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            if threads:
                env.update({v: "1" for v in _THREAD_VARS})
                env["TOKENIZERS_PARALLELISM"] = "false"
            else:  # all cores: drop limits inherited from the calling process
                for v in (*_THREAD_VARS, "TOKENIZERS_PARALLELISM"):
                    env.pop(v, None)
            cmd = [sys.executable, "-m", "prodfusion.evaluation.text_speed", spec, path,
                   "--threads", str(threads), "--seconds", str(seconds),
                   "--batch-size", str(batch_size), "--device", device]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"speed measurement of {spec} failed: {proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            out[key] = r["titles_per_s"]
            out[f"{key}_titles"] = r["n"]
        return out
    finally:
        os.unlink(path)


def _child(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("titles")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--passes", type=int, default=3)
    a = ap.parse_args(argv)
    if a.threads and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(cpus[: a.threads]))
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from prodfusion.evaluation.text_encoders import embedder

    titles = [t for t in open(a.titles, encoding="utf-8").read().split("\n") if t.strip()]
    embed = embedder(a.spec, device=a.device, batch_size=a.batch_size)
    embed(titles[: min(32, len(titles))])  # warm-up: loading and first-call costs
    # Best of `passes` passes (a shared machine only ever slows a pass down), each over the
    # titles batch by batch until they are done or its share of `seconds` is spent.
    best = (0, 1.0)
    for _ in range(a.passes):
        n, t0 = 0, time.perf_counter()
        for start in range(0, len(titles), a.batch_size):
            embed(titles[start : start + a.batch_size])
            n += len(titles[start : start + a.batch_size])
            if time.perf_counter() - t0 >= a.seconds / a.passes:
                break
        dt = time.perf_counter() - t0
        if n / dt > best[0] / best[1]:
            best = (n, dt)
    n, dt = best
    print(json.dumps({"spec": a.spec, "n": n, "seconds": dt, "titles_per_s": n / dt}))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
