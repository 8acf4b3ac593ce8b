"""Tiny planted models for the service tests (no encoders: Recommender.from_embeddings)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import Embeddings
from prodfusion.recommender import Recommender

CATEGORIES = ("Dresses", "Shoes", "Hats", "Bags")
COLORS = ((200, 60, 60), (60, 120, 200), (70, 160, 90), (200, 170, 60))


def render_images(folder: Path, n: int) -> list[str]:
    """One small PNG per product, coloured by category, with its number drawn on it."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = Image.new("RGB", (60, 80), COLORS[i % len(COLORS)])
        ImageDraw.Draw(img).text((8, 30), f"{i:03d}", fill=(255, 255, 255))
        p = folder / f"{i:04d}.png"
        img.save(p)
        paths.append(str(p))
    return paths


def make_catalog(folder: Path, n: int = 40, *, images: bool = True) -> Catalog:
    """``n`` products; product i is in category i % 4; ids keep leading zeros ("0000"…)."""
    paths = render_images(folder / "images", n) if images else [None] * n
    frame = pl.DataFrame({
        "product_id": [f"{i:04d}" for i in range(n)],
        "title": [f"{CATEGORIES[i % 4][:-1]} number {i}" for i in range(n)],
        "image": paths,
        "category": [CATEGORIES[i % 4] for i in range(n)],
    })
    return Catalog(frame, source="<test>")


def planted_embeddings(n: int, labels: np.ndarray, seed: int, dim: int = 8) -> dict[str, Embeddings]:
    """Text / image / clicks vectors: a centre per label plus small noise (planted neighbours)."""
    rng = np.random.default_rng(seed)
    out = {}
    for m in ("text", "image", "clicks"):
        centres = rng.normal(size=(labels.max() + 1, dim)) * 3
        v = centres[labels] + rng.normal(scale=0.1, size=(n, dim))
        mask = np.ones(n, dtype=bool)
        if m == "clicks":
            mask[-2:] = False  # two cold-start products without clicks
        out[m] = Embeddings(v.astype(np.float32), mask, f"planted-{m}")
    return out


def make_model(folder: Path, *, n: int = 40, seed: int = 0, by: str = "category",
               images: bool = True, catalog: Catalog | None = None,
               profile: str | None = None) -> Path:
    """Save a planted model under ``folder / 'model'``; neighbours share ``by``:
    "category" (i % 4) or "block" (i // 10, a different answer for reload tests).
    ``profile``: also a weighting profile of that name, the photos alone (as
    ``tune(profile=...)`` keeps one)."""
    cat = catalog or make_catalog(folder, n, images=images)
    idx = np.arange(len(cat))
    labels = idx % 4 if by == "category" else idx // 10
    rec = Recommender.from_embeddings(cat, planted_embeddings(len(cat), labels, seed),
                                      fusion="intermediate", seed=seed)
    if profile:
        from prodfusion.model_state import apply_profile

        apply_profile(rec, profile, {"weights": {"text": 0.0, "image": 1.0, "clicks": 0.0},
                                     "calibration": "zscore", "n0": None})
    return rec.save(folder / "model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(target: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """``prodfusion serve TARGET`` in a subprocess (real uvicorn); returns once /readyz is 200."""
    import httpx

    cmd = [sys.executable, "-m", "prodfusion.cli", "serve", str(target), "--port", str(port),
           "--reload-interval", "0", "--no-access-log", "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"server not ready in 60 s: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM (graceful), SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
