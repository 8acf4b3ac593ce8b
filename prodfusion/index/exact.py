"""The exact inner-product index: NumPy brute force, the oracle every other backend is tested against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodfusion.errors import ModelError
from prodfusion.index.base import check_vectors

__all__ = ["ExactIndex", "topk_rows"]

#: Scores computed per block: block × n float32 stays under this many bytes.
_BLOCK_BYTES = 128 * 2**20


def topk_rows(scores: np.ndarray, k: int, labels: np.ndarray | None = None):
    """Best ``k`` per row of ``scores`` (desc, ties by label asc); ``-1``/``-inf`` padding.

    >>> topk_rows(np.array([[0.1, 0.9, 0.5]], "float32"), 2)[0].tolist()
    [[1, 2]]
    """
    q, n = scores.shape
    if labels is None:
        labels = np.broadcast_to(np.arange(n, dtype=np.int64), (q, n))
    out_l = np.full((q, k), -1, dtype=np.int64)
    out_s = np.full((q, k), -np.inf, dtype=np.float32)
    kk = min(k, n)
    if kk == 0:
        return out_l, out_s
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (q, 1))
    ps = np.take_along_axis(scores, part, axis=1)
    pl_ = np.take_along_axis(labels, part, axis=1)
    order = np.lexsort((pl_, -ps), axis=1)
    best_l = np.take_along_axis(pl_, order, axis=1)
    best_s = np.take_along_axis(ps, order, axis=1).astype(np.float32)
    bad = ~np.isfinite(best_s)
    best_l[bad] = -1
    best_s[bad] = -np.inf
    out_l[:, :kk] = best_l
    out_s[:, :kk] = best_s
    return out_l, out_s


class ExactIndex:
    """Brute-force inner product over all added vectors (NumPy, blockwise).

    Parameters
    ----------
    dim : int
        Width of the vectors.

    Examples
    --------
    >>> idx = ExactIndex(2)
    >>> idx.add(np.array([[1, 0], [0, 1], [0.8, 0.6]], "float32"))
    >>> idx.search(np.array([[1, 0]], "float32"), 2)[0].tolist()
    [[0, 2]]
    """

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self._parts: list[np.ndarray] = []
        self._x: np.ndarray | None = np.zeros((0, self.dim), dtype=np.float32)

    def train(self, sample: np.ndarray) -> ExactIndex:
        """Nothing to learn; present for the protocol."""
        return self

    @property
    def vectors(self) -> np.ndarray:
        if self._x is None:
            self._x = np.concatenate(self._parts, axis=0)
            self._parts = [self._x]
        return self._x

    def add(self, vectors: np.ndarray) -> None:
        v = check_vectors(vectors, self.dim, "ExactIndex.add()")
        if not self._parts and self._x is not None and len(self._x):
            self._parts = [self._x]
        self._parts.append(np.array(v, dtype=np.float32, copy=True))
        self._x = None

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self.dim, "ExactIndex.search()")
        x = self.vectors
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
        return {"kind": self.kind, "dim": self.dim, "files": [f"{name}.npy"]}

    @classmethod
    def load(cls, folder: Path, meta: dict, *, mmap: bool = True) -> ExactIndex:
        path = Path(folder) / meta["files"][0]
        try:
            x = np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read the exact index ({exc}).") from exc
        idx = cls(meta["dim"])
        if x.ndim != 2 or x.shape[1] != idx.dim:
            raise ModelError(f"{path}: shape {x.shape} does not match dim {idx.dim}.")
        idx._x = x
        idx._parts = [x]
        return idx
