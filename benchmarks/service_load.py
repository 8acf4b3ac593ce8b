"""Load benchmark of the HTTP service: requests/s and latency percentiles of ``/v1/similar``.

Builds a synthetic model (random vectors with the real encoders' dimensions: text 512, image
1280, clicks 512), starts ``prodfusion serve`` on it in a subprocess (uvicorn, one worker),
and drives it from a second process on the same machine with ``--concurrency`` keep-alive
connections for ``--duration`` seconds after a warm-up. Latency is measured by the client
(request sent → response read), so it includes queueing in the server.

    python benchmarks/service_load.py --products 20000 --duration 20
    python benchmarks/service_load.py --products 20000 --endpoint /healthz   # HTTP-stack ceiling
    python benchmarks/service_load.py --model /tmp/prodfusion-scale/1m/model  # a saved model
    python benchmarks/service_load.py --model M --lists lists.parquet --workers 2   # precomputed

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
import shutil
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


def synthetic_lists(model: Path, out: Path, k: int, seed: int = 0) -> Path:
    """A lists file for every product of ``model`` in the export layout, with ``k`` random
    other products per list (scores descending): the serving cost of a list does not depend
    on which products it names. Marked ``"synthetic": true`` in its metadata."""
    import numpy as np
    import pyarrow as pa

    from prodfusion.batch.lists import LISTS_FORMAT_VERSION, write_lists

    ids = model_ids(model)
    n = len(ids)
    st = json.loads((model / "manifest.json").read_text()).get("settings", {})
    rng = np.random.default_rng(seed)
    nbr = (np.arange(n)[:, None] + rng.integers(1, n, size=(n, k))) % n  # never the product
    scores = -np.sort(-rng.random((n, k), dtype=np.float32), axis=1)
    arr = pa.array(ids, pa.string())
    off = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    table = pa.table({"product_id": arr,
                      "ids": pa.ListArray.from_arrays(off, arr.take(pa.array(nbr.ravel()))),
                      "scores": pa.ListArray.from_arrays(off, pa.array(scores.ravel()))})
    meta = {"format_version": LISTS_FORMAT_VERSION, "k": k, "fusion": st.get("fusion"),
            "modalities": st.get("modalities"), "normalize": st.get("normalize", False),
            "model": {"path": str(model)}, "n_products": n, "start": 0, "stop": n,
            "synthetic": True}
    return write_lists(table, out, meta)


def start_server(model: Path, port: int, events: Path, log: Path, workers: int = 1,
                 cache_size: int | None = None, lists: Path | None = None,
                 lists_layout: str | None = None) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, "-m", "prodfusion.cli", "serve", str(model), "--port", str(port),
           "--events", str(events), "--reload-interval", "0", "--no-access-log",
           "--log-level", "warning", "--workers", str(workers)]
    if cache_size is not None:
        cmd += ["--cache-size", str(cache_size)]
    if lists is not None:
        cmd += ["--lists", str(lists)]
    if lists_layout:
        cmd += ["--lists-layout", lists_layout]
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


_WRK_LUA = r"""
local paths = {}
for line in io.lines(os.getenv("PF_PATHS")) do paths[#paths + 1] = line end
local i = 0
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(#paths)
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PFJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def run_wrk(url: str, paths: list[str], concurrency: int, duration: float,
            threads: int, work: Path) -> dict:
    """Closed-loop load with ``wrk`` (C, a fraction of a Python client's CPU per request).

    Paths are cycled from a random start per connection thread. Returns wrk's request count,
    errors and latency percentiles.
    """
    paths_file = work / "paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    script = work / "pf.lua"
    script.write_text(_WRK_LUA)
    env = {**os.environ, "PF_PATHS": str(paths_file)}
    threads = max(1, min(threads, concurrency))
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
           "--timeout", "30s", "-s", str(script), url]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    line = [x for x in res.stdout.splitlines() if x.startswith("PFJSON ")]
    if not line:
        raise SystemExit(f"wrk printed no summary:\n{res.stdout}\n{res.stderr}")
    return json.loads(line[-1][len("PFJSON "):])


def server_cache_counts(url: str) -> dict:
    """Result-cache hits and misses summed from the server's /metrics."""
    import httpx

    counts = {"hit": 0.0, "miss": 0.0}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("prodfusion_similar_results_total{"):
            for k in counts:
                if f'result="{k}"' in line:
                    counts[k] += float(line.rsplit(" ", 1)[1])
    return counts


def server_answer_counts(url: str) -> dict:
    """Which path answered /v1/similar (lists | cache | live), summed from /metrics."""
    import httpx

    counts: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("prodfusion_similar_answers_total{"):
            path = line.split('path="', 1)[1].split('"', 1)[0]
            counts[path] = counts.get(path, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def zipf_ids(all_ids: list[str], count: int, s: float, seed: int = 0) -> list[str]:
    """``count`` ids drawn with P(rank r) ∝ 1/r^s over a random popularity order of ``all_ids``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(all_ids))
    w = 1.0 / np.arange(1, len(all_ids) + 1, dtype=np.float64) ** s
    ranks = rng.choice(len(all_ids), size=count, p=w / w.sum())
    return [all_ids[i] for i in order[ranks]]


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
    ap.add_argument("--client", default="wrk" if shutil.which("wrk") else "httpx",
                    choices=["wrk", "httpx"], help="load generator (default wrk when installed)")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="server processes")
    ap.add_argument("--cache-size", type=int, default=None,
                    help="server result cache per worker (default: the server's, 20000)")
    ap.add_argument("--ids", default="uniform", choices=["uniform", "zipf"],
                    help="which products are asked for: uniformly at random (no two requests "
                    "alike, the worst case for the cache) or Zipf-popular (like real traffic)")
    ap.add_argument("--zipf-s", type=float, default=1.0)
    ap.add_argument("--paths", type=int, default=100_000, help="distinct request paths drawn")
    ap.add_argument("--lists", default=None,
                    help="serve precomputed lists from this file (prodfusion export), live "
                    "search for what it lacks")
    ap.add_argument("--synthetic-lists", action="store_true",
                    help="write a lists file for every product of the model (k random products "
                    "each) and serve it; for measuring the serving path only")
    ap.add_argument("--lists-layout", default=None, choices=["arrow", "sqlite", "memory"])
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
    lists = Path(args.lists) if args.lists else None
    lists_s = None
    if args.synthetic_lists:
        t0 = time.perf_counter()
        lists = synthetic_lists(model, work / "lists.parquet", args.k)
        lists_s = time.perf_counter() - t0
    port = free_port()
    t0 = time.perf_counter()
    server = start_server(model, port, work / "events.sqlite3", work / "server.log",
                          args.workers, args.cache_size, lists, args.lists_layout)
    start_s = time.perf_counter() - t0
    try:
        import httpx

        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        n = n or ready["variants"]["default"]["products"]
        rnd = random.Random(0)
        if args.endpoint == "/healthz":
            paths = ["/healthz"]
        else:
            all_ids = model_ids(model) if args.model else [f"{i:07d}" for i in range(n)]
            ids = (zipf_ids(all_ids, args.paths, args.zipf_s) if args.ids == "zipf"
                   else [rnd.choice(all_ids) for _ in range(args.paths)])
            paths = [f"/v1/similar/{i}?k={args.k}&visitor=v{j % 97}" for j, i in enumerate(ids)]
        url = f"http://127.0.0.1:{port}"
        if args.client == "wrk" and args.warmup > 0:
            run_wrk(url, paths, args.concurrency, args.warmup, args.wrk_threads, work)
        cache_before = server_cache_counts(url)
        answers_before = server_answer_counts(url)
        load_before = os.getloadavg()
        import threading

        stop, load_during = threading.Event(), []
        sampler = threading.Thread(target=sample_loadavg, args=(stop, load_during), daemon=True)
        sampler.start()
        if args.client == "wrk":
            w = run_wrk(url, paths, args.concurrency, args.duration, args.wrk_threads, work)
            elapsed = w["duration_us"] / 1e6
            errors = w["connect"] + w["read"] + w["write"] + w["timeout"] + w["status"]
            status = {200: w["requests"] - errors, "errors": errors}
            pct = {q: w[f"p{q}_us"] / 1e6 for q in (50, 90, 99)}
            lat_max = w["max_us"] / 1e6
            n_req = w["requests"]
        else:
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            gen = ctx.Process(target=_generator, args=(url, paths, args.concurrency,
                                                       args.warmup, args.duration, q))
            gen.start()
            lat, status, elapsed = q.get()
            gen.join()
            pct = {q: percentile(lat, q) for q in (50, 90, 99)}
            lat_max = max(lat) if lat else float("nan")
            n_req = len(lat)
        cache_after = server_cache_counts(url)
        answers_after = server_answer_counts(url)
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
    hits = cache_after["hit"] - cache_before["hit"]
    misses = cache_after["miss"] - cache_before["miss"]
    result = {
        "endpoint": args.endpoint,
        "products": n,
        "dims": args.dims,
        "search": model_search(model),
        "k": args.k,
        "client": args.client,
        "workers": args.workers,
        "cache_size": args.cache_size,
        "ids": args.endpoint == "/v1/similar" and (
            f"zipf s={args.zipf_s}" if args.ids == "zipf" else "uniform"),
        "distinct_paths": len(set(paths)),
        "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "lists": None if lists is None else {
            "file": str(lists), "synthetic": bool(args.synthetic_lists),
            "layout": args.lists_layout or "arrow",
            "write_s": None if lists_s is None else round(lists_s, 1)},
        "answered_by": {p: answers_after.get(p, 0.0) - answers_before.get(p, 0.0)
                        for p in sorted(set(answers_after) | set(answers_before))},
        "concurrency": args.concurrency,
        "duration_s": round(elapsed, 2),
        "requests": n_req,
        "status": {str(k): v for k, v in sorted(status.items(), key=str)},
        "requests_per_s": round(ok / elapsed, 1),
        "p50_ms": round(1000 * pct[50], 2),
        "p90_ms": round(1000 * pct[90], 2),
        "p99_ms": round(1000 * pct[99], 2),
        "max_ms": round(1000 * lat_max, 2),
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
