"""Shared fixtures: seeds and the location of the real evaluation data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$PRODFUSION_SHARED_DATA`` or ``../shared/data`` relative to the repository root."""
    return Path(os.environ.get("PRODFUSION_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def seed() -> int:
    return 12345


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def angled_titles():
    """A factory of a six-product model whose title vectors lie on a circle (p0's nearest:
    p4, p1, p2, p3, p5) and of its five sessions, with the catalog's extra ``columns``
    (e.g. ``group=[…]``); held out by ``test_fraction=0.4``: p0 → p2 and p0 → p4."""
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.data.sessions import Sessions
    from prodfusion.encoders.base import Embeddings
    from prodfusion.recommender import Recommender

    def make(**columns):
        ids = [f"p{i}" for i in range(6)]
        angles = np.radians([0, 10, 15, 30, 5, 60])
        text = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
        cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids, **columns}))
        rec = Recommender.from_embeddings(
            cat, {"text": Embeddings(text, np.ones(6, bool), "t")}, fusion="intermediate")
        lists = [["p1", "p3"], ["p5", "p2"], ["p3", "p5"], ["p3", "p0", "p2"],
                 ["p2", "p0", "p4"]]
        sessions = Sessions(pl.DataFrame({
            "session": [f"s{i}" for i, s in enumerate(lists) for _ in s],
            "position": [j for s in lists for j in range(len(s))],
            "product_id": [p for s in lists for p in s],
            "ts": [float(i) for i, s in enumerate(lists) for _ in s]}))
        return rec, sessions

    return make


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not (d / "hm" / "articles.csv").exists():
        pytest.skip(f"shared evaluation data not found at {d} (set PRODFUSION_SHARED_DATA)")
    return d


class ObjectStore:
    """An S3 server in this process (moto's), its endpoint in the environment as an S3 client
    reads it (``AWS_ENDPOINT_URL``), and a client for the test's own uploads."""

    def __init__(self, endpoint: str) -> None:
        import pyarrow.fs as pafs

        self.endpoint = endpoint
        self.fs = pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True,
                                    access_key="test", secret_key="test", region="us-east-1")

    def put(self, uri: str, data: bytes, content_type: str | None = None) -> str:
        """Store ``data`` at ``s3://bucket/key`` (the bucket made when new); returns ``uri``."""
        key = uri.removeprefix("s3://")
        bucket = key.split("/", 1)[0]
        if self.fs.get_file_info(bucket).type.name == "NotFound":
            self.fs.create_dir(bucket)
        meta = {"Content-Type": content_type} if content_type else None
        with self.fs.open_output_stream(key, metadata=meta) as out:
            out.write(data)
        return uri

    def put_file(self, uri: str, path) -> str:
        return self.put(uri, Path(path).read_bytes())


@pytest.fixture(scope="session")
def _s3_server():
    pytest.importorskip("moto", reason="moto[server] (the test extra) stands in for S3")
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(_s3_server, monkeypatch) -> ObjectStore:
    """An S3 store (:class:`ObjectStore`) that ``s3://`` URIs reach during the test."""
    from prodfusion.data import storage

    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", _s3_server)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    storage._forget()
    yield ObjectStore(_s3_server)
    storage._forget()
