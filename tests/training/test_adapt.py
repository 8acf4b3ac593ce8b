"""Adaptation on a tiny randomly initialised BERT: the contrastive loss falls, the folder loads, runs resume."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.data import Catalog
from prodfusion.errors import DataError, ParameterError
from prodfusion.training import adapt_convirt as convirt_mod  # where ConVIRT checkpoints
from prodfusion.training.adapt import AdaptConfig, ImageTower, adapt_convirt, adapt_simcse

torch = pytest.importorskip("torch")


def _catalog(titles, labels, images=True) -> Catalog:
    data = {"product_id": [f"p{i}" for i in range(len(titles))], "title": titles, "category": labels}
    if images:
        data["image"] = [f"/nonexistent/p{i}.png" for i in range(len(titles))]
    return Catalog(pl.DataFrame(data))


def _planted_features(labels, dim=8, seed=0):
    """Photo features: a strong per-category direction plus per-product noise."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    centres = rng.normal(size=(len(names), dim)) * 3
    return (np.stack([centres[names.index(c)] for c in labels]) + rng.normal(size=(len(labels), dim))
            ).astype(np.float32)


def _config(base, **kw):
    return AdaptConfig(base=base, epochs=kw.pop("epochs", 4), batch_size=16, lr=1e-3, head_lr=1e-2,
                       projection_dim=16, max_seq_length=12, **kw)


def test_convirt_frozen_image_side_lowers_loss_and_writes_loadable_folder(tmp_path, tiny_st, planted):
    from sentence_transformers import SentenceTransformer

    from prodfusion.encoders import make_encoder

    titles, labels = planted
    cat = _catalog(titles, labels)
    feats = _planted_features(labels)
    mask = np.ones(len(titles), dtype=bool)
    mask[:5] = False  # products without a usable photo are left out, and counted
    out = tmp_path / "convirt"
    m = adapt_convirt(cat, out, _config(tiny_st), image_features=(feats, mask), progress=False)
    losses = m["loss_per_epoch"]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    assert m["n_pairs"] == len(titles) - 5 and m["n_without_image"] == 5
    on_disk = json.loads((out / "adaptation.json").read_text())
    assert on_disk["method"] == "convirt" and on_disk["hyperparameters"]["alpha"] == 0.75
    assert on_disk["data"]["n_products"] == len(titles)
    st = SentenceTransformer(str(out), device="cpu")
    assert st.encode(["red dress n1"]).shape == (1, 32)
    enc = make_encoder(f"st:{out}", progress=False)   # what `prodfusion build --text st:PATH` builds
    assert enc.encode_texts(["blue boot n2", "green tote n3"]).shape == (2, 32)
    assert not (tmp_path / "convirt.partial").exists()


