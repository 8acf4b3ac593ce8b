"""What the three fusion methods share: input checks, exact blockwise top-k, the protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from prodfusion._checks import FUSION_METHODS
from prodfusion.encoders.base import MODALITIES, Embeddings, check_finite
from prodfusion.errors import DataError, ParameterError, param_error
from prodfusion.index.topk import Filters, topk_exact

FusionMethod = Literal["early", "intermediate", "late"]

__all__ = [
    "FUSION_METHODS",
    "FusionMethod",
    "Fuser",
    "check_method",
    "check_modalities",
    "fill_blocks",
    "l2_normalize",
    "topk_exact",
]


def check_method(method: str, where: str = "similar()") -> str:
    if method not in FUSION_METHODS:
        raise param_error("fusion", where, f"one of {list(FUSION_METHODS)}", method)
    return method


def check_modalities(
    modalities: Sequence[str] | str | None,
    available: Sequence[str],
    where: str = "similar()",
) -> tuple[str, ...]:
    """Validate a modality subset against what a model has; ``None`` means all available.

    Accepts a comma-separated string too (``"text,image"``). Order is normalised to
    ``("text", "image", "clicks")``.
    """
    if modalities is None:
        chosen = list(available)
    else:
        if isinstance(modalities, str):
            modalities = [m.strip() for m in modalities.split(",") if m.strip()]
        chosen = list(modalities)
        if not chosen:
            raise param_error(
                "modalities", where, f"a non-empty subset of {list(available)}", tuple(modalities)
            )
        for m in chosen:
            if m not in MODALITIES:
                raise param_error("modalities", where, f"a subset of {list(MODALITIES)}", m)
            if m not in available:
                raise ParameterError(
                    f"The 'modalities' parameter of {where} asks for {m!r}, but this model has "
                    f"only {list(available)}. Rebuild with that modality or drop it."
                )
    if not chosen:
        raise ParameterError(f"{where}: the model has no modality at all; nothing to fuse.")
    return tuple(m for m in MODALITIES if m in chosen)


def l2_normalize(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation of the present rows, as float32; absent rows stay zero.

    ``v`` may be float16 (norms are computed in float32: float16 sums of squares lose
    precision and overflow above 65504).
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(v.shape, dtype=np.float32)
    x = np.asarray(v[mask], dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise DataError("A present vector has zero norm; it has no direction to compare.")
    out[mask] = x / norms
    return out


def fill_blocks(embs: Sequence[Embeddings], *, normalize: bool, scale_by_dim: bool) -> np.ndarray:
    """The float32 concatenation of the modalities' blocks, filled a chunk of rows at a time.

    Each block is L2-normalised (``normalize``) and/or divided by ``sqrt(D_m)``
    (``scale_by_dim``). Rows are read through :meth:`Embeddings.chunks`, so float16 vectors
    are converted chunk by chunk and no per-modality float32 copy is ever whole.
    """
    n = len(embs[0].mask)
    out = np.empty((n, sum(e.dim for e in embs)), dtype=np.float32)
    col = 0
    for e in embs:
        for lo, v in e.chunks():  # v may be a view of float32 vectors: never write into it
            if normalize:
                v = l2_normalize(v, e.mask[lo : lo + len(v)])
            if scale_by_dim:
                v = v / np.float32(np.sqrt(e.dim))
            out[lo : lo + len(v), col : col + e.dim] = v
        col += e.dim
    return out


def _prepare(
    embeddings: Mapping[str, Embeddings], modalities: Sequence[str]
) -> list[Embeddings]:
    embs = []
    n = None
    for m in modalities:
        if m not in embeddings:
            raise ParameterError(f"No {m!r} embeddings were given; have {sorted(embeddings)}.")
        e = embeddings[m]
        check_finite(e, what=f"{m} embeddings ({e.spec})")
        if n is not None and e.vectors.shape[0] != n:
            raise DataError(
                f"{m} embeddings have {e.vectors.shape[0]} rows, the others {n}; "
                "every modality must be aligned to the same catalog rows."
            )
        n = e.vectors.shape[0]
        embs.append(e)
    return embs


def check_query_rows(query_rows, n: int) -> np.ndarray:
    """Query rows as a 1-D int64 array, refused unless every row is in ``[0, n)``."""
    rows = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ParameterError(f"Query rows must be in [0, {n}); got {rows.min()}..{rows.max()}.")
    return rows


@runtime_checkable
class Fuser(Protocol):
    """A fitted fusion of some modalities over one catalog.

    ``similarity(q, c)`` is the exact fused similarity; ``topk`` the exact best-k search.
    ``present`` marks products that have at least one of the fused modalities.
    """

    method: str
    modalities: tuple[str, ...]
    present: np.ndarray

    def similarity(self, query_rows, cand_rows=None) -> np.ndarray: ...  # pragma: no cover

    def topk(self, query_rows, k, *,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]: ...  # pragma: no cover


class ExactSearchMixin:
    """``topk`` for any fuser that defines ``similarity`` and ``n``."""

    n: int
    present: np.ndarray

    def _query_rows(self, query_rows) -> np.ndarray:
        return check_query_rows(query_rows, self.n)

    def topk(self, query_rows, k: int = 15, *,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k rows and scores for each query row (see :func:`topk_exact`)."""
        rows = self._query_rows(query_rows)
        return topk_exact(lambda r: self.similarity(r), rows, self.n, k, filters=filters)
