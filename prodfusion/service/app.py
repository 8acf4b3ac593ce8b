"""The HTTP service: recommendations per A/B variant, product photos, events, reports, web page.

Build it with :func:`create_app` and run it with uvicorn (``prodfusion serve`` does both)::

    from prodfusion.service import create_app, load_settings
    app = create_app(load_settings("serve.toml"))
    # uvicorn.run(app, host="127.0.0.1", port=8000)

Nothing happens at import time. In the lifespan hook the event store is opened, the
experiment's bucket allocation is resolved from its ledger, every variant's model is loaded and
validated, and the hot-reload watcher starts. State lives on ``app.state`` (``store``,
``registry``, ``allocation``, ``metrics``, ``settings``).

Routes
------
``GET /``                              the web page (static, offline)
``GET /healthz``                       liveness
``GET /readyz``                        readiness: models loaded (503 otherwise)
``GET /metrics``                       Prometheus text format
``GET /v1/similar/{product_id}``       recommendations of the visitor's variant
``GET /v1/products``                   title search / browse (for the page)
``GET /images/{product_id}``           the product photo, confined to the image folder
``POST /v1/events``                    view / click / jump events, idempotent by event_id
``GET /v1/experiments/{name}/report``  CTR / JR per variant and category with tests
``GET /docs``, ``/openapi.json``       OpenAPI (Swagger UI served locally when the
                                       ``fastapi-offline`` package is installed)
"""

# No ``from __future__ import annotations`` here, on purpose: FastAPI reads the annotations
# of the exception handlers at run time.

import logging
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from prodfusion.service.guards import PRODUCT_ID_PATTERN, TOKEN_PATTERN
from prodfusion.service.metrics import MetricsMiddleware as _MetricsMiddleware
from prodfusion.service.settings import ServiceSettings


class _OneLineStartupErrors:
    """Pure ASGI middleware: a start-up failure the user can fix — a
    :class:`~prodfusion.errors.ProdfusionError` such as a lists table a worker cannot open,
    found after ``serve``'s own checks passed — reaches uvicorn's log as its message on one
    line, naming the process, instead of a traceback (Starlette sends the traceback as the
    failure's message). Any other exception (a bug) keeps its traceback."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        from prodfusion.errors import ProdfusionError

        async def one_line(message):
            # sent from inside Starlette's ``except`` block: the exception is being handled
            exc = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(exc, ProdfusionError):
                message = {**message, "message": f"prodfusion cannot start (process "
                                                 f"{os.getpid()}): {exc}"}
            await send(message)

        await self.app(scope, receive, one_line)

class _UnderPrefix:
    """Pure ASGI middleware for a service behind a proxy's path prefix (``root_path``):
    requests that still carry the prefix — a proxy that forwards ``/recs/x`` as it is, or a
    visit to the service itself at ``/recs/`` — are routed as the stripped ones, which
    uvicorn's ``root_path`` alone routes (it prepends the prefix to every path). A path
    without the prefix is routed as before, so ``http://127.0.0.1:8000/`` still answers."""

    def __init__(self, app, root: str) -> None:
        self.app, self.root = app, root

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            root, path = self.root, scope["path"]
            given = scope.get("root_path", "")
            inner = path[len(given):] if given and path.startswith(given) else path
            if inner == root or inner.startswith(root + "/"):  # the prefix still on it
                scope = dict(scope, root_path=root,
                             path=root + inner[len(root):] if given == root else inner)
                raw = scope.get("raw_path")
                if raw is not None and raw.startswith((root + root).encode()):
                    scope["raw_path"] = raw[len(root):]
            elif given != root:  # a server started without the prefix: set it
                scope = dict(scope, root_path=root, path=root + inner)
        await self.app(scope, receive, send)


__all__ = ["create_app", "PRODUCT_ID_PATTERN", "TOKEN_PATTERN", "STATIC_DIR"]