def test_convirt_trainable_tiny_image_tower(tmp_path, tiny_st, planted):
    titles, labels = planted
    names = sorted(set(labels))
    rng = np.random.default_rng(1)
    colours = rng.uniform(size=(len(names), 3, 1, 1)).astype(np.float32)
    pixels = {f"/img/p{i}.png": np.clip(colours[names.index(c)] + 0.1 * rng.normal(size=(3, 8, 8)), 0, 1)
              .astype(np.float32) for i, c in enumerate(labels)}
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten())
    tower = ImageTower(module, lambda p: pixels[p], 8, "tiny-tower")   # KeyError: an unreadable photo
    images = [f"/img/p{i}.png" if i != 7 else "/img/broken.png" for i in range(len(titles))]
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(len(titles))], "title": titles,
                                "image": images}))
    before = [p.detach().clone() for p in module.parameters()]
    m = adapt_convirt(cat, tmp_path / "conv_t", _config(tiny_st), tower=tower, progress=False)
    assert m["image_encoder_trained"] is True
    assert m["n_without_image"] == 1 and m["n_pairs"] == len(titles) - 1
    assert m["loss_per_epoch"][-1] < m["loss_per_epoch"][0]
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_convirt_trainable_tower_fetches_each_url_photo_once_and_keeps_it(tmp_path, tiny_st,
                                                                          planted):
    """Photos named by URL: fetched once for the whole run (a batch's together), read from
    memory in later epochs; with no memory to keep them (budget 0), fetched every epoch."""
    import collections
    import io

    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.training.image_side import KeptPhotos

    titles, labels = planted
    names = sorted(set(labels))
    rng = np.random.default_rng(1)
    colours = rng.uniform(size=(len(names), 3, 1, 1)).astype(np.float32)
    urls = [f"https://cdn.example/p{i}.png" if i != 7 else "https://cdn.example/gone.png"
            for i in range(len(titles))]
    served = {}
    for u, c in zip(urls, labels, strict=True):
        buf = io.BytesIO()
        np.save(buf, np.clip(colours[names.index(c)] + 0.1 * rng.normal(size=(3, 8, 8)), 0, 1)
                .astype(np.float32))
        served[u] = buf.getvalue()
    del served["https://cdn.example/gone.png"]
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(len(titles))],
                                "title": titles, "image": urls}))
    for budget, epochs in ((2**20, 3), (0, 2)):
        fetched = collections.Counter()

        def fetch(url, fetched=fetched):
            fetched[url] += 1
            if url not in served:
                raise PhotoFetchError("HTTP 404 Not Found")
            return served[url]

        photos = KeptPhotos(budget, reader=fetch)
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                                     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        tower = ImageTower(module, lambda p, photos=photos: np.load(io.BytesIO(photos.read(p))),
                           8, "tiny-tower", photos)
        m = adapt_convirt(cat, tmp_path / f"conv_{budget}", _config(tiny_st, epochs=epochs),
                          tower=tower, progress=False)
        assert m["n_pairs"] == len(titles) - 1 and m["loss_per_epoch"][-1] < m["loss_per_epoch"][0]
        good = [u for u in urls if u in served]
        used = {u for u in good if fetched[u]}  # the last short batch's rows may never come
        assert len(used) >= len(good) - 16
        if budget:  # each fetched once in all; the missing one given up after its batch
            assert {fetched[u] for u in used} == {1} and photos.n_kept_bytes > 0
            assert fetched["https://cdn.example/gone.png"] <= 2
        else:  # nothing kept: fetched again each epoch it comes up
            assert max(fetched[u] for u in used) == epochs and photos.n_kept_bytes == 0


