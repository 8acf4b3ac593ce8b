"""``GET /v1/experiments/{name}/report``: CTR and jump rate per variant and category."""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam

from prodfusion.service.deps import error
from prodfusion.service.report import experiment_report
from prodfusion.service.schemas import EXPERIMENT_PATTERN

router = APIRouter(tags=["experiments"])


@router.get("/v1/experiments/{name}/report",
            summary="CTR and jump rate per variant and category, with intervals and tests",
            responses={404: {"description": "unknown experiment"}})
def report(request: Request, name: Annotated[str, PathParam(pattern=EXPERIMENT_PATTERN)],
           alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05):
    exp = request.app.state.settings.experiment
    control = exp.control if name == exp.name else None
    rep = experiment_report(request.app.state.store, name, control=control, alpha=alpha)
    if rep is None:
        return error(404, f"No experiment {name!r} in the event store.")
    return rep
