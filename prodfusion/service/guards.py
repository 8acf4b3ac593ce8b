"""Defences of the HTTP service against hostile or careless input, and what it may publish.

* :func:`parse_json_body` — JSON that is finite, not nested beyond :data:`MAX_JSON_DEPTH`,
  with ints of reasonable size; anything else is a :class:`BadBody` (HTTP 400).
* :func:`check_client_ts` — the optional client time of an event must be ISO 8601.
* :func:`redact_paths` — public responses never show absolute server paths; folders are
  named by their last component (logs keep the full paths).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import datetime

__all__ = ["BadBody", "parse_json_body", "MAX_JSON_DEPTH", "check_client_ts", "redact_paths",
           "is_clean_id"]

#: Deepest nesting of arrays/objects accepted in a request body (an event batch needs 3).
MAX_JSON_DEPTH = 32

#: Product ids in URLs and events: 1-200 characters, no control characters, no slash or
#: backslash, no U+FFFD (what a non-UTF-8 byte in a URL decodes to).
PRODUCT_ID_PATTERN = r"^[^\x00-\x1f\x7f/\\\ufffd]{1,200}$"
#: Visitor, event and request ids: 1-128 characters of letters, digits and ``_ . : -``.
TOKEN_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
#: Experiment names in URLs.
EXPERIMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

_ID_RE = re.compile(r"[^\x00-\x1f\x7f/\\\ufffd]{1,200}")


class BadBody(ValueError):
    """The request body is not acceptable JSON (the message says why; HTTP 400)."""


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise BadBody(f"number {text[:40]} is out of range (numbers must be finite)")
    return v


def _reject_constant(name: str):
    raise BadBody(f"{name} is not valid JSON (numbers must be finite)")


def _depth_ok(text: str, limit: int) -> int:
    """Largest nesting depth of brackets outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json_body(text: str, *, max_depth: int = MAX_JSON_DEPTH):
    """Parse a request body; raises :class:`BadBody` for anything the service refuses.

    >>> parse_json_body('{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> parse_json_body('[' * 40 + ']' * 40)
    Traceback (most recent call last):
    prodfusion.service.guards.BadBody: JSON nested deeper than 32 levels
    >>> parse_json_body('{"rank": 1e999}')
    Traceback (most recent call last):
    prodfusion.service.guards.BadBody: number 1e999 is out of range (numbers must be finite)
    """
    if _depth_ok(text, max_depth) > max_depth:
        raise BadBody(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except BadBody:
        raise
    except RecursionError:  # belt and braces; the depth check above comes first
        raise BadBody(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, and ints beyond Python's digit limit
        raise BadBody(f"The body is not valid JSON: {exc}") from None


def check_client_ts(value: str | None) -> str | None:
    """``value`` if it is an ISO 8601 date-time (``2024-06-02T10:11:12Z``, offsets allowed).

    >>> check_client_ts("2024-06-02T10:11:12.345Z")
    '2024-06-02T10:11:12.345Z'
    >>> check_client_ts("not a date")
    Traceback (most recent call last):
    ValueError: 'ts' must be an ISO 8601 date-time such as 2024-06-02T10:11:12Z; got 'not a date'
    """
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        t = None
    if t is None or not (1970 <= t.year <= 9999) or "T" not in value.upper():
        raise ValueError("'ts' must be an ISO 8601 date-time such as 2024-06-02T10:11:12Z; "
                         f"got {value[:64]!r}")
    return value


def is_clean_id(value: str) -> bool:
    """The product-id rule of the service, matched against the *whole* string (no ``$``
    loophole before a trailing newline)."""
    return _ID_RE.fullmatch(value) is not None


_ABS_PATH = re.compile(r"(?<![\w.:/])/[^\s'\"(),:;]+")


def redact_paths(text: str, known: Iterable[str] = ()) -> str:
    """Replace absolute paths in ``text`` by their last component.

    ``known`` paths (e.g. model folders) are replaced first, longest first, so a message that
    names ``/srv/models/2024-06-02/catalog.parquet`` becomes ``2024-06-02/catalog.parquet``.

    >>> redact_paths("model folder '/srv/m/2024-06-02', file 'catalog.parquet': bad", ["/srv/m/2024-06-02"])
    "model folder '2024-06-02', file 'catalog.parquet': bad"
    >>> redact_paths("cannot open /etc/passwd now")
    'cannot open passwd now'
    """
    for k in sorted({str(k) for k in known if k}, key=len, reverse=True):
        if k.startswith("/") and len(k) > 1:
            text = text.replace(k.rstrip("/"), k.rstrip("/").rsplit("/", 1)[-1] or "/")
    return _ABS_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)
