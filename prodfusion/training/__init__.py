"""Training: adapt title encoders to a catalog (SimCSE, ConVIRT) and categorize items.

* :mod:`~prodfusion.training.losses` — InfoNCE, ConVIRT and SimCSE losses (formulas in docstrings);
* :mod:`~prodfusion.training.adapt` — :func:`adapt_simcse`, :func:`adapt_convirt`: a catalog in,
  a sentence-transformers folder out (usable as ``prodfusion build --text st:PATH``);
  :mod:`~prodfusion.training.image_side` — ConVIRT's frozen features or trainable image tower;
* :mod:`~prodfusion.training.categorize` — :class:`CategoryClassifier` (encoder + linear layer);
* :mod:`~prodfusion.training.protocol` — :func:`evaluate_categorization`, the paper's protocol;
* :mod:`~prodfusion.training.report` — its md/html/png/json report;
* :mod:`~prodfusion.training.predict` — predicted categories, filling a catalog's gaps;
* :mod:`~prodfusion.training.distill` — multilingual knowledge distillation (:func:`distill`),
  :mod:`~prodfusion.training.parallel` — its parallel sentences.

Importing this package loads neither torch nor any model: the adaptation and categorization
names resolve on first use.
"""

from __future__ import annotations

import importlib

from prodfusion.training.distill import DEFAULT_TEACHER, DistillConfig, distill
from prodfusion.training.parallel import ParallelData, read_parallel

__all__ = [
    "DEFAULT_TEACHER",
    "DistillConfig",
    "ParallelData",
    "distill",
    "read_parallel",
    "AdaptConfig",
    "CategoryClassifier",
    "adapt",
    "adapt_convirt",
    "adapt_simcse",
    "classification_metrics",
    "convirt_loss",
    "evaluate_categorization",
    "fill_categories",
    "head_tail_labels",
    "info_nce",
    "predict_categories",
    "stratified_split",
    "write_categorization_report",
]

_HOME = {
    "AdaptConfig": "adapt", "adapt": "adapt", "adapt_convirt": "adapt", "adapt_simcse": "adapt",
    "CategoryClassifier": "categorize",
    "classification_metrics": "protocol", "evaluate_categorization": "protocol",
    "head_tail_labels": "protocol", "stratified_split": "protocol",
    "convirt_loss": "losses", "info_nce": "losses",
    "fill_categories": "predict", "predict_categories": "predict",
    "write_categorization_report": "report",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"prodfusion.training.{_HOME[name]}"), name)
    raise AttributeError(f"module 'prodfusion.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
