"""The event store: idempotency, all-or-nothing batches, durability settings, report queries.

Runs against SQLite always and against PostgreSQL when a server can be started here
(``$PRODFUSION_TEST_POSTGRES_URL``, or initdb/pg_ctl on this machine).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from prodfusion.errors import ParameterError
from prodfusion.service.events import (
    Event,
    SQLiteEventStore,
    StoreUnavailable,
    open_event_store,
)

from .pg import TempPostgres, find_pg_bin


@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("PRODFUSION_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    bindir = find_pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL tests skipped: no initdb/pg_ctl on this machine "
                    "(apt-get install postgresql) and no $PRODFUSION_TEST_POSTGRES_URL")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg")
    pg = TempPostgres(bindir)
    try:
        url = pg.start()
    except Exception as exc:  # cannot start here (e.g. no 'postgres' user)
        pg.stop()
        pytest.skip(f"PostgreSQL tests skipped: cannot start a temporary server ({exc})")
    yield url
    pg.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_event_store(tmp_path / "events.sqlite3")
    else:
        import uuid

        import psycopg

        url = request.getfixturevalue("postgres_url")
        schema = "t_" + uuid.uuid4().hex[:10]  # one schema per test: no cross-talk
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in url else "?"
        s = open_event_store(f"{url}{sep}options=-csearch_path%3D{schema}")
    yield s
    s.close()


def ev(eid: str, typ: str = "view", *, rid: str = "r1", variant: str = "a", visitor: str = "v1",
       category: str | None = "Shoes", t: float = 100.0, **kw) -> Event:
    return Event(event_id=eid, type=typ, experiment="exp", variant=variant, visitor=visitor,
                 request_id=rid, product_id="p1", category=category, received_at=t, **kw)


def test_idempotent_by_event_id(store):
    assert store.add([ev("e1"), ev("e2"), ev("e1")]).as_dict() == {"stored": 2, "duplicates": 1}
    assert store.add([ev("e2"), ev("e3")]).as_dict() == {"stored": 1, "duplicates": 1}
    assert store.add([]).as_dict() == {"stored": 0, "duplicates": 0}
    assert sorted(e.event_id for e in store.fetch_events("exp")) == ["e1", "e2", "e3"]
    assert store.count() == 3 and store.count("other") == 0


def test_first_copy_wins(store):
    store.add([ev("e1", visitor="first")])
    store.add([ev("e1", visitor="second")])
    (only,) = store.fetch_events()
    assert only.visitor == "first"


def test_round_trip_of_every_field(store):
    e = ev("c1", "click", target_id="p9", rank=3, client_ts="2024-06-01T10:00:00Z", t=123.5)
    store.add([e])
    assert store.fetch_events("exp") == [e]


def test_impressions_and_visitors(store):
    store.add([
        # variant a, Shoes: 3 impressions; r1 viewed+2 clicks+jump, r2 viewed, r3 viewed+click
        ev("1", rid="r1"), ev("2", "click", rid="r1", target_id="x", rank=1),
        ev("3", "click", rid="r1", target_id="y", rank=2), ev("4", "jump", rid="r1"),
        ev("5", rid="r2", visitor="v2"), ev("6", rid="r3", visitor="v2"),
        ev("7", "click", rid="r3", visitor="v2", target_id="x", rank=5),
        # variant b, no category: 1 impression viewed, 1 click without a view (lost view)
        ev("8", rid="r4", variant="b", category=None, visitor="v3", t=50.0),
        ev("9", "click", rid="r5", variant="b", category=None, target_id="x", rank=1),
    ])
    rows = {(r["variant"], r["category"]): r for r in store.impressions("exp")}
    assert rows[("a", "Shoes")] == {
        "variant": "a", "category": "Shoes", "views": 3, "clicks": 2, "jumps": 1,
        "click_events": 3, "jump_events": 1, "without_view": 0, "repeated_views": 0}
    assert rows[("b", None)] == {
        "variant": "b", "category": None, "views": 1, "clicks": 0, "jumps": 0,
        "click_events": 0, "jump_events": 0, "without_view": 1, "repeated_views": 0}
    assert store.visitors("exp") == {"a": 2, "b": 1}
    assert store.visitors("exp", since=60.0) == {"a": 2}
    assert store.experiments() == ["exp"]


def test_sqlite_is_wal_with_the_requested_durability(tmp_path: Path):
    for sync, code in (("FULL", 2), ("NORMAL", 1)):
        s = SQLiteEventStore(tmp_path / f"{sync}.sqlite3", synchronous=sync).open()
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == code
        s.close()
    with pytest.raises(ParameterError, match=r"The 'synchronous' parameter of SQLiteEventStore\(\) must be 'FULL' or 'NORMAL'. Got 'OFF' instead."):
        SQLiteEventStore(tmp_path / "x.sqlite3", synchronous="OFF")


def test_locked_database_refuses_the_whole_batch(tmp_path: Path):
    path = tmp_path / "ev.sqlite3"
    s = SQLiteEventStore(path, busy_timeout_s=0.05).open()
    s.add([ev("e0")])
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreUnavailable, match=r"Event store sqlite:.*ev.sqlite3 \(WAL, synchronous=FULL\) failed: database is locked"):
        s.add([ev("e1"), ev("e2")])
    blocker.execute("ROLLBACK")
    blocker.close()
    assert [e.event_id for e in s.fetch_events()] == ["e0"]  # nothing of the batch was stored
    assert s.add([ev("e1"), ev("e2")]).stored == 2  # reconnects and works again
    s.close()


def test_store_that_cannot_open(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailable, match=r"cannot be opened: cannot create folder"):
        open_event_store(tmp_path / "file" / "events.sqlite3")
    with pytest.raises(ParameterError, match=r"Event store 'mysql://x': unknown scheme"):
        open_event_store("mysql://x")
    s = open_event_store(f"sqlite:///{tmp_path / 'u.sqlite3'}")
    assert s.ping() and (tmp_path / "u.sqlite3").exists()
    s.close()


def test_postgres_url_password_is_never_printed():
    from prodfusion.service.events import PostgresEventStore

    s = PostgresEventStore("postgresql://user:secret@db.example:5433/events")
    assert s.describe() == "postgresql://db.example:5433/events"


def test_quarantined_events_are_stored_but_never_counted(store):
    store.add([
        ev("1", rid="r1"), ev("2", "click", rid="r1", target_id="x", rank=1),
        ev("3", rid="r1"), ev("4", rid="r1"),  # reloads: the same (visitor, request) again
        ev("5", rid="r1", visitor="v2"),       # another visitor with the same id: its own
        ev("6", rid="f1", visitor="v9", status="unverified"),
        ev("7", "click", rid="f1", visitor="v9", target_id="x", rank=1, status="unverified"),
        ev("8", "click", rid="r1", target_id="z", rank=3, status="target_not_served"),
        ev("9", "jump", rid="r1", variant="b", status="late", t=86400 * 3 + 5),
    ])
    (row,) = store.impressions("exp")
    assert (row["views"], row["clicks"], row["click_events"], row["repeated_views"]) == (2, 1, 1, 2)
    assert store.visitors("exp") == {"a": 2}  # v9 is only in quarantined events
    got = {(r["variant"], r["type"], r["reason"]): r["events"] for r in store.excluded("exp")}
    assert got == {("a", "view", "unverified"): 1, ("a", "click", "unverified"): 1,
                   ("a", "click", "target_not_served"): 1, ("b", "jump", "late"): 1}
    assert len(store.fetch_events("exp")) == 9  # nothing lost
    assert {e.event_id: e.status for e in store.fetch_events("exp")}["8"] == "target_not_served"


def test_daily_counts_by_utc_day_of_the_impression(store):
    day = 86400.0
    store.add([
        ev("1", rid="r1", t=2 * day + 10), ev("2", "click", rid="r1", target_id="x", rank=1,
                                                t=3 * day + 10),  # clicked the next day
        ev("3", rid="r2", t=3 * day + 5), ev("4", rid="r3", variant="b", t=3 * day + 7),
    ])
    got = [(r["variant"], r["day"], r["views"], r["clicks"]) for r in store.daily("exp")]
    assert got == [("a", 2, 1, 1), ("a", 3, 1, 0), ("b", 3, 1, 0)]


def test_secret_is_created_once_and_kept(store):
    first = store.secret("ab_secret", lambda: "s1" * 16)
    assert first == "s1" * 16
    assert store.secret("ab_secret", lambda: "other" * 8) == first


def test_old_store_gets_the_status_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("""CREATE TABLE pf_events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL,
        experiment TEXT NOT NULL, variant TEXT NOT NULL, visitor TEXT NOT NULL,
        request_id TEXT NOT NULL, product_id TEXT NOT NULL, target_id TEXT, rank INTEGER,
        category TEXT, client_ts TEXT, received_at DOUBLE PRECISION NOT NULL)""")
    conn.execute("INSERT INTO pf_events VALUES ('old', 'view', 'exp', 'a', 'v1', 'r1', 'p1', "
                 "NULL, NULL, 'Shoes', NULL, 100.0)")
    conn.commit()
    conn.close()
    s = open_event_store(path)
    try:
        assert [(e.event_id, e.status) for e in s.fetch_events()] == [("old", "ok")]
        assert s.impressions("exp")[0]["views"] == 1
    finally:
        s.close()


def test_page_views_one_per_impression_in_visitor_then_time_order(store):
    """The click log ``prodfusion ab views`` writes: verified views only, a reload (the same
    request id) once, other experiments' views with ``experiment=None`` only."""
    def view(eid, visitor, rid, product, t, **kw):
        return Event(eid, "view", kw.pop("experiment", "exp"), "a", visitor, rid, product,
                     received_at=t, **kw)

    store.add([
        view("e1", "v2", "r1", "p1", 300.0),
        view("e2", "v1", "r2", "p2", 200.0),
        view("e3", "v1", "r3", "p3", 100.0),
        view("e4", "v1", "r3", "p3", 150.0),  # a reload: the same impression
        view("e5", "v1", "r4", "p4", 400.0, status="unverified"),  # quarantined
        Event("e6", "click", "exp", "a", "v1", "r2", "p2", target_id="p9", rank=1,
              received_at=210.0),
        view("e7", "v3", "r5", "p5", 50.0, experiment="other"),
    ])
    batches = []
    assert store.page_views(batches.append, batch=2) == 4
    assert [len(b) for b in batches] == [2, 2]
    assert [tuple(r) for b in batches for r in b] == [
        ("v1", "p3", 100.0), ("v1", "p2", 200.0), ("v2", "p1", 300.0), ("v3", "p5", 50.0)]
    rows = []
    assert store.page_views(rows.extend, experiment="exp") == 3
    assert ("v3", "p5", 50.0) not in [tuple(r) for r in rows]
