"""Small helpers shared by the text and image encoders (not public API)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from prodfusion.encoders.base import Embeddings, check_finite
from prodfusion.errors import ModelError, param_error

logger = logging.getLogger("prodfusion.encoders")

T = TypeVar("T")


def progress_bar(total: int, desc: str, unit: str, enabled: bool):
    """A tqdm bar; hidden when ``enabled`` is False or stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, leave=False)


def check_batch_size(batch_size: object, default: int, where: str) -> int:
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise param_error("batch_size", where, "an int >= 1 or None", batch_size)
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
