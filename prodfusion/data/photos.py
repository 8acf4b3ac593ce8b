"""Product photos named by URL, fetched when they are encoded.

Catalog exports (shop systems, merchant feeds) name their photos by URL far more often than
by file. The image encoders read such a photo with :class:`PhotoFetcher`: its bytes are
fetched into memory, decoded and encoded, and nothing is written to disk — a million
photos would fill a hundred gigabytes. With an embedding cache, the vector is kept under
the URL (:func:`url_key`), so a rebuild, an interrupted build run again or ``prodfusion
add`` fetches only URLs it has not encoded before; a photo replaced on the server under the
same URL keeps its old vector (shop CDNs give a new photo a new URL).

* retries after a timeout, a refused connection or HTTP 408/425/429/5xx (with a growing
  pause); HTTP 404 and the like are not retried;
* an HTML page where a photo was expected (a "soft 404") fails, named as such;
* where none of the first few URLs reach a server (no network, a wrong host), the rest are
  not tried: a million timeouts would take days.

``http://``, ``https://`` and ``file://`` URLs are fetched here; ``s3://``, ``gs://`` and
the other object stores through ``pyarrow.fs`` (:mod:`prodfusion.data.storage`); others
(``ftp://``) fail with a reason asking for a local copy.

:func:`download_file` fetches a whole file the same way (over the same kept-open connections
and retries): a catalog, a merchant feed or a click log named by its ``https://`` URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from prodfusion._checks import is_int
from prodfusion.errors import param_error

__all__ = ["PhotoFetcher", "PhotoFetchError", "fetch_photo", "is_web_url", "url_key",
           "download_file", "web_stamp", "checks_photo_urls", "CHECK_URLS_ENV"]

#: Schemes :func:`fetch_photo` fetches.
SCHEMES = ("http", "https", "file")
#: HTTP statuses worth another try (the server is busy or briefly failing).
RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)


class PhotoFetchError(Exception):
    """A photo URL that could not be fetched; ``str(err)`` says why. ``unreachable``: the
    server could not be reached at all (as opposed to a bad answer for this URL)."""

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable


def is_web_url(value: object) -> bool:
    """Whether ``value`` is an ``http://`` or ``https://`` URL (a photo a browser can load).

    >>> is_web_url(" https://cdn.example.com/1.jpg"), is_web_url("file:///tmp/1.jpg")
    (True, False)
    """
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def url_key(url: str) -> str:
    """The embedding-cache key of a photo named by URL (a photo file's key is the SHA-256 of
    its bytes; a URL's, of ``"url:" + url``, so the two never meet).

    >>> url_key(" https://cdn.example.com/1.jpg ") == url_key("https://cdn.example.com/1.jpg")
    True
    """
    return hashlib.sha256(("url:" + url.strip()).encode("utf-8")).hexdigest()


def _quoted(url: str) -> str:
    """``url`` as a request line must carry it: spaces and non-ASCII characters of the path
    and query percent-encoded (as a browser does; ``%XX`` already there kept), a non-ASCII
    host name in IDNA.

    >>> _quoted("https://cdn.example/Größe rot.jpg?v=1")
    'https://cdn.example/Gr%C3%B6%C3%9Fe%20rot.jpg?v=1'
    >>> _quoted("https://bücher.example/a%20b.jpg")
    'https://xn--bcher-kva.example/a%20b.jpg'
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():
        host, sep, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
        netloc = host.encode("idna").decode("ascii") + sep + port
    safe = "/:@!$&'()*+,;=%~-._"
    return urllib.parse.urlunsplit((parts.scheme, netloc, urllib.parse.quote(parts.path, safe),
                                    urllib.parse.quote(parts.query, safe + "?"),
                                    urllib.parse.quote(parts.fragment, safe + "?")))


def _retry_after(headers, default: float) -> float:
    """Seconds a 429/503 answer's ``Retry-After`` asks to wait (at most 30), else ``default``.

    >>> _retry_after({"Retry-After": "3"}, 0.5), _retry_after({}, 0.5)
    (3.0, 0.5)
    """
    try:
        return min(30.0, max(0.0, float((headers or {}).get("Retry-After"))))
    except (TypeError, ValueError):  # absent, or an HTTP date: the growing pause instead
        return default


class _Status(Exception):
    """An HTTP answer of status 400 or more."""

    def __init__(self, code: int, reason: str, headers) -> None:
        super().__init__(code)
        self.code, self.reason, self.headers = code, reason, headers


def _reason(exc: Exception) -> str:
    """An exception's reason in words, without the objects urllib3 names in it."""
    while getattr(exc, "reason", None) is not None and isinstance(exc.reason, Exception):
        exc = exc.reason  # MaxRetryError -> NewConnectionError, URLError -> OSError
    text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    return re.sub(r"^<[^>]*>: ", "", text)


def _check_kind(content_type: str | None) -> None:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.startswith("text/") or kind in ("application/json", "application/xml"):
        raise PhotoFetchError(f"not a photo: the server answered {kind}")


def _get_urllib(url: str, headers: dict, timeout: float, max_bytes: int) -> bytes:
    """One try through the standard library (``file://``)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=timeout) as response:
            _check_kind(response.headers.get("Content-Type"))
            return response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise _Status(exc.code, exc.reason, exc.headers) from None


_POOL = None
_POOL_LOCK = threading.Lock()


def _pool():
    """The process's urllib3 connection pools: a connection to a CDN is kept open and used
    again (no new TCP and TLS handshakes per photo)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            import urllib3

            _POOL = urllib3.PoolManager(num_pools=64, maxsize=128, block=False)
        return _POOL


@contextlib.contextmanager
def _pooled_get(url: str, headers: dict, timeout: float):
    """A GET through a kept-open connection (``http://``, ``https://``; redirects followed):
    yields ``(response, read_whole)``; call ``read_whole()`` once the body is read to its end,
    so the connection is used again (a body left unread closes it). HTTP 400 and above
    raise :class:`_Status`."""
    import urllib3

    response = _pool().request(
        "GET", url, headers=headers, preload_content=False,
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5,
                              raise_on_status=False))
    whole = []
    try:
        if response.status >= 400:
            response.drain_conn()
            whole.append(True)
            raise _Status(response.status, response.reason or "", response.headers)
        yield response, lambda: whole.append(True)
    finally:
        if not whole:  # a body left unread: the connection is not used again
            response.close()
        response.release_conn()


