"""``prodfusion serve``, ``prodfusion publish`` and ``prodfusion ab report``.

Registered by :mod:`prodfusion.cli` through :func:`add_serve_parser` and :func:`add_ab_parser`;
each parser sets ``func`` (``args.func(args) -> int`` exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["add_serve_parser", "add_ab_parser", "app_from_env"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {v}")
    return v


def _settings_overrides(args: argparse.Namespace) -> dict:
    out = {}
    if getattr(args, "events", None):
        out["events"] = args.events
    if getattr(args, "synchronous", None):
        out["synchronous"] = args.synchronous
    if getattr(args, "images", None):
        out["images"] = Path(args.images)
    if getattr(args, "reload_interval", None) is not None:
        out["reload_interval_s"] = args.reload_interval
    if getattr(args, "cache_size", None) is not None:
        out["cache_size"] = args.cache_size
    if getattr(args, "shop_url", None):
        out["shop_url"] = args.shop_url
    if getattr(args, "page_profile", None):
        out["page_profile"] = args.page_profile
    if getattr(args, "root_path", None) is not None:
        out["root_path"] = args.root_path
    if getattr(args, "cors_origin", None):
        out["cors_origins"] = tuple(args.cors_origin)
    if getattr(args, "lists", None):
        from prodfusion.data.storage import path_or_uri

        out["lists"] = path_or_uri(args.lists)
    if getattr(args, "lists_layout", None):
        out["lists_layout"] = args.lists_layout
    return out


def _limit_blas(threads: int) -> None:
    if threads > 0:
        # Requests run concurrently in a thread pool; one BLAS thread per request avoids
        # oversubscribing the cores (measured ~2x faster per query on a busy 2-core machine).
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)


def app_from_env():
    """The app of one uvicorn worker process, from ``PRODFUSION_SERVE`` (``serve --workers``)."""
    from prodfusion.service.app import create_app
    from prodfusion.service.settings import load_settings

    spec = json.loads(os.environ["PRODFUSION_SERVE"])
    _limit_blas(spec["blas_threads"])
    app = create_app(load_settings(spec["config"], **spec["overrides"]))
    started = spec.get("started")
    if started:  # the parent's exit code says whether any worker came up
        from contextlib import asynccontextmanager

        inner = app.router.lifespan_context

        @asynccontextmanager
        async def marked(a):
            async with inner(a) as state:
                Path(started, str(os.getpid())).touch()
                yield state

        app.router.lifespan_context = marked
    return app


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from prodfusion.service.app import create_app
    from prodfusion.service.events import open_event_store
    from prodfusion.service.lists import preflight_lists
    from prodfusion.service.models import preflight, preflight_variants
    from prodfusion.service.settings import load_settings

    overrides = _settings_overrides(args)
    settings = load_settings(args.config, **overrides)  # fails here, once, on a bad config
    preflight(settings.experiment, settings.page_profile)  # and on a missing model or
    # profile, before any worker
    models = preflight_variants(settings.experiment)  # a modality a model lacks
    preflight_lists(settings.experiment, settings.lists, models)  # a lists file it cannot serve
    del models  # the workers load their own
    from prodfusion.data.storage import release_copies

    release_copies()  # and hold their own copies of a model in a bucket
    open_event_store(settings.events, synchronous=settings.synchronous,  # and on the events
                     busy_timeout_s=settings.busy_timeout_s).close()
    proxied = f" (the proxy's {settings.root_path}/ stripped to it)" if settings.root_path \
        else ""
    print(f"prodfusion: serving experiment {settings.experiment.name!r} "
          f"({', '.join(settings.experiment.names)}) on http://{args.host}:{args.port}/"
          f"{proxied} with {args.workers} worker(s) — events in {settings.events}",
          file=sys.stderr)
    # Slow or stuck clients: idle keep-alive connections are closed, connections beyond the cap
    # get 503 at once, and the app itself times out a request body that does not arrive.
    run = dict(host=args.host, port=args.port, log_level=args.log_level,
               access_log=args.access_log, timeout_keep_alive=settings.keepalive_timeout_s,
               limit_concurrency=settings.max_connections, root_path=settings.root_path)
    if args.workers == 1:
        _limit_blas(args.blas_threads)
        uvicorn.run(create_app(settings), **run)
        return 0
    # Several processes: each loads the model (memory-mapped files are shared through the page
    # cache) and answers on the same socket. Prometheus counters are summed over the workers
    # through files in PROMETHEUS_MULTIPROC_DIR.
    with tempfile.TemporaryDirectory(prefix="prodfusion-metrics-") as metrics_dir, \
            tempfile.TemporaryDirectory(prefix="prodfusion-started-") as started:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        os.environ["PRODFUSION_SERVE"] = json.dumps({
            "config": str(args.config), "blas_threads": args.blas_threads,
            "overrides": {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()},
            "started": started,
        })
        uvicorn.run("prodfusion.cli.serve:app_from_env", factory=True,
                    workers=args.workers, **run)
        if not any(Path(started).iterdir()):  # uvicorn's parent exits 0 when workers fail
            print("error: no worker started (see the errors above)", file=sys.stderr)
            return 3
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from prodfusion.service.models import publish_model

    target = publish_model(args.model, args.link, validate=not args.no_validate)
    print(f"{args.link} -> {target}")
    return 0


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``serve`` (and ``publish``, its companion for hot reload) to ``subparsers``."""
    s = subparsers.add_parser(
        "serve", help="serve recommendations, A/B variants, events and the web page over HTTP",
        description="Run the HTTP service for a model folder or an experiment configuration "
        "(TOML/YAML). Open http://HOST:PORT/ for the web page and /docs for the API.")
    s.add_argument("config", help="model folder, or .toml/.yaml experiment configuration")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--events", default=None,
                   help="event store: SQLite file or postgresql:// URL (overrides the config; "
                   "default prodfusion-events.sqlite3)")
    s.add_argument("--synchronous", choices=["FULL", "NORMAL"], default=None,
                   help="SQLite durability: FULL survives power loss, NORMAL only a process crash")
    s.add_argument("--images", default=None, help="folder the product photos may be served from")
    s.add_argument("--reload-interval", type=float, default=None,
                   help="seconds between checks for a newly published model (0: never)")
    s.add_argument("--shop-url", default=None,
                   help="merchant page template for the 'go to shop' button, with {product_id}")
    s.add_argument("--page-profile", default=None, metavar="PROFILE",
                   help="a weighting profile of the served models (e.g. next_clicks) ranking a "
                   "second row on the web page, under the similar products")
    s.add_argument("--root-path", default=None, metavar="PREFIX",
                   help="the path prefix a reverse proxy serves this under, stripping it before "
                   "it forwards (e.g. /recs for https://shop.example/recs/): the page's links, "
                   "image URLs and /docs carry it")
    s.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                   help="an origin whose pages may call the API from their own scripts "
                   "(https://www.shop.example; repeat for several; '*' for any, without "
                   "cookies)")
    s.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads per request (default 1: requests already run in parallel; "
                   "0 leaves the library default)")
    s.add_argument("--workers", type=_positive_int, default=1,
                   help="server processes (default 1); use about one per core for throughput")
    s.add_argument("--cache-size", type=int, default=None,
                   help="recommendation lists kept per worker (LRU, default 20000; 0: off)")
    s.add_argument("--lists", default=None,
                   help="precomputed lists (`prodfusion export`) answered from first, live search "
                   "for products they lack; hot-reloaded when the file is replaced; or an "
                   "object in a bucket (s3://…: a local copy served, the object polled)")
    s.add_argument("--lists-layout", default=None, choices=["arrow", "sqlite", "memory"],
                   help="serving copy of the lists file (default arrow: memory-mapped)")
    s.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    s.add_argument("--no-access-log", dest="access_log", action="store_false")
    s.set_defaults(func=cmd_serve)

    p = subparsers.add_parser(
        "publish", help="atomically point a served model symlink at a newly built model folder",
        description="Validate MODEL and atomically repoint the symlink LINK to it; a running "
        "`prodfusion serve` configured with LINK switches without failing a request.")
    p.add_argument("model", help="a model folder written by `prodfusion build`")
    p.add_argument("link", help="the symlink the service is configured with (created if missing)")
    p.add_argument("--no-validate", action="store_true", help="skip loading MODEL first")
    p.set_defaults(func=cmd_publish)
    return s


