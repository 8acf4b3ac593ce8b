"""An S3 server on this machine for the object-storage benchmarks: moto's ``moto_server``
(the ``test`` extra installs it) in a process of its own, so its CPU is not the client's
(it still runs on the same cores)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LocalS3:
    """A running server: its endpoint, the AWS variables a client (or a child process)
    reaches it with, an admin client (buckets made, files copied up) and its process."""

    endpoint: str
    env: dict[str, str]
    fs: object
    process: subprocess.Popen


@contextmanager
def local_s3(*buckets: str) -> Iterator[LocalS3]:
    """Start the server, make ``buckets``, stop it at the end."""
    import pyarrow.fs as pafs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="bench",
                               secret_key="bench", region="us-east-1",
                               allow_bucket_creation=True)
        for b in buckets:
            fs.create_dir(b)
        yield LocalS3(endpoint, {**os.environ, **env}, fs, server)
    finally:
        server.terminate()
        server.wait()
