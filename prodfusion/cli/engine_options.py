"""Command-line options of the engine (``--engine ray`` and friends), shared by ``build`` and
``export``; used by :mod:`prodfusion.cli` and :mod:`prodfusion.batch.cli_commands`."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_engine_options", "executor_from_args", "encode_with_ray"]


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine local|ray``, ``--address``, ``--ray-workers``, ``--num-cpus-per-worker``,
    ``--num-gpus-per-worker``."""
    g = p.add_argument_group("engine (where the parallel work runs)")
    g.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: this process (default); ray: Ray workers "
                        "(pip install 'prodfusion[ray]')")
    g.add_argument("--address", default=None,
                   help="Ray cluster: 'auto' (a running cluster) or ray://HOST:10001; default: "
                        "start a local Ray on this machine")
    g.add_argument("--ray-workers", type=int, default=None,
                   help="Ray actors (default: export: the cluster's CPUs / --num-cpus-per-worker;"
                        " encoding: 2)")
    g.add_argument("--num-cpus-per-worker", type=float, default=None,
                   help="CPUs reserved per Ray actor, fractions allowed (default: export 1, "
                        "encoding 0.5: whole-CPU encoding actors can deadlock a small machine)")
    g.add_argument("--num-gpus-per-worker", type=float, default=0.0,
                   help="GPUs per Ray actor (e.g. 0.25: four actors share one GPU)")


def executor_from_args(args, *, default_cpus: float = 1.0):
    from prodfusion.engine import make_executor

    if args.engine == "local":
        return make_executor("local")
    cpus = args.num_cpus_per_worker if args.num_cpus_per_worker is not None else default_cpus
    return make_executor("ray", address=args.address, workers=args.ray_workers,
                         num_cpus_per_worker=cpus, num_gpus_per_worker=args.num_gpus_per_worker)


def encode_with_ray(args, catalog, specs: dict[str, str | None], cache) -> None:
    """``build --engine ray``: encode titles and photos on Ray Data into ``cache``; the build
    that follows finds every vector there."""
    from prodfusion.engine.ray_encode import encode_on_ray

    ex = executor_from_args(args, default_cpus=0.5)  # starts or joins Ray
    try:
        for m, spec in specs.items():
            if spec is None:
                continue
            emb = encode_on_ray(
                catalog, spec, cache, actors=args.ray_workers or 2,
                num_cpus_per_actor=ex.num_cpus, num_gpus_per_actor=ex.num_gpus,
                batch_size=getattr(args, "batch_size", None))
            print(f"ray: {m} {spec}: {emb.info['n_encoded_on_ray']:,} encoded on Ray, "
                  f"{emb.n_present:,}/{len(catalog):,} present in {emb.info['seconds']:.1f}s",
                  file=sys.stderr)
    finally:
        ex.close()
