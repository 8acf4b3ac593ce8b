"""An on-disk, append-only cache of item embeddings, keyed by encoder and by item content.

Re-encoding a catalog after new sessions arrive or a few products are added should only
run the model on what changed, and a long encoding job that is interrupted should keep what
it had done. :class:`EmbeddingCache` stores, for every encoder *namespace* (the encoder spec
plus a preprocessing version), a series of *shards*: one ``.npy`` matrix and one text file
of content keys each (one SHA-256 hex digest per line; row ``i`` of the matrix belongs to
line ``i``). Every :meth:`EmbeddingCache.put` appends one shard; nothing already written is
rewritten, so checkpointing every few thousand items costs only the new rows. No pickles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from prodfusion._checks import is_int
from prodfusion.encoders.base import float16_losses
from prodfusion.encoders.cache_files import (
    _DTYPES,
    _KEY_RE,
    _save,
    _ShardFiles,
    _slug,
)
from prodfusion.errors import DataError, ModelError, param_error

__all__ = ["CacheDtype", "EmbeddingCache", "content_key"]

logger = logging.getLogger(__name__)

#: Storage types of the cached vectors; :meth:`EmbeddingCache.get` always returns float32.
CacheDtype = Literal["float32", "float16"]


def content_key(data: str | bytes) -> str:
    """SHA-256 hex digest of a title (UTF-8) or of raw file bytes.

    >>> content_key("red dress")[:12]
    'e858a3f9978c'
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache(_ShardFiles):
    """Embedding vectors stored on disk per encoder namespace and item content key.

    Parameters
    ----------
    directory : str, Path or EmbeddingCache
        Folder holding the cache (created on first write). One folder can serve any
        number of encoders. Another :class:`EmbeddingCache` means its folder and its
        settings (where ``dtype`` / ``max_shards`` are not given here); a cache is also an
        :class:`os.PathLike` of its folder, so it can be passed where a cache folder is
        expected (``Recommender(cache_dir=EmbeddingCache(d, dtype="float16"))``).
    dtype : {"float32", "float16"}, optional
        How new shards store vectors (default ``"float32"``). float16 halves the files
        at a relative rounding error of about 5e-4 per component; :meth:`get` returns
        float32 either way and reads shards of both types. See docs/encoders.md for what
        it costs in neighbours.
    max_shards : int, optional
        When a :meth:`put` leaves a namespace with more shards than this (default 64),
        the namespace is compacted into one shard.

    Notes
    -----
    Files per namespace (``<slug>`` is a readable, collision-free form of its name):
    ``<slug>.<seq>.npy`` + ``<slug>.<seq>.keys.txt`` per shard, ``<slug>.json`` (the full
    namespace, dimension, storage type and row count, for humans). The single-file layout of
    earlier versions (``<slug>.npy`` + ``<slug>.keys.txt``) is read as shard 0.

    Keys are content hashes (:func:`content_key`): the SHA-256 of a title, or of an
    image file's bytes. A renamed or re-uploaded but identical photo is a hit; an edited
    title or photo is a miss. When a key is in several shards the latest shard wins.

    Writes are atomic per file: a shard's matrix is published first and its keys file
    second, so a crash in between leaves a matrix without keys, which is ignored with a
    warning (and removed by :meth:`compact`). A keys file longer than its matrix, or an
    unreadable matrix, is ignored the same way: a damaged shard costs its vectors (they are
    encoded again), never the run. Two processes appending to one namespace at once both
    keep their shards. Do not :meth:`compact` a namespace while another process writes
    it: that process's newest shard could be lost (its items would simply be encoded again).
    Delete the folder to clear the cache.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> cache.put("usem3", [content_key("a"), content_key("b")], np.eye(2, dtype=np.float32))
    >>> vecs, found = cache.get("usem3", [content_key("b"), content_key("zz")])
    >>> found.tolist(), vecs[0].tolist()
    ([True, False], [0.0, 1.0])
    >>> small = EmbeddingCache(tempfile.mkdtemp(), dtype="float16")
    >>> small.put("usem3", [content_key("a")], np.array([[0.1, 0.2]]))
    >>> small.get("usem3", [content_key("a")])[0].dtype
    dtype('float32')
    """

    def __init__(
        self,
        directory: str | os.PathLike | EmbeddingCache,
        *,
        dtype: CacheDtype | None = None,
        max_shards: int | None = None,
    ) -> None:
        if isinstance(directory, EmbeddingCache):
            dtype = directory.dtype if dtype is None else dtype
            max_shards = directory.max_shards if max_shards is None else max_shards
            directory = directory.directory
        dtype = "float32" if dtype is None else dtype
        max_shards = 64 if max_shards is None else max_shards
        if dtype not in _DTYPES:
            raise param_error("dtype", "EmbeddingCache()", "'float32' or 'float16'", dtype)
        if not is_int(max_shards) or max_shards < 1:
            raise param_error("max_shards", "EmbeddingCache()", "an int >= 1", max_shards)
        self.directory = Path(directory)
        self.dtype: CacheDtype = dtype
        self.max_shards = max_shards

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, dtype={self.dtype!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.directory)

    # ------------------------------------------------------------------ API
    def get(self, namespace: str, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Look up vectors by content key.

        Parameters
        ----------
        namespace : str
            The encoder namespace (its spec plus preprocessing version).
        keys : sequence of str
            Content keys, e.g. from :func:`content_key`.

        Returns
        -------
        vectors : ndarray of shape (len(keys), dim), float32
            Cached vectors (float16 shards are widened); rows not found are zero. ``dim``
            is 0 when the namespace has nothing cached.
        found : ndarray of shape (len(keys),), bool
            Which keys were in the cache.

        Raises
        ------
        ModelError
            If the namespace's shards disagree in dimension (written by two different
            models under one spec): delete the cache folder.
        """
        keys = list(keys)
        position: dict[str, int] = {}
        inverse = np.fromiter(
            (position.setdefault(k, len(position)) for k in keys), dtype=np.int64, count=len(keys)
        )
        shards = self._opened(namespace)
        if not shards:
            return np.zeros((len(keys), 0), dtype=np.float32), np.zeros(len(keys), dtype=bool)
        shard_of = np.full(len(position), -1, dtype=np.int64)
        row_of = np.full(len(position), -1, dtype=np.int64)
        for s, (_, stored_keys, _) in enumerate(shards):  # later shards overwrite: latest wins
            for r, k in enumerate(stored_keys):
                j = position.get(k)
                if j is not None:
                    shard_of[j] = s
                    row_of[j] = r
        out = np.zeros((len(position), shards[0][2].shape[1]), dtype=np.float32)
        for s, (_, _, matrix) in enumerate(shards):
            where = np.flatnonzero(shard_of == s)
            if where.size:
                order = np.argsort(row_of[where], kind="stable")  # read the file in order
                out[where[order]] = matrix[row_of[where[order]]]
        found = shard_of >= 0
        if len(position) == len(keys):  # no repeated keys: inverse is the identity
            return out, found
        return out[inverse], found[inverse]

    def put(self, namespace: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors under their content keys as one new shard (later writes win).

        Raises
        ------
        DataError
            If ``keys`` and ``vectors`` disagree in length, a key is not a SHA-256 hex
            digest, a vector is not finite, or (float16 caches) a vector overflows or
            vanishes in float16.
        ModelError
            If the namespace already holds vectors of another dimension (the model
            behind the spec changed): delete the cache folder and encode again.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        keys = list(keys)
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise DataError(
                f"EmbeddingCache.put({namespace!r}): got {len(keys)} keys but vectors of "
                f"shape {vectors.shape}; pass one row per key."
            )
        bad = [k for k in keys if not isinstance(k, str) or not _KEY_RE.match(k)]
        if bad:
            raise DataError(
                f"EmbeddingCache.put({namespace!r}): key {bad[0]!r} is not a SHA-256 hex "
                "digest; build keys with prodfusion.encoders.cache.content_key()."
            )
        if not np.isfinite(vectors).all():
            raise DataError(
                f"EmbeddingCache.put({namespace!r}): vectors contain NaN or Inf; "
                "refusing to cache them."
            )
        if not keys:
            return
        with np.errstate(over="ignore"):  # overflow is detected and reported just below
            stored = vectors.astype(self.dtype, copy=False)
        if stored.dtype != vectors.dtype:
            overflow, vanished = float16_losses(vectors, stored)
            lost = overflow | vanished
            if lost.any():
                row = int(np.flatnonzero(lost)[0])
                raise DataError(
                    f"EmbeddingCache.put({namespace!r}): vector {row} overflows or vanishes in "
                    f"{self.dtype} (largest magnitude {float(np.abs(vectors[row]).max()):.3g}); "
                    "use an EmbeddingCache with dtype='float32' for this encoder."
                )
        dim = self._stored_dim(namespace)
        if dim is not None and dim != vectors.shape[1]:
            raise ModelError(
                f"Embedding cache {self.directory} holds {dim}-d vectors for "
                f"{namespace!r} but the encoder now produces {vectors.shape[1]}-d vectors "
                "(the model behind this spec changed). Delete the cache folder and encode again."
            )
        shards = self._shards(namespace)
        self._write_shard(
            namespace, keys, lambda p: _save(p, stored), after=shards[-1].seq if shards else 0,
        )
        self._write_meta(namespace, vectors.shape[1], self._stored_count(namespace) + len(keys))
        if len(shards) + 1 > self.max_shards:
            self.compact(namespace)

    def compact(self, namespace: str) -> int:
        """Merge a namespace's shards into one (latest write per key), atomically.

        The merged shard is written (in this cache's ``dtype``) and published before any old
        shard is removed, so an interruption leaves either the old shards or the merged one
        plus left-overs that hold the same vectors. Damaged shards and matrices without keys
        are removed. Runs automatically when a :meth:`put` leaves more than ``max_shards``
        shards.

        Returns
        -------
        int
            Number of vectors kept (distinct keys).

        Examples
        --------
        >>> import numpy as np, tempfile
        >>> cache = EmbeddingCache(tempfile.mkdtemp())
        >>> for t in ("a", "b", "a"):
        ...     cache.put("usem3", [content_key(t)], np.ones((1, 2)))
        >>> cache.compact("usem3")
        2
        """
        all_shards = self._shards(namespace)
        if not all_shards:
            return 0
        shards = self._opened(namespace)
        latest: dict[str, tuple[int, int]] = {}
        for s, (_, keys, _) in enumerate(shards):
            for r, k in enumerate(keys):
                latest[k] = (s, r)
        rows_of: list[list[int]] = [[] for _ in shards]
        keys_of: list[list[str]] = [[] for _ in shards]
        for k, (s, r) in latest.items():
            rows_of[s].append(r)
            keys_of[s].append(k)
        merged_keys = [k for ks in keys_of for k in ks]
        if merged_keys:
            dim = shards[0][2].shape[1]
            dtype = self.dtype

            def fill(path: Path) -> None:
                # Written through a memory map: the merged matrix never sits in memory whole.
                out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(len(latest), dim))
                pos = 0
                for (_, _, matrix), rows in zip(shards, rows_of, strict=True):
                    idx = np.asarray(rows, dtype=np.int64)
                    out[pos : pos + len(idx)] = matrix[idx]
                    pos += len(idx)
                out.flush()
                del out

            new_keys = self._write_shard(namespace, merged_keys, fill, after=all_shards[-1].seq)
            self._write_meta(namespace, dim, len(merged_keys))
        else:
            new_keys = None
        for shard in all_shards:  # keys first: a crash here leaves only ignorable matrices
            shard.keys.unlink(missing_ok=True)
            shard.matrix.unlink(missing_ok=True)
        s = _slug(namespace)
        for orphan in self.directory.glob(f"{s}.*keys.txt"):  # keys whose matrix is gone
            if orphan != new_keys and not orphan.with_name(
                orphan.name[: -len(".keys.txt")] + ".npy"
            ).exists():
                orphan.unlink(missing_ok=True)
        logger.info(
            "Embedding cache %s: compacted %d shards of %r into one (%d vectors).",
            self.directory, len(all_shards), namespace, len(merged_keys),
        )
        return len(merged_keys)

    def n_shards(self, namespace: str) -> int:
        """How many shard matrices the namespace has on disk (usable or not)."""
        return len(self._shards(namespace))

    def namespaces(self) -> list[str]:
        """The namespaces with something cached (read from the ``.json`` side files)."""
        if not self.directory.is_dir():
            return []
        out = []
        for p in sorted(self.directory.glob("*.json")):
            try:
                out.append(json.loads(p.read_text(encoding="utf-8"))["namespace"])
            except (OSError, ValueError, KeyError):
                continue
        return out