def _get_pooled(url: str, headers: dict, timeout: float, max_bytes: int) -> bytes:
    """One try through a kept-open connection (:func:`_pooled_get`)."""
    with _pooled_get(url, headers, timeout) as (response, read_whole):
        _check_kind(response.headers.get("Content-Type"))
        data = response.read(max_bytes + 1)
        if len(data) <= max_bytes:
            read_whole()
        return data


def _retrying(once, retries: int, local: bool = False):
    """``once()``, tried again after a timeout, a refused connection or HTTP 408/425/429/5xx
    (a growing pause; a 429/503's ``Retry-After`` honoured up to 30 s); what fails for good
    raised as :class:`PhotoFetchError` naming why. ``local``: a ``file://`` read, not
    retried."""
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            return once()
        except _Status as exc:
            if exc.code in RETRY_STATUS and not last:
                time.sleep(_retry_after(exc.headers, 0.5 * 2 ** attempt))
                continue
            raise PhotoFetchError(f"HTTP {exc.code} {exc.reason}") from None
        except PhotoFetchError:
            raise
        except Exception as exc:  # refused, timed out, reset, a body cut short
            reason = _reason(exc)
            if local:
                raise PhotoFetchError(f"cannot read: {reason}") from None
            if not last:
                time.sleep(0.5 * 2 ** attempt)
                continue
            raise PhotoFetchError(f"cannot reach the server: {reason}",
                                  unreachable=True) from None
    raise AssertionError("unreachable")  # pragma: no cover (the loop returns or raises)


