"""Item categorization: predict a product's category from its title.

:class:`CategoryClassifier` is a sentence encoder (origin or adapted) with a linear layer on
its mean-pooled title embedding, trained with cross-entropy. Two modes:

* fine-tuned (default, the paper's protocol): encoder and layer trained together, Adam
  (lr 5e-5, weight decay 1e-8 on the encoder; the new layer at ``head_lr``), keeping the epoch
  with the best accuracy on a dev set when one is given;
* ``frozen=True``: a multinomial logistic regression (scikit-learn) on frozen embeddings —
  the fast baseline.

A fitted classifier is saved as a folder: ``encoder/`` (a sentence-transformers folder),
``head.safetensors`` (``weight`` ``(C, d)``, ``bias`` ``(C,)``), ``labels.json`` and
``manifest.json``; no pickles.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodfusion._checks import check_real
from prodfusion.errors import DataError, FormatVersionError, ModelError, NotBuiltError, param_error
from prodfusion.training._st import (
    CATEGORIZER_MARKER,
    DEFAULT_BASE,
    Progress,
    check_positive_float,
    check_positive_int,
    check_st_spec,
    embed_pooled,
    library_versions,
    load_st_model,
    logger,
    pooled,
    tokenize,
    write_atomically,
    write_json,
)

__all__ = ["CategoryClassifier", "check_labels", "logistic_head"]

FORMAT = "prodfusion-categorizer"
FORMAT_VERSION = 1


def check_labels(labels: Sequence, where: str) -> list[str]:
    """Labels as strings; refuses missing values and fewer than two classes."""
    out = []
    for i, lab in enumerate(labels):
        if lab is None or (isinstance(lab, float) and np.isnan(lab)) or str(lab).strip() == "":
            raise DataError(f"{where}: label {i} is missing; drop unlabelled rows before training.")
        out.append(str(lab))
    classes = set(out)
    if len(classes) < 2:
        raise DataError(
            f"{where}: the labels hold {len(classes)} class{'' if len(classes) == 1 else 'es'} "
            f"({', '.join(repr(c) for c in sorted(classes)) or 'none'}); a classifier needs at least 2."
        )
    return out


def logistic_head(x: np.ndarray, y: np.ndarray, n_classes: int, C: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression on features ``x`` as a linear layer ``(weight, bias)``.

    Classes absent from ``y`` get a bias of -1e4, so that they are never predicted.
    """
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    lr.fit(x, y)
    weight = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    bias = np.full(n_classes, -1e4, dtype=np.float32)
    seen = lr.classes_
    if len(seen) == 2:  # scikit-learn's binary form: one row, for the second class
        weight[seen[1]], bias[seen[1]] = lr.coef_[0], lr.intercept_[0]
        weight[seen[0]], bias[seen[0]] = 0.0, 0.0
    else:
        weight[seen], bias[seen] = lr.coef_, lr.intercept_
    return weight, bias


def _holdout_rows(labels: Sequence[str], share: float, seed: int) -> np.ndarray:
    """Rows set aside by :meth:`CategoryClassifier.fit`'s ``holdout``: a stratified ``share``
    (:func:`~prodfusion.training.protocol.stratified_split`), less any label's last product
    left in training (a label seen only there could be neither learned nor predicted)."""
    from collections import Counter

    from prodfusion.training.protocol import stratified_split

    held = stratified_split(labels, (1 - share, share), seed=seed)[1]
    total = Counter(labels)
    left = Counter(labels[i] for i in held)
    out = []
    for i in held:  # in row order: the label's first held-out rows go back to training
        lab = labels[i]
        if total[lab] - left[lab] < 1:
            left[lab] -= 1
            continue
        out.append(i)
    return np.asarray(out, np.int64)


