"""The durable event log of the A/B service: SQLite (WAL) by default, PostgreSQL on request.

Guarantees
----------
* **Idempotent.** ``event_id`` is the primary key; ``INSERT … ON CONFLICT (event_id) DO NOTHING``
  stores a retried event once (the first copy wins; later copies count as ``duplicates``).
* **Acknowledged means committed.** :meth:`EventStore.add` returns only after the transaction
  holding the whole batch has committed; the HTTP layer answers 200 only after that. Any
  database error rolls the batch back and raises :class:`StoreUnavailable` (HTTP 503), so a
  client that retries until it gets a 200 loses nothing and duplicates nothing.

Durability of SQLite (``synchronous``)
--------------------------------------
The database runs in WAL mode (``PRAGMA journal_mode=WAL``): readers never block the writer and
one file (plus ``-wal``/``-shm`` side files) holds everything.

``"FULL"`` (default)
    The WAL is fsync'ed at every commit. An acknowledged event survives a crash of the service
    (SIGKILL, OOM), of the operating system and a power cut (as far as the disk honours fsync).
    Costs one fsync per batch (≈ 0.1-10 ms depending on the disk) — batch events client-side.
``"NORMAL"``
    The WAL is fsync'ed only at checkpoints. An acknowledged event survives a crash of the
    service process (the commit is in the OS page cache, which the kernel writes later), but an
    OS crash or power cut can lose the transactions committed since the last checkpoint (up to
    roughly the last 1,000 WAL pages). The database itself is never corrupted.

PostgreSQL commits follow the server's ``synchronous_commit`` (``on`` by default: like FULL).

Examples
--------
>>> import tempfile, os
>>> store = open_event_store(os.path.join(tempfile.mkdtemp(), "events.sqlite3"))
>>> e = Event(event_id="e1", type="view", experiment="x", variant="a", visitor="v1",
...           request_id="r1", product_id="p1")
>>> store.add([e, e]).as_dict()
{'stored': 1, 'duplicates': 1}
>>> store.add([e]).as_dict()
{'stored': 0, 'duplicates': 1}
>>> store.close()
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from prodfusion._checks import check_real
from prodfusion.errors import DataError, ParameterError, param_error
from prodfusion.service.event_store import (
    EVENT_TYPES,
    AddResult,
    Event,
    EventStore,
    EventType,
    StoreUnavailable,
)

__all__ = [
    "Event",
    "AddResult",
    "StoreUnavailable",
    "EventStore",
    "SQLiteEventStore",
    "PostgresEventStore",
    "open_event_store",
    "EVENT_TYPES",
    "EventType",
]

Synchronous = Literal["FULL", "NORMAL"]


class SQLiteEventStore(EventStore):
    """Events in one SQLite file in WAL mode.

    Parameters
    ----------
    path : str or Path
        The database file (created with its folder if missing).
    synchronous : {"FULL", "NORMAL"}
        See the module docstring for what each can lose.
    busy_timeout_s : float
        How long a write waits for a lock held by another connection before failing (→ 503).
    """

    def __init__(
        self, path: str | Path, *, synchronous: Synchronous = "FULL", busy_timeout_s: float = 5.0
    ) -> None:
        super().__init__()
        if synchronous not in ("FULL", "NORMAL"):
            raise param_error("synchronous", "SQLiteEventStore()", "'FULL' or 'NORMAL'", synchronous)
        check_real(busy_timeout_s, "busy_timeout_s", "SQLiteEventStore()", low=0)
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout_s = float(busy_timeout_s)

    def describe(self) -> str:
        return f"sqlite:{self.path} (WAL, synchronous={self.synchronous})"

    def _connect(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot create folder {self.path.parent}: {exc}") from exc
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout_s, check_same_thread=False,
            isolation_level="DEFERRED",
        )
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise sqlite3.OperationalError(
                f"{self.path}: WAL mode unavailable (got journal_mode={mode}); put the event "
                "database on a local file system."
            )
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        return conn

    def _insert_many(self, conn, sql: str, rows: list[tuple]) -> int:
        before = conn.total_changes
        conn.executemany(sql, rows)
        return conn.total_changes - before


class PostgresEventStore(EventStore):
    """Events in PostgreSQL (``psycopg`` 3, imported when the store opens).

    Parameters
    ----------
    url : str
        A libpq URL, ``postgresql://user:pass@host:5432/dbname``.
    connect_timeout_s : float
        Connection timeout.
    """

    _placeholder = "%s"
    _day_expr = "FLOOR(received_at / 86400)"

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        super().__init__()
        self.url = url
        self.connect_timeout_s = float(connect_timeout_s)

    def describe(self) -> str:
        # never print the password
        from urllib.parse import urlsplit

        u = urlsplit(self.url)
        host = u.hostname or "localhost"
        return f"postgresql://{host}{':' + str(u.port) if u.port else ''}{u.path}"

    def _psycopg(self):
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise StoreUnavailable(
                "A PostgreSQL event store needs psycopg: pip install 'psycopg[binary]'."
            ) from exc
        return psycopg

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg().Error,)

    def _streaming_cursor(self, conn):
        # a server-side cursor: psycopg's default one holds the whole result in memory
        return conn.cursor(name="pf_page_views")

    def _connect(self):
        psycopg = self._psycopg()
        return psycopg.connect(self.url, connect_timeout=max(1, int(self.connect_timeout_s)))


def open_event_store(
    location: str | Path, *, synchronous: Synchronous = "FULL", busy_timeout_s: float = 5.0,
    must_exist: bool = False,
) -> EventStore:
    """Open the store at ``location``: a ``postgresql://`` / ``postgres://`` URL, or a SQLite file
    path (``sqlite:///abs/path`` also accepted). Creates the tables if needed; with
    ``must_exist`` (a reader such as ``prodfusion ab report``) a SQLite file that does not
    exist is a :class:`~prodfusion.errors.DataError`, and nothing is created.

    Raises
    ------
    StoreUnavailable
        If the database cannot be reached or created.
    """
    loc = str(location)
    if loc.startswith(("postgresql://", "postgres://")):
        return PostgresEventStore(loc).open()
    if loc.startswith("sqlite:///"):
        loc = loc[len("sqlite://"):]
    elif "://" in loc:
        raise ParameterError(
            f"Event store {loc!r}: unknown scheme; use a file path or a postgresql:// URL."
        )
    if must_exist and not Path(loc).is_file():
        what = "a folder" if Path(loc).is_dir() else "no such file"
        raise DataError(f"{loc}: no event store there ({what}); name the SQLite file "
                        "`prodfusion serve --events` writes.")
    return SQLiteEventStore(loc, synchronous=synchronous, busy_timeout_s=busy_timeout_s).open()
