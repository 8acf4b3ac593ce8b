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
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from prodfusion._checks import is_int
from prodfusion.encoders.base import float16_losses
from prodfusion.errors import DataError, ModelError, param_error

__all__ = ["CacheDtype", "EmbeddingCache", "content_key"]

logger = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_KEY_LEN = 64

#: Storage types of the cached vectors; :meth:`EmbeddingCache.get` always returns float32.
CacheDtype = Literal["float32", "float16"]
_DTYPES: tuple[str, ...] = ("float32", "float16")
#: Shard numbers are zero-padded so that a directory listing sorts in write order.
_SEQ_DIGITS = 6


def content_key(data: str | bytes) -> str:
    """SHA-256 hex digest of a title (UTF-8) or of raw file bytes.

    >>> content_key("red dress")[:12]
    'e858a3f9978c'
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _slug(namespace: str) -> str:
    """A file-system-safe, collision-free name for a namespace."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", namespace).strip("_")[:40]
    return f"{readable}-{hashlib.sha256(namespace.encode('utf-8')).hexdigest()[:12]}"


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _atomic_write(path: Path, write: Callable) -> None:
    """Write through ``write(fileobj)`` into a temporary file, then rename over ``path``."""
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save(path: Path, matrix: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to the name
        np.save(f, matrix, allow_pickle=False)


def _publish(tmp: Path, path: Path) -> bool:
    """Give the finished file ``tmp`` the name ``path`` unless that name is taken.

    A hard link is atomic and exclusive, so two processes appending to one namespace at
    once never take the same shard number. Returns False when ``path`` already exists.
    """
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: a plain rename, not exclusive
        if path.exists():
            return False
        os.replace(tmp, path)
    return True


@dataclass(frozen=True)
class _Shard:
    """The two files of one shard; ``seq`` 0 is the single-file layout of older versions."""

    seq: int
    matrix: Path
    keys: Path


class EmbeddingCache:
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

    # ------------------------------------------------------------------ files
    def _meta_path(self, namespace: str) -> Path:
        return self.directory / f"{_slug(namespace)}.json"

    def _shards(self, namespace: str) -> list[_Shard]:
        """The namespace's shards in write order (by matrix file; keys may be missing)."""
        if not self.directory.is_dir():
            return []
        s = _slug(namespace)  # only [A-Za-z0-9._-]: nothing a glob would interpret
        shards = []
        for p in self.directory.glob(f"{s}.*npy"):
            middle = p.name[len(s) + 1 : -len(".npy")]
            if middle == "":
                shards.append(_Shard(0, p, self.directory / f"{s}.keys.txt"))
            elif middle.isdigit() and middle.isascii():
                shards.append(_Shard(int(middle), p, self.directory / f"{s}.{middle}.keys.txt"))
        return sorted(shards, key=lambda sh: sh.seq)

    def _shard_path(self, namespace: str, seq: int, suffix: str) -> Path:
        return self.directory / f"{_slug(namespace)}.{seq:0{_SEQ_DIGITS}d}{suffix}"

    def _open(self, shard: _Shard) -> tuple[list[str], np.ndarray] | None:
        """Keys and memory-mapped rows of one shard; None (with a warning) when unusable."""
        if not shard.keys.exists():
            logger.warning(
                "Embedding cache shard %s has no keys file (a write was interrupted); "
                "ignoring it. EmbeddingCache.compact() removes it.", shard.matrix,
            )
            return None
        try:
            matrix = np.load(shard.matrix, mmap_mode="r", allow_pickle=False)
            keys = shard.keys.read_text(encoding="ascii").split()
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            logger.warning(
                "Embedding cache shard %s is unreadable (%s); ignoring it.", shard.matrix, exc
            )
            return None
        if (
            matrix.ndim != 2
            or matrix.dtype.name not in _DTYPES
            or matrix.shape[0] < len(keys)
            or any(len(k) != _KEY_LEN for k in keys)
        ):
            # A keys file is written whole after its matrix, so one that is longer than
            # the matrix (or garbled) can only come from outside interference.
            logger.warning(
                "Embedding cache shard %s does not match its keys file (%d keys, matrix %s "
                "%s); ignoring it.", shard.matrix, len(keys), matrix.shape, matrix.dtype,
            )
            return None
        return keys, matrix[: len(keys)]

    def _opened(self, namespace: str) -> list[tuple[_Shard, list[str], np.ndarray]]:
        """Every usable shard, checked to share one dimension."""
        out = []
        for shard in self._shards(namespace):
            got = self._open(shard)
            if got is None:
                continue
            keys, matrix = got
            if out and matrix.shape[1] != out[0][2].shape[1]:
                raise ModelError(
                    f"Embedding cache {self.directory} holds {out[0][2].shape[1]}-d and "
                    f"{matrix.shape[1]}-d vectors for {namespace!r} ({out[0][0].matrix.name}, "
                    f"{shard.matrix.name}). Delete the cache folder and encode again."
                )
            out.append((shard, keys, matrix))
        return out

    def _stored_dim(self, namespace: str) -> int | None:
        """Dimension of the newest complete shard (reads one header, not the keys)."""
        for shard in reversed(self._shards(namespace)):
            if not shard.keys.exists():
                continue
            try:
                matrix = np.load(shard.matrix, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError):
                continue
            if matrix.ndim == 2:
                return int(matrix.shape[1])
        return None

    def _write_shard(
        self, namespace: str, keys: list[str], fill: Callable[[Path], None], after: int
    ) -> Path:
        """Publish a new shard numbered above ``after``: ``fill(tmp)`` writes the matrix."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(self._shard_path(namespace, after + 1, ".npy"))
        try:
            fill(tmp)
            _fsync(tmp)
            seq = after + 1
            while not _publish(tmp, self._shard_path(namespace, seq, ".npy")):
                seq += 1  # another process took that number first
        finally:
            tmp.unlink(missing_ok=True)
        # Matrix first, keys second: see the class notes.
        keys_path = self._shard_path(namespace, seq, ".keys.txt")
        _atomic_write(keys_path, lambda f: f.write(("\n".join(keys) + "\n").encode("ascii")))
        return keys_path

    def _write_meta(self, namespace: str, dim: int, count: int) -> None:
        info = {"namespace": namespace, "dim": dim, "dtype": self.dtype, "count": count}
        _atomic_write(
            self._meta_path(namespace), lambda f: f.write(json.dumps(info, indent=1).encode("utf-8"))
        )

    def _stored_count(self, namespace: str) -> int:
        try:
            return int(json.loads(self._meta_path(namespace).read_text(encoding="utf-8"))["count"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

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
