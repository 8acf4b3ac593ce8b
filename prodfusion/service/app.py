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
                                       ``swagger-ui-bundle`` package is installed)
"""

# No ``from __future__ import annotations`` here, on purpose: FastAPI and pydantic read the
# annotations of the endpoints and models defined inside create_app() at run time, and
# string annotations could not be resolved against that local scope.

import asyncio
import json
import logging
import os
import re
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from prodfusion.service.settings import ServiceSettings

__all__ = ["create_app", "PRODUCT_ID_PATTERN", "TOKEN_PATTERN"]

log = logging.getLogger(__name__)

#: Product ids in URLs and events: 1-200 characters, no control characters, no slash or
#: backslash, no U+FFFD (what a non-UTF-8 byte in a URL decodes to).
PRODUCT_ID_PATTERN = r"^[^\x00-\x1f\x7f/\\\ufffd]{1,200}$"
#: Visitor, event and request ids: 1-128 characters of letters, digits and ``_ . : -``.
TOKEN_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
_TOKEN_RE = re.compile(TOKEN_PATTERN)
STATIC_DIR = Path(__file__).resolve().parent / "static"


class _BodyTooLarge(Exception):
    pass


def _metrics_factory():
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    class ServiceMetrics:
        """Prometheus collectors of one app (own registry: several apps can live in one process)."""

        def __init__(self) -> None:
            self.registry = CollectorRegistry(auto_describe=True)
            r = self.registry
            self.requests = Counter(
                "prodfusion_http_requests", "HTTP requests by route template, method, status and "
                "A/B variant ('' when the route has none).",
                ["route", "method", "status", "variant"], registry=r)
            self.latency = Histogram(
                "prodfusion_http_request_duration_seconds",
                "Time from request to the end of the response, by route template and variant.",
                ["route", "variant"], registry=r,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
            self.events = Counter(
                "prodfusion_events", "Events received, by type, variant and outcome "
                "(stored | quarantined | duplicate).", ["type", "variant", "outcome"], registry=r)
            self.quarantined = Counter(
                "prodfusion_events_quarantined", "Events stored but excluded from reports, by "
                "type, variant and reason (unverified | variant_mismatch | target_not_served | "
                "late).", ["type", "variant", "reason"], registry=r)
            self.store_errors = Counter(
                "prodfusion_event_store_errors", "Event batches refused with 503 because the "
                "store failed.", registry=r)
            self.reloads = Counter(
                "prodfusion_model_reloads", "Model folder publications seen, by outcome "
                "(loaded | refused).", ["outcome"], registry=r)
            self.results = Counter(
                "prodfusion_similar_results", "Recommendation lists served from the result "
                "cache (hit) or computed (miss).", ["result"], registry=r)
            self.products = Gauge(
                "prodfusion_model_products", "Products in the model serving each variant.",
                ["variant"], registry=r, multiprocess_mode="max")

    return ServiceMetrics()


class _MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by route template and variant."""

    def __init__(self, app, metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            variant = (scope.get("state") or {}).get("variant", "")
            self.metrics.requests.labels(path, scope["method"], str(status[0]), variant).inc()
            self.metrics.latency.labels(path, variant).observe(time.perf_counter() - t0)


def _dumps(obj) -> str:
    """JSON the way Starlette's ``JSONResponse`` renders it (compact, UTF-8, finite numbers)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def create_app(settings: ServiceSettings, *, store=None):
    """Build the FastAPI application for ``settings``.

    Parameters
    ----------
    settings : ServiceSettings
    store : EventStore, optional
        Use this (already open) event store instead of opening ``settings.events`` — for tests
        and embedding; the app does not close it.

    Returns
    -------
    fastapi.FastAPI
    """
    from fastapi import FastAPI, Query, Request, Response
    from fastapi import Path as PathParam
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        StrictInt,
        ValidationError,
        field_validator,
        model_validator,
    )
    from starlette.concurrency import run_in_threadpool

    from prodfusion import __version__
    from prodfusion.errors import ParameterError, UnknownProductError
    from prodfusion.service.attribution import make_attribution
    from prodfusion.service.events import Event, StoreUnavailable, open_event_store
    from prodfusion.service.guards import BadBody, check_client_ts, is_clean_id, parse_json_body
    from prodfusion.service.lists import ListsMetrics, ListsRegistry
    from prodfusion.service.models import ModelRegistry, confined_image
    from prodfusion.service.report import experiment_report

    exp = settings.experiment
    metrics = _metrics_factory()
    lists_metrics = ListsMetrics(metrics.registry)

    # ------------------------------------------------------------------ schemas
    class EventIn(BaseModel):
        """One event sent by a page. ``request_id`` is the one returned by ``/v1/similar``."""

        model_config = ConfigDict(extra="forbid")
        event_id: str = Field(pattern=TOKEN_PATTERN, description="client-made unique id (UUID)")
        type: Literal["view", "click", "jump"]
        request_id: str = Field(pattern=TOKEN_PATTERN)
        product_id: str = Field(pattern=PRODUCT_ID_PATTERN,
                                description="the product whose page showed the recommendations")
        visitor: str | None = Field(default=None, pattern=TOKEN_PATTERN,
                                    description="default: the visitor cookie")
        target_id: str | None = Field(default=None, pattern=PRODUCT_ID_PATTERN,
                                      description="click: the recommended product clicked")
        rank: StrictInt | None = Field(default=None, ge=1, le=settings.max_k,
                                       description="click: 1-based position of target_id in "
                                       "the list (a JSON integer: no \"3\", true or 3.0)")
        target_sig: str | None = Field(default=None, pattern=r"^[0-9a-f]{1,64}$",
                                       description="click: the target_sigs entry of target_id")
        ts: str | None = Field(default=None, max_length=64, description="client time (ISO 8601)")

        @field_validator("ts")
        @classmethod
        def _iso_ts(cls, v):
            return check_client_ts(v)

        @model_validator(mode="after")
        def _click_fields(self):
            if self.type == "click" and (self.target_id is None or self.rank is None):
                raise ValueError("a click event needs 'target_id' and 'rank'")
            if self.type != "click" and (self.target_id is not None or self.rank is not None
                                         or self.target_sig is not None):
                raise ValueError(f"a {self.type} event takes no 'target_id', 'rank' or "
                                 "'target_sig'")
            return self

    class EventBatch(BaseModel):
        model_config = ConfigDict(extra="forbid")
        events: list[EventIn] = Field(min_length=1, max_length=settings.max_batch)

    class EventsAck(BaseModel):
        received: int
        stored: int
        duplicates: int
        quarantined: int = Field(description="of the stored: events left out of reports "
                                 "(unverified request id, variant mismatch, target not served, "
                                 "late)")

    class ProductOut(BaseModel):
        product_id: str
        title: str | None
        category: str | None
        image_url: str | None

    class Recommendation(ProductOut):
        rank: int
        score: float
        explain: dict | None = Field(None, description="with ?explain=true: per modality raw "
                                     "and calibrated similarity (null where one product lacks "
                                     "it), weight and share; base + shares = score")

    class SimilarOut(BaseModel):
        product: ProductOut
        items: list[Recommendation]
        experiment: str
        variant: str
        visitor: str
        request_id: str = Field(description="signed id of this list: send it with every event "
                                "about it (docs/service.md, Attribution)")
        target_sigs: list[str] = Field(description="one per item: a click on items[i] sends "
                                       "target_sigs[i] as 'target_sig'")
        fusion: str
        modalities: list[str]
        model: str
        shop_url: str | None

    class ProductsOut(BaseModel):
        items: list[ProductOut]
        total: int
        variant: str

    # ------------------------------------------------------------------ lifespan
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
                _update_product_gauge()

            st.registry = ModelRegistry(exp, images=settings.images, on_reload=on_reload,
                                        cache_size=settings.cache_size)
            await run_in_threadpool(st.registry.load_all)
            _update_product_gauge()
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

    def _update_product_gauge() -> None:
        reg = app.state.registry
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
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    # ------------------------------------------------------------------ errors
    def _error(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
        return JSONResponse({"detail": message, **extra}, status_code=status, headers=headers)

    @app.exception_handler(UnknownProductError)
    async def _unknown_product(request: Request, exc: UnknownProductError):
        # The library's message names the catalog file; a public answer must not.
        pid = getattr(exc, "product_id", None)
        if pid is None:
            return _error(404, "Unknown product id.")
        return _error(404, f"Product id {pid!r} is not in the catalog ({exc.n_products} products). "
                           "Ids are compared as exact strings, leading zeros included.")

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
        return _error(422, str(exc))

    @app.exception_handler(_BodyTooLarge)
    async def _too_large(request: Request, exc: _BodyTooLarge):
        return _error(413, f"Request body larger than {settings.max_body_bytes} bytes; "
                           "send events in smaller batches.")

    # ------------------------------------------------------------------ helpers
    def _visitor(request: Request, given: str | None) -> tuple[str, bool]:
        if given:
            return given, False
        cookie = request.cookies.get(settings.cookie_name)
        if cookie and _TOKEN_RE.match(cookie):
            return cookie, False
        return uuid.uuid4().hex, True

    def _set_cookie(response: Response, visitor: str) -> None:
        response.set_cookie(settings.cookie_name, visitor, max_age=400 * 24 * 3600,
                            httponly=False, samesite="lax", secure=settings.cookie_secure)

    def _product(model, row: int) -> dict:
        rec = model.recommender
        record = rec.catalog.record(row)
        pid = record["product_id"]
        has_image = bool(record.get("image")) and model.image_root is not None
        return {
            "product_id": pid,
            "title": record.get("title"),
            "category": None if record.get("category") is None else str(record.get("category")),
            "image_url": f"/images/{_quote(pid)}" if has_image else None,
        }

    def _shop_url(pid: str) -> str | None:
        return settings.shop_url.format(product_id=_quote(pid)) if settings.shop_url else None

    # ------------------------------------------------------------------ routes
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: every variant's model is loaded")
    def readyz():
        reg = getattr(app.state, "registry", None)
        if reg is None or not reg.ready:
            return _error(503, "models are not loaded yet")
        return {
            "status": "ready",
            "experiment": exp.name,
            "variants": {v.name: reg.get(v.name)[0].describe() for v in exp.variants},
            "reload_errors": {**reg.public_errors(), **app.state.lists.public_errors()},
            "lists": app.state.lists.describe(),
            "event_store": "ok" if app.state.store.ping() else "unavailable",
        }

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics",
             response_class=PlainTextResponse)
    async def prometheus_metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = metrics.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # serve --workers N: sum the processes
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/similar/{product_id}", response_model=SimilarOut, tags=["recommendations"],
             summary="The visitor's variant's recommendations for one product",
             responses={404: {"description": "unknown product"}})
    def similar(
        request: Request,
        product_id: Annotated[str, PathParam(pattern=PRODUCT_ID_PATTERN)],
        k: Annotated[int, Query(ge=1, le=settings.max_k)] = settings.default_k,
        visitor: Annotated[str | None, Query(pattern=TOKEN_PATTERN,
                                             description="default: the visitor cookie")] = None,
        same_category: bool = False,
        exclude: Annotated[list[str], Query(max_length=settings.max_k * 10)] = [],  # noqa: B006
        exclude_group: bool = False,
        explain: bool = False,
    ):
        for e in exclude:
            if not is_clean_id(e):  # whole string: no control character anywhere
                return _error(422, f"Malformed product id in 'exclude': {e[:50]!r}.")
        vis, new = _visitor(request, visitor)
        variant = app.state.allocation.variant_of(vis)
        request.state.variant = variant
        model, vcfg = app.state.registry.get(variant)
        rec = model.recommender
        key = (vcfg.fusion, vcfg.modalities, product_id, k, same_category, tuple(exclude),
               exclude_group)
        lists = None if (same_category or exclude or exclude_group or explain) \
            else app.state.lists.get(variant)
        path = "lists"  # which path answers: precomputed lists, result cache, live search
        body = lists.body(model, product_id, k, _product, _dumps) if lists else None
        served = None  # the ids shown, in order (their signatures go with the answer)
        if body is not None:
            served = [str(i) for i in lists.lookup(product_id, k)[0]]
        if body is None and not explain:
            path = "cache"
            cached = model.results.get(key)
            if cached is not None:
                body, served = cached
        if body is None:
            path = "live"
            got = rec.similar(
                product_id, k, fusion=vcfg.fusion, modalities=vcfg.modalities,
                same_category=same_category, exclude=exclude, exclude_group=exclude_group,
                explain=explain)
            rows = rec.catalog.rows_of(got[0])
            items = []
            for rank, (row, score) in enumerate(zip(rows, got[1], strict=True), start=1):
                items.append({**_product(model, int(row)), "rank": rank, "score": float(score),
                              **({"explain": got[2][rank - 1]} if explain else {})})
            # The part that depends only on the model and the query, rendered once and kept.
            body = _dumps({"product": _product(model, rec.catalog.row_of(product_id)),
                           "items": items})[1:-1]
            served = [str(i) for i in got[0]]
            if not explain:
                model.results.put(key, (body, served))
            metrics.results.labels("miss").inc()
        elif path == "cache":
            metrics.results.labels("hit").inc()
        lists_metrics.answers.labels(path).inc()
        attribution = app.state.attribution
        rid = attribution.issue(vis, variant, product_id, params="|".join(map(str, key[3:])))
        rest = _dumps({
            "experiment": exp.name,
            "variant": variant,
            "visitor": vis,
            "request_id": rid,
            "target_sigs": attribution.target_sigs(rid, served),
            "fusion": vcfg.fusion or rec.fusion,
            "modalities": list(vcfg.modalities or rec.modalities),
            "model": model.model_id,
            "shop_url": _shop_url(product_id),
        })
        # Built to the SimilarOut schema here; returning a response skips re-validating it.
        out = Response("{" + body + "," + rest[1:], media_type="application/json")
        if new:
            _set_cookie(out, vis)
        return out

    @app.get("/v1/products", response_model=ProductsOut, tags=["recommendations"],
             summary="Search products by title or id (empty query: a spread of the catalog)")
    def products(
        request: Request,
        response: Response,
        q: Annotated[str, Query(max_length=200)] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 24,
        visitor: Annotated[str | None, Query(pattern=TOKEN_PATTERN)] = None,
    ):
        import numpy as np

        vis, new = _visitor(request, visitor)
        variant = app.state.allocation.variant_of(vis)
        request.state.variant = variant
        model, _ = app.state.registry.get(variant)
        cat = model.recommender.catalog
        needle = q.strip().lower()
        if needle:
            hit = model.titles_lower.str.contains(needle, literal=True) | \
                (cat.frame["product_id"] == q.strip())
            rows = np.flatnonzero(hit.to_numpy())
        else:
            rows = np.arange(len(cat))
        total = len(rows)
        if not needle and total > limit:  # a deterministic spread over the catalog
            rows = rows[np.linspace(0, total - 1, limit).astype(np.int64)]
        rows = rows[:limit]
        if new:
            _set_cookie(response, vis)
        return {"items": [_product(model, int(r)) for r in rows], "total": total, "variant": variant}

    @app.get("/images/{product_id}", tags=["recommendations"], summary="A product's photo",
             response_class=FileResponse, responses={404: {"description": "no such image"}})
    def image(product_id: Annotated[str, PathParam(pattern=PRODUCT_ID_PATTERN)]):
        for model in app.state.registry.models():
            cat = model.recommender.catalog
            if product_id not in cat or model.image_root is None:
                continue
            raw = cat.record(cat.row_of(product_id)).get("image")
            real = confined_image(raw, model.image_root)
            if real is None:
                if raw:
                    log.warning("image of %r not served (outside %s, not a regular file or not "
                                "an image): %s", product_id, model.image_root, raw)
                break
            return FileResponse(real, headers={"Cache-Control": "public, max-age=3600"})
        return _error(404, f"No image for product {product_id!r}.")

    events_body_doc = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EventBatch.model_json_schema(
                ref_template="#/components/schemas/{model}")}},
        }
    }

    @app.post("/v1/events", response_model=EventsAck, tags=["events"],
              summary="Store view / click / jump events (idempotent by event_id)",
              openapi_extra=events_body_doc,
              responses={400: {"description": "not UTF-8 JSON, or NaN/Infinity"},
                         413: {"description": "body over the limit"},
                         422: {"description": "invalid events"},
                         503: {"description": "store unavailable: nothing stored, retry"}})
    async def post_events(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > settings.max_body_bytes:
                    raise _BodyTooLarge()
            except ValueError:
                return _error(400, "Invalid Content-Length header.")
        async def read_body() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > settings.max_body_bytes:
                    raise _BodyTooLarge()
                chunks.append(chunk)
            return b"".join(chunks)

        try:  # a client that stops sending does not hold a worker forever
            body = await asyncio.wait_for(read_body(), settings.body_timeout_s)
        except asyncio.TimeoutError:
            return _error(408, f"The request body did not arrive within {settings.body_timeout_s:g} s.",
                          headers={"Connection": "close"})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(400, f"The body is not UTF-8 (byte {exc.start}); send UTF-8 JSON.")
        try:
            data = parse_json_body(text)
        except BadBody as exc:
            return _error(400, f"{exc}.")
        try:
            batch = EventBatch.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_context=False),
                                         body=None) from None
        cookie_vis = request.cookies.get(settings.cookie_name)
        if cookie_vis is not None and not _TOKEN_RE.match(cookie_vis):
            cookie_vis = None  # a malformed cookie is no visitor id
        now = time.time()
        out = []
        for i, e in enumerate(batch.events):
            vis = e.visitor or cookie_vis
            if vis is None:
                return _error(422, f"events[{i}] has no 'visitor' and the request no "
                                   f"{settings.cookie_name!r} cookie.")
            variant = app.state.allocation.variant_of(vis)
            model, _ = app.state.registry.get(variant)
            cat = model.recommender.catalog
            category = None
            if e.product_id in cat and cat.categories is not None:
                c = cat.record(cat.row_of(e.product_id)).get("category")
                category = None if c is None else str(c)
            status = app.state.attribution.check(
                e.request_id, e.type, vis, variant, e.product_id, exp.names, now=now,
                target_id=e.target_id, rank=e.rank, target_sig=e.target_sig)
            out.append(Event(
                event_id=e.event_id, type=e.type, experiment=exp.name, variant=variant,
                visitor=vis, request_id=e.request_id, product_id=e.product_id,
                target_id=e.target_id, rank=e.rank, category=category, client_ts=e.ts,
                received_at=now, status=status))
        res = await run_in_threadpool(app.state.store.add, out)
        seen: set[str] = set()
        stored_left = res.stored
        quarantined = 0
        for ev in out:  # metrics: the first copy of each id in the batch counts as stored
            outcome = "duplicate"
            if ev.event_id not in seen and stored_left > 0:
                outcome = "stored"
                stored_left -= 1
                if ev.status != "ok":
                    outcome = "quarantined"
                    quarantined += 1
                    metrics.quarantined.labels(ev.type, ev.variant, ev.status).inc()
            seen.add(ev.event_id)
            metrics.events.labels(ev.type, ev.variant, outcome).inc()
        return {"received": len(out), **res.as_dict(), "quarantined": quarantined}

    @app.get("/v1/experiments/{name}/report", tags=["experiments"],
             summary="CTR and jump rate per variant and category, with intervals and tests",
             responses={404: {"description": "unknown experiment"}})
    def report(name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")],
               alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05):
        control = exp.control if name == exp.name else None
        rep = experiment_report(app.state.store, name, control=control, alpha=alpha)
        if rep is None:
            return _error(404, f"No experiment {name!r} in the event store.")
        return rep

    # ------------------------------------------------------------------ page and docs
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-cache"})

    @app.get("/experiments/{name}", include_in_schema=False)
    async def experiment_page(
            name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]):
        # A static page; its script reads the JSON report of the experiment named in the URL.
        return HTMLResponse((STATIC_DIR / "experiment.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-cache"})

    try:
        import swagger_ui_bundle

        app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
                  name="docs-static")
        docs_assets = {"swagger_js_url": "/docs-static/swagger-ui-bundle.js",
                       "swagger_css_url": "/docs-static/swagger-ui.css",
                       "swagger_favicon_url": "/docs-static/favicon-32x32.png"}
    except ImportError:  # falls back to FastAPI's CDN assets
        docs_assets = {}

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="prodfusion API",
                                   **docs_assets)

    return app


def _quote(pid: str) -> str:
    from urllib.parse import quote

    return quote(pid, safe="")
