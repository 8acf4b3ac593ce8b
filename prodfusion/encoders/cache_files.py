"""The files of the embedding cache: shards (one ``.npy`` matrix + one keys file each),
written atomically and published under the next free number, and read back defensively
(an interrupted or garbled shard is skipped with a warning). :class:`_ShardFiles` is the
base of :class:`~prodfusion.encoders.cache.EmbeddingCache`, which holds the API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodfusion._outputs import usual_permissions
from prodfusion.errors import ModelError

__all__: list[str] = []

logger = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_KEY_LEN = 64
_DTYPES: tuple[str, ...] = ("float32", "float16")
#: Shard numbers are zero-padded so that a directory listing sorts in write order.
_SEQ_DIGITS = 6


def _slug(namespace: str) -> str:
    """A file-system-safe, collision-free name for a namespace."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", namespace).strip("_")[:40]
    return f"{readable}-{hashlib.sha256(namespace.encode('utf-8')).hexdigest()[:12]}"


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    usual_permissions(tmp)  # not mkstemp's 0600: a cache another user's build reads too
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


class _ShardFiles:
    """Where each namespace's shards and metadata live under ``directory`` (see module)."""

    directory: Path
    dtype: str

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
