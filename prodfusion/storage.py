"""Model folders on disk: where one may be written, and reading its files with errors that
name the folder and the file.

A model folder is recognised by its ``manifest.json``. :func:`check_model_destination` is
called before any work by ``prodfusion build`` and again by :meth:`Recommender.save`: an
existing model folder is replaced (atomically), an empty folder is used, and anything else —
a file, a folder holding other things, the current folder or one of its parents — is refused
unless ``overwrite`` allows replacing a non-model folder (a file is never replaced).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from prodfusion.errors import ModelError, ParameterError

__all__ = ["MANIFEST", "check_model_destination", "is_model_folder", "read_parquet_file",
           "read_npy_file", "read_manifest_file"]

MANIFEST = "manifest.json"


def is_model_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a ``manifest.json``."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def check_model_destination(path: str | os.PathLike, *, overwrite: bool = False,
                            option: str = "--out") -> Path:
    """Validate where a model folder will be written; returns the absolute path.

    Parameters
    ----------
    path : path
        The model folder to write.
    overwrite : bool
        Allow replacing an existing folder that is *not* a model folder (its content is
        deleted when the new model is in place). A model folder is always replaceable; a file
        never is.
    option : str
        Name of the option in messages.

    Raises
    ------
    ParameterError
        The destination is a file, a non-empty folder that is not a model (without
        ``overwrite``), the current folder or a parent of it, the file-system root, or its
        parent folder cannot be created or written.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> open(os.path.join(d, "notes.txt"), "w").close()
    >>> check_model_destination(d)   # doctest: +ELLIPSIS, +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ParameterError: --out ...: an existing folder that is not a prodfusion model ...
    """
    raw = str(path)
    if not raw.strip():
        raise ParameterError(f"{option}: empty path; name the model folder to write.")
    p = Path(os.path.abspath(os.path.expanduser(raw)))
    real = Path(os.path.realpath(p))
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == Path(real.anchor) or real.parent == real:
        raise ParameterError(f"{option} {raw!r} is the file-system root; name a new folder "
                             "for the model, e.g. --out models/shop-2024-06.")
    if cwd == real or cwd.is_relative_to(real):
        raise ParameterError(
            f"{option} {raw!r} is the current folder or one of its parents; it cannot be "
            "replaced by a model folder. Name a new folder, e.g. --out model."
        )
    if p.is_symlink() and not p.exists():
        raise ParameterError(f"{option} {raw!r} is a broken symlink; remove it or name "
                             "another folder.")
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise ParameterError(
                f"{option} {raw!r} is an existing file, not a folder; it is never replaced. "
                "Name a new folder for the model."
            )
        if p.is_symlink():
            raise ParameterError(
                f"{option} {raw!r} is a symlink to a folder; write the model to a real folder "
                "and point the link at it with `prodfusion publish MODEL LINK`."
            )
        if not is_model_folder(p):
            try:
                empty = next(p.iterdir(), None) is None
            except OSError as exc:
                raise ParameterError(f"{option} {raw!r}: cannot list the folder ({exc}).") from exc
            if not empty and not overwrite:
                raise ParameterError(
                    f"{option} {raw!r}: an existing folder that is not a prodfusion model "
                    f"(no {MANIFEST}); refusing to replace it and its content. Name a new "
                    "folder, or pass --overwrite to replace it."
                )
    parent = p.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ParameterError(f"{option} {raw!r}: cannot create or write in {str(probe)!r}.")
    return p


def _where(folder: Path, name: str) -> str:
    return f"model folder {str(folder)!r}, file {name!r}"


def read_manifest_file(folder: Path) -> dict:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{_where(folder, MANIFEST)}: unreadable manifest ({exc}).") from exc
    return data


def read_parquet_file(folder: Path, name: str):
    """``polars.read_parquet(folder / name)``; any failure names the folder and file."""
    import polars as pl

    try:
        return pl.read_parquet(folder / name)
    except Exception as exc:  # polars raises ComputeError, OSError, panics, … on damage
        raise ModelError(
            f"{_where(folder, name)}: cannot read the catalog table ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}). The folder is damaged "
            "or incompletely copied; rebuild or re-copy it."
        ) from exc


def read_npy_file(folder: Path, name: str, *, mmap_mode: str | None = None) -> np.ndarray:
    """``numpy.load(folder / name)`` without pickles; any failure names the folder and file."""
    try:
        arr = np.load(folder / name, mmap_mode=mmap_mode, allow_pickle=False)
    except Exception as exc:  # ValueError (truncated), OSError, EOFError, …
        raise ModelError(
            f"{_where(folder, name)}: cannot read the array ({type(exc).__name__}: {exc}). The "
            "folder is damaged or incompletely copied; rebuild or re-copy it."
        ) from exc
    if not isinstance(arr, np.ndarray):
        raise ModelError(f"{_where(folder, name)}: not a single .npy array.")
    return arr
