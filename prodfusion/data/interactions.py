"""Interaction logs: reading them (clicks, baskets, co-purchase pairs) and the paper's
session cleaning into :class:`~prodfusion.data.sessions.Sessions`.

Examples
--------
>>> import polars as pl
>>> log = pl.DataFrame({"session": ["s1", "s1", "s1", "s2", "s2", "s3"],
...                     "product_id": ["a", "a", "b", "c", "a", "b"],
...                     "ts": [3.0, 1.0, 2.0, 5.0, 6.0, 1.0]})
>>> sessions = clean_sessions(log)
>>> list(sessions)
[['a', 'b', 'a'], ['c', 'a']]
>>> sessions.report.n_short_dropped
1
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from prodfusion._checks import check_int
from prodfusion.data.catalog import ALIASES, ID, check_catalog
from prodfusion.data.io import first_bad_row, missing_column_error
from prodfusion.data.sessions import (
    _FRAME_SCHEMA,
    KEY_SEPARATOR,
    POSITION,
    ROW,
    SESSION,
    TS,
    SessionReport,
    Sessions,
)
from prodfusion.data.tables import blank as _blank
from prodfusion.data.tables import (
    blank_rows,
    is_remote,
    is_table,
    read_table,
    source_name,
    table_kind,
)
from prodfusion.errors import DataError, ParameterError, param_error

logger = logging.getLogger("prodfusion.data")

if TYPE_CHECKING:
    from prodfusion.data.catalog import Catalog

__all__ = ["read_interactions", "read_pairs", "clean_sessions", "split_at_gaps",
           "parse_duration", "parse_keep_rows", "format_twins"]

_TZ_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z",
               "%Y-%m-%d %H:%M%z")
_NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M",
                  "%Y-%m-%d %H:%M")


#: Rows of the i-th of several interaction files are numbered i · 2⁴⁰ + (data row), so
#: "source row" order is file order, then row order (read_interactions, prepare_corpus).
ROW_STRIDE = 1 << 40
#: What a folder of interaction files is read for (sorted by name).
SOURCE_SUFFIXES = tuple(e + c for e in (".csv", ".tsv", ".txt", ".parquet", ".jsonl", ".ndjson")
                        for c in ("", ".gz", ".bz2", ".xz") if not (e == ".parquet" and c))


def interaction_files(paths, where: str = "read_interactions()") -> list[Path]:
    """Files, in the given order; a folder stands for its interaction files, sorted by name
    (also one in object storage, ``s3://shop-data/clicks/``); a table in memory
    (:func:`~prodfusion.data.tables.is_table`) stays as it is."""
    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.data.storage import is_object_uri, list_objects

    if isinstance(paths, (str, os.PathLike)) or is_table(paths):
        paths = [paths]
    out: list = []
    for given in paths:
        if is_object_uri(given):  # s3://bucket/clicks/: a folder's files, else the object
            try:
                listed = list_objects(given, SOURCE_SUFFIXES)
            except PhotoFetchError as e:
                raise DataError(f"{given.strip()}: cannot be listed ({e}).") from None
            if listed == []:
                raise DataError(f"{given.strip()}: folder holds no interaction file "
                                f"({', '.join(SOURCE_SUFFIXES)}).")
            out.extend(listed or [given])
            continue
        if is_table(given) or is_remote(given):  # read as they are (a URL: downloaded)
            out.append(given)
            continue
        p = Path(given)
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and f.name.lower().endswith(SOURCE_SUFFIXES))
            if not found:
                raise DataError(f"{p}: folder holds no interaction file "
                                f"({', '.join(SOURCE_SUFFIXES)}).")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such interaction file or folder.")
    if not out:
        raise DataError(f"{where}: no interaction file given.")
    return out


# --------------------------------------------------------------------------- reading
def _columns(value: str | Sequence[str] | None, option: str, where: str) -> list[str]:
    """``"a,b"`` or ``("a", "b")`` -> ``["a", "b"]``."""
    if value is None:
        return []
    if isinstance(value, str):
        cols = [c.strip() for c in value.split(",")]
    elif isinstance(value, Sequence) and all(isinstance(c, str) for c in value):
        cols = list(value)
    else:
        cols = []
    if not cols or any(not c for c in cols):
        raise param_error(option, where, "a column name or a sequence of column names", value)
    return cols


def _require(frame: pl.DataFrame, path: Path, cols: list[str], option: str) -> None:
    for c in cols:
        if c not in frame.columns:
            raise missing_column_error(path, c, option, list(frame.columns))


def _bad_row(frame: pl.DataFrame, mask: pl.Series) -> tuple[int, int, int]:
    """:func:`first_bad_row` in a frame that may have left rows out (its ``_FILE_ROW``
    column numbers the file's rows): (the file's row, the frame's 1-based position, how
    many)."""
    pos, n = first_bad_row(mask)
    return (int(frame[_FILE_ROW][pos - 1]) if n else 0), pos, n


def _kind_hint(frame: pl.DataFrame, bad: pl.Series, used: Sequence[str]) -> str:
    """Where the rows failing a check are all of other kinds than the rest by some column of
    few values that the reading does not use (``event`` = ``transaction`` where the views
    have times): a sentence naming ``keep_rows``; else ``""``."""
    if bad.all():
        return ""
    for other in frame.columns:
        if other in used or other == _FILE_ROW:
            continue
        values = frame[other].cast(pl.Utf8).str.strip_chars()
        if values.n_unique() > 50:
            continue
        theirs, ours = set(values.filter(bad).to_list()), set(values.filter(~bad).to_list())
        if theirs.isdisjoint(ours) and None not in theirs | ours:
            fmt = ", ".join(repr(v) for v in sorted(theirs))
            keep = ",".join(sorted(ours)[:4]) + (",…" if len(ours) > 4 else "")
            return (f" These rows all hold {fmt} in column {other!r}, which no other row "
                    f"does: read the others alone with keep_rows= (--keep-rows "
                    f"{other}={keep} on the command line).")
    return ""


def _check_not_blank(frame: pl.DataFrame, path: Path, col: str, what: str, todo: str,
                     used: Sequence[str] = ()) -> None:
    """Refuse an empty cell of ``col``; ``used``: the columns the reading uses (not offered
    as a kind of row to leave out)."""
    bad = frame.select(_blank(col)).to_series()
    row, _, n = _bad_row(frame, bad)
    if n:
        raise DataError(f"{path} row {row}: empty {what} (column {col!r}; {n} row(s) in all). "
                        f"{todo}{_kind_hint(frame, bad, [col, *used])}")


#: Day-first, month-first and slashed layouts :func:`_time_seconds` tries on a column it
#: cannot read as numbers or ISO times, to suggest a ``time_format`` (never applied unasked:
#: ``01/02/2023`` is January or February depending on the country).
_SUGGESTED_FORMATS = tuple(
    d + t for d in ("%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d")
    for t in (" %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", "T%H:%M:%S", ""))


def _parse_times(text: pl.Series, time_format: str) -> pl.Series:
    """Microseconds since 1970 (UTC where the format has no offset) of ``text`` read with a
    strptime-style ``time_format``; null where a value does not match."""
    if any(c in time_format for c in ("%H", "%I", "%M", "%S", "%T", "%R", "%c", "%s")):
        return text.str.to_datetime(time_format, strict=False, time_unit="us").dt.epoch("us")
    return text.str.to_date(time_format, strict=False).cast(pl.Datetime("us")).dt.epoch("us")


def _format_hint(text: pl.Series) -> str:
    """``" It reads with --time-format '…' (time_format= in Python)."`` naming the layouts of
    :data:`_SUGGESTED_FORMATS` that read every value of ``text`` (its first 2,000), or ``""``."""
    sample = text.head(2000)
    fits = [f for f in _SUGGESTED_FORMATS if _parse_times(sample, f).null_count() == 0]
    if not fits:
        return ""
    said = " or ".join(repr(f) for f in fits[:3])
    which = (" (the day or the month first: which one your file means only you know)"
             if len(fits) > 1 else "")
    return f" It reads with --time-format {said}{which} (time_format= in Python)."


def _time_seconds(frame: pl.DataFrame, col: str, path: Path, used: Sequence[str] = (),
                  time_format: str | None = None) -> pl.Series:
    """One time column as Float64: numbers as given, ISO dates/datetimes as Unix seconds (UTC);
    with ``time_format``, every value read with that strptime-style format."""
    _check_not_blank(frame, path, col, "time value", "Fill it in, or leave out the time column.",
                     used)
    text = frame[col].str.strip_chars()
    if time_format:
        try:
            micros = _parse_times(text, time_format)
        except pl.exceptions.PolarsError as e:  # a format polars cannot use at all
            raise ParameterError(
                f"time_format {time_format!r} (--time-format): not a usable strptime format "
                f"({str(e).splitlines()[0][:200]}); e.g. '%d.%m.%Y %H:%M'.") from None
        row, pos, n = _bad_row(frame, micros.is_null())
        if n:
            raise DataError(
                f"{path} row {row}: time {frame[col][pos - 1]!r} does not match --time-format "
                f"{time_format!r} (column {col!r}; {n} row(s) in all).{_format_hint(text)}")
        return (micros.cast(pl.Float64) / 1e6).alias(col)
    numbers = text.cast(pl.Float64, strict=False)
    if numbers.null_count() == 0:
        row, pos, n = _bad_row(frame, ~numbers.is_finite())
        if n:
            raise DataError(
                f"{path} row {row}: time {frame[col][pos - 1]!r} is not a finite number "
                f"(column {col!r}). Use finite numbers or ISO dates."
            )
        return numbers
    # ISO, and its year-first slashed form (2023/01/02 10:00, as Japanese, Chinese and
    # Korean systems write it: never read month or day first, so nothing to choose)
    iso = text.str.replace(r"Z$", "+00:00").str.replace(
        r"^(\d{4})/(\d{1,2})/(\d{1,2})($|[ T])", "${1}-${2}-${3}${4}").alias(col)
    attempts = [iso.str.to_datetime(f, strict=False, time_unit="us").dt.epoch("us")
                for f in _TZ_FORMATS + _NAIVE_FORMATS]
    attempts.append(iso.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.epoch("us"))
    micros = pl.select(pl.coalesce(attempts)).to_series()
    row, pos, n = _bad_row(frame, micros.is_null() & numbers.is_null())
    if n:
        raise DataError(
            f"{path} row {row}: cannot read time {frame[col][pos - 1]!r} (column {col!r}; {n} "
            f"row(s) in all). Use numbers (e.g. Unix seconds) or ISO dates/datetimes such as "
            f"2016-05-09 or 2016-05-09T10:00:00 (or 2016/05/09 10:00), or name the layout "
            f"with --time-format (time_format=).{_format_hint(text)}"
        )
    row, pos, n = _bad_row(frame, micros.is_null())
    if n:
        date_pos = int(micros.is_not_null().arg_true()[0])
        date_row = int(frame[_FILE_ROW][date_pos])
        raise DataError(
            f"{path} row {row}: time {frame[col][pos - 1]!r} is a number but row {date_row} holds "
            f"the date {frame[col][date_pos]!r} (column {col!r}). Use one kind of time in "
            f"the whole column."
        )
    return (micros.cast(pl.Float64) / 1e6).alias(col)


def column_times(frame: pl.DataFrame, col: str, source: str, time_format: str | None = None):
    """A catalog column of times as float64 seconds per row, ``NaN`` where blank (a listing
    still on sale has no end): read as the log's time column is (numbers as given, ISO
    dates and datetimes as Unix seconds, UTC where naive; with ``time_format``, that
    strptime-style layout, or, where the column does not follow it, numbers or ISO), so the
    two compare. A value that does not read is refused naming its row (1-based, as the
    file's data rows) and ``source``."""
    import numpy as np

    s = frame[col]
    if s.dtype in (pl.Datetime, pl.Date) or isinstance(s.dtype, pl.Datetime):
        micros = s.cast(pl.Datetime("us")).dt.epoch("us")
        return (micros.cast(pl.Float64) / 1e6).fill_null(float("nan")).to_numpy()
    if s.dtype.is_numeric():
        return s.cast(pl.Float64).fill_null(float("nan")).to_numpy()
    text = s.cast(pl.Utf8)
    given = frame.select(~_blank(col)).to_series() if s.dtype == pl.Utf8 \
        else text.is_not_null()
    out = np.full(len(s), np.nan)
    if not given.any():
        return out
    sub = pl.DataFrame({col: text.filter(given),
                        _FILE_ROW: pl.int_range(1, len(s) + 1, eager=True).filter(given)})
    try:
        read = _time_seconds(sub, col, source, time_format=time_format)
    except DataError:
        if not time_format:
            raise
        try:  # the log's layout, but the catalog's own export writes ISO dates or numbers
            read = _time_seconds(sub, col, source)
        except DataError:
            raise DataError(f"{source}: column {col!r} reads neither with --time-format "
                            f"{time_format!r} (the log's) nor as numbers or ISO dates; e.g. "
                            f"row {int(sub[_FILE_ROW][0])}: {sub[col][0]!r}.") from None
    out[given.to_numpy()] = read.to_numpy()
    return out


def _finish(frame: pl.DataFrame, session: pl.Expr, item: str, ts: pl.Series | None) -> pl.DataFrame:
    return frame.select(
        session.cast(pl.Utf8).alias(SESSION),
        pl.col(item).cast(pl.Utf8).alias(ID),
        (pl.lit(ts) if ts is not None else pl.lit(None, dtype=pl.Float64)).alias(TS),
        pl.col(_FILE_ROW).alias(ROW),
    )


# --------------------------------------------------------------------------- rows kept
#: The file's own 1-based data row, numbered before any row is left out.
_FILE_ROW = "__prodfusion_row"
_KEEP_EXPECTED = ("a mapping of column -> value(s) to keep, or 'COLUMN=VALUE[,VALUE...]' "
                  "strings (e.g. 'event=view,addtocart')")


def parse_keep_rows(spec, where: str = "read_interactions()", name: str = "keep_rows"
                    ) -> dict[str, list[str]]:
    """``keep_rows`` as ``{column: [values]}``: from a mapping (a value or a list of values
    per column) or from ``"COLUMN=VALUE[,VALUE…]"`` strings (one per column, as the CLI's
    ``--keep-rows`` takes them). None or empty: ``{}`` (every row). ``name``: the option
    named in errors (``recommend_rows`` reads the same way).

    >>> parse_keep_rows(["event=view,addtocart", "country = de"])
    {'event': ['view', 'addtocart'], 'country': ['de']}
    >>> parse_keep_rows({"event": "view"})
    {'event': ['view']}
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = [spec]
    pairs: list[tuple[object, object]] = []
    if isinstance(spec, dict):
        pairs = list(spec.items())
    elif isinstance(spec, Sequence):
        for item in spec:
            col, eq, values = item.partition("=") if isinstance(item, str) else ("", "", "")
            if not eq:
                raise param_error(name, where, _KEEP_EXPECTED, item)
            pairs.append((col.strip(), values.split(",")))
    else:
        raise param_error(name, where, _KEEP_EXPECTED, spec)
    out: dict[str, list[str]] = {}
    for col, values in pairs:
        vals = [values] if isinstance(values, (str, int, float)) else values
        if not isinstance(vals, Sequence) or isinstance(vals, str):
            raise param_error(name, where, _KEEP_EXPECTED, spec)
        vals = [str(v).strip() for v in vals]
        if not isinstance(col, str) or not col or not vals or any(v == "" for v in vals):
            raise param_error(name, where, "a column name and at least one non-empty "
                              "value for each column", spec)
        if col in out:
            raise param_error(name, where, "each column once (list its values "
                              "together: 'event=view,addtocart')", spec)
        out[col] = list(dict.fromkeys(vals))
    return out


def format_keep_rows(keep: dict | None, option: str | None = "--keep-rows") -> str:
    """``keep_rows`` written back as typed: ``{"event": ["view", "cart"]}`` ->
    ``"--keep-rows event=view,cart"`` (one option per column; ``"--keep-rows all"`` for
    none), or ``"event=view,cart"`` without ``option``.

    >>> format_keep_rows({"event": ["view", "cart"], "country": ["de"]})
    '--keep-rows event=view,cart --keep-rows country=de'
    """
    if not keep:
        return f"{option} all" if option else "all"
    return " ".join((f"{option} " if option else "") + f"{c}={','.join(v)}"
                    for c, v in keep.items())


def _keep(frame: pl.DataFrame, keep: dict[str, list[str]]
          ) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """The rows whose value in each column of ``keep`` is one of its values (compared as
    text, spaces around ignored), and how often each value of those columns occurred."""
    seen = {}
    mask = pl.lit(True)
    for col, values in keep.items():
        text = pl.col(col).cast(pl.Utf8).str.strip_chars()
        counts = frame.select(text.alias("v")).group_by("v").len()
        seen[col] = {("" if v is None else v): int(n) for v, n in counts.iter_rows()}
        mask = mask & text.is_in(values)
    return frame.filter(mask), seen


def check_kept(keep: dict[str, list[str]], seen: dict[str, dict[str, int]], n_read: int,
               n_kept: int, source: str) -> None:
    """After ``keep_rows``: an error when no row is left, a warning for a value that no row
    holds (a typo or another case: ``View`` for ``view``); both list what the column holds."""
    def holds(col: str) -> str:
        top = sorted(seen.get(col, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{v!r} ({n:,})" for v, n in top[:8])
        more = f", and {len(top) - 8:,} more value(s)" if len(top) > 8 else ""
        return f"column {col!r} holds {shown}{more}"

    spec = format_keep_rows(keep, option=None)
    if n_read and not n_kept:
        raise DataError(
            f"{source}: keep_rows ({spec}) kept none of the {n_read:,} rows; "
            + "; ".join(holds(c) for c in keep)
            + ". Values are compared as exact text (CLI: --keep-rows COLUMN=VALUE[,VALUE...]).")
    for col, values in keep.items():
        absent = [v for v in values if v not in seen.get(col, {})]
        if absent:
            logger.warning("%s: keep_rows %s=%s: no row holds %s; %s.", source, col,
                           ",".join(values), ", ".join(map(repr, absent)), holds(col))


def _merge_seen(total: dict[str, dict[str, int]], part: dict[str, dict[str, int]]) -> None:
    for col, counts in part.items():
        into = total.setdefault(col, {})
        for v, n in counts.items():
            into[v] = into.get(v, 0) + n


def read_interactions(
    path,
    *,
    session_cols: str | Sequence[str] = ("session_id",),
    item_col: str = ID,
    time_col: str | Sequence[str] | None = None,
    sep: str | None = None,
    fmt: str | None = None,
    keep_rows=None,
    time_format: str | None = None,
    encoding: str | None = None,
) -> pl.DataFrame:
    """Read a click/purchase log, one interaction per row.

    Parameters
    ----------
    path : str, Path, a table in memory, or a sequence of them
        CSV/TSV/TXT (separator from ``sep`` or guessed from the header), Parquet or JSON Lines;
        a folder stands for its interaction files sorted by name (e.g. one per day), and
        several files are read one after the other with the same options: a session key in
        several files is one session, and ``row`` counts on across files (file ``i``'s rows
        offset by ``i`` · 2⁴⁰, :data:`ROW_STRIDE`). A pandas or polars DataFrame or a
        pyarrow Table is read as such a file would be (its rows numbered from 1 in messages;
        datetime columns are times; :func:`~prodfusion.data.tables.read_table`).
    session_cols : str or sequence of str
        Column(s) whose values together identify a session; ``"customer_id,t_dat"`` (or a
        tuple) makes one session per customer-day. Values are joined with ``"\\x1f"``.
    item_col : str
        Column holding the product id (read as an exact string).
    time_col : str or sequence of str, optional
        Column(s) giving the order of events. One column: numbers are kept as they are,
        ISO dates/datetimes (also year-first with slashes, ``2023/01/02 10:00``) become
        Unix seconds (UTC when no offset is given). Several
        columns (``"eventdate,timeframe"``): compared lexicographically, and ``ts`` is the
        dense rank of that order (an ordinal, not seconds). None: ``ts`` is null and the file
        order decides.
    time_format : str, optional
        A strptime-style layout for the time column(s) when they are neither numbers nor ISO,
        e.g. ``"%d.%m.%Y %H:%M"`` or ``"%m/%d/%Y %I:%M %p"`` (UTC unless it reads an offset,
        ``%z``). Without it such a column is refused, naming the layouts that would read it.
    sep : str, optional
        Separator of delimited text.
    fmt : {'csv', 'tsv', 'parquet', 'jsonl', 'xml'}, optional
        Overrides the format guessed from the extension.
    encoding : str, optional
        The files' text encoding when it is not UTF-8, e.g. ``"cp1252"`` for a log exported
        on Windows in Western Europe (session keys such as ``Müller``);
        :func:`~prodfusion.data.tables.read_table`.
    keep_rows : mapping or sequence of str, optional
        Only the rows whose value in each named column is one of the given values, e.g.
        ``{"event": ["view", "addtocart"]}`` or ``["event=view,addtocart"]`` for a log that
        mixes event types (:func:`parse_keep_rows`); values compared as text. Left-out rows
        are not checked (a purchase row may lack a time). No row left: a
        :class:`~prodfusion.errors.DataError` listing the column's values; a value no row
        holds: a warning listing them.

    Returns
    -------
    polars.DataFrame
        Columns ``session`` (Utf8), ``product_id`` (Utf8), ``ts`` (Float64 or null) and ``row``
        (Int64, the 1-based data row of the file, counted before ``keep_rows``), in file order.

    Raises (besides the below) a :class:`~prodfusion.errors.ParameterError` for several time
    columns over several files (their ranks are per file).

    Raises
    ------
    DataError
        Missing/unreadable file, non-UTF-8 bytes, missing columns, empty session keys, item ids
        or times, unreadable times; the message names the file, row and column.

    Examples
    --------
    DIGINETICA views and H&M baskets (one per customer and day)::

        views = read_interactions("train-item-views.sample.csv", session_cols="session_id",
                                  item_col="item_id", time_col="eventdate,timeframe")
        baskets = read_interactions("transactions.csv", session_cols=("customer_id", "t_dat"),
                                    item_col="article_id", time_col="t_dat")
    """
    return read_interactions_counted(path, session_cols=session_cols, item_col=item_col,
                                     time_col=time_col, sep=sep, fmt=fmt,
                                     keep_rows=keep_rows, time_format=time_format,
                                     encoding=encoding)[0]


def read_interactions_counted(path, *, session_cols=("session_id",), item_col: str = ID,
                              time_col=None, sep: str | None = None, fmt: str | None = None,
                              keep_rows=None, time_format: str | None = None,
                              encoding: str | None = None) -> tuple[pl.DataFrame, int]:
    """:func:`read_interactions` and how many rows the files held (before ``keep_rows``)."""
    where = "read_interactions()"
    keep = parse_keep_rows(keep_rows, where)
    files = interaction_files(path, where)
    if len(files) > 1 and len(_columns(time_col, "time_col", where)) > 1:
        raise param_error("time_col", where, "one column when there are several "
                          "interaction files (several columns are ranked per file)", time_col)
    frames, seen, n_read = [], {}, 0
    for i, f in enumerate(files):
        frame, counts, n = read_interaction_file(
            f, session_cols=session_cols, item_col=item_col, time_col=time_col, sep=sep,
            fmt=fmt, keep_rows=keep, time_format=time_format, encoding=encoding)
        frames.append(frame.with_columns(pl.col(ROW) + i * ROW_STRIDE) if i else frame)
        _merge_seen(seen, counts)
        n_read += n
    out = frames[0] if len(frames) == 1 else pl.concat(frames)
    if keep:
        check_kept(keep, seen, n_read, out.height,
                   str(source_name(files[0])) if len(files) == 1 else f"{len(files)} interaction files")
    return out, n_read


def read_interaction_file(
    path: str | Path, *, session_cols, item_col: str, time_col=None, sep: str | None = None,
    fmt: str | None = None, keep_rows: dict[str, list[str]] | None = None,
    time_format: str | None = None, encoding: str | None = None,
) -> tuple[pl.DataFrame, dict[str, dict[str, int]], int]:
    """One file of :func:`read_interactions` (``keep_rows`` already parsed, not checked):
    the frame, how often each value of the ``keep_rows`` columns occurred, and the rows read
    (before ``keep_rows``). For readers that check ``keep_rows`` over many files at once
    (:func:`check_kept`), such as the corpus's workers."""
    where = "read_interactions()"
    source, path = path, source_name(path)
    scols = _columns(session_cols, "session_cols", where)
    icol = _columns(item_col, "item_col", where)
    if len(icol) != 1:
        raise param_error("item_col", where, "one column name", item_col)
    tcols = _columns(time_col, "time_col", where)
    frame = read_table(source, fmt=fmt, sep=sep, where=where, encoding=encoding)
    _require(frame, path, scols, "session_cols")
    _require(frame, path, icol, "item_col")
    _require(frame, path, tcols, "time_col")
    _require(frame, path, list(keep_rows or ()), "keep_rows")
    n_read = frame.height
    frame = frame.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(_FILE_ROW))
    empty = blank_rows(frame.drop(_FILE_ROW))
    if empty.any():  # an empty line between rows: not an interaction (its row numbers stay)
        logger.warning("%s: %s empty line(s) skipped (first: data row %d).", path,
                       f"{int(empty.sum()):,}", int(frame[_FILE_ROW][int(empty.arg_true()[0])]))
        frame = frame.filter(~empty)
    seen: dict[str, dict[str, int]] = {}
    if keep_rows:
        frame, seen = _keep(frame, keep_rows)
    used = [*scols, *icol, *tcols]  # not offered as a kind of row to leave out
    for c in scols:
        _check_not_blank(frame, path, c, "session key", "Fill it in or remove the row.",
                         used)
    _check_not_blank(frame, path, icol[0], "product id", "Fill it in or remove the row.", used)
    ts: pl.Series | None = None
    if len(tcols) == 1:
        ts = _time_seconds(frame, tcols[0], path, used, time_format)
    elif tcols:
        parts = pl.DataFrame([_time_seconds(frame, c, path, used, time_format).alias(f"t{i}")
                              for i, c in enumerate(tcols)])
        ts = parts.select(pl.struct(parts.columns).rank("dense").cast(pl.Float64)).to_series()
    key = pl.col(scols[0]) if len(scols) == 1 else pl.concat_str(scols, separator=KEY_SEPARATOR)
    return _finish(frame, key, icol[0], ts), seen, n_read


