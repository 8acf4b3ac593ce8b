"""prodfusion: similar-product recommendations fusing titles, photos and anonymous clicks.

The public API is importable from the top-level package; submodules are loaded on first use,
so ``import prodfusion`` stays cheap (no torch, FAISS or polars until they are needed).

Examples
--------
A planted synthetic catalog, its click sessions, and five similar products
(``tests/test_public_api.py`` runs this example)::

    import tempfile
    from prodfusion import Recommender, make_synthetic

    paths = make_synthetic(tempfile.mkdtemp(), n_products=200, n_sessions=600, seed=0)
    catalog = paths.read_catalog()
    rec = Recommender(text=None, image=None).build(catalog, paths.read_sessions(catalog))
    ids, scores = rec.similar(catalog.ids[0], k=5)   # best first
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily, PEP 562)
_EXPORTS: dict[str, str] = {
    "Recommender": "prodfusion.recommender",
    "build": "prodfusion.pipeline",
    "Prod2VecParams": "prodfusion.recommender",
    "Catalog": "prodfusion.data.catalog",
    "Sessions": "prodfusion.data.sessions",
    "read_catalog": "prodfusion.data.io",
    "read_interactions": "prodfusion.data.interactions",
    "read_pairs": "prodfusion.data.interactions",
    "clean_sessions": "prodfusion.data.interactions",
    "make_synthetic": "prodfusion.data.synthetic",
    "Embeddings": "prodfusion.encoders.base",
    "MODALITIES": "prodfusion.encoders.base",
    "make_encoder": "prodfusion.encoders",
    "IndexSettings": "prodfusion.index.base",
    "Variant": "prodfusion.variants",
    "ProdfusionError": "prodfusion.errors",
    "DataError": "prodfusion.errors",
    "ModelError": "prodfusion.errors",
    "NotBuiltError": "prodfusion.errors",
    "UnknownProductError": "prodfusion.errors",
    "ParameterError": "prodfusion.errors",
    "FormatVersionError": "prodfusion.errors",
}

__all__ = [
    "__version__",
    "Recommender",
    "build",
    "Prod2VecParams",
    "Catalog",
    "Sessions",
    "read_catalog",
    "read_interactions",
    "read_pairs",
    "clean_sessions",
    "make_synthetic",
    "Embeddings",
    "MODALITIES",
    "make_encoder",
    "IndexSettings",
    "Variant",
    "ProdfusionError",
    "DataError",
    "ModelError",
    "NotBuiltError",
    "UnknownProductError",
    "ParameterError",
    "FormatVersionError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prodfusion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from prodfusion.data.catalog import Catalog
    from prodfusion.data.interactions import clean_sessions, read_interactions, read_pairs
    from prodfusion.data.io import read_catalog
    from prodfusion.data.sessions import Sessions
    from prodfusion.data.synthetic import make_synthetic
    from prodfusion.encoders import make_encoder
    from prodfusion.encoders.base import MODALITIES, Embeddings
    from prodfusion.errors import (
        DataError,
        FormatVersionError,
        ModelError,
        NotBuiltError,
        ParameterError,
        ProdfusionError,
        UnknownProductError,
    )
    from prodfusion.index.base import IndexSettings
    from prodfusion.recommender import Prod2VecParams, Recommender
    from prodfusion.variants import Variant
