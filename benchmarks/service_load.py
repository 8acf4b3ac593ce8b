"""Load benchmark of the HTTP service: requests/s and latency percentiles of ``/v1/similar``.

Builds a synthetic model (random vectors with the real encoders' dimensions: text 512, image
1280, clicks 512), starts ``prodfusion serve`` on it in a subprocess (uvicorn, one worker),
and drives it from a second process on the same machine with ``--concurrency`` keep-alive
connections for ``--duration`` seconds after a warm-up. Latency is measured by the client
(request sent → response read), so it includes queueing in the server.

    python benchmarks/service_load.py --products 20000 --duration 20
    python benchmarks/service_load.py --products 20000 --endpoint /healthz   # HTTP-stack ceiling
    python benchmarks/service_load.py --model /tmp/prodfusion-scale/1m/model  # a saved model

With ``--model`` the request ids are drawn from that model's catalog. The 1-minute load average
is sampled once a second during the measured window and reported (min/mean/max).

Prints one JSON object (also appended to ``--out`` as a JSON line when given). Nothing here is
asserted in tests: the figures go to docs/benchmarks/service.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_model(folder: Path, n: int, dims: list[int], seed: int = 0) -> Path:
    import numpy as np
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings
    from prodfusion.recommender import Recommender

    rng = np.random.default_rng(seed)
    cat = Catalog(pl.DataFrame({
        "product_id": [f"{i:07d}" for i in range(n)],
        "title": [f"synthetic product {i}" for i in range(n)],
        "category": [f"c{i % 50}" for i in range(n)],
    }), source="<synthetic>")
    emb = {}
    for m, d in zip(("text", "image", "clicks"), dims, strict=False):
        emb[m] = Embeddings(rng.standard_normal((n, d), dtype=np.float32), np.ones(n, bool),
                            f"synthetic-{m}-{d}")
    # late_k=2 keeps the (unused here) k-means of late fusion cheap at build time
    rec = Recommender.from_embeddings(cat, emb, fusion="intermediate", late_k=2, seed=seed)
    return rec.save(folder / "model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, events: Path, log: Path) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, "-m", "prodfusion.cli", "serve", str(model), "--port", str(port),
           "--events", str(events), "--reload-interval", "0", "--no-access-log",
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    end = time.monotonic() + 600
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready in 600 s")


def _generator(url: str, paths: list[str], concurrency: int, warmup: float, duration: float,
               queue) -> None:
    """Runs in its own process: closed-loop load, returns latencies of the measured window."""
    import httpx

    async def run():
        lat: list[float] = []
        status: dict[int, int] = {}
        t_start = time.perf_counter()
        t_measure = t_start + warmup
        t_end = t_measure + duration
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
            async def worker(seed: int):
                rnd = random.Random(seed)
                while True:
                    t0 = time.perf_counter()
                    if t0 >= t_end:
                        return
                    try:
                        r = await client.get(rnd.choice(paths))
                        code = r.status_code
                    except httpx.HTTPError:
                        code = -1
                    t1 = time.perf_counter()
                    if t0 >= t_measure:
                        lat.append(t1 - t0)
                        status[code] = status.get(code, 0) + 1
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return lat, status, time.perf_counter() - t_measure

    queue.put(asyncio.run(run()))


def model_ids(model: Path) -> list[str]:
    """Product ids of a saved model folder (read from its catalog file, as the manifest names it)."""
    import polars as pl

    manifest = json.loads((model / "manifest.json").read_text())
    name = manifest.get("files", {}).get("catalog", "catalog.parquet")
    return pl.read_parquet(model / name, columns=["product_id"])["product_id"].to_list()


def model_search(model: Path) -> str:
    """Describe the default variant's search path from the manifest (fusion, modalities, index)."""
    manifest = json.loads((model / "manifest.json").read_text())
    st = manifest.get("settings", {})
    fusion, mods = st.get("fusion", "?"), st.get("modalities", [])
    key = f"{fusion}/{'+'.join(mods)}"
    idx = manifest.get("index", {}).get(key) if isinstance(manifest.get("index"), dict) else None
    backend = idx.get("backend", "?") if idx else "exact"
    return f"{fusion} ({'+'.join(mods)}), index={backend}"


def sample_loadavg(stop, out: list, every: float = 1.0) -> None:
    """Collect the 1-minute load average every ``every`` seconds until ``stop`` is set."""
    while not stop.wait(every):
        out.append(os.getloadavg()[0])


def percentile(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        import psutil

        mem = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem, "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=20_000)
    ap.add_argument("--dims", default="512,1280,512", help="text,image,clicks dimensions")
    ap.add_argument("--model", default=None, help="reuse this model folder instead of building")
    ap.add_argument("--endpoint", default="/v1/similar", choices=["/v1/similar", "/healthz"])
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--out", default=None, help="append the result as a JSON line here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pf-load-"))
    t0 = time.perf_counter()
    if args.model:
        model = Path(args.model)
        n = None
    else:
        model = build_model(work, args.products, [int(d) for d in args.dims.split(",")])
        n = args.products
    build_s = time.perf_counter() - t0
    port = free_port()
    t0 = time.perf_counter()
    server = start_server(model, port, work / "events.sqlite3", work / "server.log")
    start_s = time.perf_counter() - t0
    try:
        import httpx

        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        n = n or ready["variants"]["default"]["products"]
        rnd = random.Random(0)
        if args.endpoint == "/healthz":
            paths = ["/healthz"]
        else:
            all_ids = model_ids(model) if args.model else None
            ids = ([rnd.choice(all_ids) for _ in range(5000)] if all_ids is not None
                   else [f"{rnd.randrange(n):07d}" for _ in range(5000)])
            paths = [f"/v1/similar/{i}?k={args.k}&visitor=v{j % 97}" for j, i in enumerate(ids)]
        load_before = os.getloadavg()
        import threading

        stop, load_during = threading.Event(), []
        sampler = threading.Thread(target=sample_loadavg, args=(stop, load_during), daemon=True)
        sampler.start()
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        gen = ctx.Process(target=_generator, args=(f"http://127.0.0.1:{port}", paths,
                                                   args.concurrency, args.warmup, args.duration, q))
        gen.start()
        lat, status, elapsed = q.get()
        gen.join()
        load_after = os.getloadavg()
        stop.set()
        sampler.join()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    ok = status.get(200, 0)
    result = {
        "endpoint": args.endpoint,
        "products": n,
        "dims": args.dims,
        "search": model_search(model),
        "k": args.k,
        "concurrency": args.concurrency,
        "duration_s": round(elapsed, 2),
        "requests": len(lat),
        "status": {str(k): v for k, v in sorted(status.items())},
        "requests_per_s": round(ok / elapsed, 1),
        "p50_ms": round(1000 * percentile(lat, 50), 2),
        "p90_ms": round(1000 * percentile(lat, 90), 2),
        "p99_ms": round(1000 * percentile(lat, 99), 2),
        "max_ms": round(1000 * max(lat), 2) if lat else None,
        "model_build_s": round(build_s, 1),
        "server_start_s": round(start_s, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "loadavg1_during": {"min": round(min(load_during), 2), "mean": round(sum(load_during)
                            / len(load_during), 2), "max": round(max(load_during), 2),
                            "samples": len(load_during)} if load_during else None,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
