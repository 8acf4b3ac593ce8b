"""Encoding on Ray Data gives the local path's embeddings, counts photo failures the same way,
goes through the embedding cache, and resumes from shards an interrupted run left."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodfusion.encoders import EmbeddingCache, make_encoder
from prodfusion.errors import ParameterError
from tests.encoders.conftest import draw, make_catalog

pytestmark = pytest.mark.slow

WORDS = ["red", "dress", "laptop", "blue", "shoe", "shoes", "kırmızı", "çanta", "bag", "lamp"]


def _titles(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 3)) + f" {i % 997}" for i in range(n)]


def test_text_on_ray_equals_local_and_resumes_from_leftover_shards(ray_local, tiny_st_path,
                                                                  tmp_path):
    from prodfusion.encoders.cache import content_key
    from prodfusion.engine.ray_encode import RAY_SHARDS_MARKER, encode_on_ray

    spec = f"st:{tiny_st_path}"
    titles = _titles(3000)  # ~2,990 distinct titles
    titles[7], titles[2999] = None, "  "  # no title: no text vector, on Ray as locally
    cat = make_catalog(titles)
    local = make_encoder(spec, progress=False).encode(cat)
    assert not local.mask[[7, 2999]].any() and local.mask.sum() == 2998
    # What an interrupted run leaves: finished shards (here: the first 500 distinct titles).
    shards = tmp_path / "shards"
    shards.mkdir()
    done = [t for t in dict.fromkeys(cat.titles) if t and t.strip()][:500]
    vec = local.vectors[[cat.titles.index(t) for t in done]]
    pq.write_table(pa.table({
        "key": [content_key(t) for t in done], "ok": [True] * 500, "kind": [""] * 500,
        "reason": [""] * 500,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), vec.shape[1])}),
        shards / "0-done.parquet")
    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.raises(ParameterError, match="holds files prodfusion did not write"):
        encode_on_ray(cat, spec, cache, actors=2, shards_dir=shards)  # not marked as its own
    assert (shards / "0-done.parquet").exists()
    (shards / RAY_SHARDS_MARKER).touch()  # as encode_on_ray marks the folder it writes
    got = encode_on_ray(cat, spec, cache, actors=2, num_cpus_per_actor=0.5, batch_size=256,
                        shards_dir=shards)
    assert got.info["engine"] == "ray"
    assert got.info["n_encoded_on_ray"] == local.info["n_unique"] - 500
    assert got.info["ray_nodes"] == 1  # the shard without a node column (older runs) merges
    np.testing.assert_array_equal(got.mask, local.mask)
    np.testing.assert_allclose(got.vectors, local.vectors, rtol=0, atol=1e-5)
    assert not shards.exists()  # merged into the cache, then removed
    # a rerun finds everything in the cache: nothing goes to Ray
    again = encode_on_ray(cat, spec, cache, actors=2)
    assert again.info["n_encoded_on_ray"] == again.info["ray_nodes"] == 0
    np.testing.assert_array_equal(again.vectors, got.vectors)


def test_images_on_ray_count_failures_like_local(ray_local, tiny_clip_path, tmp_path):
    from prodfusion.engine.ray_encode import encode_on_ray

    d = tmp_path / "img"
    d.mkdir()
    paths = []
    for i in range(24):
        p = d / f"{i}.jpg"
        draw(("red_disk", "blue_stripes", "green_square")[i % 3], shift=i % 7).save(p)
        paths.append(p)
    good = paths[0].read_bytes()
    (d / "cut.jpg").write_bytes(good[: len(good) // 3])
    (d / "text.jpg").write_text("not an image")
    paths += [d / "cut.jpg", d / "text.jpg", d / "absent.jpg", None]
    cat = make_catalog([f"p {i}" for i in range(len(paths))], images=paths)
    spec = f"clip:{tiny_clip_path}"
    local = make_encoder(spec, progress=False).encode(cat)
    got = encode_on_ray(cat, spec, EmbeddingCache(tmp_path / "cache"), actors=2, batch_size=8)
    np.testing.assert_array_equal(got.mask, local.mask)
    assert got.mask.sum() == 24
    np.testing.assert_allclose(got.vectors, local.vectors, rtol=0, atol=1e-5)
    for key in ("n_images", "n_no_image", "n_missing", "n_corrupt"):
        assert got.info[key] == local.info[key], key
    assert (got.info["n_missing"], got.info["n_corrupt"], got.info["n_no_image"]) == (1, 2, 1)


def test_photo_urls_on_ray_are_downloaded_once_and_equal_local(ray_local, tiny_clip_path,
                                                               tmp_path):
    """Photos named by URL (file:// here; http(s) in tests/encoders/test_photo_urls.py) are
    fetched by the actors and cached under their URLs: a rerun sends nothing to Ray."""
    from prodfusion.engine.ray_encode import encode_on_ray

    d = tmp_path / "img"
    d.mkdir()
    urls = []
    for i in range(12):
        p = d / f"{i}.jpg"
        draw(("red_disk", "blue_stripes", "green_square")[i % 3], shift=i % 5).save(p)
        urls.append(p.as_uri())
    urls.append((d / "absent.jpg").as_uri())
    cat = make_catalog([f"p {i}" for i in range(len(urls))], images=urls)
    spec = f"clip:{tiny_clip_path}"
    local = make_encoder(spec, progress=False).encode(
        make_catalog([f"p {i}" for i in range(12)], images=[d / f"{i}.jpg" for i in range(12)]))
    cache = EmbeddingCache(tmp_path / "cache")
    got = encode_on_ray(cat, spec, cache, actors=2, batch_size=4)
    assert got.info["n_encoded_on_ray"] == 13 and got.mask.tolist() == [True] * 12 + [False]
    np.testing.assert_allclose(got.vectors[:12], local.vectors, rtol=0, atol=1e-5)
    assert got.info["failures"][0][2].startswith("missing: download failed: cannot read")
    again = encode_on_ray(cat, spec, cache, actors=2, batch_size=4)
    assert again.info["n_encoded_on_ray"] == 1  # the URL that failed, tried again
    np.testing.assert_array_equal(again.vectors, got.vectors)


def test_ray_encoding_needs_a_cache(ray_local, tiny_st_path):
    from prodfusion.engine.ray_encode import encode_on_ray

    with pytest.raises(ParameterError, match="through the embedding cache"):
        encode_on_ray(make_catalog(["a b"]), f"st:{tiny_st_path}", None)


def test_cli_build_on_ray_equals_local_build(ray_local, tiny_st_path, tmp_path):
    from prodfusion.cli import main

    csv = tmp_path / "catalog.csv"
    titles = _titles(300, seed=2)
    csv.write_text("product_id,title\n" + "".join(f"p{i},{t}\n" for i, t in enumerate(titles)))
    common = ["build", "--catalog", str(csv), "--text", f"st:{tiny_st_path}", "--image", "none",
              "--no-clicks", "--fusion", "intermediate"]
    assert main([*common, "--out", str(tmp_path / "local"), "--cache-dir", "none"]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "c"),
                 "--engine", "ray", "--ray-workers", "2"]) == 0
    a = np.load(tmp_path / "local" / "emb_text.npy")
    b = np.load(tmp_path / "ray" / "emb_text.npy")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_cli_add_on_ray_equals_local_add(ray_local, tiny_st_path, tmp_path, capsys):
    """`add --engine ray`: the new products' titles and the changed ones' are encoded on Ray
    Data into the cache first (and only those), and the grown model equals a local add's."""
    import shutil

    from prodfusion.cli import main

    csv = tmp_path / "catalog.csv"
    titles = _titles(200, seed=3)
    csv.write_text("product_id,title\n" + "".join(f"p{i},{t}\n" for i, t in enumerate(titles)))
    assert main(["build", "--catalog", str(csv), "--text", f"st:{tiny_st_path}", "--image",
                 "none", "--no-clicks", "--lexical", "none", "--out", str(tmp_path / "m"),
                 "--cache-dir", "none"]) == 0
    feed = tmp_path / "feed.csv"  # p3 renamed, 12 new products
    rows = [f"p{i},{t if i != 3 else 'a renamed lamp'}" for i, t in enumerate(titles)]
    rows += [f"n{i},{t} new" for i, t in enumerate(_titles(12, seed=4))]
    feed.write_text("product_id,title\n" + "\n".join(rows) + "\n")
    shutil.copytree(tmp_path / "m", tmp_path / "local")
    shutil.copytree(tmp_path / "m", tmp_path / "ray")
    assert main(["add", str(tmp_path / "local"), "--catalog", str(feed),
                 "--cache-dir", "none"]) == 0
    capsys.readouterr()
    assert main(["add", str(tmp_path / "ray"), "--catalog", str(feed), "--cache-dir",
                 str(tmp_path / "c"), "--engine", "ray", "--ray-workers", "2"]) == 0
    assert "ray: text" in (err := capsys.readouterr().err) and "13 encoded on Ray (1 node)," in err
    a = np.load(tmp_path / "local" / "emb_text.npy")
    b = np.load(tmp_path / "ray" / "emb_text.npy")
    assert a.shape == b.shape == (212, a.shape[1])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    # without a cache the vectors have no way back: refused before anything is written
    before = (tmp_path / "m" / "manifest.json").read_text()
    assert main(["add", str(tmp_path / "m"), "--catalog", str(feed), "--cache-dir", "none",
                 "--engine", "ray"]) != 0
    assert "embedding cache" in capsys.readouterr().err
    assert (tmp_path / "m" / "manifest.json").read_text() == before
