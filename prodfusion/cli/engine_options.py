"""Command-line options of the engine (``--engine ray`` and friends), shared by ``build`` and
``export``; used by :mod:`prodfusion.cli` and :mod:`prodfusion.batch.cli_commands`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the library lazily
    from prodfusion.index.base import IndexSettings

__all__ = ["add_engine_options", "executor_from_args", "encode_with_ray",
           "parse_index_params"]


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine local|ray``, ``--address``, ``--ray-workers``, ``--num-cpus-per-worker``,
    ``--num-gpus-per-worker``."""
    g = p.add_argument_group("engine (where the parallel work runs)")
    g.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: this process (default); ray: Ray workers "
                        "(pip install 'prodfusion[ray]')")
    g.add_argument("--address", default=None,
                   help="Ray cluster: 'auto' (a running cluster this machine belongs to), "
                        "HOST:PORT (its head node, as `ray start --address` takes) or "
                        "ray://HOST:10001 (Ray Client); default: start a local Ray on this "
                        "machine")
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
            nodes = emb.info.get("ray_nodes", 0)
            where = f" ({nodes} node{'s' * (nodes != 1)})" if nodes else ""
            print(f"ray: {m} {spec}: {emb.info['n_encoded_on_ray']:,} encoded on Ray{where}, "
                  f"{emb.n_present:,}/{len(catalog):,} present in {emb.info['seconds']:.1f}s",
                  file=sys.stderr)
    finally:
        ex.close()


def add_index_options(p: argparse.ArgumentParser) -> None:
    """``build``: ``--index``, ``--index-shards``, ``--index-fusions`` (approximate indexes
    built at build time, as shards on the engine's workers)."""
    g = p.add_argument_group("search index (built now and saved in the model folder)")
    g.add_argument("--index", default="auto", choices=["auto", "exact", "hnsw", "ivfpq"],
                   help="auto: exact below 50,000 products, HNSW up to 5,000,000, "
                        "IVF-PQ above (default)")
    g.add_argument("--index-shards", type=int, default=None,
                   help="build each approximate index as this many row shards, one task each "
                        "(default with --engine ray: the cluster's CPUs; locally: 1, one index)")
    g.add_argument("--index-fusions", default=None,
                   help="comma-separated fusions whose index to build now (default with "
                        "--engine ray or --index-shards: the model's fusion; otherwise indexes "
                        "are built on first use)")
    from prodfusion.index.base import IndexSettings

    defaults = IndexSettings()
    g.add_argument("--index-param", action="append", default=None, metavar="NAME=VALUE",
                   help="an IndexSettings field for the approximate indexes, saved with the "
                        "model (repeatable), e.g. --index-param pq_m=64 --index-param "
                        "ef_search=256; names (defaults): " + ", ".join(
                            f"{n} ({getattr(defaults, n)})" for n in _INDEX_PARAM_NAMES))


#: ``IndexSettings`` fields ``--index-param`` sets (``shards`` is ``--index-shards``).
_INDEX_PARAM_NAMES = (
    "auto_hnsw_from", "auto_ivfpq_from", "exact_below", "reduce_dim", "hnsw_m",
    "ef_construction", "ef_search", "hnsw_storage", "ivf_nlist", "pq_m", "pq_nbits", "nprobe",
    "over_fetch", "min_candidates", "max_candidates", "train_sample", "search_threads", "seed",
)


def parse_index_params(values) -> IndexSettings:
    """``IndexSettings`` from ``--index-param NAME=VALUE`` strings (the defaults for the
    others); a malformed, unknown or invalid one is a :class:`ParameterError` naming
    ``--index-param``.

    >>> parse_index_params(["pq_m=64", "reduce-dim=none"]).pq_m
    64
    """
    from prodfusion.errors import ParameterError
    from prodfusion.index import IndexSettings

    got: dict = {}
    for raw in values or ():
        name, sep, value = str(raw).partition("=")
        name, value = name.strip().replace("-", "_"), value.strip()
        if not sep or not name or not value:
            raise ParameterError(f"--index-param takes NAME=VALUE (e.g. pq_m=64), got {raw!r}.")
        if name == "shards":
            raise ParameterError("--index-param shards=…: use --index-shards.")
        if name not in _INDEX_PARAM_NAMES:
            raise ParameterError(f"--index-param {raw!r}: unknown name {name!r}; one of "
                                 f"{', '.join(_INDEX_PARAM_NAMES)}.")
        if name in got:
            raise ParameterError(f"--index-param names {name!r} twice.")
        if name == "hnsw_storage":
            got[name] = value
        elif name in ("reduce_dim", "ivf_nlist") and value.lower() == "none":
            got[name] = None
        else:
            try:
                got[name] = int(value.replace("_", "").replace(",", ""))
            except ValueError:
                raise ParameterError(f"--index-param {raw!r}: {name} takes an int"
                                     + (" or none" if name in ("reduce_dim", "ivf_nlist")
                                        else "") + f", got {value!r}.") from None
    try:
        return IndexSettings(**got)
    except ParameterError as exc:
        raise ParameterError(f"--index-param: {exc}") from None


def _fusions(spec: str | None, default: str) -> list[str]:
    from prodfusion.fusion import check_method

    names = [s.strip() for s in (spec or default).split(",") if s.strip()]
    return [check_method(n, "--index-fusions") for n in names]


def build_indexes(args, rec) -> None:
    """``build``: the approximate indexes of ``--index-fusions``, as ``--index-shards`` shards
    filled by the engine's tasks (Ray with ``--engine ray``), kept in ``rec`` for saving."""
    import dataclasses

    from prodfusion.errors import ParameterError

    shards = getattr(args, "index_shards", None)
    if shards is not None and shards < 1:
        raise ParameterError(f"--index-shards must be an int >= 1, got {shards}.")
    if args.engine != "ray" and shards is None and not getattr(args, "index_fusions", None):
        return  # built on first use, as before
    fusions = _fusions(getattr(args, "index_fusions", None), rec.fusion)
    backend = rec.search_backend
    if backend == "exact":
        print(f"index: exact search for {len(rec.catalog):,} products (--index {rec.index}); "
              "no approximate index to build", file=sys.stderr)
        return
    ex = executor_from_args(args, default_cpus=1.0)
    try:
        if shards is None:
            shards = ex.n_workers(1 << 30) if args.engine == "ray" else 1
        rec.index_settings = dataclasses.replace(rec.index_settings, shards=shards)
        print(f"index: {'+'.join(fusions)} ({backend}, {shards} shard(s) per piece) on "
              f"{ex.describe()}", file=sys.stderr)
        rec.build_index(fusions, executor=ex)
    finally:
        ex.close()
    for f in fusions:
        print(f"index: {f} built in {rec.build_seconds_.get(f, 0):.1f}s", file=sys.stderr)