def cmd_ab_report(args: argparse.Namespace) -> int:
    from prodfusion.service.events import open_event_store
    from prodfusion.service.report import experiment_report, format_report
    from prodfusion.service.settings import load_settings

    source = Path(args.source)
    control = args.control
    if source.suffix.lower() in (".toml", ".yaml", ".yml"):
        settings = load_settings(source)
        events = args.events or settings.events
        name = args.experiment or settings.experiment.name
        if control is None and name == settings.experiment.name:
            control = settings.experiment.control
    else:
        events = args.events or args.source
        name = args.experiment
    store = open_event_store(events, must_exist=True)  # a report never creates a store
    try:
        if name is None:
            names = store.experiments()
            if len(names) != 1:
                print(f"error: {events} holds experiments {names}; choose one with --experiment.",
                      file=sys.stderr)
                return 2
            name = names[0]
        rep = experiment_report(store, name, control=control, alpha=args.alpha)
    finally:
        store.close()
    if rep is None:
        print(f"error: no experiment {name!r} in {events}.", file=sys.stderr)
        return 1
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0


def cmd_ab_views(args: argparse.Namespace) -> int:
    import time

    from prodfusion.service.events import open_event_store
    from prodfusion.service.settings import load_settings
    from prodfusion.service.views_log import export_views

    source = Path(args.source)
    if source.suffix.lower() in (".toml", ".yaml", ".yml"):
        events = args.events or load_settings(source).events
    else:
        events = args.events or args.source
    store = open_event_store(events, must_exist=True)  # an export never creates a store
    try:
        res = export_views(store, args.out, experiment=args.experiment, where="--out")
    finally:
        store.close()

    def day(t):
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))

    span = f", {day(res['first'])} to {day(res['last'])} UTC" if res["views"] else ""
    views, visitors = res["views"], res["visitors"]
    print(f"{views:,} page view{'s' * (views != 1)} of {visitors:,} "
          f"visitor{'s' * (visitors != 1)}{span} written to "
          f"{res['path']}", file=sys.stderr)
    if res["views"]:
        print(f"  build from them: prodfusion build --catalog CATALOG --interactions {res['path']} "
              "--session-cols visitor --item-col product_id --time-col ts --session-gap 30m "
              "--out MODEL", file=sys.stderr)
    return 0


