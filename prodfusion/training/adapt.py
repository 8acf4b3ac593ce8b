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

ConVIRT's loop is :mod:`prodfusion.training.adapt_convirt` (``adapt_convirt`` is importable
from here as before).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from prodfusion._checks import check_real
from prodfusion._outputs import check_replaceable_folder
from prodfusion.errors import DataError, param_error
from prodfusion.training._st import (
    ADAPTED_MARKER,
    DEFAULT_BASE,
    check_positive_float,
    check_positive_int,
    check_st_spec,
    library_versions,
    load_st_model,
    logger,
    plain_progress,
    require_hf,
    write_atomically,
    write_json,
)
from prodfusion.training.image_side import ImageTower, image_tower

__all__ = ["AdaptConfig", "ImageTower", "adapt", "adapt_simcse", "image_tower"]

Method = Literal["simcse", "convirt"]


def __getattr__(name: str) -> Any:
    if name == "adapt_convirt":  # its home is adapt_convirt.py (it builds on this module)
        from prodfusion.training.adapt_convirt import adapt_convirt

        return adapt_convirt
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
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
        h.update((t or "").encode("utf-8") + b"\x00")
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
        from prodfusion.training.adapt_convirt import adapt_convirt

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
    check_replaceable_folder(out, ADAPTED_MARKER, "adapt(): out")  # before any training
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
    from transformers.trainer_callback import PrinterCallback
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
        disable_tqdm=not (progress and sys.stderr.isatty()),  # a log file: plain lines
        dataloader_drop_last=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=simcse_loss(model, tau),
        callbacks=plain_progress("adapt simcse", config.epochs) if progress else None)
    trainer.remove_callback(PrinterCallback)  # raw log dicts on stdout otherwise
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

    write_atomically(out, write, ADAPTED_MARKER)
    shutil.rmtree(ckpt, ignore_errors=True)
    return manifest
