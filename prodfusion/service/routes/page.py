"""The web page, the experiment page and the offline API docs (not in the OpenAPI schema)."""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

import functools
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


@functools.cache
def _swagger_ui() -> Path | None:
    """The folder of a Swagger UI that renders OpenAPI 3.1 (what FastAPI writes), from the
    ``fastapi-offline`` package (Swagger UI 5; ``swagger-ui-bundle``'s 4.15 answers "Unable to
    render this definition"); None where it is not installed (FastAPI's CDN assets then)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _docs_assets(root: str) -> dict:
    if _swagger_ui() is None:
        return {}
    return {"swagger_js_url": f"{root}/docs-static/swagger-ui-bundle.js",
            "swagger_css_url": f"{root}/docs-static/swagger-ui.css",
            "swagger_favicon_url": f"{root}/docs-static/favicon.png"}


def _page(request: Request, name: str) -> str:
    """A static page with its ``<base>``: the pages' links are relative, so that behind a
    proxy's path prefix (``root_path``) they stay under it."""
    root = html.escape(request.app.state.settings.root_path, quote=True)
    page = (STATIC_DIR / name).read_text(encoding="utf-8")
    return page.replace("<head>", f'<head>\n  <base href="{root}/">', 1)


def mount_static(app) -> None:
    """Mount the page's files and (when installed) the local Swagger UI assets."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    swagger = _swagger_ui()
    if swagger is not None:
        app.mount("/docs-static", StaticFiles(directory=swagger), name="docs-static")


@router.get("/")
async def index(request: Request):
    page = _page(request, "index.html")
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
    return HTMLResponse(_page(request, "experiment.html"), status_code=200 if known else 404,
                        headers={"Cache-Control": "no-cache"})


@router.get("/docs")
async def docs(request: Request):
    root = request.app.state.settings.root_path
    return get_swagger_ui_html(openapi_url=root + request.app.openapi_url,
                               title="prodfusion API", **_docs_assets(root))
