"""An on-disk cache of item embeddings, keyed by encoder and by item content.

Re-encoding a catalog after new sessions arrive or a few products are added should only
run the model on what changed. :class:`EmbeddingCache` stores, for every encoder
*namespace* (the encoder spec plus a preprocessing version), one ``.npy`` matrix and one
text file of content keys (one SHA-256 hex digest per line, row ``i`` of the matrix
belongs to line ``i``). No pickles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodfusion.errors import DataError, ModelError

__all__ = ["EmbeddingCache", "content_key"]

logger = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


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


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(fileobj)`` into a temporary file, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EmbeddingCache:
    """Embedding vectors stored on disk per encoder namespace and item content key.

    Parameters
    ----------
    directory : str or Path
        Folder holding the cache (created on first write). One folder can serve any
        number of encoders; each gets ``<slug>.npy``, ``<slug>.keys.txt`` and
        ``<slug>.json`` (the full namespace, dimension and count, for humans).

    Notes
    -----
    Keys are content hashes (:func:`content_key`): the SHA-256 of a title, or of an
    image file's bytes. A renamed or re-uploaded but identical photo is a hit; an edited
    title or photo is a miss. Writes are atomic: the matrix is replaced first and the
    keys file second, and new keys are only ever appended, so a crash between the two
    renames leaves a keys file that is a valid prefix of the matrix. Two processes
    writing the same namespace at once do not corrupt it, but the last writer's additions
    win. Delete the folder to clear the cache.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> cache.put("usem3", [content_key("a"), content_key("b")], np.eye(2, dtype=np.float32))
    >>> vecs, found = cache.get("usem3", [content_key("b"), content_key("zz")])
    >>> found.tolist(), vecs[0].tolist()
    ([True, False], [0.0, 1.0])
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r})"

    # ------------------------------------------------------------------ files
    def _paths(self, namespace: str) -> tuple[Path, Path, Path]:
        s = _slug(namespace)
        d = self.directory
        return d / f"{s}.npy", d / f"{s}.keys.txt", d / f"{s}.json"

    def _load(self, namespace: str) -> tuple[list[str], np.ndarray | None]:
        """Keys and (memory-mapped) vectors of one namespace; empty when absent/unusable."""
        npy, keys_path, _ = self._paths(namespace)
        if not npy.exists() or not keys_path.exists():
            return [], None
        keys = keys_path.read_text(encoding="ascii").split()
        try:
            vectors = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            logger.warning("Embedding cache %s is unreadable (%s); ignoring it.", npy, exc)
            return [], None
        if vectors.ndim != 2 or vectors.dtype != np.float32 or vectors.shape[0] < len(keys):
            # Keys are only appended and the matrix is replaced first, so a matrix with
            # fewer rows than keys can only come from outside interference.
            logger.warning(
                "Embedding cache %s does not match its keys file (%d keys, matrix %s %s); "
                "ignoring it.", npy, len(keys), vectors.shape, vectors.dtype,
            )
            return [], None
        return keys, vectors[: len(keys)]

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
            Cached vectors; rows not found are zero. ``dim`` is 0 when the namespace
            has nothing cached.
        found : ndarray of shape (len(keys),), bool
            Which keys were in the cache.
        """
        stored_keys, stored = self._load(namespace)
        found = np.zeros(len(keys), dtype=bool)
        if stored is None:
            return np.zeros((len(keys), 0), dtype=np.float32), found
        row_of = {k: i for i, k in enumerate(stored_keys)}
        rows = np.array([row_of.get(k, -1) for k in keys], dtype=np.int64)
        found = rows >= 0
        out = np.zeros((len(keys), stored.shape[1]), dtype=np.float32)
        if found.any():
            out[found] = stored[rows[found]]
        return out, found

    def put(self, namespace: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors under their content keys (existing keys are overwritten).

        Raises
        ------
        DataError
            If ``keys`` and ``vectors`` disagree in length, a key is not a SHA-256 hex
            digest, or a vector is not finite.
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
        stored_keys, stored = self._load(namespace)
        if stored is not None and stored.shape[1] != vectors.shape[1]:
            raise ModelError(
                f"Embedding cache {self.directory} holds {stored.shape[1]}-d vectors for "
                f"{namespace!r} but the encoder now produces {vectors.shape[1]}-d vectors "
                "(the model behind this spec changed). Delete the cache folder and encode again."
            )
        row_of = {k: i for i, k in enumerate(stored_keys)}
        merged = np.array(stored, dtype=np.float32) if stored is not None else None
        new_keys: list[str] = []
        new_rows: list[int] = []
        for i, k in enumerate(keys):
            r = row_of.get(k)
            if r is None:
                row_of[k] = len(stored_keys) + len(new_keys)
                new_keys.append(k)
                new_rows.append(i)
            else:  # same content, same spec: normally identical; keep the latest
                if r < len(stored_keys):
                    merged[r] = vectors[i]
                else:
                    new_rows[r - len(stored_keys)] = i
        parts = [merged] if merged is not None else []
        parts.append(vectors[new_rows])
        all_vectors = np.concatenate(parts, axis=0)
        all_keys = stored_keys + new_keys

        self.directory.mkdir(parents=True, exist_ok=True)
        npy, keys_path, meta = self._paths(namespace)
        # Matrix first, keys second: see the class notes.
        _atomic_write(npy, lambda f: np.save(f, all_vectors, allow_pickle=False))
        _atomic_write(keys_path, lambda f: f.write(("\n".join(all_keys) + "\n").encode("ascii")))
        info = {"namespace": namespace, "dim": int(all_vectors.shape[1]), "count": len(all_keys)}
        _atomic_write(meta, lambda f: f.write(json.dumps(info, indent=1).encode("utf-8")))

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
