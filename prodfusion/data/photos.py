"""Product photos named by URL, downloaded once into a local folder.

Catalog exports (shop systems, merchant feeds) name their photos by URL far more often than
by file. :func:`download_photos` fetches them with a pool of threads into a folder, one file
per distinct URL, named by the SHA-256 of the URL (``<folder>/ab/ab12….jpg``), so that:

* a second run (an interrupted build, ``prodfusion add``, a rebuild) reads what the first
  one fetched and downloads only the new URLs;
* a file is written under a temporary name and renamed when complete, so an interrupted
  download never leaves half a photo behind;
* a URL that fails (HTTP 404, a timeout, an HTML page where a photo was expected) costs
  that product its image vector, never the run: failures are counted and named;
* where none of the first few URLs can be reached (no network, a wrong host), the rest are
  not tried: a million timeouts would take days.

Only ``http://``, ``https://`` and ``file://`` URLs are fetched; others (``s3://``,
``gs://``) are reported as failures asking for a local copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from prodfusion._checks import is_int
from prodfusion.errors import param_error
from prodfusion.progress import progress_bar

__all__ = ["PhotoDownloads", "download_photos", "photo_file", "is_web_url"]

logger = logging.getLogger(__name__)

#: Schemes :func:`download_photos` fetches.
SCHEMES = ("http", "https", "file")
#: File suffixes kept from a URL's path (anything else is stored without one).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")
#: HTTP statuses worth another try (the server is busy or briefly failing).
RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)


@dataclass
class PhotoDownloads:
    """What :func:`download_photos` did.

    Attributes
    ----------
    paths : list of str or None
        One entry per URL given: the local file, or None (no URL, or it failed).
    failures : dict of int to str
        Position of each URL that failed → why, in words.
    n_fetched, n_reused : int
        Distinct URLs downloaded now / found in the folder from an earlier run.
    seconds : float
    """

    paths: list[str | None]
    failures: dict[int, str] = field(default_factory=dict)
    n_fetched: int = 0
    n_reused: int = 0
    seconds: float = 0.0


def photo_file(url: str, folder: str | os.PathLike) -> Path:
    """The local file a photo URL is stored in under ``folder``.

    >>> photo_file("https://cdn.example.com/p/1.JPG?w=800", "/tmp/photos").name[-4:]
    '.jpg'
    """
    key = hashlib.sha256(url.strip().encode("utf-8")).hexdigest()
    suffix = Path(urllib.parse.urlsplit(url.strip()).path).suffix.lower()
    return Path(folder) / key[:2] / (key + (suffix if suffix in PHOTO_SUFFIXES else ""))


def is_web_url(value: object) -> bool:
    """Whether ``value`` is an ``http://`` or ``https://`` URL (a photo a browser can load).

    >>> is_web_url(" https://cdn.example.com/1.jpg"), is_web_url("file:///tmp/1.jpg")
    (True, False)
    """
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


class _Unreachable(Exception):
    """The host could not be reached at all (as opposed to a bad answer for one URL)."""


def _fetch(url: str, target: Path, timeout: float, retries: int, max_bytes: int,
           user_agent: str) -> None:
    """Download ``url`` into ``target`` (atomically); raise with a reason on failure."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{scheme}:// URLs are not downloaded; copy the photos to a local "
                         "folder and point the image column at the files")
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if kind.startswith("text/") or kind in ("application/json", "application/xml"):
                    raise ValueError(f"not a photo: the server answered {kind}")
                data = response.read(max_bytes + 1)
            break
        except urllib.error.HTTPError as exc:
            if exc.code in RETRY_STATUS and not last:
                time.sleep(0.5 * 2 ** attempt)
                continue
            raise ValueError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if scheme == "file":
                raise ValueError(f"cannot read: {reason}") from None
            if not last:
                time.sleep(0.5 * 2 ** attempt)
                continue
            raise _Unreachable(f"cannot reach the server: {reason}") from None
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    if not data:
        raise ValueError("empty answer")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.{os.getpid()}.{id(data)}.part")
    part.write_bytes(data)
    os.replace(part, target)


