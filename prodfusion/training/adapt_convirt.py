"""ConVIRT adaptation of a title encoder: titles and photos pulled together (see
:mod:`prodfusion.training.adapt` for the method, resumption and the output folder).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from prodfusion._outputs import check_replaceable_folder
from prodfusion.errors import DataError
from prodfusion.training._st import (
    ADAPTED_MARKER,
    Progress,
    load_st_model,
    logger,
    pooled,
    require_hf,
    tokenize,
    write_atomically,
    write_json,
)
from prodfusion.training.adapt import (
    AdaptConfig,
    _checkpoint_dir,
    _fingerprint,
    _manifest,
    _resume_state,
)
from prodfusion.training.image_side import ImageTower, frozen_features, image_tower, prepare_batch

__all__ = ["adapt_convirt"]


def adapt_convirt(catalog, out, config: AdaptConfig | None = None, *, cache=None,
                  image_features: tuple[np.ndarray, np.ndarray] | None = None,
                  tower: ImageTower | None = None, progress: bool = True) -> dict:
    """ConVIRT adaptation on (title, photo) pairs; writes ``out`` and returns the manifest.

    Parameters
    ----------
    catalog : prodfusion.data.Catalog
        Products without a usable photo are left out of training (counted).
    out : path
    config : AdaptConfig, optional
    cache : EmbeddingCache, optional
        Frozen image side: the image features are read from / written to it.
    image_features : (vectors, mask), optional
        Frozen image side: precomputed features aligned to catalog rows (instead of encoding
        ``config.image``).
    tower : ImageTower, optional
        Trainable image side (implies ``train_image_encoder``); default: ``image_tower(config.image)``.
    progress : bool

    Raises
    ------
    DataError
        When no product has a usable photo.
    """
    import torch

    from prodfusion.training.losses import CONVIRT_TEMPERATURE, ConVIRTLoss

    where = "adapt_convirt()"
    config = (config or AdaptConfig()).validate(where)
    require_hf(where)
    check_replaceable_folder(out, ADAPTED_MARKER, "adapt(): out")  # before any photo is read
    trainable = config.train_image_encoder or tower is not None
    paths = catalog.image_paths
    if not any(p for p in paths):
        raise DataError(
            f"{catalog.source}: ConVIRT needs product photos, but no product has an image path; "
            "pass --image-col, or --image-root with --image-template '{product_id}.jpg'."
        )
    t0 = time.perf_counter()
    if trainable:
        tower = tower or image_tower(config.image, device=config.device)
        feats = None
        mask = np.array([bool(p) for p in paths])
        image_dim, image_spec = tower.dim, tower.spec
    else:
        feats, mask = image_features if image_features is not None else frozen_features(
            catalog, config, cache, progress)
        image_dim, image_spec = feats.shape[1], config.image if image_features is None else "given"
    from prodfusion.encoders.text import title_mask

    rows = np.flatnonzero(mask & title_mask(catalog.titles))  # a photo and a title to pair
    if len(rows) < config.batch_size:
        raise DataError(
            f"{catalog.source}: ConVIRT needs at least batch_size={config.batch_size} products with a "
            f"usable photo; {len(rows)} of {len(catalog)} have one and a title (see the warnings above)."
        )
    titles = catalog.titles
    tau = config.temperature or CONVIRT_TEMPERATURE
    out = Path(out)
    ckpt = _checkpoint_dir(out)
    fingerprint = _fingerprint(catalog, [p or "" for p in paths])
    key = {"method": "convirt", "config": asdict(config), "data": fingerprint["sha256"],
           "image": image_spec, "trainable_image": trainable}
    state = _resume_state(ckpt, key)

    torch.manual_seed(config.seed)
    dev = config.device
    model = load_st_model(config.base, device=dev, where=where) if state is None else \
        load_st_model(f"st:{ckpt / 'model'}", device=dev, where=where)
    model.max_seq_length = config.max_seq_length
    text_dim = int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())
    loss_fn = ConVIRTLoss(text_dim, image_dim, projection_dim=config.projection_dim,
                          temperature=tau, alpha=config.alpha).to(dev)
    if feats is not None:
        # Standardised per dimension: raw CNN features have very different scales.
        present = feats[rows]
        mu, sd = present.mean(0), present.std(0) + 1e-6  # epsilon: constant features stay finite
        image_input = torch.from_numpy((feats - mu) / sd).float()
    groups = [
        {"params": list(model.parameters()), "lr": config.lr},
        {"params": list(loss_fn.parameters()), "lr": config.head_lr},
    ]
    if trainable:
        tower.module.to(dev)
        groups.append({"params": list(tower.module.parameters()), "lr": config.lr})
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    losses: list[float] = []
    start = 0
    if state is not None:
        saved = torch.load(ckpt / "state.pt", map_location=dev, weights_only=True)
        loss_fn.load_state_dict(saved["loss"])
        opt.load_state_dict(saved["optimizer"])
        if trainable:
            tower.module.load_state_dict(saved["tower"])
        losses, start = list(state["losses"]), int(state["epoch"])
        logger.info("adapt convirt: resuming after epoch %d of %d from %s", start, config.epochs, ckpt)

    n_batches = len(rows) // config.batch_size  # the last, short batch is dropped
    failed: set[int] = set()  # trainable image side: photos that could not be read
    for epoch in range(start, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 1000 + epoch)
        order = rng.permutation(rows)
        model.train()
        loss_fn.train()
        if trainable:
            tower.module.train()
        total = 0.0
        with Progress(n_batches, f"convirt epoch {epoch + 1}/{config.epochs}", enabled=progress) as bar:
            for b in range(n_batches):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                if trainable:
                    idx, arrays = prepare_batch(tower, paths, idx, failed)
                    if len(idx) < 2:
                        continue
                    img = tower.module(torch.from_numpy(np.stack(arrays)).to(dev))
                else:
                    img = image_input[idx].to(dev)
                text = pooled(model, tokenize(model, [titles[i] for i in idx], dev))
                loss = loss_fn(text, img)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
                bar.update(1, loss=f"{total / (b + 1):.4f}")
        losses.append(total / max(n_batches, 1))
        logger.info("adapt convirt: epoch %d/%d loss %.4f (%.0fs)", epoch + 1, config.epochs,
                    losses[-1], time.perf_counter() - t0)
        _save_checkpoint(ckpt, model, loss_fn, opt, tower if trainable else None, key, losses, epoch + 1)

    manifest = _manifest("convirt", config, fingerprint, losses, time.perf_counter() - t0, {
        "temperature": tau, "image_encoder": image_spec, "image_encoder_trained": trainable,
        "n_pairs": int(len(rows) - len(failed)), "n_without_image": int(len(catalog) - len(rows) + len(failed)),
        "resumed_after_epoch": start or None,
    })

    def write(tmp: Path) -> None:
        model.save(str(tmp))
        # The projection heads, for inspection or further training (not needed to encode).
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in loss_fn.state_dict().items()},
                  str(tmp / "convirt_heads.safetensors"))
        write_json(tmp / "adaptation.json", manifest)

    write_atomically(out, write, ADAPTED_MARKER)
    shutil.rmtree(ckpt, ignore_errors=True)
    return manifest


def _save_checkpoint(ckpt: Path, model, loss_fn, opt, tower, key: dict, losses: list[float], epoch: int) -> None:
    """Replace ``ckpt`` by the state after ``epoch`` (atomically: an interrupted save keeps the last)."""
    import torch

    def write(tmp: Path) -> None:
        model.save(str(tmp / "model"))
        saved = {"loss": loss_fn.state_dict(), "optimizer": opt.state_dict()}
        if tower is not None:
            saved["tower"] = tower.module.state_dict()
        torch.save(saved, tmp / "state.pt")
        write_json(tmp / "state.json", {"key": key, "losses": losses, "epoch": epoch})

    write_atomically(ckpt, write, "state.json")