def read_pairs(
    path: str | Path, *, a_col: str, b_col: str, sep: str | None = None, fmt: str | None = None,
    encoding: str | None = None,
) -> pl.DataFrame:
    """Read product pairs (co-purchases, co-views) as two-click sessions ``[a, b]``.

    Parameters
    ----------
    path : str, Path or a table in memory
        Table with one pair per row (a file, or a pandas / polars DataFrame).
    a_col, b_col : str
        Columns of the first and second product id.
    sep, fmt, encoding : optional
        As in :func:`read_interactions`.

    Returns
    -------
    polars.DataFrame
        Same columns as :func:`read_interactions`: data row ``r`` becomes session ``"r"`` with
        ``a`` then ``b`` (both with ``row = r`` and a null ``ts``).

    Examples
    --------
    ::

        pairs = read_pairs("copurchase.csv", a_col="article_id", b_col="partner_article_id")
    """
    where = "read_pairs()"
    source, path = path, source_name(path)
    for name, value in (("a_col", a_col), ("b_col", b_col)):
        if not isinstance(value, str) or not value:
            raise param_error(name, where, "a column name", value)
    frame = read_table(source, fmt=fmt, sep=sep, where=where, encoding=encoding)
    _require(frame, path, [a_col], "a_col")
    _require(frame, path, [b_col], "b_col")
    frame = frame.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(_FILE_ROW))
    for c in (a_col, b_col):
        _check_not_blank(frame, path, c, "product id", "Fill it in or remove the row.",
                         (a_col, b_col))
    key = pl.int_range(1, pl.len() + 1).cast(pl.Utf8)
    a = _finish(frame, key, a_col, None)
    b = _finish(frame, key, b_col, None)
    return pl.concat([a, b]).sort(ROW, maintain_order=True)