def download_photos(
    urls: Sequence[str | None],
    folder: str | os.PathLike,
    *,
    workers: int = 16,
    timeout: float = 20.0,
    retries: int = 2,
    max_bytes: int = 32 * 2**20,
    probe: int = 20,
    progress: bool | None = None,
) -> PhotoDownloads:
    """Download photos named by URL into ``folder``; those fetched before are reused.

    Parameters
    ----------
    urls : sequence of str or None
        One per product (None: no photo). A URL given twice is fetched once.
    folder : str or Path
        Where the files go (created as needed), one per distinct URL (:func:`photo_file`).
    workers : int
        Downloads at once (threads; the work waits on the network, not the CPU).
    timeout : float
        Seconds to wait for a server, per try.
    retries : int
        Further tries after a timeout, a refused connection or HTTP 408/425/429/5xx (with
        a growing pause); HTTP 404 and the like are not retried.
    max_bytes : int
        A photo larger than this is refused (default 32 MiB).
    probe : int
        When the first ``probe`` downloads all fail to reach their server, the rest are
        not tried (each fails with that reason).
    progress : bool, optional
        A progress bar on a terminal, plain lines in a log (:mod:`prodfusion.progress`).

    Returns
    -------
    PhotoDownloads

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n...")
    >>> got = download_photos([(d / "a.png").as_uri(), None, "s3://bucket/b.jpg"], d / "photos",
    ...                       progress=False)
    >>> got.paths[0] is not None, got.paths[1:], got.n_fetched, sorted(got.failures)
    (True, [None, None], 1, [2])
    """
    where = "download_photos()"
    for name, value in (("workers", workers), ("retries", retries), ("max_bytes", max_bytes),
                        ("probe", probe)):
        if not is_int(value) or value < (0 if name == "retries" else 1):
            raise param_error(name, where, "an int >= " + ("0" if name == "retries" else "1"),
                              value)
    if not isinstance(timeout, (int, float)) or not timeout > 0:
        raise param_error("timeout", where, "a number of seconds > 0", timeout)
    from prodfusion import __version__

    t0 = time.perf_counter()
    agent = f"prodfusion/{__version__} (product photo download)"
    out = PhotoDownloads(paths=[None] * len(urls))
    rows: dict[str, list[int]] = {}
    for i, url in enumerate(urls):
        if url is not None and str(url).strip():
            rows.setdefault(str(url).strip(), []).append(i)
    todo = []
    for url, where_rows in rows.items():
        target = photo_file(url, folder)
        if target.is_file():
            out.n_reused += 1
            for i in where_rows:
                out.paths[i] = str(target)
        else:
            todo.append((url, target))
    if not todo:
        out.seconds = round(time.perf_counter() - t0, 3)
        return out
    logger.info("downloading %s photos into %s (%s found there from earlier runs)",
                f"{len(todo):,}", folder, f"{out.n_reused:,}")

    def fail(url: str, reason: str) -> None:
        for i in rows[url]:
            out.failures[i] = reason

    tried, unreachable, gave_up = 0, 0, None
    with (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pf-photo") as pool,
          progress_bar(len(todo), "downloading photos", "photo", progress) as bar):
        pending: dict = {}
        queue = iter(todo)
        while True:
            while gave_up is None and len(pending) < 4 * workers:
                item = next(queue, None)
                if item is None:
                    break
                pending[pool.submit(_fetch, *item, timeout, retries, max_bytes, agent)] = item
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                url, target = pending.pop(fut)
                tried += 1
                bar.update(1)
                exc = fut.exception()
                if exc is None:
                    out.n_fetched += 1
                    for i in rows[url]:
                        out.paths[i] = str(target)
                    continue
                fail(url, str(exc) if isinstance(exc, (ValueError, _Unreachable))
                     else f"{type(exc).__name__}: {exc}")
                unreachable += isinstance(exc, _Unreachable)
                if gave_up is None and probe <= tried < len(todo) and unreachable == tried:
                    gave_up = str(exc)
        if gave_up is not None:
            rest = [url for url, _ in queue]
            for url in rest:
                fail(url, f"not tried: none of the first {tried} photo URLs could be reached "
                          f"({gave_up})")
            bar.update(len(rest))
    out.seconds = round(time.perf_counter() - t0, 3)
    if gave_up is not None:
        logger.warning("none of the first %d photo URLs could be reached (%s); the other %s "
                       "were not tried: those products get no image vector.", tried, gave_up,
                       f"{len(todo) - tried:,}")
    elif out.failures:
        first = min(out.failures)
        logger.warning("%s of %s photo URLs could not be downloaded; first: %r (%s).",
                       f"{len(todo) - out.n_fetched:,}", f"{len(todo):,}",
                       str(urls[first]).strip(), out.failures[first])
    return out