def test_convirt_resumes_after_interruption_and_keeps_previous_output(tmp_path, tiny_st, planted, monkeypatch):
    titles, labels = planted
    cat = _catalog(titles, labels)
    feats = (_planted_features(labels), np.ones(len(titles), dtype=bool))
    out = tmp_path / "model"
    out.mkdir()
    (out / "previous.txt").write_text("keep me")
    # a folder adapt did not write (no adaptation.json) is refused before any training
    with pytest.raises(ParameterError, match="holds files prodfusion did not write"):
        adapt_convirt(cat, out, _config(tiny_st, epochs=2), image_features=feats, progress=False)
    assert not (tmp_path / "model.partial").exists()
    (out / "adaptation.json").write_text("{}")  # an earlier adaptation's output: replaceable
    real = convirt_mod._save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(convirt_mod, "_save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        adapt_convirt(cat, out, _config(tiny_st, epochs=2), image_features=feats, progress=False)
    assert (out / "previous.txt").read_text() == "keep me"   # Ctrl-C: previous output untouched
    state = json.loads((tmp_path / "model.partial" / "state.json").read_text())
    assert state["epoch"] == 1
    monkeypatch.setattr(convirt_mod, "_save_checkpoint", real)
    m = adapt_convirt(cat, out, _config(tiny_st, epochs=2), image_features=feats, progress=False)
    assert m["resumed_after_epoch"] == 1 and len(m["loss_per_epoch"]) == 2
    assert m["loss_per_epoch"][0] == pytest.approx(state["losses"][0])
    assert not (out / "previous.txt").exists() and (out / "adaptation.json").exists()
    assert not (tmp_path / "model.partial").exists()


def test_simcse_writes_loadable_folder(tmp_path, tiny_st, planted):
    from sentence_transformers import SentenceTransformer

    titles, labels = planted
    cat = _catalog(titles + titles[:10], labels + labels[:10], images=False)  # duplicates are dropped
    m = adapt_simcse(cat, tmp_path / "simcse", _config(tiny_st, epochs=1), progress=False)
    assert m["method"] == "simcse" and m["n_titles"] == len(titles)
    assert m["temperature"] == 0.05 and len(m["loss_per_epoch"]) == 1 and m["loss_per_epoch"][0] > 0
    assert SentenceTransformer(str(tmp_path / "simcse"), device="cpu").encode(["red dress"]).shape == (1, 32)


def test_convirt_without_images_is_a_clear_error(tmp_path, tiny_st, planted):
    titles, labels = planted
    with pytest.raises(DataError, match="ConVIRT needs product photos.*--image-template"):
        adapt_convirt(_catalog(titles, labels, images=False), tmp_path / "x", _config(tiny_st))


def test_non_trainable_base_is_refused(tmp_path, planted):
    from prodfusion.errors import ParameterError

    with pytest.raises(ParameterError, match="'base' parameter of adapt_simcse.*usem3"):
        adapt_simcse(_catalog(*planted), tmp_path / "x", AdaptConfig(base="usem3"))


def test_cli_adapt_simcse_and_no_images_error(tmp_path, tiny_st, planted, capsys):
    from prodfusion.cli import main

    titles, labels = planted
    csv = tmp_path / "c.csv"
    pl.DataFrame({"product_id": [f"p{i}" for i in range(len(titles))], "title": titles}).write_csv(csv)
    out = tmp_path / "ad"
    assert main(["adapt", "simcse", "--catalog", str(csv), "--base", tiny_st, "--epochs", "1",
                 "--batch-size", "16", "--out", str(out)]) == 0
    assert json.loads((out / "adaptation.json").read_text())["hyperparameters"]["batch_size"] == 16
    cap = capsys.readouterr()
    assert f"prodfusion build --text st:{out}" in cap.out
    assert "{'loss'" not in cap.out and "'train_runtime'" not in cap.out  # no raw trainer dicts
    assert "adapt simcse: epoch 1.00/1 step" in cap.err  # plain lines: stderr is not a terminal
    assert main(["adapt", "convirt", "--catalog", str(csv), "--base", tiny_st, "--out", str(tmp_path / "cv"),
                 "--cache-dir", "none"]) == 2
    assert "ConVIRT needs product photos" in capsys.readouterr().err


def test_effnet_tower_is_trainable_and_prepares_photos(tmp_path):
    """The --train-image-encoder path: the packaged EfficientNet-Lite0 as a differentiable tower."""
    from PIL import Image

    from prodfusion.training.adapt import image_tower

    tower = image_tower("effnet-lite0")
    photo = tmp_path / "p.png"
    Image.new("RGB", (60, 90), (200, 30, 30)).save(photo)
    x = torch.from_numpy(np.stack([tower.prepare(str(photo))] * 2))
    assert x.shape == (2, 3, 224, 224) and tower.dim == 1280
    tower.module.train()
    out = tower.module(x)
    assert out.shape == (2, 1280)
    out.pow(2).mean().backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in tower.module.parameters())


def test_simcse_resumes_from_its_last_epoch_checkpoint(tmp_path, tiny_st, planted, monkeypatch):
    from transformers import Trainer

    titles, _ = planted
    cat = _catalog(titles, ["x"] * len(titles), images=False)
    out = tmp_path / "simcse"
    real = Trainer._save_checkpoint

    def save_then_interrupt(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        adapt_simcse(cat, out, _config(tiny_st, epochs=2), progress=False)
    assert not out.exists()   # nothing published before training finished
    monkeypatch.setattr(Trainer, "_save_checkpoint", real)
    m = adapt_simcse(cat, out, _config(tiny_st, epochs=2), progress=False)
    assert m["resumed_from"] == "checkpoint-10" and len(m["loss_per_epoch"]) == 2   # 160 titles / 16
    assert (out / "adaptation.json").exists() and not (tmp_path / "simcse.partial").exists()


def test_adapt_takes_photo_workers_for_the_command(monkeypatch):
    """`adapt convirt --photo-workers 8`: the threads that fetch its photos named by URL,
    set for the command only (as build's option)."""
    import os

    from prodfusion.cli.main import build_parser
    from prodfusion.cli.options import photo_workers
    from prodfusion.encoders.image import PHOTO_WORKERS_ENV, url_workers

    monkeypatch.delenv(PHOTO_WORKERS_ENV, raising=False)
    args = build_parser().parse_args(["adapt", "convirt", "--catalog", "c.csv", "--out", "o",
                                      "--photo-workers", "8"])
    with photo_workers(args):
        assert url_workers() == 8
    assert PHOTO_WORKERS_ENV not in os.environ
    with pytest.raises(SystemExit):
        build_parser().parse_args(["adapt", "convirt", "--catalog", "c.csv", "--out", "o",
                                   "--photo-workers", "0"])