# --------------------------------------------------------------------------- sessions at pauses
_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
#: Numeric times at or above these magnitudes are read as ms, µs, ns since the epoch when
#: pauses are measured (Unix seconds reach 1e11 in the year 5138).
_EPOCH_UNITS = ((1e17, 1e9, "nanoseconds"), (1e14, 1e6, "microseconds"),
                (1e11, 1e3, "milliseconds"))


def parse_duration(value: str | float | int, name: str = "session_gap",
                   where: str = "clean_sessions()") -> float:
    """A pause as seconds: a number (seconds) or a number with a unit ``s``, ``m``/``min``,
    ``h``, ``d``; it must be positive.

    >>> parse_duration("30m"), parse_duration("1.5h"), parse_duration(90), parse_duration("2d")
    (1800.0, 5400.0, 90.0, 172800.0)
    """
    expected = "a positive duration: seconds, or a number with s, m, h or d (e.g. 30m)"
    if isinstance(value, str):
        text = value.strip().lower()
        unit = text.lstrip("0123456789.").strip()
        number = text[: len(text) - len(text.lstrip("0123456789."))]
        if unit not in _UNITS and unit != "":
            raise param_error(name, where, expected, value)
        try:
            seconds = float(number) * _UNITS.get(unit, 1.0)
        except ValueError:
            raise param_error(name, where, expected, value) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise param_error(name, where, expected, value)
    if not 0 < seconds < float("inf"):
        raise param_error(name, where, expected, value)
    return seconds


