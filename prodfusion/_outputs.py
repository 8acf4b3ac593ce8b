"""Where a command may write: an output never replaces what prodfusion did not write.

Model folders have :func:`prodfusion.model_folder.check_model_destination`; the other
outputs (lists and corpus files, encoder and categorizer folders, working folders) are
checked here, before any work and again where they are replaced.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from prodfusion.errors import ParameterError

__all__ = ["check_output_file", "check_replaceable_folder", "usual_permissions"]


def usual_permissions(path: str | os.PathLike) -> None:
    """Give a file or folder made by :mod:`tempfile` (``0600`` / ``0700``: its owner alone)
    the permissions a new one gets (``0666`` / ``0777`` less the umask), before it is renamed
    into place: a model folder built by one user is read by the service's.

    >>> import tempfile, stat
    >>> d = tempfile.mkdtemp(); old = os.umask(0o022); usual_permissions(d); _ = os.umask(old)
    >>> oct(stat.S_IMODE(os.stat(d).st_mode))
    '0o755'
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


def _refuse_object_uri(path, where: str) -> None:
    """An output named by an object-storage URI (``s3://…``) where a local one is written:
    refused (it would become a local folder named ``s3:``)."""
    from prodfusion._checks import OBJECT_SCHEMES, is_object_uri

    # a Path made of the URI has folded its '//': 's3:/bucket/…', first part 's3:'
    folded = isinstance(path, Path) and bool(path.parts) and \
        path.parts[0].lower() in {f"{s}:" for s in OBJECT_SCHEMES}
    if is_object_uri(path) or folded:
        shown = path.parts[0] + "//" + "/".join(path.parts[1:]) if folded else str(path)
        raise ParameterError(f"{where} {shown!r}: written locally; name a local path and copy "
                             "it to the bucket afterwards.")


def check_replaceable_folder(path: str | os.PathLike, marker: str, where: str,
                             what: str = "prodfusion") -> None:
    """Refuse to replace or empty an existing folder unless it is empty or holds ``marker``
    (a file the writer puts in every folder it writes: such a folder is its own output of an
    earlier run). A file at ``path`` is refused too.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); open(os.path.join(d, "notes.txt"), "w").close()
    >>> check_replaceable_folder(d, "labels.json", "out")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ParameterError: out ...: an existing folder that holds files prodfusion did not write ...
    """
    _refuse_object_uri(path, where)
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return
    if not p.is_dir():
        raise ParameterError(f"{where} {str(path)!r} exists and is not a folder; it is never "
                             "replaced. Name a new folder.")
    if (p / marker).exists() or not any(p.iterdir()):
        return
    raise ParameterError(
        f"{where} {str(path)!r}: an existing folder that holds files {what} did not write (no "
        f"{marker}); it is never replaced or emptied. Name a new or empty folder.")


def check_output_file(path: str | os.PathLike, where: str, *, written_by: str,
                      ours: Callable[[Path], object] | None = None,
                      inputs: Iterable[str | os.PathLike | None] = (),
                      name: str = "the file") -> None:
    """Refuse an output file that would destroy what the command did not write: a folder,
    one of the command's own ``inputs``, or an existing file for which ``ours(path)`` fails
    or is false (it is not ``written_by``: an earlier output of the same kind). ``name``:
    what to name instead of a folder, in the message."""
    _refuse_object_uri(path, where)
    p = Path(path)
    if p.is_dir():
        raise ParameterError(f"{where} {str(path)!r} is a folder; name {name} to write.")
    if not p.exists():
        return
    real = os.path.realpath(p)
    for src in inputs:
        if src is not None and os.path.exists(src) and os.path.realpath(src) == real:
            raise ParameterError(f"{where} {str(path)!r} is also an input of this command; it "
                                 "is never replaced. Name another file.")
    if ours is None:
        return
    try:
        ok = bool(ours(p))
    except Exception:  # noqa: BLE001 - whatever it is, it is not ours
        ok = False
    if not ok:
        raise ParameterError(f"{where} {str(path)!r} exists and is not {written_by}; it is "
                             "never replaced. Name another file, or remove it first.")
