"""``prodfusion export``: every product's top-k list into one Parquet file.

Registered by :mod:`prodfusion.cli` through :func:`add_export_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_export_parser", "add_engine_options", "executor_from_args"]


def _csv_list(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine local|ray`` and the Ray options (shared by ``build`` and ``export``)."""
    g = p.add_argument_group("engine (where the parallel work runs)")
    g.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: this process (default); ray: Ray workers "
                        "(pip install 'prodfusion[ray]')")
    g.add_argument("--address", default=None,
                   help="Ray cluster: 'auto' (running cluster) or ray://HOST:10001; default: "
                        "start a local Ray on this machine")
    g.add_argument("--ray-workers", type=int, default=None,
                   help="Ray actors (default: the cluster's CPUs / --num-cpus-per-worker)")
    g.add_argument("--num-cpus-per-worker", type=float, default=1.0,
                   help="CPUs reserved per Ray actor (fractions allowed, e.g. 0.5)")
    g.add_argument("--num-gpus-per-worker", type=float, default=0.0,
                   help="GPUs per Ray actor (e.g. 0.25: four actors share one GPU)")


def executor_from_args(args):
    from prodfusion.engine import make_executor

    if args.engine == "local":
        return make_executor("local")
    return make_executor("ray", address=args.address, workers=args.ray_workers,
                         num_cpus_per_worker=args.num_cpus_per_worker,
                         num_gpus_per_worker=args.num_gpus_per_worker)


def cmd_export(args: argparse.Namespace) -> int:
    from prodfusion.batch.export import export_lists

    executor = executor_from_args(args)
    try:
        rep = export_lists(
            args.model, args.out, k=args.k, fusion=args.fusion, modalities=args.modalities,
            batch_size=args.batch_size, start=args.start, stop=args.stop, executor=executor,
            resume=not args.restart, progress=False if args.quiet else None)
    finally:
        executor.close()
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        m = rep["meta"]
        print(f"wrote {rep['products']:,} lists (k={m['k']}, {m['fusion']} over "
              f"{'+'.join(m['modalities'])}) to {rep['out']} in {rep['seconds']:.1f}s on "
              f"{rep['engine']} ({rep['batches']} batches computed, {rep['reused']} reused)",
              file=sys.stderr)
    return 0


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``export`` to ``subparsers``."""
    e = subparsers.add_parser(
        "export", help="write every product's top-k list to a Parquet file (batch, resumable)",
        description="Compute the k most similar products of every product of a model and write "
        "them to one Parquet file (product_id, ids, scores), atomically. Interrupted exports "
        "resume from their finished batches. Serve the file with `prodfusion serve --lists`.")
    e.add_argument("model", help="model folder written by `prodfusion build`")
    e.add_argument("--out", required=True, help="Parquet file to write")
    e.add_argument("-k", type=int, default=15)
    e.add_argument("--fusion", default=None, choices=["early", "intermediate", "late"],
                   help="default: the model's")
    e.add_argument("--modalities", default=None, type=_csv_list, help="default: the model's")
    e.add_argument("--batch-size", type=int, default=4096, help="products per batch / part file")
    e.add_argument("--start", type=int, default=0, help="first catalog row to export")
    e.add_argument("--stop", type=int, default=None, help="end (exclusive) of the rows to export")
    e.add_argument("--restart", action="store_true",
                   help="discard the finished batches of an interrupted export")
    e.add_argument("--quiet", action="store_true", help="no progress output")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    add_engine_options(e)
    e.set_defaults(func=cmd_export)
    return e
