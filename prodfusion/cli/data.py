"""``prodfusion stats`` (the paper's Table I for a data set) and ``prodfusion demo``."""

from __future__ import annotations

import json

from prodfusion.cli.options import (
    add_catalog_options,
    add_interaction_options,
    load_catalog,
    load_sessions,
)
from prodfusion.errors import ProdfusionError

__all__ = ["add_stats_parser", "add_demo_parser", "cmd_stats", "cmd_demo"]


def cmd_stats(args) -> int:
    from prodfusion.data import dataset_stats, format_stats

    catalog = load_catalog(args) if args.catalog else None
    sessions = load_sessions(args, catalog) if (args.interactions or args.pairs) else None
    if catalog is None and sessions is None:
        raise ProdfusionError("stats needs --catalog and/or --interactions/--pairs.")
    d = dataset_stats(catalog, sessions, image_sample=args.image_sample)
    print(json.dumps(d, indent=2, default=str) if args.json else format_stats(d))
    return 0


def add_stats_parser(sub) -> None:
    st = sub.add_parser("stats", help="the paper's Table I figures for a data set")
    add_catalog_options(st, required=False)
    add_interaction_options(st)
    st.add_argument("--image-sample", type=int, default=200, help="images to open for sizes")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_stats)


def cmd_demo(args) -> int:
    from prodfusion.cli.options import cache_folder
    from prodfusion.demo import run_demo

    return run_demo(out_dir=args.out, n_products=args.products, seed=args.seed,
                    cache_dir=cache_folder(args))


def add_demo_parser(sub) -> None:
    d = sub.add_parser("demo", help="build and query a synthetic catalog with a planted answer")
    d.add_argument("--out", default=None, help="folder for the synthetic data and model (default: temp)")
    d.add_argument("--products", type=int, default=2400)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--cache-dir", default="none", help="embedding cache (default: none)")
    d.set_defaults(func=cmd_demo)
