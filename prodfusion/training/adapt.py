"""Adapt a title encoder to a catalog without labels: SimCSE (titles) or ConVIRT (titles + photos).

Both start from a sentence-transformers model (``st:<name-or-path>``; default the packaged
all-MiniLM-L6-v2) and write a standard sentence-transformers folder, loadable with
``SentenceTransformer(path)`` and usable as ``prodfusion build --text st:PATH``, plus
``adaptation.json`` (method, base, data fingerprint, hyper-parameters, loss per epoch).

* **SimCSE** trains with sentence-transformers' own ``SentenceTransformerTrainer`` on
  (anchor = positive = title) pairs, ``MultipleNegativesRankingLoss(scale=1/τ)`` and the
  ``NO_DUPLICATES`` batch sampler (:func:`prodfusion.training.losses.simcse_loss`).
* **ConVIRT** is a small torch loop: title → encoder → mean pooling → projection, photo →
  image features → projection, :func:`~prodfusion.training.losses.convirt_loss`. The image
  side is frozen by default: features are computed once through the image encoders and the
  embedding cache, and only its projection is trained; ``train_image_encoder=True``
  back-propagates into the image tower too (a GPU job).

Runs are resumable: after every epoch a checkpoint goes to ``<out>.partial/``; running the
same command again continues from the last finished epoch. The output folder is replaced
only when training finished (an error or Ctrl-C leaves the previous one untouched).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from prodfusion._checks import check_real
from prodfusion.errors import DataError, param_error
from prodfusion.training._st import (
    DEFAULT_BASE,
    Progress,
    check_positive_float,
    check_positive_int,
    check_st_spec,
    library_versions,
    load_st_model,
    logger,
    pooled,
    require_hf,
    tokenize,
    write_atomically,
    write_json,
)
from prodfusion.training.image_side import ImageTower, frozen_features, image_tower, prepare_batch

__all__ = ["AdaptConfig", "ImageTower", "adapt", "adapt_simcse", "adapt_convirt", "image_tower"]

Method = Literal["simcse", "convirt"]
FORMAT = "prodfusion-adaptation/1"


@dataclass
class AdaptConfig:
    """Hyper-parameters of an adaptation run (the paper's values unless noted).

    Attributes
    ----------
    base : str
        ``st:<name-or-path>`` of the encoder to adapt.
    epochs : int
        Passes over the catalog. The paper ran 50 on a GPU; the default here (1) keeps a
        whole-H&M ConVIRT run on the shared 2-core CPU under 30 minutes
        (docs/benchmarks/adapt_hm.md). More epochs are one option away.
    batch_size : int
        32, as in the paper.
    lr, weight_decay : float
        AdamW, the paper's 1e-5 and 1e-8.
    head_lr : float
        Learning rate of ConVIRT's freshly initialised projection heads (default 1e-3, a
        CPU-budget deviation: at 1e-5 they barely move in 3 epochs).
    max_seq_length : int
        Tokens per title (24 covers H&M's ≤ 7-word titles).
    temperature : float, optional
        τ; default 0.05 for SimCSE (its paper), 0.1 for ConVIRT (the paper).
    alpha : float
        ConVIRT's weight of the text→image direction (0.75).
    projection_dim : int
        ConVIRT's shared space (768).
    image : str
        Image encoder spec for ConVIRT (``effnet-lite0`` or ``clip:<name-or-path>``).
    train_image_encoder : bool
        Unfreeze the image tower (ConVIRT; slow on a CPU).
    seed : int
    device : str
    """

    base: str = DEFAULT_BASE
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 1e-8
    head_lr: float = 1e-3
    max_seq_length: int = 24
    temperature: float | None = None
    alpha: float = 0.75
    projection_dim: int = 768
    image: str = "effnet-lite0"
    train_image_encoder: bool = False
    seed: int = 0
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    def validate(self, where: str) -> AdaptConfig:
        check_st_spec(self.base, where)
        for name in ("epochs", "batch_size", "max_seq_length", "projection_dim"):
            check_positive_int(getattr(self, name), name, where)
        if self.batch_size < 2:
            raise param_error("batch_size", where, "an int >= 2 (in-batch negatives)", self.batch_size)
        for name in ("lr", "head_lr"):
            check_positive_float(getattr(self, name), name, where)
        check_real(self.weight_decay, "weight_decay", where, low=0)
        if self.temperature is not None:
            check_positive_float(self.temperature, "temperature", where)
        check_real(self.alpha, "alpha", where, low=0, high=1)
        return self


# ------------------------------------------------------------------------------ shared
def _fingerprint(catalog, extra: list[str] | None = None) -> dict:
    h = hashlib.sha256()
    for t in catalog.titles:
        h.update(t.encode("utf-8") + b"\x00")
    for t in extra or []:
        h.update(str(t).encode("utf-8") + b"\x00")
    return {"source": str(catalog.source), "n_products": len(catalog), "sha256": h.hexdigest()}


def _checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _resume_state(ckpt: Path, key: dict) -> dict | None:
    """The saved state of an interrupted run with the same settings and data, else None."""
    f = ckpt / "state.json"
    if not f.exists():
        return None
    try:
        state = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if not state or state.get("key") != key:
        logger.warning("%s holds a checkpoint of another run (settings or data differ); starting over.", ckpt)
        shutil.rmtree(ckpt, ignore_errors=True)
        return None
    return state


def _manifest(method: str, config: AdaptConfig, fingerprint: dict, losses: list[float],
              seconds: float, extra: dict) -> dict:
    return {
        "format": FORMAT,
        "method": method,
        "base": config.base,
        "data": fingerprint,
        "hyperparameters": {k: v for k, v in asdict(config).items() if k != "extra"},
        "loss_per_epoch": [round(float(v), 6) for v in losses],
        "seconds": round(seconds, 1),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "libraries": library_versions(),
        **extra,
    }


def adapt(method: Method, catalog, out, config: AdaptConfig | None = None, **kwargs) -> dict:
    """Run :func:`adapt_simcse` or :func:`adapt_convirt` by name; returns the manifest."""
    if method == "simcse":
        return adapt_simcse(catalog, out, config, **kwargs)
    if method == "convirt":
        return adapt_convirt(catalog, out, config, **kwargs)
    raise param_error("method", "adapt()", "'simcse' or 'convirt'", method)


# ------------------------------------------------------------------------------ SimCSE
def adapt_simcse(catalog, out, config: AdaptConfig | None = None, *, progress: bool = True) -> dict:
    """Unsupervised SimCSE on the catalog's distinct titles; writes ``out`` and returns the manifest.

    Parameters
    ----------
    catalog : prodfusion.data.Catalog
    out : path
        Folder to write (replaced atomically when training finished).
    config : AdaptConfig, optional
    progress : bool
    """
    from prodfusion.training.losses import SIMCSE_TEMPERATURE, simcse_loss

    where = "adapt_simcse()"
    config = (config or AdaptConfig()).validate(where)
    require_hf(where)
    titles = list(dict.fromkeys(t for t in catalog.titles if isinstance(t, str) and t.strip()))
    if len(titles) < config.batch_size:
        raise DataError(
            f"{catalog.source}: SimCSE needs at least batch_size={config.batch_size} distinct titles "
            f"(in-batch negatives); the catalog has {len(titles)}."
        )
    tau = config.temperature or SIMCSE_TEMPERATURE
    out = Path(out)
    ckpt = _checkpoint_dir(out)
    fingerprint = _fingerprint(catalog)
    key = {"method": "simcse", "config": asdict(config), "data": fingerprint["sha256"]}
    state = _resume_state(ckpt, key)
    ckpt.mkdir(parents=True, exist_ok=True)
    write_json(ckpt / "state.json", {"key": key})

    import datasets
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers.trainer_utils import get_last_checkpoint

    t0 = time.perf_counter()
    model = load_st_model(config.base, device=config.device, where=where)
    model.max_seq_length = config.max_seq_length
    data = datasets.Dataset.from_dict({"anchor": titles, "positive": titles})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt / "trainer"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        lr_scheduler_type="constant",
        warmup_steps=0,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="epoch",
        save_total_limit=1,
        logging_strategy="epoch",
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        use_cpu=config.device == "cpu",
        disable_tqdm=not progress,
        dataloader_drop_last=True,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                         loss=simcse_loss(model, tau))
    last = get_last_checkpoint(str(ckpt / "trainer")) if state is not None and (ckpt / "trainer").is_dir() else None
    if last:
        logger.info("adapt simcse: resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    manifest = _manifest("simcse", config, fingerprint, losses, time.perf_counter() - t0, {
        "temperature": tau, "n_titles": len(titles),
        "resumed_from": Path(last).name if last else None,
    })

    def write(tmp: Path) -> None:
        model.save(str(tmp))
        write_json(tmp / "adaptation.json", manifest)

    write_atomically(out, write)
    shutil.rmtree(ckpt, ignore_errors=True)
    return manifest


# ------------------------------------------------------------------------------ ConVIRT
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
    rows = np.flatnonzero(mask)
    if len(rows) < config.batch_size:
        raise DataError(
            f"{catalog.source}: ConVIRT needs at least batch_size={config.batch_size} products with a "
            f"usable photo; {len(rows)} of {len(catalog)} have one (see the image warnings above)."
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

    write_atomically(out, write)
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

    write_atomically(ckpt, write)