def _time_unit(ts: pl.Series) -> tuple[float, str]:
    """``(divisor to seconds, unit name)`` of numeric times, from their magnitude."""
    top = ts.abs().max()
    for low, div, unit in _EPOCH_UNITS:
        if top is not None and top >= low:
            return div, unit
    return 1.0, "seconds"


def _pause(div: float) -> pl.Expr:
    """Seconds since the previous click of the same session key, on a frame ordered by key
    then time (null at a key's first click or where a time is missing); ``div``: the times'
    unit in seconds (:func:`_time_unit`)."""
    return (pl.when(pl.col(SESSION) == pl.col(SESSION).shift(1))
            .then(pl.col(TS) - pl.col(TS).shift(1)) / div)


def split_at_gaps(interactions: pl.DataFrame, session_gap: str | float,
                  where: str = "clean_sessions()") -> tuple[pl.DataFrame, int, str]:
    r"""Cut each session key's clicks where they pause longer than ``session_gap``: the
    sessions of a log keyed by visitor (a cookie, a device) rather than by visit.

    Clicks are ordered by ``ts`` then ``row`` within a key; a click more than
    ``session_gap`` (:func:`parse_duration`) after the key's previous one starts a new
    session, keyed ``<key>\x1f#2``, ``#3``, … (the first keeps ``<key>``). Times are seconds
    (ISO datetimes are read as such); numeric times of 1e11 or more are taken as
    milliseconds, of 1e14 or more as microseconds, of 1e17 or more as nanoseconds since the
    epoch. Rows without a time (e.g. co-purchase pairs mixed in) never start a session.
    Several time columns give ``ts`` as a rank, not a time: pauses cannot be measured then.

    Returns the frame in its row order with the ``session`` column rewritten, the number of
    sessions added, and the unit the times were read in.

    >>> log = pl.DataFrame({"session": ["v1"] * 4 + ["v2"], "product_id": list("abcde"),
    ...                     "ts": [0.0, 600.0, 9000.0, 9060.0, 5.0]})
    >>> out, added, unit = split_at_gaps(log, "30m")
    >>> out["session"].to_list(), added, unit
    (['v1', 'v1', 'v1\x1f#2', 'v1\x1f#2', 'v2'], 1, 'seconds')
    """
    gap = parse_duration(session_gap, "session_gap", where)
    if TS not in interactions.columns or interactions[TS].null_count() == interactions.height:
        raise ParameterError(
            f"{where}: session_gap needs the clicks' times, and the interactions have none. "
            "Read the log with a time column (CLI: --time-col; one column of Unix times or ISO "
            "datetimes), or leave session_gap out.")
    div, unit = _time_unit(interactions[TS].cast(pl.Float64))
    order = [SESSION, TS] + ([ROW] if ROW in interactions.columns else [])
    df = interactions.with_row_index("_i").sort(order, nulls_last=True)
    new = (_pause(div) > gap).fill_null(False)
    df = df.with_columns(new.cast(pl.Int64).alias("_new"))
    added = int(df["_new"].sum())
    if added:
        piece = pl.col("_new").cum_sum().over(SESSION)
        df = df.with_columns(
            pl.when(piece == 0).then(pl.col(SESSION))
            .otherwise(pl.col(SESSION) + pl.lit(KEY_SEPARATOR + "#") + (piece + 1).cast(pl.Utf8))
            .alias(SESSION))
    return df.sort("_i").drop("_i", "_new"), added, unit


