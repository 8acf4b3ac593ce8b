"""Operations: liveness, readiness, Prometheus metrics."""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from prodfusion.service.deps import error
from prodfusion.service.metrics import prometheus_registry

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: every variant's model is loaded")
def readyz(request: Request):
    st = request.app.state
    reg = getattr(st, "registry", None)
    if reg is None or not reg.ready:
        return error(503, "models are not loaded yet")
    exp = st.settings.experiment
    return {
        "status": "ready",
        "experiment": exp.name,
        "variants": {v.name: {**reg.get(v.name)[0].describe(), "profile": v.profile,
                            "paper": v.paper}
                     for v in exp.variants},
        "reload_errors": {**reg.public_errors(), **st.lists.public_errors()},
        "lists": st.lists.describe(),
        "event_store": "ok" if st.store.ping() else "unavailable",
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def prometheus_metrics(request: Request):
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    st = request.app.state
    registry = prometheus_registry(st.metrics, st.multiproc_dir)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
