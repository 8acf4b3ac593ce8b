"""Fault test: a client streams events to a real uvicorn server, the server is SIGKILLed mid-stream
and restarted, and every acknowledged event is in the store exactly once."""

from __future__ import annotations

import json
import re
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


@pytest.mark.slow
def test_two_worker_processes_serve_and_sum_their_metrics(tmp_path):
    import httpx

    model = make_model(tmp_path)
    port = free_port()
    server = start_server(model, port, tmp_path / "server.log", "--events",
                          str(tmp_path / "events.sqlite3"), "--workers", "2")
    try:
        url = f"http://127.0.0.1:{port}"
        n = 0
        for i in range(12):  # fresh connections, so the kernel spreads them over both workers
            r = httpx.get(f"{url}/v1/similar/{i:04d}?k=3&visitor=v{i}")
            assert r.status_code == 200 and len(r.json()["items"]) == 3
            n += 1
        body = {"events": [{"event_id": f"e{i}", "type": "view", "visitor": "v1", "request_id": "r1",
                            "product_id": "0001"} for i in range(5)]}
        assert httpx.post(f"{url}/v1/events", json=body).status_code == 200
        text = httpx.get(f"{url}/metrics").text
        m = re.search(r'prodfusion_http_requests_total\{method="GET",route="/v1/similar/'
                      r'\{product_id\}",status="200",variant="default"\} ([0-9.]+)', text)
        assert m and float(m.group(1)) == n, text[:3000]
    finally:
        stop_server(server)
    conn = sqlite3.connect(tmp_path / "events.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM pf_events").fetchone()[0] == 5
    conn.close()