#: Set (``1``) to give photos named by web URL a stamp as bucket photos have one
#: (``build`` / ``add --check-photo-urls``): see :func:`web_stamp`.
CHECK_URLS_ENV = "PRODFUSION_CHECK_PHOTO_URLS"


def checks_photo_urls() -> bool:
    """Whether ``$PRODFUSION_CHECK_PHOTO_URLS`` asks for :func:`web_stamp` s."""
    return os.environ.get(CHECK_URLS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def web_stamp(url: str, *, timeout: float = 20.0, retries: int = 2) -> tuple[int, int]:
    """What a ``HEAD`` of ``url`` says of the photo there, as ``(size, tag)``: its
    ``Content-Length`` (0 when not given) and a 63-bit hash of its ``ETag``, else of its
    ``Last-Modified`` — a photo replaced on the server under the same URL changes them.
    ``(-1, -1)`` (unknown) where the server gives neither, or for a ``file://`` URL;
    :class:`PhotoFetchError` where the URL cannot be asked.
    """
    import urllib3

    url = _quoted(url.strip())
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        return (-1, -1)

    def once():
        response = _pool().request(
            "HEAD", url, headers={"User-Agent": "prodfusion (product photo check)"},
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0,
                                  redirect=5, raise_on_status=False))
        response.release_conn()
        if response.status >= 400:
            raise _Status(response.status, response.reason or "", response.headers)
        return response.headers

    headers = _retrying(once, retries)
    tag = headers.get("ETag") or headers.get("Last-Modified")
    if not tag:
        return (-1, -1)
    size = headers.get("Content-Length", "")
    digest = hashlib.sha256(tag.strip().encode("utf-8", "replace")).digest()
    return (int(size) if size.isdigit() else 0, int.from_bytes(digest[:8], "big") >> 1)


def fetch_photo(url: str, *, timeout: float = 20.0, retries: int = 2,
                max_bytes: int = 32 * 2**20, user_agent: str | None = None) -> bytes:
    """The bytes at ``url``, or :class:`PhotoFetchError` naming why not (see the module).
    An ``s3://`` or ``gs://`` one is read through :mod:`prodfusion.data.storage` (its
    client's own timeouts and retries).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> _ = p.write_bytes(b"\\x89PNG\\r\\n\\x1a\\n...")
    >>> fetch_photo(p.as_uri())[:4]
    b'\\x89PNG'
    >>> fetch_photo("ftp://shop.example/a.jpg")
    Traceback (most recent call last):
    ...
    prodfusion.data.photos.PhotoFetchError: ftp:// URLs are not read; copy the photos to a local folder and point the image column at the files
    """
    from prodfusion.data.storage import is_object_uri, read_object

    if is_object_uri(url):
        data = read_object(url, max_bytes)
    else:
        data = _fetch_web(url.strip(), timeout, retries, max_bytes, user_agent)
    if len(data) > max_bytes:
        raise PhotoFetchError(f"larger than {max_bytes:,} bytes")
    if not data:
        raise PhotoFetchError("empty answer")
    return data


def _fetch_web(url: str, timeout: float, retries: int, max_bytes: int,
               user_agent: str | None) -> bytes:
    """:func:`fetch_photo` of an ``http(s)://`` or ``file://`` URL."""
    url = _quoted(url)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise PhotoFetchError(f"{scheme}:// URLs are not read; copy the photos to a local "
                              "folder and point the image column at the files")
    if user_agent is None:
        from prodfusion import __version__

        user_agent = f"prodfusion/{__version__} (product photo download)"
    # formats every supported Pillow decodes first (a CDN negotiates on Accept)
    headers = {"User-Agent": user_agent, "Accept": "image/webp,image/jpeg,image/png,image/*;q=0.8"}
    get = _get_urllib if scheme == "file" else _get_pooled
    return _retrying(lambda: get(url, headers, timeout, max_bytes), retries,
                     local=scheme == "file")