def add_ab_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``ab`` (with ``ab report`` and ``ab views``) to ``subparsers``."""
    ab = subparsers.add_parser("ab", help="A/B test tools (report, views)")
    sub = ab.add_subparsers(dest="ab_command", required=True, metavar="ACTION")
    r = sub.add_parser(
        "report", help="CTR / jump rate per variant and category with intervals, lift, tests, SRM",
        description="Read the event store and print the experiment report (the paper's Table IV "
        "on your own traffic).")
    r.add_argument("source", help="the service's .toml/.yaml configuration, or an event store "
                   "(SQLite file or postgresql:// URL)")
    r.add_argument("--experiment", default=None, help="experiment name (default: the configured "
                   "one, or the only one in the store)")
    r.add_argument("--events", default=None, help="event store overriding the configuration's")
    r.add_argument("--control", default=None, help="variant to compare with (default: configured "
                   "control, else the first)")
    r.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    r.add_argument("--json", action="store_true", help="print the JSON report instead of a table")
    r.set_defaults(func=cmd_ab_report)
    v = sub.add_parser(
        "views", help="the service's verified product-page views as a click log to build from",
        description="Write every verified product-page view in the event store as (visitor, "
        "product_id, ts) — one row per impression, quarantined events left out — to a Parquet "
        "or CSV file: the site's own traffic, keyed by visitor, for `prodfusion build`, `tune` "
        "or `add --interactions … --session-cols visitor --time-col ts --session-gap 30m`.")
    v.add_argument("source", help="the service's .toml/.yaml configuration, or an event store "
                   "(SQLite file or postgresql:// URL)")
    v.add_argument("--out", required=True, help="file to write (.parquet or .csv; replaces only "
                   "an earlier views export)")
    v.add_argument("--experiment", default=None, help="only this experiment's views (default: "
                   "every experiment's)")
    v.add_argument("--events", default=None, help="event store overriding the configuration's")
    v.set_defaults(func=cmd_ab_views)
    return ab