log = logging.getLogger(__name__)
#: The web page's files.
STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: ServiceSettings, *, store=None, multiproc_dir: str | None = None):
    """Build the FastAPI application for ``settings``.

    The routes live in :mod:`prodfusion.service.routes` (one router per concern), the
    request/response models in :mod:`prodfusion.service.schemas` and what the routes share
    (settings, the visitor → variant → model lookup) in :mod:`prodfusion.service.deps`;
    this factory wires them, opens what the lifespan needs and stores it on ``app.state``.

    Parameters
    ----------
    settings : ServiceSettings
    store : EventStore, optional
        Use this (already open) event store instead of opening ``settings.events`` — for tests
        and embedding; the app does not close it.
    multiproc_dir : str, optional
        Folder of prometheus_client's multi-process files (``serve --workers N``): ``/metrics``
        then sums every worker. Default: the ``PROMETHEUS_MULTIPROC_DIR`` environment variable,
        read here, once.

    Returns
    -------
    fastapi.FastAPI
    """
    import importlib

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    from prodfusion import __version__
    from prodfusion.errors import ParameterError, UnknownProductError
    from prodfusion.service.attribution import make_attribution
    from prodfusion.service.deps import error
    from prodfusion.service.events import StoreUnavailable, open_event_store
    from prodfusion.service.lists import ListsMetrics, ListsRegistry
    from prodfusion.service.metrics import make_metrics
    from prodfusion.service.models import ModelRegistry
    from prodfusion.service.routes import ROUTERS
    from prodfusion.service.routes.events import BodyTooLarge
    from prodfusion.service.routes.page import mount_static

    exp = settings.experiment
    metrics = make_metrics()
    lists_metrics = ListsMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(app):
        st = app.state
        own_store = store is None
        st.store = store or await run_in_threadpool(
            open_event_store, settings.events, synchronous=settings.synchronous,
            busy_timeout_s=settings.busy_timeout_s)
        try:
            st.allocation = await run_in_threadpool(
                st.store.resolve_allocation, exp.name, exp.salt, exp.names, exp.weights)
            st.attribution = await run_in_threadpool(make_attribution, settings, st.store)

            def on_reload(outcome, path, error):
                metrics.reloads.labels(outcome).inc()
                _update_product_gauge(st)
                if outcome == "loaded" and getattr(st, "lists", None) is not None:
                    st.lists.warn_stale()  # "the log warns at load and on reload"

            st.registry = ModelRegistry(exp, images=settings.images, on_reload=on_reload,
                                        cache_size=settings.cache_size)
            await run_in_threadpool(st.registry.load_all)
            _update_product_gauge(st)
            st.registry.start_watcher(settings.reload_interval_s)
            st.lists = ListsRegistry(exp, st.registry, default=settings.lists,
                                     layout=settings.lists_layout, metrics=lists_metrics)
            await run_in_threadpool(st.lists.load_all)
            st.lists.start_watcher(settings.reload_interval_s)
            yield
        finally:
            for reg in (getattr(st, "lists", None), getattr(st, "registry", None)):
                if reg is not None:
                    reg.stop_watcher()
            if own_store:
                st.store.close()

    def _update_product_gauge(st) -> None:
        reg = st.registry
        for v in exp.variants:
            if reg.ready:
                metrics.products.labels(v.name).set(len(reg.get(v.name)[0].recommender.catalog))

    app = FastAPI(
        title="prodfusion",
        version=__version__,
        description="Similar-product recommendations with A/B testing: "
        "fused title, photo and click embeddings.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.lists_metrics = lists_metrics
    app.state.multiproc_dir = multiproc_dir if multiproc_dir is not None else \
        os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    app.add_middleware(_OneLineStartupErrors)
    if settings.cors_origins:  # a shop's own pages calling the API from their scripts
        from starlette.middleware.cors import CORSMiddleware

        anyone = settings.cors_origins == ("*",)
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Content-Type"],
                           allow_credentials=not anyone,  # cookies only to named origins
                           max_age=600)
    if settings.root_path:  # behind a proxy's path prefix
        app.add_middleware(_UnderPrefix, root=settings.root_path)

    # ------------------------------------------------------------------ errors
    @app.exception_handler(UnknownProductError)
    async def _unknown_product(request: Request, exc: UnknownProductError):
        # The library's message names the catalog file; a public answer must not.
        pid = getattr(exc, "product_id", None)
        if pid is None:
            return error(404, "Unknown product id.")
        twin = getattr(exc, "twin", None)
        return error(404, f"Product id {pid!r} is not in the catalog ({exc.n_products} products). "
                          "Ids are compared as exact strings, leading zeros included."
                          + (f" Did you mean {twin!r}?" if twin is not None else ""))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable):
        metrics.store_errors.inc()
        log.error("event store unavailable: %s", exc)
        return JSONResponse(
            {"detail": "The event store is unavailable; nothing of this request was stored. "
                       "Retry later with the same event ids."},
            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(ParameterError)
    async def _bad_param(request: Request, exc: ParameterError):
        return error(422, str(exc))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge):
        return error(413, f"Request body larger than {settings.max_body_bytes} bytes; "
                          "send events in smaller batches.")

    # ------------------------------------------------------------------ routes
    for name in ROUTERS:
        if name == "page":
            mount_static(app)
        _include(app, importlib.import_module(f"prodfusion.service.routes.{name}").router)
    _document_limits(app, settings)
    return app


