"""The event store's records and its database-neutral half: :class:`Event`,
:class:`AddResult`, :class:`StoreUnavailable`, the SQL schema and :class:`EventStore` (every
query, written once for SQLite and PostgreSQL). The backends and ``open_event_store`` are in
:mod:`prodfusion.service.events`, which re-exports everything here and documents the
guarantees (idempotent, acknowledged = committed).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import Literal

from prodfusion.errors import ProdfusionError
from prodfusion.service.experiments import Allocation

__all__ = ["Event", "AddResult", "StoreUnavailable", "EventStore", "EVENT_TYPES"]

log = logging.getLogger(__name__)

EventType = Literal["view", "click", "jump"]
EVENT_TYPES: tuple[str, ...] = ("view", "click", "jump")


class StoreUnavailable(ProdfusionError):
    """The event store cannot take or serve data right now (nothing was stored)."""


@dataclass(frozen=True)
class Event:
    """One stored event (what the service writes after validation and variant assignment).

    ``product_id`` is the product whose page showed the recommendations; ``target_id`` and
    ``rank`` (1-based) are the clicked recommendation of a ``click``; ``category`` is the
    category of ``product_id`` when the event arrived; ``received_at`` is server Unix time;
    ``status`` is ``"ok"`` or why the event is quarantined (stored, but left out of reports:
    see :mod:`prodfusion.service.attribution`).
    """

    event_id: str
    type: str
    experiment: str
    variant: str
    visitor: str
    request_id: str
    product_id: str
    target_id: str | None = None
    rank: int | None = None
    category: str | None = None
    client_ts: str | None = None
    received_at: float = 0.0
    status: str = "ok"


_COLUMNS = [f.name for f in fields(Event)]


@dataclass(frozen=True)
class AddResult:
    stored: int
    duplicates: int

    def as_dict(self) -> dict[str, int]:
        return {"stored": self.stored, "duplicates": self.duplicates}


_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS pf_events (
        event_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        experiment TEXT NOT NULL,
        variant TEXT NOT NULL,
        visitor TEXT NOT NULL,
        request_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        target_id TEXT,
        rank INTEGER,
        category TEXT,
        client_ts TEXT,
        received_at DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL DEFAULT 'ok'
    )""",
    "CREATE INDEX IF NOT EXISTS pf_events_exp_req ON pf_events (experiment, request_id)",
    """CREATE TABLE IF NOT EXISTS pf_allocations (
        experiment TEXT NOT NULL,
        salt TEXT NOT NULL,
        version INTEGER NOT NULL,
        names TEXT NOT NULL,
        weights TEXT NOT NULL,
        ranges TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (experiment, salt, version)
    )""",
    """CREATE TABLE IF NOT EXISTS pf_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
]
#: Stores created before quarantine existed get the column (their events are all "ok").
_ADD_STATUS = "ALTER TABLE pf_events ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'"

# One row per impression (request_id): which event types it got. Views are impressions with a
# view event; clicks/jumps count impressions with ≥ 1 such event, so CTR and JR are proportions.
_IMPRESSIONS_SQL = """
SELECT variant, category,
       SUM(v) AS views, SUM(v * c) AS clicks, SUM(v * j) AS jumps,
       SUM(v * nc) AS click_events, SUM(v * nj) AS jump_events,
       SUM(1 - v) AS without_view, SUM(nv - v) AS repeated_views
