"""The web page, the experiment page and the offline API docs (not in the OpenAPI schema)."""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

import html
import importlib.util
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from prodfusion.service.schemas import EXPERIMENT_PATTERN

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


def _docs_assets() -> dict:
    if importlib.util.find_spec("swagger_ui_bundle") is None:  # FastAPI's CDN assets then
        return {}
    return {"swagger_js_url": "/docs-static/swagger-ui-bundle.js",
            "swagger_css_url": "/docs-static/swagger-ui.css",
            "swagger_favicon_url": "/docs-static/favicon-32x32.png"}


def mount_static(app) -> None:
    """Mount the page's files and (when installed) the local Swagger UI assets."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    try:
        import swagger_ui_bundle
    except ImportError:
        return
    app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="docs-static")


@router.get("/")
async def index(request: Request):
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    profile = request.app.state.settings.page_profile  # a checked name: no markup in it
    if profile:  # the second row's weighting profile, read by app.js
        page = page.replace("<body>", f'<body data-page-profile="{html.escape(profile)}">', 1)
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/experiments/{name}")
def experiment_page(request: Request,
                    name: Annotated[str, PathParam(pattern=EXPERIMENT_PATTERN)]):
    # A static page; its script reads the JSON report of the experiment named in the URL
    # (and says when there is none). An experiment the event store does not know is also a
    # 404 status, for anything that reads the status rather than the page.
    known = name == request.app.state.settings.experiment.name \
        or name in request.app.state.store.experiments()
    return HTMLResponse((STATIC_DIR / "experiment.html").read_text(encoding="utf-8"),
                        status_code=200 if known else 404,
                        headers={"Cache-Control": "no-cache"})


@router.get("/docs")
async def docs(request: Request):
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title="prodfusion API",
                               **_docs_assets())
