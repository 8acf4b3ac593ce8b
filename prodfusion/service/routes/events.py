"""``POST /v1/events``: view / click / jump events, idempotent by ``event_id``."""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from prodfusion.service.deps import error, valid_cookie, variant_model
from prodfusion.service.events import Event
from prodfusion.service.guards import BadBody, parse_json_body
from prodfusion.service.schemas import EventBatch, EventsAck, limits

router = APIRouter(tags=["events"])


class BodyTooLarge(Exception):
    """The request body is over ``max_body_bytes`` (answered 413 by the app)."""


def events_openapi(settings) -> dict:
    """The ``openapi_extra`` of ``POST /v1/events``: the body schema with this app's limits."""
    from prodfusion.service.schemas import event_batch_schema

    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": event_batch_schema(settings)}}}}


async def _read_body(request: Request, max_bytes: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/v1/events", response_model=EventsAck,
             summary="Store view / click / jump events (idempotent by event_id)",
             responses={400: {"description": "not UTF-8 JSON, or NaN/Infinity"},
                        413: {"description": "body over the limit"},
                        422: {"description": "invalid events"},
                        503: {"description": "store unavailable: nothing stored, retry"}})
async def post_events(request: Request):
    st = request.app.state
    settings = st.settings
    exp = settings.experiment
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > settings.max_body_bytes:
                raise BodyTooLarge()
        except ValueError:
            return error(400, "Invalid Content-Length header.")
    try:  # a client that stops sending does not hold a worker forever
        body = await asyncio.wait_for(_read_body(request, settings.max_body_bytes),
                                      settings.body_timeout_s)
    except asyncio.TimeoutError:
        return error(408, f"The request body did not arrive within {settings.body_timeout_s:g} s.",
                     headers={"Connection": "close"})
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return error(400, f"The body is not UTF-8 (byte {exc.start}); send UTF-8 JSON.")
    try:
        data = parse_json_body(text)
    except BadBody as exc:
        return error(400, f"{exc}.")
    try:
        batch = EventBatch.model_validate(data, context=limits(settings))
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False),
                                     body=None) from None
    cookie_vis = valid_cookie(request, settings)
    now = time.time()
    out = []
    for i, e in enumerate(batch.events):
        vis = e.visitor or cookie_vis
        if vis is None:
            return error(422, f"events[{i}] has no 'visitor' and the request no "
                              f"{settings.cookie_name!r} cookie.")
        variant, model, _ = variant_model(st, vis)
        cat = model.recommender.catalog
        category = None
        if e.product_id in cat and cat.categories is not None:
            c = cat.record(cat.row_of(e.product_id)).get("category")
            category = None if c is None else str(c)
        status = st.attribution.check(
            e.request_id, e.type, vis, variant, e.product_id, exp.names, now=now,
            target_id=e.target_id, rank=e.rank, target_sig=e.target_sig)
        out.append(Event(
            event_id=e.event_id, type=e.type, experiment=exp.name, variant=variant,
            visitor=vis, request_id=e.request_id, product_id=e.product_id,
            target_id=e.target_id, rank=e.rank, category=category, client_ts=e.ts,
            received_at=now, status=status))
    res = await run_in_threadpool(st.store.add, out)
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
                st.metrics.quarantined.labels(ev.type, ev.variant, ev.status).inc()
        seen.add(ev.event_id)
        st.metrics.events.labels(ev.type, ev.variant, outcome).inc()
    return {"received": len(out), **res.as_dict(), "quarantined": quarantined}