FROM (
    SELECT visitor, request_id, MIN(variant) AS variant, MIN(category) AS category,
           MAX(CASE WHEN type = 'view' THEN 1 ELSE 0 END) AS v,
           MAX(CASE WHEN type = 'click' THEN 1 ELSE 0 END) AS c,
           MAX(CASE WHEN type = 'jump' THEN 1 ELSE 0 END) AS j,
           SUM(CASE WHEN type = 'view' THEN 1 ELSE 0 END) AS nv,
           SUM(CASE WHEN type = 'click' THEN 1 ELSE 0 END) AS nc,
           SUM(CASE WHEN type = 'jump' THEN 1 ELSE 0 END) AS nj
    FROM pf_events WHERE experiment = {p} AND status = 'ok'
    GROUP BY visitor, request_id
) imp
GROUP BY variant, category
ORDER BY variant, category
"""

# The same impressions by the day (UTC) of their first event; {day} is the store's expression.
_DAILY_SQL = """
SELECT variant, day, SUM(v) AS views, SUM(v * c) AS clicks, SUM(v * j) AS jumps
FROM (
    SELECT visitor, request_id, MIN(variant) AS variant, MIN({day}) AS day,
           MAX(CASE WHEN type = 'view' THEN 1 ELSE 0 END) AS v,
           MAX(CASE WHEN type = 'click' THEN 1 ELSE 0 END) AS c,
           MAX(CASE WHEN type = 'jump' THEN 1 ELSE 0 END) AS j
    FROM pf_events WHERE experiment = {p} AND status = 'ok'
    GROUP BY visitor, request_id
) imp
GROUP BY variant, day
ORDER BY day, variant
"""

_EXCLUDED_SQL = """
SELECT variant, type, status, COUNT(*) FROM pf_events
WHERE experiment = {p} AND status <> 'ok'
GROUP BY variant, type, status ORDER BY variant, type, status
"""


# The verified product-page views, one per impression (visitor, request id): a click log
# keyed by visitor, for `prodfusion ab views` (ordered so that a visitor's views are together)
_VIEWS_SQL = """
SELECT visitor, product_id, MIN(received_at) AS ts FROM pf_events
WHERE type = 'view' AND status = 'ok'{experiment}
GROUP BY visitor, request_id, product_id
ORDER BY visitor, ts, product_id
"""


class EventStore:
    """Common SQL of the SQLite and PostgreSQL stores (``{p}`` is the placeholder).

    Subclasses provide ``_connect``, ``_placeholder`` and ``describe``; every public method is
    thread-safe (one connection behind a lock: writes are serialised anyway).
    """

    _placeholder = "?"
    #: SQL of the UTC day number (days since 1970-01-01) of ``received_at``.
    _day_expr = "CAST(received_at / 86400 AS INTEGER)"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn = None

    # ---- connection management
    def _connect(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def open(self) -> EventStore:
        """Connect and create the tables if needed. Raises :class:`StoreUnavailable`."""
        with self._lock:
            self._ensure()
        return self

    def _ensure(self):
        if self._conn is None:
            try:
                conn = self._connect()
                cur = conn.cursor()
                for stmt in _SCHEMA:
                    cur.execute(stmt)
                conn.commit()
                self._migrate(conn)
            except self._errors() as exc:
                raise StoreUnavailable(f"Event store {self.describe()} cannot be opened: {exc}") from exc
            self._conn = conn
        return self._conn

    def _migrate(self, conn) -> None:
        """Add the ``status`` column to a store created before it existed."""
        cur = conn.cursor()
        cur.execute("SELECT * FROM pf_events WHERE 1 = 0")
        if "status" not in [d[0] for d in cur.description]:
            cur.execute(_ADD_STATUS)
        conn.commit()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def _run(self, fn):
        """Run ``fn(conn)`` in a transaction; on a database error roll back, drop the
        connection (reconnect next time) and raise :class:`StoreUnavailable`."""
        with self._lock:
            conn = self._ensure()
            try:
                out = fn(conn)
                conn.commit()
                return out
            except self._errors() as exc:
                try:
                    conn.rollback()
                except Exception:  # the connection may be dead; it is dropped below anyway
                    pass
                try:
                    conn.close()
                except Exception:  # same
                    pass
                self._conn = None
                raise StoreUnavailable(f"Event store {self.describe()} failed: {exc}") from exc

    def _sql(self, sql: str) -> str:
        return sql.replace("{p}", self._placeholder)

    # ---- events
    def add(self, events: Sequence[Event]) -> AddResult:
        """Store a batch in one transaction; returns after the commit.

        Raises
        ------
        StoreUnavailable
            Nothing of the batch was stored.
        """
        if not events:
            return AddResult(0, 0)
        cols = ", ".join(_COLUMNS)
        marks = ", ".join([self._placeholder] * len(_COLUMNS))
        sql = (f"INSERT INTO pf_events ({cols}) VALUES ({marks}) "
               "ON CONFLICT (event_id) DO NOTHING")
        rows = [astuple(e) for e in events]

        def tx(conn):
            return self._insert_many(conn, sql, rows)

        stored = self._run(tx)
        return AddResult(stored, len(events) - stored)

    def _insert_many(self, conn, sql: str, rows: list[tuple]) -> int:
        cur = conn.cursor()
        cur.executemany(sql, rows)
        return cur.rowcount

    def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            self._run(lambda conn: conn.cursor().execute("SELECT 1").fetchall())
            return True
        except StoreUnavailable:
            return False

    def fetch_events(self, experiment: str | None = None) -> list[Event]:
        """All stored events (of one experiment), ordered by ``received_at`` then ``event_id``."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM pf_events"
        args: tuple = ()
        if experiment is not None:
            sql += self._sql(" WHERE experiment = {p}")
            args = (experiment,)
        sql += " ORDER BY received_at, event_id"
        rows = self._run(lambda conn: conn.cursor().execute(sql, args).fetchall())
        return [Event(*r) for r in rows]

    def page_views(self, write, *, experiment: str | None = None,
                   batch: int = 100_000) -> int:
        """Pass the verified product-page views to ``write`` in lists of at most ``batch``
        ``(visitor, product_id, ts)`` tuples, ordered by visitor then time: one per impression
        (a reload within its period is the same view), quarantined events left out (of one
        experiment, or of all). Returns how many. The store is read in one transaction."""
        sql = _VIEWS_SQL.format(experiment=self._sql(" AND experiment = {p}")
                                if experiment is not None else "")
        args = (experiment,) if experiment is not None else ()

        def tx(conn):
            cur = self._streaming_cursor(conn)
            cur.execute(sql, args)
            n = 0
            while rows := cur.fetchmany(batch):
                write(rows)
                n += len(rows)
            return n

        return int(self._run(tx))

    def _streaming_cursor(self, conn):
        """A cursor whose ``fetchmany`` reads the result as it goes (SQLite's do)."""
        return conn.cursor()

    def count(self, experiment: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM pf_events"
        args: tuple = ()
        if experiment is not None:
            sql += self._sql(" WHERE experiment = {p}")
            args = (experiment,)
        return int(self._run(lambda conn: conn.cursor().execute(sql, args).fetchone()[0]))

    def impressions(self, experiment: str) -> list[dict]:
        """Per (variant, category): ``views``, ``clicks``, ``jumps`` (impressions with ≥ 1 view /
        click / jump), ``click_events``, ``jump_events`` and ``without_view`` (impressions whose
        view event never arrived; not counted anywhere else)."""
        sql = self._sql(_IMPRESSIONS_SQL)
        rows = self._run(lambda conn: conn.cursor().execute(sql, (experiment,)).fetchall())
        keys = ("variant", "category", "views", "clicks", "jumps", "click_events", "jump_events",
                "without_view", "repeated_views")
        return [
            {k: (int(v) if i >= 2 else v) for i, (k, v) in enumerate(zip(keys, r, strict=True))} for r in rows
        ]

    def daily(self, experiment: str) -> list[dict]:
        """Per (variant, UTC day of the impression): ``views``, ``clicks``, ``jumps`` (the
        definitions of :meth:`impressions`); ``day`` is days since 1970-01-01."""
        sql = self._sql(_DAILY_SQL).replace("{day}", self._day_expr)
        rows = self._run(lambda conn: conn.cursor().execute(sql, (experiment,)).fetchall())
        return [{"variant": r[0], "day": int(r[1]), "views": int(r[2]), "clicks": int(r[3]),
                 "jumps": int(r[4])} for r in rows]

    def excluded(self, experiment: str) -> list[dict]:
        """Quarantined events per (variant, type, status): stored, never in the report."""
        sql = self._sql(_EXCLUDED_SQL)
        rows = self._run(lambda conn: conn.cursor().execute(sql, (experiment,)).fetchall())
        return [{"variant": r[0], "type": r[1], "reason": r[2], "events": int(r[3])} for r in rows]

    def secret(self, name: str, make) -> str:
        """The stored secret ``name``; created with ``make()`` the first time (several
        processes agree: the first insert wins and everybody re-reads)."""
        get = self._sql("SELECT value FROM pf_secrets WHERE name = {p}")
        put = self._sql("INSERT INTO pf_secrets (name, value) VALUES ({p}, {p}) "
                        "ON CONFLICT (name) DO NOTHING")

        def tx(conn):
            cur = conn.cursor()
            row = cur.execute(get, (name,)).fetchone()
            if row is None:
                cur.execute(put, (name, make()))
                row = cur.execute(get, (name,)).fetchone()
            return row[0]

        return self._run(tx)

    def visitors(self, experiment: str, since: float = 0.0) -> dict[str, int]:
        """Distinct visitors with a ``view`` per variant, received at or after ``since``
        (quarantined events left out)."""
        sql = self._sql(
            "SELECT variant, COUNT(DISTINCT visitor) FROM pf_events "
            "WHERE experiment = {p} AND type = 'view' AND status = 'ok' AND received_at >= {p} "
            "GROUP BY variant"
        )
        rows = self._run(lambda conn: conn.cursor().execute(sql, (experiment, since)).fetchall())
        return {r[0]: int(r[1]) for r in rows}

    def experiments(self) -> list[str]:
        """Names of experiments with events or allocations."""
        sql = ("SELECT experiment FROM pf_events UNION SELECT experiment FROM pf_allocations "
               "ORDER BY 1")
        return [r[0] for r in self._run(lambda conn: conn.cursor().execute(sql).fetchall())]

    # ---- allocation ledger
    def latest_allocation(self, experiment: str, salt: str | None = None) -> Allocation | None:
        """The newest allocation of ``experiment`` (with ``salt`` if given), or None."""
        sql = ("SELECT experiment, salt, version, names, weights, ranges, created_at "
               "FROM pf_allocations WHERE experiment = {p}")
        args: tuple = (experiment,)
        if salt is not None:
            sql += " AND salt = {p} ORDER BY version DESC LIMIT 1"
            args += (salt,)
        else:
            sql += " ORDER BY created_at DESC, version DESC LIMIT 1"
        row = self._run(lambda conn: conn.cursor().execute(self._sql(sql), args).fetchone())
        if row is None:
            return None
        names = tuple(json.loads(row[3]))
        owner = Allocation.owner_from_ranges(names, json.loads(row[5]))
        return Allocation(row[0], row[1], int(row[2]), names, tuple(json.loads(row[4])),
                          owner, float(row[6]))

    def insert_allocation(self, alloc: Allocation) -> bool:
        """Record a new allocation version; False if that version already exists (another
        process wrote it first: re-read with :meth:`latest_allocation`)."""
        sql = self._sql(
            "INSERT INTO pf_allocations (experiment, salt, version, names, weights, ranges, "
            "created_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}) "
            "ON CONFLICT (experiment, salt, version) DO NOTHING"
        )
        args = (alloc.experiment, alloc.salt, alloc.version, json.dumps(list(alloc.names)),
                json.dumps(list(alloc.weights)), json.dumps(alloc.ranges()), alloc.created_at)
        n = self._run(lambda conn: conn.cursor().execute(sql, args).rowcount)
        return n == 1

    def resolve_allocation(
        self, experiment: str, salt: str, names: Sequence[str], weights: Sequence[float]
    ) -> Allocation:
        """The allocation to serve for the configured variants: the latest one if its bucket
        counts still match, else the next version (see :mod:`prodfusion.service.experiments`),
        recorded in the ledger before it is used."""
        for _ in range(5):
            prev = self.latest_allocation(experiment, salt)
            alloc = Allocation.initial(experiment, salt, names, weights) if prev is None \
                else prev.evolve(names, weights)
            if alloc is prev or self.insert_allocation(alloc):
                if alloc is not prev:
                    log.info("experiment %s: allocation version %d %s", experiment,
                             alloc.version, alloc.counts())
                return alloc
        raise StoreUnavailable(
            f"Could not record a new allocation of experiment {experiment!r}: concurrent writers "
            "kept winning. Retry."
        )