def long_pauses(sessions: Sessions, over: float = 3600.0) -> tuple[int, float]:
    """``(sessions holding a pause of more than over seconds between two clicks, the longest
    pause in seconds)``: a log cleaned with visit ids has none (a site ends a visit after
    about 30 idle minutes), one keyed by visitor has many. Times as :func:`split_at_gaps`
    reads them; ``(0, 0.0)`` without times.

    >>> s = Sessions.from_lists([["a", "b"], ["c", "d"]])
    >>> long_pauses(s)
    (0, 0.0)
    """
    f = sessions.frame
    if f.height == 0 or f[TS].null_count() == f.height:
        return 0, 0.0
    div, _ = _time_unit(f[TS])
    out = f.select(SESSION, _pause(div).alias("gap"))
    n = out.filter(pl.col("gap") > over)[SESSION].n_unique()
    return int(n), float(out["gap"].max() or 0.0)


def warn_long_pauses(pauses: tuple[int, float], n_sessions: int,
                     keys: str = "the session key", share: float = 0.05) -> None:
    """A warning when ``share`` or more of ``n_sessions`` sessions hold a pause of over an
    hour (``pauses``: :func:`long_pauses`' count and longest pause, summed over the parts of
    a log cleaned in parts): their key probably names a visitor, not a visit. For times read
    as times (one time column), not ranks."""
    n, top = pauses
    if not n or n < share * n_sessions:
        return
    span = f"{top / 86400:.0f} days" if top >= 2 * 86400 else f"{top / 3600:.0f} hours"
    logger.warning(
        f"{n:,} of {n_sessions:,} sessions ({n / n_sessions:.0%}) hold a pause of over "
        f"an hour between two clicks (the longest {span}): {keys} looks like a visitor's, not "
        "one visit's, and Prod2Vec and cooc would learn transitions across visits. Cut each "
        "key's clicks at pauses with session_gap (CLI: --session-gap 30m).")


