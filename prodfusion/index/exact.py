"""The exact inner-product index: NumPy brute force, the oracle every other backend is tested against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodfusion.errors import ModelError
from prodfusion.index.base import check_vectors
from prodfusion.index.topk import topk_rows

__all__ = ["ExactIndex", "topk_rows"]

#: Scores computed per block: block × n float32 stays under this many bytes.
_BLOCK_BYTES = 128 * 2**20


class ExactIndex:
    """Brute-force inner product over all added vectors (NumPy, blockwise).

    Parameters
    ----------
    dim : int
        Width of the vectors.
    reduce_dim : int, optional
        If set and smaller than ``dim``, :meth:`train` learns an uncentred PCA projection
        and the index holds (and searches) projected vectors: exact in the projected space,
        an estimate of the full inner product (used for small pieces whose candidates are
        re-scored anyway). Default: no projection, the exact oracle.

    Examples
    --------
    >>> idx = ExactIndex(2)
    >>> idx.add(np.array([[1, 0], [0, 1], [0.8, 0.6]], "float32"))
    >>> idx.search(np.array([[1, 0]], "float32"), 2)[0].tolist()
    [[0, 2]]
    """

    kind = "exact"

    def __init__(self, dim: int, reduce_dim: int | None = None) -> None:
        self.dim = int(dim)
        self.reduce_dim = reduce_dim
        self.projection_: np.ndarray | None = None
        self._parts: list[np.ndarray] = []
        self._x: np.ndarray | None = np.zeros((0, self.dim), dtype=np.float32)

    def train(self, sample: np.ndarray) -> ExactIndex:
        """Learn the projection when ``reduce_dim`` asks for one; otherwise nothing to learn."""
        if self.reduce_dim is not None and self.dim > self.reduce_dim and len(sample):
            from prodfusion.index.faiss_index import fit_projection

            s = check_vectors(sample, self.dim, "ExactIndex.train()")
            self.projection_ = fit_projection(s, self.reduce_dim)
            self._x = np.zeros((0, self.reduce_dim), dtype=np.float32)
            self._parts = []
        return self

    def project(self, x: np.ndarray) -> np.ndarray:
        """Vectors in the index's space (identity without a projection)."""
        if self.projection_ is None:
            return x
        return np.ascontiguousarray(x @ self.projection_, dtype=np.float32)

    @property
    def vectors(self) -> np.ndarray:
        if self._x is None:
            self._x = np.concatenate(self._parts, axis=0)
            self._parts = [self._x]
        return self._x

    def add(self, vectors: np.ndarray, *, projected: bool = False) -> None:
        """Add rows (``projected=True``: already in index space, see :meth:`project`)."""
        if projected:
            width = self.dim if self.projection_ is None else self.projection_.shape[1]
            v = check_vectors(vectors, width, "ExactIndex.add()")
        else:
            v = self.project(check_vectors(vectors, self.dim, "ExactIndex.add()"))
        if not self._parts and self._x is not None and len(self._x):
            self._parts = [self._x]
        self._parts.append(np.array(v, dtype=np.float32, copy=True))
        self._x = None

    def __len__(self) -> int:
        return len(self.vectors)

    def min_fetch(self) -> int:
        """An exact index asks for no extra candidates (``IVFPQIndex.min_fetch`` does)."""
        return 0

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` labels and inner products; only labels in ``allowed`` when given."""
        q = self.project(check_vectors(queries, self.dim, "ExactIndex.search()"))
        x = self.vectors
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            return topk_rows(q @ x[allowed].T, k, np.broadcast_to(allowed, (len(q), len(allowed))))
        n = len(x)
        out_l = np.full((len(q), k), -1, dtype=np.int64)
        out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        block = max(1, _BLOCK_BYTES // max(1, 4 * n))
        for lo in range(0, len(q), block):
            s = q[lo : lo + block] @ x.T
            out_l[lo : lo + block], out_s[lo : lo + block] = topk_rows(s, k)
        return out_l, out_s

    def save(self, folder: Path, name: str) -> dict:
        np.save(Path(folder) / f"{name}.npy", self.vectors)
        files = [f"{name}.npy"]
        if self.projection_ is not None:
            np.save(Path(folder) / f"{name}.proj.npy", self.projection_)
            files.append(f"{name}.proj.npy")
        return {"kind": self.kind, "dim": self.dim, "files": files}

    @classmethod
    def load(cls, folder: Path, meta: dict, *, mmap: bool = True) -> ExactIndex:
        path = Path(folder) / meta["files"][0]
        try:
            x = np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read the exact index ({exc}).") from exc
        idx = cls(meta["dim"])
        if len(meta["files"]) > 1:
            idx.projection_ = np.load(Path(folder) / meta["files"][1])
            idx.reduce_dim = idx.projection_.shape[1]
        width = idx.dim if idx.projection_ is None else idx.projection_.shape[1]
        if x.ndim != 2 or x.shape[1] != width:
            raise ModelError(f"{path}: shape {x.shape} does not match dim {width}.")
        idx._x = x
        idx._parts = [x]
        return idx
