"""Fault test: a client streams events to a real uvicorn server, the server is SIGKILLed mid-stream
and restarted, and every acknowledged event is in the store exactly once."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import free_port, make_model, start_server, stop_server

HERE = Path(__file__).resolve().parent


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_event(tmp_path):
    model = make_model(tmp_path)
    db, acked, log = tmp_path / "events.sqlite3", tmp_path / "acked.txt", tmp_path / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(model, port, log, "--events", str(db))
    client = subprocess.Popen(
        [sys.executable, str(HERE / "fault_client.py"), "--url", url, "--out", str(acked),
         "--batches", "300", "--batch-size", "10", "--deadline-s", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while len(lines(acked)) < 400 and time.monotonic() < end and client.poll() is None:
            time.sleep(0.01)
        assert client.poll() is None, "the client finished before the kill; send more batches"
        before_kill = len(lines(acked))
        server.send_signal(signal.SIGKILL)  # no shutdown, no flush, no goodbye
        server.wait(timeout=10)
        time.sleep(0.5)  # the client keeps retrying against a dead port meanwhile
        server = start_server(model, port, log, "--events", str(db))
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err
        stats = json.loads(out)
        assert stats["failures"] > 0, "the kill did not hit the stream"
    finally:
        if client.poll() is None:
            client.kill()
        stop_server(server)
    ids = lines(acked)
    assert len(ids) == 3000 and len(set(ids)) == 3000 and before_kill < 3000
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT event_id, COUNT(*) FROM pf_events GROUP BY event_id").fetchall()
    conn.close()
    stored = dict(rows)
    missing = [i for i in ids if i not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
    assert all(n == 1 for n in stored.values())
    assert set(stored) == set(ids)  # and nothing that was never sent
