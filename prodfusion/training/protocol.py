"""The paper's item-categorization protocol: adapt, fine-tune on label fractions, score head and tail.

:func:`evaluate_categorization` splits the labelled products (default 50 % for
self-supervised adaptation, 30 % train, 10 % dev, 10 % test; stratified by label), adapts the
base encoder on the adaptation split (SimCSE, ConVIRT), then for every train fraction
(5, 10, 25, 50, 75, 100 %) and seed trains a classifier on that share of the train split
and scores it on the test split: accuracy and macro-F1 overall, on **head** labels (the most
frequent labels that together hold 80 % of the instances) and on **tail** labels (the rest).
The result is a dict with ``kind = "categorization"`` for
:func:`prodfusion.training.report.write_categorization_report`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodfusion._checks import check_real
from prodfusion.encoders.text import title_mask
from prodfusion.errors import DataError, param_error
from prodfusion.training._st import DEFAULT_BASE, embed_pooled, load_st_model, logger

__all__ = [
    "PAPER_FRACTIONS", "PAPER_SPLIT", "stratified_split", "head_tail_labels",
    "classification_metrics", "evaluate_categorization", "check_fractions",
]

PAPER_FRACTIONS = (0.05, 0.10, 0.25, 0.50, 0.75, 1.00)
PAPER_SPLIT = (0.5, 0.3, 0.1, 0.1)
SPLIT_NAMES = ("adaptation", "train", "dev", "test")
_GOLDEN = (math.sqrt(5) - 1) / 2


def check_fractions(fractions: Sequence[float], where: str, name: str = "fractions") -> tuple[float, ...]:
    """Every fraction must be a number in (0, 1]."""
    out = []
    for f in fractions:
        out.append(check_real(f, name, where, low=0, high=1, low_open=True,
                              expected="numbers in (0, 1]"))
    if not out:
        raise param_error(name, where, "at least one number in (0, 1]", list(fractions))
    return tuple(out)


def stratified_split(labels: Sequence[str], shares: Sequence[float] = PAPER_SPLIT, *, seed: int = 0) -> list[np.ndarray]:
    """Split row indices into parts of the given shares, each label spread proportionally.

    Rows are shuffled within each label and laid end to end, label after label; row ``p`` of
    that order goes to the part whose cumulative-share interval holds ``frac(offset + p·φ)``
    (φ the golden ratio). The golden-ratio sequence fills [0, 1) evenly over any run of
    consecutive positions, so every label is divided in the given shares up to about one
    row, and labels with fewer rows than parts land at random.

    Parameters
    ----------
    labels : sequence
    shares : sequence of float
        Positive, summing to 1 (within 1e-6).
    seed : int

    Returns
    -------
    list of int arrays, one per share, sorted.
    """
    shares = np.asarray(check_fractions(shares, "stratified_split()", "shares"), dtype=float)
    if abs(shares.sum() - 1) > 1e-6:
        raise param_error("shares", "stratified_split()", "numbers summing to 1", shares.tolist())
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in labels]
    groups: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    order = []
    for lab in sorted(groups, key=lambda k: rng.random()):
        order.extend(rng.permutation(groups[lab]).tolist())
    u = (rng.random() + np.arange(len(order)) * _GOLDEN) % 1.0
    part = np.searchsorted(np.cumsum(shares)[:-1], u, side="right")
    order = np.asarray(order, dtype=np.int64)
    return [np.sort(order[part == k]) for k in range(len(shares))]


def head_tail_labels(labels: Sequence[str], head_share: float = 0.8) -> tuple[list[str], list[str]]:
    """The head labels (most frequent first, until they hold ``head_share`` of the instances) and the rest.

    The label that crosses the threshold belongs to the head. Ties in frequency are broken by
    label name, so the split is deterministic.

    >>> head_tail_labels(list("aaaaabbbcd"), 0.8)
    (['a', 'b'], ['c', 'd'])
    """
    counts = Counter(str(x) for x in labels)
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    total, cum, head = sum(counts.values()), 0, []
    for lab in ranked:
        if cum >= head_share * total:
            break
        head.append(lab)
        cum += counts[lab]
    return head, [lab for lab in ranked if lab not in set(head)]


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], head: Sequence[str]) -> dict:
    """Accuracy and macro-F1, overall and restricted to head / tail labels.

    Per label ``c``: ``F1_c = 2·TP / (2·TP + FP + FN)`` over all test rows. Macro-F1 is the
    mean of ``F1_c`` over the labels present in ``y_true`` (of the group, for head/tail);
    head/tail accuracy is the accuracy on the rows whose true label is in the group.
    """
    y_true = np.asarray([str(x) for x in y_true], dtype=object)
    y_pred = np.asarray([str(x) for x in y_pred], dtype=object)
    head = set(map(str, head))
    present = sorted(set(y_true))
    f1 = {}
    for c in present:
        tp = int(np.sum((y_true == c) & (y_pred == c)))
        fp = int(np.sum((y_true != c) & (y_pred == c)))
        fn = int(np.sum((y_true == c) & (y_pred != c)))
        f1[c] = 2 * tp / (2 * tp + fp + fn)
    out = {"n": int(len(y_true)), "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else math.nan,
           "macro_f1": float(np.mean(list(f1.values()))) if f1 else math.nan}
    for name, members in (("head", [c for c in present if c in head]),
                          ("tail", [c for c in present if c not in head])):
        rows = np.isin(y_true, members)
        out[f"{name}_n"] = int(rows.sum())
        out[f"{name}_labels"] = len(members)
        out[f"{name}_accuracy"] = float(np.mean(y_true[rows] == y_pred[rows])) if rows.any() else math.nan
        out[f"{name}_macro_f1"] = float(np.mean([f1[c] for c in members])) if members else math.nan
    return out


def _finished_adaptation(out: Path, method: str, catalog, config) -> dict | None:
    """The manifest of an adaptation already in ``out`` with this method, data and settings."""
    import json
    from dataclasses import asdict

    from prodfusion.training.adapt import _fingerprint

    f = out / "adaptation.json"
    if not f.is_file():
        return None
    try:
        manifest = json.loads(f.read_text(encoding="utf-8"))
    except ValueError:
        return None
    paths = [p or "" for p in catalog.image_paths] if method == "convirt" else None
    want = {k: v for k, v in asdict(config).items() if k != "extra"}
    if (manifest.get("method") != method or manifest.get("hyperparameters") != want
            or manifest.get("data", {}).get("sha256") != _fingerprint(catalog, paths)["sha256"]):
        return None
    return manifest


def _run_key(method, spec, fraction, seed, frozen, clf_kwargs, split, split_seed, max_dev, **data) -> str:
    """The identity of one fine-tuning run: a finished run with the same key is not run again."""
    clf = {k: v for k, v in sorted(clf_kwargs.items()) if k != "progress"}
    return json.dumps([method, spec, float(fraction), int(seed), bool(frozen), clf, [float(x) for x in split],
                       int(split_seed), max_dev, data], sort_keys=True, default=str)


def _finished_runs(path: Path) -> dict[str, dict]:
    """Runs recorded in ``runs.jsonl`` of the work folder (a torn last line is ignored)."""
    out: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                out[rec["key"]] = rec["run"]
            except (ValueError, KeyError, TypeError):
                continue
    return out


def _append_run(path: Path, key: str, run: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"key": key, "run": run}, default=float) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _summary(values: list[float]) -> dict:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not len(v):
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


METRICS = ("accuracy", "macro_f1", "head_accuracy", "head_macro_f1", "tail_accuracy", "tail_macro_f1")


def evaluate_categorization(
    catalog, *, methods: Sequence[str] = ("origin", "simcse", "convirt"), base: str = DEFAULT_BASE,
    fractions: Sequence[float] = PAPER_FRACTIONS, seeds: Sequence[int] = (0, 1, 2),
    split: Sequence[float] = PAPER_SPLIT, split_seed: int = 0, head_share: float = 0.8,
    frozen: bool = False, max_dev: int | None = None, classifier: dict | None = None, adapt_config=None,
    encoders: dict[str, str] | None = None, work_dir=None, cache=None, progress: bool = True,
) -> dict:
    """Run the protocol on a catalog with categories; returns a ``kind="categorization"`` result.

    Parameters
    ----------
    catalog : prodfusion.data.Catalog
        Needs categories (rows without one are left out and counted) and, for ConVIRT, photos.
    methods : sequence of {"origin", "simcse", "convirt"}
    base : str
        ``st:<name-or-path>`` of the origin encoder.
    fractions : sequence of float in (0, 1]
        Shares of the train split to fine-tune on.
    seeds : sequence of int
        One classifier per (method, fraction, seed); the seed draws the train subset and
        initialises the classifier. The split and the adaptation are done once (``split_seed``).
    split : four shares
        Adaptation, train, dev, test.
    frozen : bool
        Logistic regression on frozen embeddings instead of fine-tuning.
    max_dev : int, optional
        Fine-tuning picks its epoch on at most this many dev products (a fixed random
        subset; default: the whole dev split).
    classifier : dict, optional
        Keyword arguments of :class:`~prodfusion.training.categorize.CategoryClassifier`.
    adapt_config : AdaptConfig, optional
        Settings of both adaptations (``base`` is overridden by ``base``).
    encoders : dict, optional
        ``{"simcse": "st:PATH", ...}``: use these adapted encoders instead of adapting.
    work_dir : path, optional
        Where adapted encoders are written (kept; re-running resumes). Default: a temp folder.
    cache : EmbeddingCache, optional
        For ConVIRT's image features.
    """
    from dataclasses import replace

    from prodfusion.training.adapt import AdaptConfig, adapt
    from prodfusion.training.categorize import CategoryClassifier, check_labels

    where = "evaluate_categorization()"
    methods = list(methods)
    bad = [m for m in methods if m not in ("origin", "simcse", "convirt")]
    if bad or not methods:
        raise param_error("methods", where, "a non-empty subset of 'origin', 'simcse', 'convirt'", methods)
    fractions = check_fractions(fractions, where)
    seeds = list(seeds)
    if not seeds or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0
                        for x in seeds):
        raise param_error("seeds", where, "at least one int >= 0 (CLI: --seeds 3 or 0,1,2)",
                          seeds)
    split = tuple(split)
    if len(split) != 4:
        raise param_error("split", where, "four shares (adaptation, train, dev, test)", list(split))
    if not catalog.has_categories:
        raise DataError(f"{catalog.source}: the catalog has no category labels; name the label column "
                        "with --category-col.")
    t_start = time.perf_counter()
    cats = catalog.categories
    has_label = np.array([c is not None and str(c).strip() != "" for c in cats])
    has_title = title_mask(catalog.titles)  # a product without a title cannot be categorized
    labelled = has_label & has_title
    n_unlabelled = int((~has_label).sum())
    n_no_title = int((has_label & ~has_title).sum())
    cat = catalog.take(np.flatnonzero(labelled)) if not labelled.all() else catalog
    labels = check_labels(cat.categories, f"{catalog.source} (categories)")
    classes = sorted(set(labels))
    parts = dict(zip(SPLIT_NAMES, stratified_split(labels, split, seed=split_seed), strict=True))
    head, tail = head_tail_labels(labels, head_share)
    titles = cat.titles
    lab = np.asarray(labels, dtype=object)
    logger.info("categorization: %s", {k: len(v) for k, v in parts.items()})

    specs = {"origin": base, **(encoders or {})}
    adaptation: dict[str, dict] = {}
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="prodfusion-cat-"))
    config = replace(adapt_config or AdaptConfig(), base=base)
    for m in methods:
        if m in specs:
            continue
        out = work / f"{m}"
        subset = cat.take(parts["adaptation"])
        manifest = _finished_adaptation(out, m, subset, config)
        reused = manifest is not None
        if not reused:
            manifest = adapt(m, subset, out, config, progress=progress,
                             **({"cache": cache} if m == "convirt" else {}))
        else:
            logger.info("categorization: reusing the %s encoder in %s (same data and settings)", m, out)
        specs[m] = f"st:{out}"
        adaptation[m] = {"seconds": manifest["seconds"], "loss_per_epoch": manifest["loss_per_epoch"],
                         "path": str(out), "reused": reused}

    clf_kwargs = dict(classifier or {})
    clf_kwargs.setdefault("progress", progress)
    runs = []
    train_rows, dev_rows, test_rows = parts["train"], parts["dev"], parts["test"]
    if max_dev is not None and len(dev_rows) > max_dev:
        dev_rows = np.sort(np.random.default_rng(split_seed).choice(dev_rows, max_dev, replace=False))
    data_hash = hashlib.sha256(json.dumps([[str(t) for t in titles], lab.tolist(), [int(x) for x in test_rows]],
                                          default=str).encode()).hexdigest()[:16]
    done_file = work / "runs.jsonl"
    done = _finished_runs(done_file)
    for m in methods:
        model = None
        if frozen or not all(_run_key(m, specs[m], f, s, frozen, clf_kwargs, split, split_seed, max_dev,
                                      data=data_hash) in done for s in seeds for f in fractions):
            model = load_st_model(specs[m], device=clf_kwargs.get("device", "cpu"), where=where)
            model.max_seq_length = clf_kwargs.get("max_seq_length", 24)
        if model is None:
            logger.info("categorization: every %s run is in %s; reused", m, done_file)
        feats = None
        if frozen:
            rows = np.concatenate([train_rows, test_rows])
            x = embed_pooled(model, [titles[i] for i in rows], device=clf_kwargs.get("device", "cpu"))
            feats = dict(zip(rows.tolist(), x, strict=True))
        for seed in seeds:
            perm = np.random.default_rng([seed, 7]).permutation(train_rows)
            for f in fractions:
                sub = perm[: max(1, int(round(f * len(perm))))]
                key = _run_key(m, specs[m], f, seed, frozen, clf_kwargs, split, split_seed, max_dev,
                               data=data_hash)
                if key in done:
                    runs.append(done[key])
                    logger.info("categorization: %s %.0f%% seed %d reused from %s", m, 100 * f, seed, done_file)
                    continue
                t0 = time.perf_counter()
                if len(set(lab[sub])) < 2:
                    logger.warning("categorization: %s %.0f%% seed %d has one class; skipped", m, 100 * f, seed)
                    continue
                clf = CategoryClassifier(encoder=specs[m], frozen=frozen, seed=seed, **clf_kwargs)
                if frozen:
                    from prodfusion.training.categorize import logistic_head

                    clf.classes_ = classes
                    clf.model_ = model
                    clf.weight_, clf.bias_ = logistic_head(
                        np.stack([feats[i] for i in sub]),
                        np.array([classes.index(v) for v in lab[sub]]), len(classes), clf.C, seed)
                    probs = np.stack([feats[i] for i in test_rows]) @ clf.weight_.T + clf.bias_
                    pred = np.asarray(classes, dtype=object)[probs.argmax(axis=1)]
                    history = []
                else:
                    clf.fit([titles[i] for i in sub], lab[sub], classes=classes, model=model,
                            dev=([titles[i] for i in dev_rows], lab[dev_rows]))
                    pred = clf.predict([titles[i] for i in test_rows])[0]
                    history = clf.history_
                scores = classification_metrics(lab[test_rows], pred, head)
                runs.append({"method": m, "fraction": f, "seed": int(seed), "n_train": int(len(sub)),
                             "seconds": round(time.perf_counter() - t0, 2), "history": history, **scores})
                _append_run(done_file, key, runs[-1])
                logger.info("categorization: %s %.0f%% seed %d accuracy %.3f macro-F1 %.3f (%.0fs)",
                            m, 100 * f, seed, scores["accuracy"], scores["macro_f1"], runs[-1]["seconds"])
                if progress:
                    import sys

                    print(f"  {m:<8} {100 * f:>5.0f}%  seed {seed}  accuracy {scores['accuracy']:.3f}  "
                          f"macro-F1 {scores['macro_f1']:.3f}  ({runs[-1]['seconds']:.0f}s)",
                          file=sys.stderr, flush=True)

    if not runs:
        raise DataError(
            f"{where}: no run was left to score: every training subset held a single label "
            f"(fractions {list(fractions)} of {len(parts['train']):,} training products, "
            f"{len(classes)} labels). Use larger --fractions or a catalog with more "
            "products per label.")
    summary = {m: {str(f): {k: _summary([r[k] for r in runs if r["method"] == m and r["fraction"] == f])
                           for k in METRICS} for f in fractions} for m in methods}
    return {
        "kind": "categorization",
        "config": {
            "source": str(catalog.source), "methods": methods, "base": base, "encoders": specs,
            "fractions": list(fractions), "seeds": list(seeds), "split": list(split),
            "split_seed": split_seed, "head_share": head_share, "frozen": frozen, "max_dev": max_dev,
            "classifier": {k: v for k, v in clf_kwargs.items() if k != "progress"},
            "adaptation": {k: v for k, v in vars(config).items() if k != "extra"},
        },
        "data": {"n_products": len(catalog), "n_unlabelled": n_unlabelled,
                 "n_no_title": n_no_title, "n_labels": len(classes),
                 "split_sizes": {k: int(len(v)) for k, v in parts.items()},
                 "head_labels": head, "tail_labels": tail,
                 "head_instances": int(sum(1 for x in labels if x in set(head))),
                 "n_labelled": len(labels)},
        "adaptation": adaptation,
        "runs": runs,
        "summary": summary,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
