"""The re-iterable :class:`Sessions` of product ids, and what cleaning did (:class:`SessionReport`).

A *session* is one anonymous visitor's ordered clicks (or one basket, or one co-purchase
pair). The Prod2Vec click encoder reads :class:`Sessions` as a corpus of "sentences" whose
"words" are product ids. Interaction logs are read and cleaned into sessions by
:mod:`prodfusion.data.interactions` (``read_interactions``, ``read_pairs``,
``clean_sessions``, also importable from here as before).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from prodfusion._checks import check_real
from prodfusion.data.catalog import ID
from prodfusion.errors import DataError, param_error

__all__ = ["Sessions", "SessionReport", "KEY_SEPARATOR", "concat_sessions", "as_sessions"]

#: Joins the values of a multi-column session key (``customer_id`` + ``t_dat``).
KEY_SEPARATOR = "\x1f"
SESSION, POSITION, TS, ROW = "session", "position", "ts", "row"

_FRAME_SCHEMA = {SESSION: pl.Utf8, POSITION: pl.Int64, ID: pl.Utf8, TS: pl.Float64}
_PARQUET_KEY = b"prodfusion.session_report"
#: Names whose home is :mod:`prodfusion.data.interactions` (imported on first use: that
#: module builds on this one).
_MOVED = ("read_interactions", "read_pairs", "clean_sessions")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module("prodfusion.data.interactions"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- cleaning
@dataclass(frozen=True)
class SessionReport:
    """What :func:`clean_sessions` did, as counts.

    ``n_sessions == n_sessions_in + n_split_at_gaps - n_short_dropped`` (a session whose every
    click was an unknown product counts as dropped for being short; ``n_split_at_gaps``: the
    sessions ``session_gap`` added by cutting a key's clicks at its pauses) and ``n_clicks ==
    n_rows_in - n_unknown_rows - n_repeats_collapsed - n_capped_clicks - (clicks of short
    sessions)`` (``n_capped``: sessions cut by the length cap, ``n_capped_clicks``: the clicks
    they lost).
    """

    n_rows_in: int
    n_sessions_in: int
    n_unknown_rows: int
    n_unknown_products: int
    n_repeats_collapsed: int
    n_short_dropped: int
    n_capped: int
    n_sessions: int
    n_clicks: int
    n_split_at_gaps: int = 0
    n_capped_clicks: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def unchanged(cls, n_sessions: int, n_clicks: int) -> SessionReport:
        """The report of sessions taken as they are (no cleaning step changed anything)."""
        return cls(n_clicks, n_sessions, 0, 0, 0, 0, 0, n_sessions, n_clicks)


# --------------------------------------------------------------------------- Sessions
class Sessions:
    """Cleaned sessions: a re-iterable corpus of product-id lists backed by a polars frame.

    Parameters
    ----------
    frame : polars.DataFrame
        Columns ``session`` (Utf8), ``position`` (int), ``product_id`` (Utf8), ``ts``
        (Float64, may be null); the rows of one session are contiguous with positions
        0, 1, 2, ...
    report : SessionReport, optional
        What cleaning did; default: :meth:`SessionReport.unchanged`.

    Examples
    --------
    >>> s = Sessions.from_lists([["001", "002"], ["002", "003", "001"]])
    >>> len(s), s.n_clicks, list(s) == list(s)
    (2, 5, True)
    >>> s.product_counts()["001"]
    2
    """

    #: Rows converted to Python strings at a time while iterating.
    chunk_rows = 1 << 20

    def __init__(self, frame: pl.DataFrame, report: SessionReport | None = None) -> None:
        missing = [c for c in _FRAME_SCHEMA if c not in frame.columns]
        if missing:
            raise DataError(
                f"Sessions frame lacks column(s) {', '.join(map(repr, missing))} (found: "
                f"{', '.join(map(repr, frame.columns))}). Build sessions with clean_sessions()."
            )
        self.frame = frame.select(pl.col(c).cast(t) for c, t in _FRAME_SCHEMA.items())
        change = (pl.col(SESSION) != pl.col(SESSION).shift(1)).fill_null(True)
        starts = self.frame.select(change.arg_true()).to_series().to_numpy()
        self._bounds = np.append(starts, self.frame.height).astype(np.int64)
        n = len(starts)
        expected = np.arange(self.frame.height) - np.repeat(starts, np.diff(self._bounds))
        if self.frame[SESSION].gather(starts).n_unique() != n or not np.array_equal(
            self.frame[POSITION].to_numpy(), expected
        ):
            raise DataError(
                "Sessions frame is not in session order: the rows of each session must be "
                "contiguous with positions 0, 1, 2, ... Build sessions with clean_sessions()."
            )
        self.report = report if report is not None else SessionReport.unchanged(n, self.frame.height)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_lists(
        cls, sessions: Iterable[Sequence[str]], *, keys: Sequence[str] | None = None
    ) -> Sessions:
        """Sessions taken as given (no cleaning), keyed ``"0"``, ``"1"``, ... unless ``keys``."""
        if isinstance(sessions, (str, bytes)):
            raise param_error("sessions", "Sessions.from_lists()",
                              "lists of non-empty product-id strings", sessions)
        for i, s in enumerate(sessions := list(sessions)):
            if isinstance(s, (str, bytes)):  # a list of ids, not of sessions: not its letters
                raise param_error("sessions", "Sessions.from_lists()", "lists of non-empty "
                                  f"product-id strings (session {i} is one string)", s)
        lists = [list(s) for s in sessions]
        for i, s in enumerate(lists):
            if not all(isinstance(p, str) and p for p in s):
                raise param_error("sessions", "Sessions.from_lists()",
                                  "lists of non-empty product-id strings", lists[i])
        if keys is None:
            keys = [str(i) for i in range(len(lists))]
        elif len(keys) != len(lists) or len(set(keys)) != len(keys):
            raise param_error("keys", "Sessions.from_lists()",
                              f"{len(lists)} distinct session keys", keys)
        frame = pl.DataFrame(
            {
                SESSION: [k for k, s in zip(keys, lists, strict=True) for _ in s],
                POSITION: [i for s in lists for i in range(len(s))],
                ID: [p for s in lists for p in s],
                TS: [None] * sum(map(len, lists)),
            },
            schema=_FRAME_SCHEMA,
        )
        return cls(frame)

    @classmethod
    def from_parquet(cls, path: str | Path) -> Sessions:
        """Read sessions written by :meth:`to_parquet` (report included)."""
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: sessions file does not exist. Write it with "
                            f"Sessions.to_parquet() first.")
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for a broken file
            raise DataError(f"{path}: cannot be read as Parquet ({type(e).__name__}: {e}).") from None
        meta = (table.schema.metadata or {}).get(_PARQUET_KEY)
        report = SessionReport(**json.loads(meta)) if meta else None
        return cls(pl.from_arrow(table), report)

    def to_parquet(self, path: str | Path) -> None:
        """Write the frame and the report to one Parquet file."""
        import pyarrow.parquet as pq

        table = self.frame.to_arrow()
        meta = dict(table.schema.metadata or {})
        meta[_PARQUET_KEY] = json.dumps(self.report.as_dict()).encode()
        pq.write_table(table.replace_schema_metadata(meta), Path(path))

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._bounds) - 1

    def __iter__(self) -> Iterator[list[str]]:
        bounds, n = self._bounds, len(self)
        i = 0
        while i < n:
            # sessions i..j-1 hold at most chunk_rows rows (always at least one session)
            j = max(i + 1, int(np.searchsorted(bounds, bounds[i] + self.chunk_rows, "right")) - 1)
            j = min(j, n)
            lo, hi = int(bounds[i]), int(bounds[j])
            ids = self.frame[ID].slice(lo, hi - lo).to_list()
            for k in range(i, j):
                yield ids[bounds[k] - lo : bounds[k + 1] - lo]
            i = j

    def __repr__(self) -> str:
        return f"Sessions({len(self)} sessions, {self.n_clicks} clicks)"

    @property
    def n_clicks(self) -> int:
        return self.frame.height

    @property
    def keys(self) -> list[str]:
        """Session keys in iteration order."""
        return self.frame[SESSION].gather(self._bounds[:-1]).to_list()

    @property
    def lengths(self) -> np.ndarray:
        """Clicks per session (int64), in iteration order."""
        return np.diff(self._bounds)

    def product_counts(self) -> dict[str, int]:
        """Clicks per product id."""
        counts = self.frame.group_by(ID).len()
        return dict(zip(counts[ID].to_list(), counts["len"].to_list(), strict=True))

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the session keys, product ids and times, in order."""
        h = hashlib.sha256(b"prodfusion-sessions-v1\n")
        line = pl.concat_str(
            [pl.col(SESSION), pl.col(ID), pl.col(TS).cast(pl.Utf8).fill_null("")],
            separator=KEY_SEPARATOR,
        )
        for lo in range(0, self.frame.height, self.chunk_rows):
            chunk = self.frame.slice(lo, self.chunk_rows).select(line).to_series().to_list()
            h.update(("\n".join(chunk) + "\n").encode())
        return h.hexdigest()

    def _subset(self, session_idx: np.ndarray) -> Sessions:
        chosen = np.zeros(len(self), dtype=bool)
        chosen[session_idx] = True
        return Sessions(self.frame.filter(pl.Series(np.repeat(chosen, self.lengths))))

    def split_by_time(self, test_fraction: float = 0.2, *, seed: int = 0,
                      window: int = 0) -> tuple[Sessions, Sessions]:
        """Split whole sessions into (train, test).

        With times, sessions are ordered by their first ``ts`` and the last ``test_fraction``
        go to test, so every test session starts at or after the start of every train
        session. Without times (``ts`` all null), sessions are ordered by a seeded SHA-256
        hash of their key instead. No session is in both parts; each part keeps iteration
        order and gets an unchanged report.

        ``window = w > 0`` takes the test block ``w`` blocks earlier instead (the sessions
        after it train too): the rolling validation windows of ``prodfusion tune``.

        Examples
        --------
        >>> s = Sessions.from_lists([["a", "b"]] * 10)
        >>> train, test = s.split_by_time(0.3)
        >>> len(train), len(test), set(train.keys) & set(test.keys)
        (7, 3, set())
        """
        where = "split_by_time()"
        check_real(test_fraction, "test_fraction", where, low=0, high=1, low_open=True,
                   high_open=True, expected="a float in (0, 1)")
        n = len(self)
        if n < 2:
            raise DataError(f"split_by_time(): cannot split {n} session(s) into train and test; "
                            f"at least 2 are needed.")
        n_test = min(n - 1, max(1, round(n * test_fraction)))
        n_null = self.frame[TS].null_count()
        if n_null == 0:
            starts = self.frame.group_by(SESSION, maintain_order=True).agg(pl.col(TS).min())[TS]
            order = np.argsort(starts.to_numpy(), kind="stable")
        elif n_null == self.frame.height:
            salt = str(int(seed)).encode()
            digests = [hashlib.sha256(salt + b"\x00" + k.encode()).digest()[:8] for k in self.keys]
            order = np.argsort(np.frombuffer(b"".join(digests), dtype=">u8"), kind="stable")
        else:
            raise DataError(
                "split_by_time(): some clicks have times and others do not. Read the log "
                "with a time column for every row, or with none."
            )
        end = n - int(window) * n_test
        if isinstance(window, bool) or int(window) != window or window < 0 or end - n_test < 1:
            raise DataError(
                f"split_by_time(): window={window!r} leaves no training session before its "
                f"test block ({n} sessions, {n_test} per block)."
            )
        return (self._subset(np.concatenate([order[: end - n_test], order[end:]])),
                self._subset(order[end - n_test : end]))

    def write_corpus_file(
        self, path: str | Path, *, tokens: Literal["auto", "id", "index"] = "auto"
    ) -> dict[str, str]:
        """Write one session per line, tokens separated by single spaces (gensim ``corpus_file``).

        Parameters
        ----------
        path : str or Path
            Output text file (UTF-8).
        tokens : {'auto', 'id', 'index'}
            ``'id'`` writes product ids (refused if one contains whitespace, which would split
            it); ``'index'`` writes ``p0``, ``p1``, ... numbered by first appearance; ``'auto'``
            writes ids unless one contains whitespace.

        Returns
        -------
        dict
            Token -> product id, to map the trained vectors back to products.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "corpus.txt"
        >>> Sessions.from_lists([["a b", "c"]]).write_corpus_file(p)
        {'p0': 'a b', 'p1': 'c'}
        >>> p.read_text()
        'p0 p1\\n'
        """
        if tokens not in ("auto", "id", "index"):
            raise param_error("tokens", "write_corpus_file()", "one of 'auto', 'id', 'index'", tokens)
        vocab = self.frame[ID].unique(maintain_order=True)
        spaced = vocab.str.contains(r"\s")
        if tokens == "id" and spaced.any():
            bad = vocab.filter(spaced)[0]
            raise DataError(
                f"write_corpus_file(): product id {bad!r} contains whitespace, which would split "
                f"it into several tokens. Use tokens='index' or 'auto'."
            )
        use_index = tokens == "index" or (tokens == "auto" and bool(spaced.any()))
        if use_index:
            names = pl.Series("tok", [f"p{i}" for i in range(len(vocab))], dtype=pl.Utf8)
            mapping = dict(zip(names.to_list(), vocab.to_list(), strict=True))
            tok = self.frame[ID].replace_strict(vocab, names, return_dtype=pl.Utf8)
        else:
            mapping = dict(zip(vocab.to_list(), vocab.to_list(), strict=True))
            tok = self.frame[ID]
        lines = (
            pl.DataFrame({SESSION: self.frame[SESSION], "tok": tok})
            .group_by(SESSION, maintain_order=True)
            .agg(pl.col("tok").str.join(" "))["tok"]
        )
        with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
            for lo in range(0, len(lines), 100_000):
                chunk = lines.slice(lo, 100_000).to_list()
                fh.write("\n".join(chunk) + "\n")
        return mapping


def concat_sessions(parts: dict[str, Sessions | None]) -> Sessions | None:
    """One :class:`Sessions` of every non-empty part, each session key prefixed with its
    part's tag (``"s"`` → ``"s:<key>"``) so that parts never merge a session; ``None`` when
    every part is empty.

    >>> both = concat_sessions({"s": Sessions.from_lists([["a", "b"]]),
    ...                         "p": Sessions.from_lists([["a", "c"]]), "x": None})
    >>> both.keys, list(both)
    (['s:0', 'p:0'], [['a', 'b'], ['a', 'c']])
    """
    frames = [
        s.frame.with_columns((pl.lit(f"{tag}:") + pl.col(SESSION)).alias(SESSION))
        for tag, s in parts.items()
        if s is not None and len(s)
    ]
    if not frames:
        return None
    return Sessions(pl.concat(frames, how="vertical"))


def as_sessions(obj, name: str, where: str):
    """``obj`` as sessions for ``where``: :class:`Sessions` (or a corpus file) as given; a
    list or tuple of product-id lists as :meth:`Sessions.from_lists`; ``None`` stays
    ``None``; any other re-iterable as given (Prod2Vec reads it). Refuses, naming
    the parameter, what would otherwise be read wrongly without an error: a table of
    interactions (a polars or pandas DataFrame iterates over its *columns*), one string (its
    characters), a list of ids instead of a list of sessions.

    >>> as_sessions([["a", "b"], ["b", "c"]], "sessions", "f()")
    Sessions(2 sessions, 4 clicks)
    >>> as_sessions(["a", "b"], "sessions", "f()")
    Traceback (most recent call last):
    ...
    prodfusion.errors.ParameterError: f(): 'sessions' is a list of product ids; pass a list of sessions, each a list of ids (e.g. [['a', 'b']]).
    """
    from prodfusion.errors import ParameterError

    if obj is None or isinstance(obj, Sessions) or hasattr(obj, "corpus_file"):
        return obj
    kind = type(obj).__module__.split(".")[0]
    if kind in ("polars", "pandas", "pyarrow") or isinstance(obj, pl.DataFrame):
        raise ParameterError(
            f"{where}: {name!r} is a {type(obj).__name__} of interactions; clean it into "
            "sessions first: clean_sessions(read_interactions(frame_or_file, session_cols=…, "
            "item_col=…, time_col=…), catalog) (a table iterates over its columns, which would "
            "train on nonsense).")
    if isinstance(obj, (str, bytes)):
        raise ParameterError(f"{where}: {name!r} is one string; pass a list of sessions, each "
                             "a list of product ids (e.g. [['a', 'b']]), or Sessions.")
    if isinstance(obj, (list, tuple)):
        if obj and all(isinstance(x, str) for x in obj):
            raise ParameterError(
                f"{where}: {name!r} is a list of product ids; pass a list of sessions, each a "
                f"list of ids (e.g. [{list(obj[:2])!r}]).")
        return Sessions.from_lists(obj)
    return obj