def warn_capped(report: SessionReport, max_length: int | None) -> None:
    """A warning when the length cap cut a tenth or more of the clicks: the session key
    probably names a visitor (months of clicks), not a visit."""
    kept = report.n_clicks + report.n_capped_clicks
    if not report.n_capped_clicks or 10 * report.n_capped_clicks < kept:
        return
    logger.warning(
        f"{report.n_capped:,} session(s) longer than {max_length} clicks were cut to their "
        f"first {max_length}, losing {report.n_capped_clicks:,} of {kept:,} clicks "
        f"({report.n_capped_clicks / kept:.0%}). If a session key names a visitor rather than "
        "one visit, cut its clicks at pauses with session_gap (CLI: --session-gap 30m, with "
        "--time-col); else raise the cap (max_length; CLI: --max-session-length, 0 for none).")


# --------------------------------------------------------------------------- cleaning
def clean_sessions(
    interactions: pl.DataFrame,
    catalog: Catalog | None = None,
    *,
    min_length: int = 2,
    max_length: int | None = 200,
    collapse_repeats: bool = True,
    session_gap: str | float | None = None,
    check_unknown: bool = True,
) -> Sessions:
    """Clean an interaction log into sessions, as in the paper.

    Steps, in this order: with ``session_gap``, cut each session key's clicks at pauses
    longer than it (:func:`split_at_gaps`); drop clicks on products absent from ``catalog``
    (counting rows and distinct ids); order each session by ``ts`` then source ``row`` (stable); collapse
    immediate repeats (``a a b a -> a b a``); keep the first ``max_length`` clicks of longer
    sessions; drop sessions with fewer than ``min_length`` clicks. Unknown products go first
    so that the result never holds an immediate repeat.

    Parameters
    ----------
    interactions : polars.DataFrame
        Columns ``session`` and ``product_id`` (as from :func:`read_interactions`); optional
        ``ts`` (Float64, may be null) and ``row`` (default: frame order).
    catalog : Catalog, optional
        Products to keep; None keeps every product.
    min_length : int
        Shortest session kept (>= 1).
    max_length : int or None
        Longest session kept (longer ones are cut); None for no cap.
    collapse_repeats : bool
        Collapse immediate repeats of one product.
    session_gap : str or float, optional
        A pause (seconds, or ``"30m"``, ``"2h"``: :func:`parse_duration`) after which a
        key's next click starts a new session: for a log keyed by visitor (cookie, device)
        rather than by visit, whose keys would otherwise each hold months of clicks, cut at
        ``max_length``. Needs times in ``ts`` (:func:`split_at_gaps`). None: a key is a session.
    check_unknown : bool
        The whole-log checks: when most rows name products absent from ``catalog``, a
        warning naming both sides' ids, an error when none is known
        (:func:`check_unknown_ids`); when the length cap cut a tenth of the clicks or more, a
        warning (:func:`warn_capped`). False leaves them to a caller that cleans a log in parts.

    Returns
    -------
    Sessions
        Sessions in order of their first source row, with a :class:`SessionReport`.

    Examples
    --------
    >>> import polars as pl
    >>> log = pl.DataFrame({"session": ["1"] * 4, "product_id": ["a", "a", "b", "a"]})
    >>> list(clean_sessions(log))
    [['a', 'b', 'a']]
    """
    where = "clean_sessions()"
    if catalog is not None:
        check_catalog(catalog, where)
    if not isinstance(interactions, pl.DataFrame):
        if is_table(interactions):  # a pandas log straight from a query
            raise ParameterError(
                f"{where}: 'interactions' is a {table_kind(interactions)} as it "
                f"came; read it first with read_interactions(frame, session_cols=…, item_col=…, "
                f"time_col=…), which reads a table in memory as it reads a file (the columns "
                f"named, times read, rows checked).")
        raise param_error("interactions", where, "a polars DataFrame (see read_interactions)",
                          type(interactions).__name__)
    for col in (SESSION, ID):
        if col not in interactions.columns:
            raise DataError(
                f"clean_sessions(): the interactions frame has no {col!r} column (found: "
                f"{', '.join(map(repr, interactions.columns))}). Read the log with "
                f"read_interactions() or read_pairs(): they take a DataFrame as well as a "
                f"file (read_interactions(frame, session_cols=…, item_col=…, time_col=…))."
            )
    min_length = check_int(min_length, "min_length", where, low=1)
    max_length = check_int(max_length, "max_length", where, low=min_length, none=True,
                           expected=f"None or an int >= min_length ({min_length})")

    df = interactions.select(
        pl.col(SESSION).cast(pl.Utf8),
        pl.col(ID).cast(pl.Utf8),
        (pl.col(TS).cast(pl.Float64) if TS in interactions.columns
         else pl.lit(None, dtype=pl.Float64)).alias(TS),
        (pl.col(ROW).cast(pl.Int64) if ROW in interactions.columns
         else pl.int_range(1, pl.len() + 1, dtype=pl.Int64)).alias(ROW),
    )
    if df.select(pl.col(SESSION).is_null().any() | pl.col(ID).is_null().any()).item():
        raise DataError("clean_sessions(): the interactions frame holds null session keys or "
                        "product ids. Read the log with read_interactions(), which rejects them.")
    n_rows_in = df.height
    n_split = 0
    if session_gap is not None:
        df, n_split, unit = split_at_gaps(df, session_gap, where)
        if unit != "seconds":
            logger.info(f"{where}: session_gap: the times read as {unit} since the epoch")
    # sessions numbered by their first source row (integer keys sort and group fast)
    sid = (
        df.group_by(SESSION)
        .agg(pl.col(ROW).min().alias("_first"))
        .sort(["_first", SESSION])
        .select(SESSION, pl.int_range(pl.len(), dtype=pl.Int64).alias("_sid"))
    )
    steps = df.height - (sid.height - n_split)  # transitions between a key's clicks
    # nine in ten: even a site whose visits are mostly one page view stays under it
    if n_split and check_unknown and 10 * n_split > 9 * steps:
        logger.warning(
            f"session_gap={session_gap!r} cut {n_split:,} of the {steps:,} steps between "
            f"a key's clicks ({n_split / steps:.0%}): nearly every session is one click. "
            f"The times were read as {unit}; numbers are Unix seconds unless they are "
            "1e11 or more (then milliseconds, µs, ns). If the times count from another "
            "origin or in other units, convert them; or the gap is too short.")
    n_sessions_in = sid.height - n_split
    df = df.join(sid, on=SESSION, how="left", maintain_order="left")

    n_unknown_rows = n_unknown_products = 0
    if catalog is not None:
        df = _by_alias(df, catalog, check_unknown)
        known = df[ID].is_in(catalog.frame[ID].implode())
        n_unknown_rows = int((~known).sum())
        n_unknown_products = df.filter(~known)[ID].n_unique()
        if check_unknown:  # False: the caller checks the whole log (prepare_corpus's parts)
            check_unknown_ids(df.filter(~known)[ID], catalog, n_unknown_rows, df.height)
        df = df.filter(known)

    # each session ordered by time, then source row; the sort is stable, so ties keep frame order
    keys = ["_sid"] if df[TS].null_count() == df.height else ["_sid", TS]
    if not df[ROW].is_sorted():
        keys.append(ROW)
    df = df.sort(keys, nulls_last=True, maintain_order=True)
    n_repeats = 0
    if collapse_repeats and df.height:
        keep = (
            (pl.col(ID) != pl.col(ID).shift(1)) | (pl.col("_sid") != pl.col("_sid").shift(1))
        ).fill_null(True)
        mask = df.select(keep).to_series()
        n_repeats = int((~mask).sum())
        df = df.filter(mask)

    df = df.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("_sid").alias(POSITION))
    n_capped = n_capped_clicks = 0
    if max_length is not None:
        n_capped = int((df.group_by("_sid").len()["len"] > max_length).sum())
        before = df.height
        df = df.filter(pl.col(POSITION) < max_length)
        n_capped_clicks = before - df.height
    df = df.filter(pl.len().over("_sid") >= min_length)
    n_sessions = df.select(pl.col("_sid").n_unique()).item()
    report = SessionReport(
        n_rows_in=n_rows_in,
        n_sessions_in=n_sessions_in,
        n_unknown_rows=n_unknown_rows,
        n_unknown_products=n_unknown_products,
        n_repeats_collapsed=n_repeats,
        n_short_dropped=n_sessions_in + n_split - n_sessions,
        n_capped=n_capped,
        n_sessions=n_sessions,
        n_clicks=df.height,
        n_split_at_gaps=n_split,
        n_capped_clicks=n_capped_clicks,
    )
    if check_unknown:
        warn_capped(report, max_length)
    return Sessions(df.select(list(_FRAME_SCHEMA)), report)