def _include(app, router) -> None:
    """Add ``router``'s routes to ``app`` as its own, flat routes.

    FastAPI >= 0.16x keeps an included router as one nested entry of ``app.routes``; the
    service's tests, its metrics (route templates) and users walking ``app.routes`` expect
    the routes themselves, as ``include_router`` gave them before.
    """
    for r in router.routes:
        app.router.add_api_route(
            r.path, r.endpoint, methods=sorted(r.methods), response_model=r.response_model,
            status_code=r.status_code, tags=r.tags, dependencies=r.dependencies,
            summary=r.summary, description=r.description,
            response_description=r.response_description, responses=r.responses,
            deprecated=r.deprecated, operation_id=r.operation_id,
            include_in_schema=r.include_in_schema, response_class=r.response_class,
            name=r.name, openapi_extra=r.openapi_extra)


def _document_limits(app, settings) -> None:
    """Write the limits of ``settings`` into the app's OpenAPI document.

    The routes are module-level and read the limits (``default_k``, ``max_k``,
    ``max_batch``) from ``app.state.settings`` when they answer; the document shows them as
    if they were baked into the parameters, in the routes' own parameter order.
    """
    from prodfusion.service.routes.events import events_openapi

    plain = app.openapi
    order = ["product_id", "k", "visitor", "same_category", "exclude", "exclude_group",
             "one_per_group", "explain", "profile"]

    def openapi():
        if app.openapi_schema is None:
            paths = plain().get("paths", {})
            op = paths.get("/v1/similar/{product_id}", {}).get("get", {})
            params = sorted(op.get("parameters", []), key=lambda p: (
                order.index(p["name"]) if p["name"] in order else len(order)))
            for p in params:
                if p["name"] == "k":
                    p["schema"] = {"default": settings.default_k, "maximum": settings.max_k,
                                   "minimum": 1, "title": "K", "type": "integer"}
                elif p["name"] == "exclude":
                    p["schema"]["maxItems"] = settings.max_k * 10
            if params:
                op["parameters"] = params
            ops = paths.get("/v1/products", {}).get("get", {})
            ops["parameters"] = sorted(ops.get("parameters", []), key=lambda p: (
                ["q", "limit", "visitor"] + [p["name"]]).index(p["name"]))
            ev = paths.get("/v1/events", {}).get("post")
            if ev is not None:
                ev.update(events_openapi(settings))
        return app.openapi_schema

    app.openapi = openapi