def download_file(url: str, to, *, timeout: float = 60.0, retries: int = 3,
                  user_agent: str | None = None, progress_from: int = 64 * 2**20) -> str | None:
    """Stream the file at the ``http(s)://`` ``url`` into the file ``to`` (an ``s3://`` or
    ``gs://`` one: :func:`prodfusion.data.storage.download_object`); returns the answer's
    ``Content-Type``. Retries as :func:`fetch_photo` does; anything else raises
    :class:`PhotoFetchError` naming why (``HTTP 404 Not Found``, ``cannot reach the
    server: …``). A file of ``progress_from`` bytes or more (by its ``Content-Length``)
    reports its progress in MiB (:mod:`prodfusion.progress`)."""
    from prodfusion.data.storage import copy_chunks, download_object, is_object_uri

    if is_object_uri(url):
        return download_object(url, to, progress_from=progress_from)
    url = _quoted(url.strip())
    if user_agent is None:
        from prodfusion import __version__

        user_agent = f"prodfusion/{__version__} (catalog download)"

    def once():
        with _pooled_get(url, {"User-Agent": user_agent}, timeout) as (response, read_whole):
            size = int(response.headers.get("Content-Length") or 0)
            name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1] or url
            with open(to, "wb") as out:
                copy_chunks(response.stream(1 << 20), out, size, f"downloading {name}",
                            size >= progress_from)
            read_whole()
            return response.headers.get("Content-Type")

    return _retrying(once, retries)


class PhotoFetcher:
    """:func:`fetch_photo` for one encoding run, shared by its threads: counts what it
    fetched, and gives up on the rest where the first ``probe`` URLs all failed to reach a
    server.

    Parameters
    ----------
    probe : int
        How many URLs must fail to reach their server, with none reached, before the rest
        are not tried (default 20).
    timeout, retries, max_bytes
        As :func:`fetch_photo`.

    Examples
    --------
    >>> f = PhotoFetcher(probe=2, retries=0, timeout=0.5)
    >>> for _ in range(3):
    ...     try:
    ...         f.fetch("http://127.0.0.1:9/a.jpg")  # the discard port: nobody answers
    ...     except PhotoFetchError as err:
    ...         last = str(err)
    >>> f.n_tried, last.startswith("not tried: none of the first 2 photo URLs")
    (2, True)
    """

    def __init__(self, *, probe: int = 20, timeout: float = 20.0, retries: int = 2,
                 max_bytes: int = 32 * 2**20) -> None:
        where = "PhotoFetcher()"
        for name, value, low in (("probe", probe, 1), ("retries", retries, 0),
                                 ("max_bytes", max_bytes, 1)):
            if not is_int(value) or value < low:
                raise param_error(name, where, f"an int >= {low}", value)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise param_error("timeout", where, "a number of seconds > 0", timeout)
        self.probe = probe
        self.options = dict(timeout=timeout, retries=retries, max_bytes=max_bytes)
        self.n_tried = self.n_fetched = self.n_unreachable = self.n_probed = 0
        self.gave_up: str | None = None  # why the rest are not tried
        self._lock = threading.Lock()

    def fetch(self, url: str) -> bytes:
        """The photo's bytes, or :class:`PhotoFetchError`."""
        if self.gave_up is not None:
            raise PhotoFetchError(f"not tried: none of the first {self.n_probed} photo URLs "
                                  f"could be reached ({self.gave_up})")
        try:
            data = fetch_photo(url, **self.options)
        except PhotoFetchError as exc:
            with self._lock:
                self.n_tried += 1
                self.n_unreachable += exc.unreachable
                if self.gave_up is None and self.n_tried >= self.probe \
                        and self.n_unreachable == self.n_tried:
                    self.gave_up, self.n_probed = str(exc), self.n_tried
            raise
        with self._lock:
            self.n_tried += 1
            self.n_fetched += 1
        return data