def _canonical_id(col: pl.Expr) -> pl.Expr:
    """An id as a number-like text would be written: trimmed, without leading zeros or a
    trailing ``.0`` (what a spreadsheet or a float column makes of ``0042``)."""
    return (col.str.strip_chars().str.replace(r"\.0+$", "").str.strip_chars_start("0")
            .str.to_lowercase())


def format_twins(ids, known) -> list[tuple[str, str]]:
    """``(id, known id)`` for every id of ``ids`` that is not in ``known`` but equals one of
    them once leading zeros, a trailing ``.0``, case and spaces are ignored (an id column read
    or written as numbers, e.g. a Parquet integer column).

    >>> format_twins(["5", "000007", "9"], ["000005", "000007"])
    [('5', '000005')]
    """
    ids = pl.Series("c", list(ids), dtype=pl.Utf8)
    known = pl.Series("c", list(known), dtype=pl.Utf8)
    new = ids.filter(~ids.is_in(known.implode()))
    if not len(new) or not len(known):
        return []
    canon = pl.DataFrame({"id": new}).with_columns(_canonical_id(pl.col("id")).alias("k"))
    have = pl.DataFrame({"known": known}).with_columns(
        _canonical_id(pl.col("known")).alias("k")).unique("k", keep="first")
    hit = canon.join(have, on="k", how="inner", maintain_order="left")
    return list(zip(hit["id"].to_list(), hit["known"].to_list(), strict=True))


