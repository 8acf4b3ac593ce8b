"""Small helpers shared by the text and image encoders (not public API)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypeVar

import numpy as np

from prodfusion._checks import is_int
from prodfusion.encoders.base import Embeddings, Modality, check_finite
from prodfusion.errors import ModelError, param_error

if TYPE_CHECKING:
    from prodfusion.encoders.cache import EmbeddingCache

logger = logging.getLogger("prodfusion.encoders")

T = TypeVar("T")

#: New vectors are appended to the cache every this many items by default, so that an
#: interrupted run loses at most that much work.
DEFAULT_CHECKPOINT_EVERY = 16_384


def progress_bar(total: int, desc: str, unit: str, enabled: bool | None):
    """A tqdm bar on a terminal, plain periodic lines otherwise (:mod:`prodfusion.progress`);
    silent when ``enabled`` is False."""
    from prodfusion.progress import progress_bar as _bar

    return _bar(total, desc, unit, enabled)


def check_batch_size(batch_size: object, default: int, where: str, name: str = "batch_size") -> int:
    if batch_size is None:
        return default
    if not is_int(batch_size) or batch_size < 1:
        raise param_error(name, where, "an int >= 1 or None", batch_size)
    return batch_size


def check_device(device: object, where: str) -> str:
    if not isinstance(device, str) or not device.strip():
        raise param_error("device", where, "a torch device string such as 'cpu' or 'cuda:0'", device)
    return device


def check_output(vectors: np.ndarray, label: str) -> np.ndarray:
    """Fail loudly on NaN/Inf/zero rows of a freshly computed block (all rows present)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    check_finite(Embeddings(vectors, np.ones(len(vectors), dtype=bool), label), what=label)
    return vectors


def is_local_like(name: str) -> bool:
    """True when ``name`` can only be meant as a local folder (not a Hub id 'org/name')."""
    return (
        name.startswith((".", "~", "/", "\\"))
        or "\\" in name
        or name.count("/") > 1
        or (len(name) > 1 and name[1] == ":")  # C:\...
    )


def hub_unreachable(timeout: float = 10.0) -> str | None:
    """Why the Hugging Face Hub cannot be reached now (offline mode, no name resolution, no
    route, no answer within ``timeout`` seconds), or ``None`` when it answers at all (any HTTP
    status: the download itself then says what is wrong). One request through the Hub
    client's own session, so its proxies and endpoint (``HF_ENDPOINT``) apply."""
    try:
        from huggingface_hub import constants, get_session
    except ImportError:  # no Hub client: the loader reports it
        return None
    if constants.HF_HUB_OFFLINE:
        return "Hugging Face offline mode is on (HF_HUB_OFFLINE)"
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any transport failure means "unreachable"
        if type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ConnectionError",
                                  "ReadTimeout", "Timeout", "TimeoutException",
                                  "ProxyError", "NetworkError", "SSLError"):
            return f"{constants.ENDPOINT} cannot be reached ({type(exc).__name__}: {exc})"
        return None  # something else: let the download try and report
    return None


