"""FastAPI dependencies: settings, registries, the visitor → variant → model lookup.

Every route gets what it needs from here (``Depends``), reading only ``app.state``;
nothing reads the environment. The lookup of the model serving a visitor is written
once, in :func:`serve_visitor`.
"""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from prodfusion.service.schemas import TOKEN_PATTERN
from prodfusion.service.settings import ServiceSettings

__all__ = [
    "Served",
    "get_settings",
    "serve_visitor",
    "variant_model",
    "k_param",
    "exclude_param",
    "set_visitor_cookie",
    "error",
    "valid_cookie",
]

_TOKEN_RE = re.compile(TOKEN_PATTERN)


def error(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    """The service's error answer: ``{"detail": message, ...}``."""
    return JSONResponse({"detail": message, **extra}, status_code=status, headers=headers)


async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def valid_cookie(request: Request, settings: ServiceSettings) -> str | None:
    """The visitor cookie if well formed (a malformed cookie is no visitor id)."""
    cookie = request.cookies.get(settings.cookie_name)
    return cookie if cookie and _TOKEN_RE.match(cookie) else None


def variant_model(state: Any, visitor: str) -> tuple[str, Any, Any]:
    """``(variant, loaded model, variant config)`` of ``visitor`` under the app's allocation."""
    variant = state.allocation.variant_of(visitor)
    model, vcfg = state.registry.get(variant)
    return variant, model, vcfg


@dataclass(frozen=True)
class Served:
    """Who is asking and what serves them: the visitor, whether the id is new (set the
    cookie), their variant, its loaded model and its :class:`VariantConfig`."""

    visitor: str
    new: bool
    variant: str
    model: Any
    config: Any


async def serve_visitor(
    request: Request,
    visitor: Annotated[str | None, Query(pattern=TOKEN_PATTERN,
                                         description="default: the visitor cookie")] = None,
) -> Served:
    """The visitor (query, else cookie, else a new id) → variant → model lookup."""
    settings = request.app.state.settings
    new = False
    if not visitor:
        visitor = valid_cookie(request, settings)
        if visitor is None:
            visitor, new = uuid.uuid4().hex, True
    variant, model, vcfg = variant_model(request.app.state, visitor)
    request.state.variant = variant  # the metrics middleware labels the request with it
    return Served(visitor, new, variant, model, vcfg)


def set_visitor_cookie(response: Response, settings: ServiceSettings, visitor: str) -> None:
    response.set_cookie(settings.cookie_name, visitor, max_age=400 * 24 * 3600,
                        httponly=False, samesite="lax", secure=settings.cookie_secure)


def _invalid(kind: str, loc: str, msg: str, value: Any, ctx: dict) -> RequestValidationError:
    # Exactly what FastAPI answers when a bound given to Query() is broken.
    return RequestValidationError([{"type": kind, "loc": ("query", loc), "msg": msg,
                                    "input": value, "ctx": ctx}])


async def k_param(request: Request, k: Annotated[int | None, Query(ge=1)] = None) -> int:
    """``k`` in ``[1, max_k]`` of the settings (default: their ``default_k``)."""
    settings = request.app.state.settings
    if k is None:
        return settings.default_k
    if k > settings.max_k:
        raise _invalid("less_than_equal", "k",
                       f"Input should be less than or equal to {settings.max_k}",
                       request.query_params.get("k"), {"le": settings.max_k})
    return k


async def exclude_param(
    request: Request,
    exclude: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
) -> list[str]:
    """``exclude``: ids repeated (``exclude=a&exclude=b``) or comma-separated
    (``exclude=a,b``, as ``prodfusion similar --exclude a,b``); at most ten times ``max_k``."""
    exclude = [x for e in exclude for x in e.split(",") if x]
    n_max = request.app.state.settings.max_k * 10
    if len(exclude) > n_max:
        raise _invalid("too_long", "exclude",
                       f"List should have at most {n_max} items after validation, not "
                       f"{len(exclude)}", exclude,
                       {"field_type": "List", "max_length": n_max, "actual_length": len(exclude)})
    return exclude
