"""Fetching photos by URL over kept-open connections (urllib3's pools, what
``prodfusion.data.photos.fetch_photo`` uses) against a new connection per photo (the standard
library's ``urlopen``), 16 threads each, from a local HTTP/1.1 server that simulates a
network: it waits ``--connect-ms`` when a connection opens (the TCP and TLS handshakes'
round trips to a CDN) and ``--answer-ms`` before each answer (forty-seventh session).

    python benchmarks/photo_fetch.py [--photos 2000] [--connect-ms 50] [--answer-ms 25]

Writes ``docs/benchmarks/photo_fetch.md``. The delays are simulated; what a real CDN costs
depends on the distance to it and on TLS, which this local server does not speak.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _serve(port, body: bytes, connect_s: float, answer_s: float, counts) -> None:
    """The server, in a process of its own (so that its Python does not share the client's
    interpreter lock); ``counts``: shared connections and requests."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections stay open between requests
        disable_nagle_algorithm = True  # as servers do: no 40 ms wait between header and body

        def setup(self):
            with counts.get_lock():
                counts[0] += 1
            time.sleep(connect_s)
            super().setup()

        def do_GET(self):  # noqa: N802 - the stdlib's name
            with counts.get_lock():
                counts[1] += 1
            time.sleep(answer_s)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    Server(("127.0.0.1", port.value), Handler).serve_forever()


def serve(body: bytes, connect_s: float, answer_s: float):
    import multiprocessing as mp
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = mp.Value("i", s.getsockname()[1])
    counts = mp.Array("q", 2)
    proc = mp.get_context("fork").Process(target=_serve, args=(port, body, connect_s, answer_s,
                                                               counts), daemon=True)
    proc.start()
    for _ in range(100):  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port.value), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    while counts[0] < 1:  # the probe's connection counted, then forgotten
        time.sleep(0.01)
    with counts.get_lock():
        counts[0] = 0
    return proc, port.value, counts


def run(get, urls, workers: int = 16) -> float:
    headers = {"User-Agent": "benchmark", "Accept": "image/*"}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(lambda u: len(get(u, headers, 20.0, 2**25)), urls))
    assert all(sizes)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--connect-ms", type=float, default=50.0)
    ap.add_argument("--answer-ms", type=float, default=25.0)
    ap.add_argument("--report", type=Path,
                    default=ROOT / "docs" / "benchmarks" / "photo_fetch.md")
    args = ap.parse_args()
    from prodfusion.data.photos import _get_pooled, _get_urllib

    body = os.urandom(60_000)  # about a product photo's size
    proc, port, counts = serve(body, args.connect_ms / 1000, args.answer_ms / 1000)
    base = f"http://127.0.0.1:{port}"
    urls = [f"{base}/p/{i}.jpg" for i in range(args.photos)]
    rows = []
    for label, get, workers in (
            ("a new connection per photo (urllib.request.urlopen)", _get_urllib, 16),
            ("kept-open connections (urllib3, prodfusion's fetch_photo)", _get_pooled, 16),
            ("the same, 64 threads (what `PRODFUSION_PHOTO_WORKERS=64` gives a build)",
             _get_pooled, 64)):
        before = list(counts)
        seconds = run(get, urls, workers)
        rows.append((label, workers, seconds, counts[0] - before[0], counts[1] - before[1]))
        print(label, workers, f"{seconds:.1f} s", rows[-1][3:], flush=True)
    proc.terminate()
    lines = [
        "# Photo URLs over kept-open connections",
        "",
        f"`python benchmarks/photo_fetch.py --photos {args.photos} --connect-ms "
        f"{args.connect_ms:g} --answer-ms {args.answer_ms:g}` on {platform.machine()}, "
        f"{os.cpu_count()} cores (the 2-core VM of docs/results/README.md): {args.photos:,} "
        "photos of 60 KB fetched by 16 or 64 threads from a local HTTP/1.1 server that waits "
        f"{args.connect_ms:g} ms when a connection opens (standing in for the TCP and TLS "
        f"handshakes' round trips to a CDN) and {args.answer_ms:g} ms before each answer, "
        "in a process of its own (Nagle's algorithm off, as web servers have it). One run "
        "each; the delays are simulated (this server speaks no TLS).",
        "",
        "| fetching | threads | wall time | photos/s | connections opened | × the first |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, workers, seconds, conns, reqs in rows:
        lines.append(f"| {label} | {workers} | {seconds:.1f} s | {reqs / seconds:,.0f} | "
                     f"{conns:,} | {seconds / rows[0][2]:.2f} |")
    lines += ["", "A build fetches photos four batches ahead of the model, so where the model "
              "is slower than the fetches (effnet-lite0 on this CPU: about 44 photos/s) the "
              "difference does not show in the build's time; on a GPU it can, and "
              "`PRODFUSION_PHOTO_WORKERS` raises the fetching threads (at the cost of more "
              "connections to the shop's server at once). How many a CDN serves before it "
              "slows or refuses is the CDN's to say; this server is the same machine.", ""]
    args.report.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