def load_hf(
    loader: Callable[..., T],
    name_or_path: str,
    spec: str,
    required_files: tuple[str, ...],
    what: str,
) -> T:
    """Load a Hugging Face-style model by local folder or Hub id, translating failures.

    A folder that exists is loaded from disk. A Hub id is looked up in the local Hugging
    Face cache first (no network), then downloaded; when both fail, the ModelError says
    the model could not be found locally nor downloaded and how to pass a folder.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir() or not any((path / f).exists() for f in required_files):
            raise ModelError(
                f"{spec}: {str(path)!r} is not a {what} folder (expected one of "
                f"{', '.join(required_files)} inside it). Pass the folder written by save()/"
                "save_pretrained()."
            )
        try:
            return loader(str(path))
        except Exception as exc:  # any loader failure on a local folder is a model problem
            raise ModelError(f"{spec}: could not load the {what} at {str(path)!r}: {exc}") from exc
    if is_local_like(name_or_path):
        where = "" if path.is_absolute() else f" (relative to the current directory {str(Path.cwd())!r})"
        raise ModelError(f"{spec}: model folder {str(path)!r} does not exist{where}. Check the path.")
    try:
        return loader(name_or_path, local_files_only=True)
    except OSError:
        pass
    except Exception as exc:
        raise ModelError(f"{spec}: could not load the {what} {name_or_path!r}: {exc}") from exc
    logger.info("%s: %r is not in the local Hugging Face cache; trying to download it.", spec, name_or_path)
    why = hub_unreachable()
    if why is not None:  # fail now, not after the Hub client's retries (about 80 s)
        raise ModelError(
            f"{spec}: model {name_or_path!r} is neither a local folder nor in the Hugging Face "
            f"cache, and it cannot be downloaded: {why}. Download it where the Hub can be "
            f"reached (`hf download {name_or_path}`, or save_pretrained()) and pass the "
            f"folder, e.g. '{spec.split(':', 1)[0]}:/path/to/model'."
        )
    try:
        return loader(name_or_path)
    except OSError as exc:
        raise ModelError(
            f"{spec}: model {name_or_path!r} could not be found locally (neither a folder nor in "
            "the Hugging Face cache) and could not be downloaded (offline?). Pass a local "
            f"folder instead, e.g. '{spec.split(':', 1)[0]}:/path/to/model' (a folder written "
            f"by save() or save_pretrained()). Cause: {exc}"
        ) from exc
    except Exception as exc:
        raise ModelError(f"{spec}: could not load the {what} {name_or_path!r}: {exc}") from exc


class Checkpointer:
    """Buffers freshly computed vectors and appends them to a cache every ``every`` rows.

    Used as a context manager around an encoding loop: on the way out, normal or not
    (an error, Ctrl-C), what is still buffered is written, so a rerun only encodes the
    rest. With ``cache=None`` it does nothing.
    """

    def __init__(self, cache: EmbeddingCache | None, namespace: str, every: int, spec: str) -> None:
        self.cache = cache
        self.namespace = namespace
        self.every = every
        self.spec = spec
        self.saved = 0
        self._keys: list[str] = []
        self._blocks: list[np.ndarray] = []

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        if self.cache is None:
            return
        self._keys.extend(keys)
        self._blocks.append(vectors)
        if len(self._keys) >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.cache is None or not self._keys:
            return
        keys, blocks = self._keys, self._blocks
        self._keys, self._blocks = [], []  # a failing put is not retried on the way out
        self.cache.put(self.namespace, keys, np.concatenate(blocks, axis=0))
        self.saved += len(keys)

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.flush()
            return False
        try:
            self.flush()
        except Exception as err:  # keep the original error; this one is secondary
            logger.warning("%s: could not save the last vectors to the cache (%s).", self.spec, err)
        if self.saved:
            logger.warning(
                "%s: stopped by %s after %d new vectors; they are in the cache at %s, so "
                "running again resumes there.",
                self.spec, exc_type.__name__, self.saved, self.cache.directory,
            )
        return False


class BatchEncoder:
    """What the text and image encoders share: settings, lazy model, checked batches, cache.

    Subclasses set ``modality`` and ``default_batch_size`` and implement ``_load_model``,
    ``_dim`` and ``_embed``.
    """

    modality: Modality
    #: Bump when preprocessing changes, so cached vectors of the old recipe are not reused.
    version: int = 1
    default_batch_size: int = 32

    def __init__(
        self,
        spec: str,
        *,
        batch_size: int | None = None,
        device: str = "cpu",
        cache: EmbeddingCache | None = None,
        progress: bool = True,
        checkpoint_every: int | None = None,
    ) -> None:
        where = "make_encoder()"
        self.spec = spec
        self.batch_size = check_batch_size(batch_size, self.default_batch_size, where)
        self.device = check_device(device, where)
        self.cache = cache
        self.progress = progress
        self.checkpoint_every = check_batch_size(
            checkpoint_every, DEFAULT_CHECKPOINT_EVERY, where, "checkpoint_every"
        )
        self._model = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, batch_size={self.batch_size})"

    @property
    def namespace(self) -> str:
        """Cache namespace: the spec plus the preprocessing version."""
        return f"{self.spec}@v{self.version}"

    def load(self) -> Self:
        """Load the model now (it is otherwise loaded on first use); returns ``self``.

        Raises
        ------
        ModelError
            If the model cannot be found or loaded.
        """
        if self._model is None:
            self._model = self._load_model()
        return self

    @property
    def dim(self) -> int:
        """Output dimension (loads the model if needed)."""
        self.load()
        return self._dim()

    def _load_model(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _embed(self, batch) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _embed_checked(self, batch, noun: str, first: str) -> np.ndarray:
        """``_embed`` one batch, then fail loudly on a wrong shape or a NaN/Inf/zero row."""
        out = np.asarray(self._embed(batch), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(batch):
            raise ModelError(
                f"{self.spec}: the model returned shape {out.shape} for {len(batch)} {noun}."
            )
        return check_output(out, f"{self.spec} ({first}…)")

    def _cache_lookup(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cached vectors and hit mask for ``keys``; logs how much of the run is done."""
        assert self.cache is not None
        cached, found = self.cache.get(self.namespace, keys)
        if found.any():
            logger.info(
                "%s: resuming: %d of %d already encoded (cache %s)",
                self.spec, int(found.sum()), len(keys), self.cache.directory,
            )
        return cached, found

    def _checkpointer(self, cache: EmbeddingCache | None) -> Checkpointer:
        return Checkpointer(cache, self.namespace, self.checkpoint_every, self.spec)