class CategoryClassifier:
    """Title → category: a sentence encoder plus a linear layer.

    Parameters
    ----------
    encoder : str
        ``st:<name-or-path>`` (origin or an adapted folder).
    frozen : bool
        Logistic regression on frozen embeddings instead of fine-tuning.
    epochs : int
        Fine-tuning passes (the paper: 30; default 10 on CPU).
    batch_size : int
    lr : float
        Adam learning rate of the encoder (the paper's 5e-5).
    head_lr : float
        Adam learning rate of the new linear layer (default 1e-3: with few CPU epochs a
        randomly initialised layer at 5e-5 does not converge).
    weight_decay : float
    max_seq_length : int
    C : float
        Inverse regularisation of the logistic regression (``frozen``, and ``head_init``).
    head_init : {"logistic", "random"}
        Fine-tuning starts the linear layer from a logistic regression on the frozen
        embeddings ("linear probing then fine-tuning", Kumar et al. 2022) — a CPU-budget
        deviation: with a few epochs a randomly initialised layer (the paper's, 30 epochs)
        does not converge. ``"random"`` is the paper's start.
    seed : int
    device : str
    progress : bool

    Examples
    --------
    >>> clf = CategoryClassifier(frozen=True).fit(titles, labels)      # doctest: +SKIP
    >>> clf.predict(["red summer dress"])                              # doctest: +SKIP
    (array(['Dress'], dtype=object), array([0.91], dtype=float32))
    """

    def __init__(self, *, encoder: str = DEFAULT_BASE, frozen: bool = False, epochs: int = 10,
                 batch_size: int = 32, lr: float = 5e-5, head_lr: float = 1e-3,
                 weight_decay: float = 1e-8, max_seq_length: int = 24, C: float = 10.0,
                 head_init: str = "logistic", seed: int = 0, device: str = "cpu",
                 progress: bool = True) -> None:
        self.encoder = encoder
        self.frozen = frozen
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.max_seq_length = max_seq_length
        self.C = C
        self.head_init = head_init
        self.seed = seed
        self.device = device
        self.progress = progress

    def _validate(self, where: str) -> None:
        check_st_spec(self.encoder, where)
        for name in ("epochs", "batch_size", "max_seq_length"):
            check_positive_int(getattr(self, name), name, where)
        for name in ("lr", "head_lr", "C"):
            check_positive_float(getattr(self, name), name, where)
        if self.head_init not in ("logistic", "random"):
            raise param_error("head_init", where, "'logistic' or 'random'", self.head_init)

    # ------------------------------------------------------------------ fit
    def fit(self, titles: Sequence[str], labels: Sequence, *, classes: Sequence[str] | None = None,
            dev: tuple[Sequence[str], Sequence] | None = None, model=None,
            holdout: float = 0.0) -> CategoryClassifier:
        """Train on ``titles`` / ``labels``; returns self.

        Parameters
        ----------
        titles, labels : sequences of one length
        classes : sequence of str, optional
            The label set (default: the labels seen); labels outside it are refused.
        dev : (titles, labels), optional
            Fine-tuning keeps the epoch with the best dev accuracy (else the last).
        model : SentenceTransformer, optional
            An already loaded encoder to start from (it is copied, not modified).
        holdout : float
            Share of the products (stratified by label; a label's only product always trains)
            set aside to measure the classifier on titles it did not learn from:
            :attr:`holdout_` holds the accuracy and macro-F1 there. Frozen: the logistic
            regression is fitted without them, scored, then refitted on every product (one
            encoding of the titles). Fine-tuned: they are the dev set that chooses the epoch
            (``dev`` is then refused), so the figure leans optimistic, and the model keeps
            their absence. 0 (default): nothing set aside.
        """
        import copy

        where = "CategoryClassifier.fit()"
        self._validate(where)
        titles = list(titles)
        labels = check_labels(labels, where)
        if len(titles) != len(labels):
            raise param_error("labels", where, f"as long as titles ({len(titles)})", len(labels))
        holdout = check_real(holdout, "holdout", where, low=0, high=1, high_open=True,
                             expected="a share in [0, 1)")
        if holdout and dev is not None and not self.frozen:
            raise param_error("dev", where, "None when holdout is given (the held-out products "
                              "are the dev set)", "a dev set")
        self.classes_ = sorted(set(labels)) if classes is None else [str(c) for c in classes]
        index = {c: i for i, c in enumerate(self.classes_)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise DataError(f"{where}: labels {unknown[:5]} are not among the given classes.")
        y = np.array([index[v] for v in labels], dtype=np.int64)
        held = _holdout_rows(labels, holdout, self.seed) if holdout else np.zeros(0, np.int64)
        if holdout and not len(held):
            raise DataError(f"{where}: holdout={holdout:g} of {len(titles)} labelled products "
                            "sets none aside; give more products or holdout=0.")
        t0 = time.perf_counter()
        base = copy.deepcopy(model) if model is not None else load_st_model(
            self.encoder, device=self.device, where=where)
        base.max_seq_length = self.max_seq_length
        self.model_ = base
        self.holdout_ = None
        if self.frozen:
            self._fit_frozen(titles, y, held, labels)
            self.n_train_ = len(titles)
        elif len(held):
            keep = np.setdiff1d(np.arange(len(titles)), held)
            self._fit_tuned([titles[i] for i in keep], y[keep],
                            ([titles[i] for i in held], [labels[i] for i in held]), index)
            self._record_holdout(self.predict([titles[i] for i in held])[0], held, labels)
            self.n_train_ = len(keep)
        else:
            self._fit_tuned(titles, y, dev, index)
            self.n_train_ = len(titles)
        self.fit_seconds_ = round(time.perf_counter() - t0, 2)
        return self

    def _fit_frozen(self, titles: list[str], y: np.ndarray, held: np.ndarray,
                    labels: list[str]) -> None:
        x = embed_pooled(self.model_, titles, device=self.device)
        if len(held):
            keep = np.setdiff1d(np.arange(len(titles)), held)
            w, b = logistic_head(x[keep], y[keep], len(self.classes_), self.C, self.seed)
            pred = (x[held] @ w.T + b).argmax(axis=1)
            self._record_holdout(np.asarray(self.classes_, dtype=object)[pred], held, labels)
        self.weight_, self.bias_ = logistic_head(x, y, len(self.classes_), self.C, self.seed)
        self.history_ = []

    def _record_holdout(self, pred, held: np.ndarray, labels: Sequence[str]) -> None:
        """:attr:`holdout_`: accuracy and macro-F1 of ``pred`` on the held-out rows, overall
        and on head / tail labels (the labels holding 80 % of the labelled products first)."""
        from prodfusion.training.protocol import classification_metrics, head_tail_labels

        head, _ = head_tail_labels(labels)
        truth = [labels[i] for i in held]
        self.holdout_ = {**classification_metrics(truth, list(pred), head),
                         "share": round(len(held) / len(labels), 4),
                         "refit_on_all": bool(self.frozen)}

    def _fit_tuned(self, titles: list[str], y: np.ndarray, dev, index: dict) -> None:
        import torch

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        dim = int((getattr(self.model_, "get_embedding_dimension", None)
                   or self.model_.get_sentence_embedding_dimension)())
        head = torch.nn.Linear(dim, len(self.classes_)).to(self.device)
        if self.head_init == "logistic":
            w, b = logistic_head(embed_pooled(self.model_, titles, device=self.device), y,
                                 len(self.classes_), self.C, self.seed)
            with torch.no_grad():
                head.weight.copy_(torch.from_numpy(w))
                head.bias.copy_(torch.from_numpy(np.maximum(b, -30.0)))  # unseen classes: very unlikely
        opt = torch.optim.Adam([
            {"params": list(self.model_.parameters()), "lr": self.lr},
            {"params": list(head.parameters()), "lr": self.head_lr},
        ], weight_decay=self.weight_decay)
        dev_x = dev_y = None
        if dev is not None:
            dev_x = list(dev[0])
            dev_y = np.array([index.get(str(v), -1) for v in dev[1]])
        best, best_state, self.history_ = -1.0, None, []
        n_batches = -(-len(titles) // self.batch_size)
        for epoch in range(self.epochs):
            self.model_.train()
            order = rng.permutation(len(titles))
            total = 0.0
            with Progress(n_batches, f"fine-tune epoch {epoch + 1}/{self.epochs}", enabled=self.progress) as bar:
                for b in range(n_batches):
                    idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                    emb = pooled(self.model_, tokenize(self.model_, [titles[i] for i in idx], self.device))
                    loss = torch.nn.functional.cross_entropy(head(emb), torch.from_numpy(y[idx]).to(self.device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.item()
                    bar.update(1, loss=f"{total / (b + 1):.3f}")
            self.weight_ = head.weight.detach().cpu().numpy().astype(np.float32)
            self.bias_ = head.bias.detach().cpu().numpy().astype(np.float32)
            entry = {"epoch": epoch + 1, "train_loss": round(total / n_batches, 5)}
            if dev_x:
                acc = float((self.predict_index(dev_x)[0] == dev_y).mean())
                entry["dev_accuracy"] = round(acc, 5)
                if acc > best:
                    best = acc
                    best_state = ({k: v.detach().clone() for k, v in self.model_.state_dict().items()},
                                  self.weight_.copy(), self.bias_.copy(), epoch + 1)
            self.history_.append(entry)
            logger.info("categorize: %s", entry)
        if best_state is not None:
            self.model_.load_state_dict(best_state[0])
            self.weight_, self.bias_ = best_state[1], best_state[2]
            self.best_epoch_ = best_state[3]

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "weight_"):
            raise NotBuiltError("CategoryClassifier: call fit() or load() first.")

    def predict_proba(self, titles: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape ``(len(titles), len(classes_))``, columns in ``classes_`` order."""
        self._check_fitted()
        titles = list(titles)
        if not titles:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        x = embed_pooled(self.model_, titles, device=self.device)
        logits = x @ self.weight_.T + self.bias_
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_index(self, titles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        p = self.predict_proba(titles)
        k = p.argmax(axis=1)
        return k, p[np.arange(len(k)), k]

    def predict(self, titles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, probabilities)`` of the most likely category of each title."""
        k, p = self.predict_index(titles)
        return np.asarray(self.classes_, dtype=object)[k], p

    # ------------------------------------------------------------------ persistence
    def save(self, path, *, extra: dict | None = None) -> Path:
        """Write the model folder atomically; returns its path."""
        from safetensors.numpy import save_file

        self._check_fitted()
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "encoder_spec": self.encoder, "frozen": self.frozen,
            "hyperparameters": {k: getattr(self, k) for k in (
                "epochs", "batch_size", "lr", "head_lr", "weight_decay", "max_seq_length", "C", "head_init",
                "seed")},
            "n_classes": len(self.classes_), "n_train": getattr(self, "n_train_", None),
            "history": getattr(self, "history_", []), "best_epoch": getattr(self, "best_epoch_", None),
            "fit_seconds": getattr(self, "fit_seconds_", None),
            **({"holdout": self.holdout_} if getattr(self, "holdout_", None) else {}),
            "created": time.strftime("%Y-%m-%d %H:%M:%S %z"), "libraries": library_versions(),
            **(extra or {}),
        }

        def write(tmp: Path) -> None:
            self.model_.save(str(tmp / "encoder"))
            save_file({"weight": self.weight_, "bias": self.bias_}, str(tmp / "head.safetensors"))
            (tmp / "labels.json").write_text(json.dumps(self.classes_, ensure_ascii=False, indent=0) + "\n",
                                             encoding="utf-8")
            write_json(tmp / "manifest.json", manifest)

        return write_atomically(path, write, CATEGORIZER_MARKER)

    @classmethod
    def load(cls, path, *, device: str = "cpu", progress: bool = True) -> CategoryClassifier:
        """Read a folder written by :meth:`save`."""
        from safetensors.numpy import load_file

        path = Path(path)
        mf = path / "manifest.json"
        if not mf.is_file():
            raise ModelError(f"{str(path)!r} is not a categorization model folder (no manifest.json); "
                             "pass the folder written by `prodfusion categorize train`.")
        try:
            manifest = json.loads(mf.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelError(f"{mf}: unreadable manifest ({exc}).") from exc
        if manifest.get("format") != FORMAT:
            raise ModelError(f"{mf}: not a categorization model (format {manifest.get('format')!r}).")
        if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
            raise FormatVersionError(
                f"{mf}: format version {manifest['format_version']} is newer than this prodfusion "
                f"reads ({FORMAT_VERSION}); upgrade prodfusion.")
        hp = manifest.get("hyperparameters", {})
        clf = cls(encoder=f"st:{path / 'encoder'}", frozen=bool(manifest.get("frozen")),
                  device=device, progress=progress, **hp)
        clf.model_ = load_st_model(clf.encoder, device=device, where="CategoryClassifier.load()")
        head = load_file(str(path / "head.safetensors"))
        clf.weight_, clf.bias_ = head["weight"], head["bias"]
        clf.classes_ = json.loads((path / "labels.json").read_text(encoding="utf-8"))
        if clf.weight_.shape[0] != len(clf.classes_):
            raise ModelError(f"{path}: head.safetensors has {clf.weight_.shape[0]} rows but labels.json "
                             f"lists {len(clf.classes_)} labels.")
        clf.manifest_ = manifest
        return clf