def _by_alias(df: pl.DataFrame, catalog: Catalog, say: bool = True) -> pl.DataFrame:
    """``df`` with the ids that are a product's alias (:meth:`Catalog.alias_map`: a
    variant's SKU, an EAN) replaced by that product's id; a line says how many."""
    aliases = catalog.alias_map()
    if not aliases:
        return df
    table = pl.DataFrame({"_alias": list(aliases), "_product": list(aliases.values())},
                         schema={"_alias": pl.Utf8, "_product": pl.Utf8})
    df = df.join(table, left_on=ID, right_on="_alias", how="left", maintain_order="left")
    n = df.height - df["_product"].null_count()
    if n and say:
        logger.info("%s interaction rows name a product by an alias (the catalog's %r column): "
                    "read as that product.", f"{n:,}", ALIASES)
    return df.with_columns(pl.coalesce("_product", ID).alias(ID)).drop("_product")


#: Set inside :func:`unknown_ids_said`: the warning of :func:`check_unknown_ids` was given.
_UNKNOWN_SAID: contextvars.ContextVar[bool] = contextvars.ContextVar("unknown_said",
                                                                     default=False)


@contextlib.contextmanager
def unknown_ids_said() -> Iterator[None]:
    """A block reading again a log whose unknown ids were already warned of (``build``
    reads it once to train, once more to tune): the warning is not repeated."""
    token = _UNKNOWN_SAID.set(True)
    try:
        yield
    finally:
        _UNKNOWN_SAID.reset(token)


def check_unknown_ids(unknown, catalog: Catalog, n_unknown: int, n: int) -> None:
    """What :func:`clean_sessions` does when most of ``n`` interaction rows (``n_unknown``
    of them, ``unknown`` some of their ids) name no product of ``catalog``: an error when
    none is known, else a warning (for a log cleaned in parts, once for the whole; not
    again inside :func:`unknown_ids_said`)."""
    if not n_unknown or 2 * n_unknown <= n:
        return
    if n_unknown < n and _UNKNOWN_SAID.get():
        return
    msg = _unknown_ids_message(pl.Series(ID, list(unknown), dtype=pl.Utf8), catalog,
                               n_unknown, n)
    if n_unknown == n:
        raise DataError(msg)
    logger.warning(msg)


def _column_holding(unknown: pl.Series, catalog: Catalog) -> tuple[str | None, int]:
    """The catalog column (not the ids) holding the most of the first 1,000 ``unknown`` ids,
    and how many, where that is at least a third of them; else ``(None, 0)``."""
    sample = unknown.head(1000)
    best, n_best = None, 0
    for name, dtype in catalog.frame.schema.items():
        if name == ID or dtype != pl.Utf8:
            continue
        n_in = int(sample.is_in(catalog.frame[name].drop_nulls().str.strip_chars().implode()).sum())
        if n_in > n_best:
            best, n_best = name, n_in
    return (best, n_best) if n_best and 3 * n_best >= len(sample) else (None, 0)


def _unknown_ids_message(unknown: pl.Series, catalog: Catalog, n_unknown: int, n: int) -> str:
    """Why most interaction rows name no catalog product: examples from both sides and, where
    it explains them, the ids' formatting (leading zeros, ``.0``, case, spaces)."""
    ours = unknown.unique(maintain_order=True)
    theirs = catalog.frame[ID]
    msg = (f"{n_unknown:,} of {n:,} interaction rows ({n_unknown / n:.0%}) name products that "
           f"are not in the catalog ({catalog.source}, {len(theirs):,} products): e.g. "
           f"{', '.join(map(repr, ours.head(3).to_list()))} in the interactions, "
           f"{', '.join(map(repr, theirs.head(3).to_list()))} in the catalog. Ids are compared "
           f"as exact strings.")
    n_match = len(format_twins(ours, theirs))
    column, n_in = _column_holding(ours, catalog)
    if column is not None:
        msg += (f" {n_in:,} of the first {min(len(ours), 1000):,} unknown ids are values of the "
                f"catalog's column {column!r}: if the log names products by it, read the "
                f"catalog with that column as its ids (CLI: --id-col {shlex.quote(column)}).")
    elif n_match * 2 >= len(ours):
        msg += (f" {n_match:,} of the {len(ours):,} unknown ids match a catalog id once leading "
                "zeros, a trailing '.0', case and spaces are ignored: one file was probably read "
                "or written with numeric ids (a Parquet integer column, a spreadsheet); keep "
                "the ids as text in both files.")
    elif n_unknown < n:  # some match: perhaps a log of a larger catalog
        msg += (" Expected if the log covers more products than this catalog (their clicks "
                "then teach the model nothing: to learn from the clicks on products no longer "
                "for sale, list them in the catalog too and recommend only the others, CLI: "
                "--recommend-rows status=active); if not, check that the interactions' item "
                "column holds the catalog's product ids (CLI: --item-col, --pair-cols against "
                "--id-col).")
    else:
        msg += (" Check that the interactions' item column holds the catalog's product ids "
                "(CLI: --item-col, --pair-cols against --id-col).")
    return msg
