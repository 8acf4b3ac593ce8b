"""When each product was on offer, by the catalog's own dates (``build --on-offer-cols
posted,sold_at``): the option's parsing and the columns' times, read as the log's are.
The windows they give (widened to every click) are
:func:`prodfusion.evaluation.split.on_offer_windows`'s."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from prodfusion.errors import DataError, ParameterError

__all__ = ["parse_on_offer_cols", "offer_times", "offer_cols_of", "suggest_on_offer_cols"]


def parse_on_offer_cols(spec: Any, where: str = "Recommender()") -> tuple[str | None, str | None] | None:
    """``on_offer_cols`` (CLI ``--on-offer-cols FROM[,UNTIL]``) as ``(from, until)`` column
    names, either ``None`` (not given): ``"posted,sold_at"``, ``("posted", "sold_at")``,
    ``"posted"`` (no end: a product leaves the offer when it is retired), ``",sold_at"``.
    None or empty: ``None``.

    >>> parse_on_offer_cols("posted, sold_at")
    ('posted', 'sold_at')
    >>> parse_on_offer_cols(",sold_at")
    (None, 'sold_at')
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    if not all(p is None or isinstance(p, str) for p in parts) or not 1 <= len(parts) <= 2:
        raise ParameterError(
            f"{where}: on_offer_cols (CLI: --on-offer-cols) takes FROM[,UNTIL]: the catalog "
            "columns of when each product went on offer and (optionally) when it left, e.g. "
            f"'posted,sold_at' or ',sold_at'; got {spec!r}.")
    names = [(p or "").strip() or None for p in parts] + [None]
    frm, until = names[0], names[1]
    if frm is None and until is None:
        raise ParameterError(f"{where}: on_offer_cols (CLI: --on-offer-cols) names no column "
                             f"({spec!r}); e.g. 'posted,sold_at'.")
    if frm is not None and frm == until:
        raise ParameterError(f"{where}: on_offer_cols (CLI: --on-offer-cols) names {frm!r} as "
                             "both the start and the end of the offer.")
    return frm, until


def offer_times(catalog: Any, cols: tuple[str | None, str | None], *,
                time_format: str | None = None, where: str = "build"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per catalog row, the times (seconds, ``NaN`` where not given) its columns ``cols``
    (:func:`parse_on_offer_cols`) say the product went on offer and left it, read as the
    log's times are (:func:`~prodfusion.data.interactions.column_times`). A column the
    catalog lacks, a time that does not read, an end before its start: refused."""
    from prodfusion.data.interactions import column_times

    frame, n = catalog.frame, len(catalog)
    out = []
    for col in cols:
        if col is None:
            out.append(np.full(n, np.nan))
            continue
        if col not in frame.columns:
            have = [c for c in frame.columns if not c.startswith("__")]
            raise ParameterError(
                f"--on-offer-cols: {catalog.source} has no column {col!r} (it has "
                f"{', '.join(map(repr, have))}); nothing was written.")
        out.append(column_times(frame, col, catalog.source, time_format))
    frm, until = out
    bad = np.flatnonzero(until < frm)  # NaN compares False
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{catalog.source} row {i + 1} ({catalog.ids[i]!r}): on offer until "
            f"{frame[cols[1]][i]!r} (column {cols[1]!r}), before it went on offer "
            f"({frame[cols[0]][i]!r}, column {cols[0]!r}); {len(bad):,} row(s) in all. "
            f"Check the two columns of --on-offer-cols ({where}).")
    return frm, until


#: Column names that look like when a listing went on offer, and when it left.
_START = ("posted", "created", "listed", "published", "start", "valid_from", "online_from",
          "available_from", "first_seen")
_END = ("sold", "ended", "end_", "expir", "closed", "removed", "deleted", "valid_to",
        "online_until", "available_until", "last_seen", "until")


def suggest_on_offer_cols(catalog: Any) -> tuple[str | None, str | None] | None:
    """The catalog's columns that look like ``--on-offer-cols`` (a name such as
    ``posted`` / ``created_at`` for the start, ``sold_at`` / ``expires`` for the end, whose
    values all read as times), or None: what a build that retires products suggests."""
    from prodfusion.data.interactions import column_times

    found: dict[str, str] = {}
    for col in catalog.frame.columns:
        name = col.lower()
        if col in ("product_id", "title", "image", "category", "group") or name.startswith("__"):
            continue
        kind = "end" if any(w in name for w in _END) else \
            "start" if any(w in name for w in _START) else None
        if kind is None or kind in found:
            continue
        try:
            t = column_times(catalog.frame, col, catalog.source)
        except (DataError, ParameterError):
            continue
        given = t[np.isfinite(t)]
        text = catalog.frame[col].cast(pl.Utf8, strict=False).str.strip_chars()
        text = text.filter(text.str.len_chars() > 0)
        numeric = text.cast(pl.Float64, strict=False).null_count() == 0
        if len(given) and (not numeric or given.min() > 1e8):  # numbers: Unix times only
            found[kind] = col
    if not found:
        return None
    return found.get("start"), found.get("end")


def offer_cols_of(rec: Any) -> tuple[str | None, str | None] | None:
    """``rec.on_offer_cols`` as ``(from, until)`` however it was set — also a
    ``"posted,sold_at"`` string assigned to a loaded model — or None."""
    return parse_on_offer_cols(getattr(rec, "on_offer_cols", None), "Recommender.on_offer_cols")
