"""Files and photos in object storage (``s3://``, ``gs://``, …), read through ``pyarrow.fs``.

A team whose catalog, click logs and photos live in a bucket names them as they are::

    prodfusion build --catalog s3://shop-data/feeds/products.parquet \\
        --interactions s3://shop-data/clicks/ --out runs/shop

* a table (catalog, click log, pairs) is downloaded into a temporary folder and read as the
  file (:func:`download_object`, progress in MiB from 64 MiB), as an ``https://`` one is;
* a folder (``s3://shop-data/clicks/``: a URI ending in ``/``, or a prefix holding objects)
  of interaction files stands for its files, sorted by name (:func:`list_objects`);
* ``prodfusion export --out s3://shop-data/lists/lists.parquet`` computes the lists into a
  local staging folder (an interrupted export resumes there) and uploads the file at the
  end (:func:`upload_file`; the object appears whole or not at all);
* ``prodfusion serve MODEL --lists s3://shop-data/lists/lists.parquet`` serves a local copy
  of the object (:func:`local_copy`) and polls the object's time and size to pick up a
  newer export (:func:`object_stamp`);
* a model folder in a bucket (``build --out s3://shop-data/models/shop``,
  ``Recommender.save("s3://…")``) is written locally and uploaded by
  :func:`publish_folder` (a :data:`BUSY` object first, the old ``manifest.json`` taken away,
  the files, the new manifest last), and read from a local copy of one publication
  (:func:`folder_copy`: downloaded once per machine and manifest, shared by its processes,
  removed when no process holds it), which ``prodfusion serve s3://…`` polls by its
  manifest;
* a photo named ``s3://…`` in the image column (or a relative one under an ``s3://``
  catalog or ``image_root``) is read into memory when encoded (:func:`read_object`), never
  written to disk; ``prodfusion serve`` sends its bytes at ``/images/{id}``.

The file system is ``pyarrow.fs.FileSystem.from_uri`` (pyarrow is a dependency), one per
bucket and process, so credentials, region and endpoint come from where its client looks:
for S3 the AWS environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL`` for MinIO and other S3-compatible stores), ``~/.aws``, an instance
role; the URI's own options (``s3://bucket/key?region=eu-west-1&endpoint_override=…``) too.
pyarrow retries what its client deems passing. Tested here against an S3 server (moto);
``gs://``, ``abfs://`` and ``hdfs://`` go through the same calls, untested but for
``gs://`` without credentials: Google's default credentials are looked for, and where there
are none the read fails after :data:`GCS_RETRY_S` seconds naming them (its client's own
limit is 15 minutes).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from contextlib import contextmanager

from prodfusion._checks import OBJECT_SCHEMES, is_object_uri  # noqa: F401  (their names here)

__all__ = ["OBJECT_SCHEMES", "is_object_uri", "locate", "read_object", "download_object",
           "list_objects", "upload_file", "object_head", "staging_path", "object_stamp",
           "local_copy", "path_or_uri", "copy_chunks", "FolderMirror", "folder_listing",
           "folder_state", "publish_folder", "folder_copy", "adopt_copy", "BUSY",
           "check_no_upload", "object_stamps", "stamps_of_objects_among", "CopyHold",
           "release_copies"]


#: Seconds Google Cloud Storage's client may retry a request (its own default: 15 minutes,
#: which a missing credential spends in full); a URI's ``?retry_limit_seconds=`` wins.
GCS_RETRY_S = 30

_FILESYSTEMS: dict[tuple, tuple] = {}
_LOCK = threading.Lock()


def locate(uri: str):
    """``(filesystem, path)`` of ``uri`` (a ``pyarrow.fs`` file system and the path in it, for
    pyarrow's own readers); the file system made once per scheme, bucket and options (an S3
    client resolves its bucket's region on a request of its own)."""

    uri = uri.strip()
    parts = urllib.parse.urlsplit(uri)
    key = (parts.scheme.lower(), parts.netloc, parts.query)
    inner = urllib.parse.unquote(parts.path).lstrip("/")
    with _LOCK:
        known = _FILESYSTEMS.get(key)
    if known is not None:
        fs, prefix = known
        return fs, prefix + inner
    opened = uri
    if key[0] in ("gs", "gcs") and "retry_limit_seconds" not in parts.query:
        # Google's client retries for 15 minutes by default (also without credentials)
        opened = urllib.parse.urlunsplit(parts._replace(query="&".join(
            q for q in (parts.query, f"retry_limit_seconds={GCS_RETRY_S}") if q)))
    try:  # an S3 bucket's region is asked of the store here: it may be unreachable
        fs, path = _from_uri(opened)
    except Exception as exc:  # also an unknown scheme for this pyarrow, a malformed URI
        raise _failure(exc) from None
    # what comes before the key (``bucket/``): known from a URI naming a key in the bucket
    prefix = path[: len(path) - len(inner)] if inner and path.endswith(inner) else None
    if prefix is not None:
        with _LOCK:
            _FILESYSTEMS[key] = (fs, prefix)
    return fs, path


def _from_uri(uri: str):
    """``pyarrow.fs.FileSystem.from_uri``."""
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def _forget() -> None:
    """Drop the file systems made so far (tests changing the endpoint between them)."""
    with _LOCK:
        _FILESYSTEMS.clear()


def _words(exc: Exception) -> str:
    """pyarrow's message, without its ``[Errno 2]``, ``Detail:`` and Google's ``error_info``
    parts."""
    text = re.sub(r"^\[Errno \d+\] ", "", str(exc)).split(". Detail:")[0]
    text = text.split(" error_info=")[0].strip()
    return text or type(exc).__name__


def _failure(exc: Exception):
    """``exc`` as a :class:`~prodfusion.data.photos.PhotoFetchError` naming why."""
    from prodfusion.data.photos import PhotoFetchError

    if isinstance(exc, FileNotFoundError):
        return PhotoFetchError("not found")
    text = _words(exc)
    unreachable = "NETWORK_CONNECTION" in text or "Could not resolve" in text
    if "OAuth2 access token" in text:  # Google's client: no usable credentials
        return PhotoFetchError(
            "no Google Cloud Storage credentials could be used (its client reads them from "
            "GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login` or the "
            f"machine's metadata server): {text}", unreachable=unreachable)
    if "NO_SUCH_BUCKET" in text:
        bucket = re.search(r"in bucket '([^']*)'", text)
        return PhotoFetchError(f"no such bucket{' ' + repr(bucket.group(1)) if bucket else ''}")
    if unreachable:
        return PhotoFetchError(f"cannot reach the store: {text}", unreachable=True)
    if "ACCESS_DENIED" in text or "credentials" in text.lower() or "403" in text:
        return PhotoFetchError(f"access denied ({text}); the store's client reads its "
                               "credentials from the environment (AWS_ACCESS_KEY_ID, "
                               "AWS_PROFILE, ~/.aws, an instance role)")
    return PhotoFetchError(text)


def read_object(uri: str, max_bytes: int = 32 * 2**20) -> bytes:
    """The bytes of the object at ``uri`` (at most ``max_bytes`` + 1 read), or
    :class:`~prodfusion.data.photos.PhotoFetchError` naming why not."""
    fs, path = locate(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read(max_bytes + 1)
    except Exception as exc:
        raise _failure(exc) from None


def copy_chunks(chunks, out, size: int, desc: str, report: bool) -> int:
    """Write the byte strings ``chunks`` to the file ``out``; where ``report``, progress in
    MiB of ``size`` bytes (:mod:`prodfusion.progress`). Returns the bytes written."""
    from prodfusion.progress import progress_bar

    got = 0
    with progress_bar(max(size >> 20, 1), desc, "MiB", report and size > 0) as bar:
        for chunk in chunks:
            out.write(chunk)
            bar.update(((got + len(chunk)) >> 20) - (got >> 20))
            got += len(chunk)
    return got


def download_object(uri: str, to, *, progress_from: int = 64 * 2**20) -> str | None:
    """Copy the object at ``uri`` into the file ``to``; returns its ``Content-Type`` (None
    where the store keeps none). One of ``progress_from`` bytes or more reports its progress
    in MiB (:mod:`prodfusion.progress`)."""
    fs, path = locate(uri)
    name = path.rsplit("/", 1)[-1] or uri
    try:
        size = fs.get_file_info(path).size or 0
        with fs.open_input_stream(path) as f, open(to, "wb") as out:
            copy_chunks(iter(lambda: f.read(1 << 20), b""), out, size, f"downloading {name}",
                        size >= progress_from)
            kind = (f.metadata() or {}).get("Content-Type")
    except Exception as exc:
        raise _failure(exc) from None
    return kind.decode("latin-1") if isinstance(kind, bytes) else kind


def list_objects(uri: str, suffixes: tuple[str, ...]) -> list[str] | None:
    """The URIs of the objects directly under the folder ``uri`` whose names end with one
    of ``suffixes`` (sorted by name), or None where ``uri`` names an object, not a folder
    (an S3 "folder" is a prefix: one that holds objects, or a URI ending in ``/``)."""
    import pyarrow.fs as pafs

    from prodfusion.data.photos import PhotoFetchError

    fs, path = locate(uri)
    parts = urllib.parse.urlsplit(uri.strip())
    try:
        kind = fs.get_file_info(path.rstrip("/")).type
        if kind == pafs.FileType.File and not parts.path.endswith("/"):
            return None
        if kind == pafs.FileType.NotFound:
            raise PhotoFetchError("not found")
        found = fs.get_file_info(pafs.FileSelector(path.rstrip("/"), recursive=False))
    except PhotoFetchError:
        raise
    except Exception as exc:
        raise _failure(exc) from None
    names = sorted(i.base_name for i in found
                   if i.type == pafs.FileType.File and i.base_name.lower().endswith(suffixes))
    return [urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/"
                                     + urllib.parse.quote(n), parts.query, ""))
            for n in names]


def object_head(uri: str, n: int = 8) -> bytes | None:
    """The first ``n`` bytes of the object at ``uri``, or None where there is none."""
    fs, path = locate(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read(n)
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise _failure(exc) from None


def upload_file(path, uri: str, *, progress_from: int = 64 * 2**20) -> None:
    """Copy the local file ``path`` to ``uri`` (an object store writes the object whole at
    the end: a reader never sees half of it); progress in MiB from ``progress_from`` bytes.
    :class:`~prodfusion.data.photos.PhotoFetchError` naming why it failed."""
    import os

    fs, key = locate(uri)
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as src, fs.open_output_stream(key) as out:
            copy_chunks(iter(lambda: src.read(1 << 20), b""), out, size,
                        f"uploading {key.rsplit('/', 1)[-1]}", size >= progress_from)
    except Exception as exc:
        raise _failure(exc) from None


def folder_listing(uri: str) -> dict[str, int]:
    """The objects under the folder ``uri`` (its sub-folders too): name relative to it →
    size in bytes; empty where there are none."""
    import pyarrow.fs as pafs

    fs, root = locate(uri.strip().rstrip("/") + "/")
    root = root.rstrip("/")
    try:
        found = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except Exception as exc:
        raise _failure(exc) from None
    return {i.path[len(root) + 1:]: int(i.size or 0) for i in found
            if i.type == pafs.FileType.File}


def _local_home(kind: str, tag: str):
    """``<system temporary folder>/prodfusion-<kind>/<hash of tag>``: the same folder for the
    same ``tag`` in every process (not made here)."""
    import hashlib
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir()) / f"prodfusion-{kind}" / hashlib.sha256(
        tag.encode("utf-8")).hexdigest()[:16]


def _name(uri: str, default: str) -> str:
    """The last part of the object's key (``lists.parquet``), else ``default``."""
    return urllib.parse.unquote(urllib.parse.urlsplit(uri.strip()).path).rsplit("/", 1)[-1] \
        or default


def staging_path(uri: str, model=None):
    """A local path to write what goes to ``uri`` before its upload: the same for the same
    ``uri`` (and model folder), so an interrupted export run again resumes there; in the
    system's temporary folder (not made here). Its folder is removed after the upload."""
    import os

    tag = uri.strip() + "\0" + (os.path.abspath(model) if isinstance(model, (str, os.PathLike))
                                else "")
    return _local_home("staging", tag) / _name(uri, "upload")


def path_or_uri(value):
    """``value`` as a place to read: an object URI kept as text (a ``Path`` would fold its
    ``//``), anything else a ``Path``.

    >>> path_or_uri("s3://shop/lists.parquet"), path_or_uri("lists.parquet")
    ('s3://shop/lists.parquet', PosixPath('lists.parquet'))
    """
    from pathlib import Path

    return value.strip() if is_object_uri(value) else Path(value)


def object_stamp(uri: str) -> tuple | None:
    """``(uri, modification time in ns, size)`` of the object at ``uri`` (what tells a
    republished object from the one before), None where there is none;
    :class:`~prodfusion.data.photos.PhotoFetchError` where the store cannot be asked."""
    import pyarrow.fs as pafs

    fs, path = locate(uri)
    try:
        info = fs.get_file_info(path)
    except Exception as exc:
        raise _failure(exc) from None
    if info.type != pafs.FileType.File:
        return None
    return (uri.strip(), int(info.mtime_ns or 0), int(info.size or 0))


#: From this many objects of one folder, :func:`object_stamps` lists the folder rather than
#: asking for each object (a listing page holds 1,000).
LIST_FROM = 50


def object_stamps(uris) -> dict[str, tuple[int, int]]:
    """``{uri: (size, modification time in ns)}`` of the objects ``uris`` (``(-1, -1)`` for
    one that is not there), asked cheaply: the objects of one folder listed together where
    there are :data:`LIST_FROM` or more of them (a catalog's photos: one listing page per
    1,000), else one request each. What tells a photo replaced in place under the same key;
    :class:`PhotoFetchError` where the store cannot be asked."""
    import pyarrow.fs as pafs

    groups: dict[str, list[str]] = {}
    for u in dict.fromkeys(str(u).strip() for u in uris):
        groups.setdefault(u.rsplit("/", 1)[0], []).append(u)
    out: dict[str, tuple[int, int]] = {}
    for folder, members in groups.items():
        fs, _ = locate(members[0])
        keys = {u: locate(u)[1] for u in members}
        try:
            if len(members) >= LIST_FROM:
                base = locate(folder + "/")[1].rstrip("/")
                found = fs.get_file_info(pafs.FileSelector(base, recursive=False,
                                                           allow_not_found=True))
            else:
                found = fs.get_file_info(list(keys.values()))
        except Exception as exc:
            raise _failure(exc) from None
        info = {i.path: (int(i.size or 0), int(i.mtime_ns or 0)) for i in found
                if i.type == pafs.FileType.File}
        for u, k in keys.items():
            out[u] = info.get(k, (-1, -1))
    return out


def stamps_of_objects_among(paths) -> dict[str, tuple[int, int]]:
    """:func:`object_stamps` of the objects in a bucket among ``paths`` (local files and web
    URLs left out), by URI; empty where there are none or the store cannot be asked (a
    photo's change then goes by its URI alone)."""
    from prodfusion.data.photos import PhotoFetchError

    uris = [str(p).strip() for p in paths if p and is_object_uri(p)]
    try:
        return object_stamps(uris) if uris else {}
    except PhotoFetchError:
        return {}


def local_copy(stamp: tuple):
    """A local copy of the object of ``stamp`` (:func:`object_stamp`), downloaded once per
    publication into the system's temporary folder (processes asking for the same one share
    it: each downloads beside it and renames it into place); copies of the object's earlier
    publications are removed. Returns its path."""
    import os
    import shutil

    uri, mtime_ns, size = stamp
    home = _local_home("copies", uri)
    name = _name(uri, "object")
    target = home / f"{mtime_ns}-{size}" / name
    if not target.is_file() or target.stat().st_size != size:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f".{name}.{os.getpid()}.part")
        try:
            download_object(uri, part)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
    for old in home.iterdir():  # earlier publications (a process serving one keeps its map)
        if old != target.parent and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return target


class FolderMirror:
    """A local folder kept as a copy of a folder in a bucket, for a cache that must outlive
    the machine (``--cache-dir s3://shop-data/prodfusion-cache``: a build on a fresh server
    does not encode every photo again).

    :meth:`download` copies the objects under ``uri`` that the local folder lacks (or holds
    with another size) into :attr:`local` (``<system temporary folder>/prodfusion-mirror/…``,
    the same for the same URI, so a second run on one machine downloads only what is new);
    :meth:`upload` copies back what the folder lacks or holds with another size and removes
    the objects that were downloaded but are gone locally (a cache compacting its shards).
    Names beginning with ``.`` (files being written) are left out. Two machines saving in
    turn lose nothing: what one removed (compacted) and the other still has is uploaded again
    by the other (the cache reads a vector from any shard holding it).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri.strip().rstrip("/")
        self.local = _local_home("mirror", self.uri)
        self.remote: dict[str, int] = {}  # what the folder held at download: name -> size

    def _object(self, name: str) -> str:
        return self.uri + "/" + urllib.parse.quote(name)

    def download(self) -> int:
        """Copy what the local folder lacks; returns how many files were downloaded."""
        self.local.mkdir(parents=True, exist_ok=True)
        self.remote = folder_listing(self.uri)
        todo = [n for n, size in sorted(self.remote.items()) if not _hidden(n) and not (
            (self.local / n).is_file() and (self.local / n).stat().st_size == size)]
        fs, _ = locate(self.uri + "/")
        with _folder_bar(sum(self.remote[n] for n in todo), f"downloading {self.uri}",
                         True) as bar:
            meter = _Meter(bar)
            _each(_get_whole, [(fs, locate(self._object(n))[1], self.local / n, meter)
                               for n in todo])
        return len(todo)

    def upload(self) -> tuple[int, int]:
        """Copy back what is new or changed since the download, and what another machine
        removed since then that this one still has; remove what this one downloaded and
        compacted away; returns ``(uploaded, removed)``."""
        here = {n: p.stat().st_size for n, p in _local_files(self.local).items()}
        now = folder_listing(self.uri)
        up = [n for n, size in sorted(here.items()) if self.remote.get(n) != size
              or n not in now]
        fs, _ = locate(self.uri + "/")
        with _folder_bar(sum(here[n] for n in up), f"uploading {self.uri}", True) as bar:
            meter = _Meter(bar)
            _each(_put, [(fs, locate(self._object(n))[1], self.local / n, meter) for n in up])
        gone = [n for n in sorted(self.remote) if n not in here and n in now and not _hidden(n)]
        if gone:
            for name in gone:
                try:
                    fs.delete_file(locate(self._object(name))[1])
                except Exception as exc:
                    raise _failure(exc) from None
        self.remote = {**{n: s for n, s in self.remote.items() if n not in gone}, **here}
        return len(up), len(gone)


#: An object a folder's upload writes first and removes last (:func:`publish_folder`): a
#: folder holding it without its marker file is being written, or its upload stopped.
BUSY = ".prodfusion-writing"

#: This process's hold on the local copy it last used of each folder URI (a shared lock on
#: the copy's ``.in-use`` file: another process does not remove a copy in use).
_HOLDS: dict[str, tuple] = {}


def _hidden(name: str) -> bool:
    """Whether a folder's file ``name`` (``a/b.npy``) is one being written (a part
    beginning with ``.``): never copied either way."""
    return any(part.startswith(".") for part in name.split("/"))


def _local_files(folder) -> dict:
    """The files under the local ``folder`` but hidden ones (:func:`_hidden`): name relative
    to it (``/``-separated) → path."""
    out = {}
    for p in sorted(folder.rglob("*")):
        name = p.relative_to(folder).as_posix()
        if p.is_file() and not _hidden(name):
            out[name] = p
    return out


def folder_state(uri: str, marker: str) -> str:
    """What the folder ``uri`` holds: ``"empty"`` (nothing), ``"ours"`` (its ``marker`` file,
    or the :data:`BUSY` object of an upload that stopped), ``"other"`` (other objects) or
    ``"object"`` (``uri`` names an object, not a folder); :class:`PhotoFetchError` where its
    bucket does not exist or the store cannot be asked."""
    import pyarrow.fs as pafs

    from prodfusion.data.photos import PhotoFetchError

    fs, path = locate(uri.strip().rstrip("/"))
    bucket = path.strip("/").split("/", 1)[0]
    try:
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise PhotoFetchError(f"no such bucket {bucket!r}")
        if fs.get_file_info(path.rstrip("/")).type == pafs.FileType.File:
            return "object"
    except PhotoFetchError:
        raise
    except Exception as exc:
        raise _failure(exc) from None
    names = folder_listing(uri)
    if not names:
        return "empty"
    return "ours" if marker in names or BUSY in names else "other"


def _folder_bar(total: int, desc: str, progress: bool):
    from prodfusion.progress import progress_bar

    return progress_bar(max(total >> 20, 1), desc, "MiB", progress and total >= 64 * 2**20)


#: Files a folder's upload or download moves at once (a model folder's few large arrays
#: each over a connection of its own).
TRANSFER_THREADS = 8


class _Meter:
    """A MiB progress bar advanced by several threads."""

    def __init__(self, bar) -> None:
        self.bar, self.done, self.lock = bar, 0, threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.bar.update(((self.done + n) >> 20) - (self.done >> 20))
            self.done += n


def _put(fs, key: str, path, meter: _Meter) -> None:
    """Copy the local file ``path`` to the object ``key``."""
    with open(path, "rb") as src, fs.open_output_stream(key) as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            out.write(chunk)
            meter.add(len(chunk))


def _get(fs, key: str, path, meter: _Meter) -> None:
    """Copy the object ``key`` to the local file ``path`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(key) as src, open(path, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            out.write(chunk)
            meter.add(len(chunk))


def _get_whole(fs, key: str, path, meter: _Meter) -> None:
    """:func:`_get` through a ``.part`` file beside ``path``, renamed into place: a reader
    never finds half of it."""
    part = path.with_name(f".{path.name}.part")
    try:
        _get(fs, key, part, meter)
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)


def _each(fn, jobs: list) -> None:
    """``fn(*job)`` for every job, :data:`TRANSFER_THREADS` at a time; the first failure
    raised (as :class:`PhotoFetchError`, naming why) once the others have stopped."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(TRANSFER_THREADS, max(1, len(jobs)))) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
    for f in futures:
        exc = f.exception()
        if exc is not None:
            raise _failure(exc) from None


#: Seconds after which a :data:`BUSY` object whose writer cannot be asked is taken for an
#: upload that stopped (a model folder of a few GiB uploads in minutes).
BUSY_STALE_S = 3600


def _writer() -> str:
    """Who writes a :data:`BUSY` object: ``host pid``."""
    import os
    import socket

    return f"{socket.gethostname()} {os.getpid()}"


def check_no_upload(uri: str) -> None:
    """:class:`PhotoFetchError` where another upload to the folder ``uri`` is under way: its
    :data:`BUSY` object younger than :data:`BUSY_STALE_S`, unless it names a process of this
    machine that has ended (an upload that stopped here is resumed at once)."""
    import os
    import socket
    import time

    from prodfusion.data.photos import PhotoFetchError

    base = uri.strip().rstrip("/")
    stamp = object_stamp(base + "/" + BUSY)
    if stamp is None:
        return
    age = time.time() - stamp[1] / 1e9
    try:
        host, pid = read_object(base + "/" + BUSY, 200).decode().split()
        pid = int(pid)
    except (PhotoFetchError, ValueError, UnicodeDecodeError):
        host, pid = "", 0
    if host == socket.gethostname() and pid:
        if pid == os.getpid():  # this process's own upload, which failed: written again
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:  # that upload's process has ended
            return
        except OSError:
            pass
    if age >= BUSY_STALE_S:
        return
    by = f" by process {pid} on {host}" if host else ""
    raise PhotoFetchError(
        f"another upload to it is under way{by}, started {age / 60:.0f} min ago (its "
        f"{BUSY} object); wait for it to end, or remove {base}/{BUSY} if it stopped")


def publish_folder(local, uri: str, marker: str, *, progress: bool = True) -> int:
    """Upload the local folder ``local`` as the folder ``uri``, replacing what it held, so that
    a reader (:func:`folder_copy`) never takes part of one publication for another: the
    :data:`BUSY` object first, the old ``marker`` removed, every other file, the new
    ``marker`` last, then the objects the new folder lacks and :data:`BUSY` removed. Progress
    in MiB from 64 MiB. Returns the bytes uploaded; :class:`PhotoFetchError` naming why not."""
    from pathlib import Path

    local = Path(local)
    base = uri.strip().rstrip("/")
    fs, _ = locate(base + "/" + BUSY)
    key = lambda name: locate(base + "/" + urllib.parse.quote(name))[1]  # noqa: E731
    files = _local_files(local)
    if marker not in files:
        raise ValueError(f"{local} has no {marker}")
    check_no_upload(base)
    old = folder_listing(base)
    total = sum(p.stat().st_size for p in files.values())
    try:
        with fs.open_output_stream(key(BUSY)) as out:
            out.write(_writer().encode())
        if marker in old:
            fs.delete_file(key(marker))
    except Exception as exc:
        raise _failure(exc) from None
    with _folder_bar(total, f"uploading {base}", progress) as bar:
        meter = _Meter(bar)
        _each(_put, [(fs, key(n), files[n], meter) for n in files if n != marker])
        _each(_put, [(fs, key(marker), files[marker], meter)])  # last: the folder is whole
    try:
        for name in sorted(set(old) - set(files)):
            if not _hidden(name):
                fs.delete_file(key(name))
        fs.delete_file(key(BUSY))
    except Exception as exc:
        raise _failure(exc) from None
    return meter.done


def _lock(folder, exclusive: bool):
    """An open descriptor of ``folder/.in-use`` holding a shared (or, without waiting, an
    exclusive) lock; None where it cannot be had (no ``fcntl`` here, the folder gone, an
    exclusive lock held elsewhere)."""
    import os

    try:
        import fcntl
    except ImportError:  # no advisory locks: copies are kept, never removed
        return None
    try:
        fd = os.open(folder / ".in-use", os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


def _hold(uri: str, folder) -> None:
    """Keep ``folder`` (a copy of ``uri``) from removal while this process runs, and let go
    of the copy of ``uri`` it held before."""
    import os

    fd = _lock(folder, exclusive=False)
    with _LOCK:
        old = _HOLDS.pop(uri, None)
        if fd is not None:
            _HOLDS[uri] = (folder, fd)
    if old is not None:
        os.close(old[1])


def _sweep(home, keep) -> None:
    """Remove the copies in ``home`` other than ``keep`` that no process holds, and partial
    downloads a day old."""
    import os
    import shutil
    import time

    try:
        found = list(home.iterdir())
    except OSError:
        return
    for d in found:
        if d == keep or not d.is_dir():
            continue
        if d.name.startswith("."):  # being downloaded, or left by a process that died
            try:
                if time.time() - d.stat().st_mtime > 86400:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass
            continue
        fd = _lock(d, exclusive=True)
        if fd is None:  # in use
            continue
        try:
            (d / ".complete").unlink(missing_ok=True)  # first: no one adopts it from now on
            shutil.rmtree(d, ignore_errors=True)
        finally:
            os.close(fd)


def _copy_name(marker_bytes: bytes) -> str:
    import hashlib

    return hashlib.sha256(marker_bytes).hexdigest()[:16]


def _ready(uri: str, target) -> bool:
    """Whether ``target`` is a complete copy; held for this process when it is."""
    if not (target / ".complete").is_file():
        return False
    _hold(uri, target)
    if (target / ".complete").is_file():  # not removed while the hold was taken
        return True
    _release(uri)
    return False


class CopyHold:
    """A shared lock on a copy made by :func:`folder_copy`, kept while this object lives
    (a model read from the copy holds one: the copy is not removed under it, even after
    this process took a newer copy of the same folder)."""

    def __init__(self, folder) -> None:
        import os
        import weakref

        self.fd = _lock(folder, exclusive=False)
        if self.fd is not None:
            weakref.finalize(self, os.close, self.fd)


def _release(uri: str) -> None:
    """Let go of this process's hold on its copy of ``uri``."""
    import os

    with _LOCK:
        old = _HOLDS.pop(uri, None)
    if old is not None:
        os.close(old[1])


def release_copies() -> None:
    """Let go of the copies this process took last (:func:`folder_copy`; a model read from
    one keeps its own hold): ``serve``'s parent after checking the models its workers load,
    so that it does not keep the first publication's copy for as long as it runs."""
    for uri in list(_HOLDS):
        _release(uri)


def folder_copy(uri: str, marker: str, *, progress: bool = True, tries: int = 3,
                wait_s: float = 2.0):
    """A local copy of the folder ``uri`` as published now (the one whose ``marker`` file,
    e.g. ``manifest.json``, holds what it holds now): made once per publication in the
    system's temporary folder and shared by the processes of this machine (a second
    ``prodfusion similar s3://…`` reads the marker and nothing else); a copy no process uses
    any more is removed when a newer one is made. A folder replaced while it is copied (its
    marker changed, or :func:`publish_folder` under way) is copied again, up to ``tries``
    times ``wait_s`` apart. Returns its path; :class:`PhotoFetchError` naming why not
    (``"not found"``: no marker)."""
    import time

    from prodfusion.data.photos import PhotoFetchError

    base = uri.strip().rstrip("/")
    home = _local_home("copies", base)
    why = "it was being replaced"
    for attempt in range(max(1, tries)):
        if attempt:
            time.sleep(wait_s)
        try:
            first = read_object(base + "/" + urllib.parse.quote(marker))
        except PhotoFetchError as exc:
            if str(exc) == "not found" and BUSY in folder_listing(base):
                why = "it is being written (or its upload stopped)"
                continue
            raise
        target = home / _copy_name(first)
        if _ready(base, target):
            _sweep(home, target)
            return target
        home.mkdir(parents=True, exist_ok=True)
        with _downloading(home / f".{target.name}.lock"):  # one download per machine
            if _ready(base, target):  # made by another process meanwhile
                _sweep(home, target)
                return target
            made = _download_copy(base, marker, first, target, progress)
        if made and _ready(base, target):
            _sweep(home, target)
            return target
    raise PhotoFetchError(f"{why}; tried {max(1, tries)} times (run again when it is done)")


@contextmanager
def _downloading(lock_file):
    """Hold an exclusive lock on ``lock_file`` (waiting for it): the processes of a machine
    copying one publication at once (``serve --workers 4``) download it once, the others
    waiting for that copy. Without ``fcntl`` (Windows) each downloads its own."""
    import os

    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # removed before it is let go: whoever comes later finds the copy made (or makes
        # it, under a lock file of its own); whoever waits on this one checks again
        try:
            os.unlink(lock_file)
        except OSError:
            pass
        os.close(fd)


def _download_copy(base: str, marker: str, first: bytes, target, progress: bool) -> bool:
    """Download the folder ``base`` into ``target`` (through a part folder renamed into
    place), its ``marker`` as ``first``; False where the marker changed meanwhile (the folder
    republished: copy again)."""
    import os
    import shutil

    from prodfusion.data.photos import PhotoFetchError

    home = target.parent
    # an upload starting from now takes the marker away first: seen at the end
    names = folder_listing(base)
    part = home / f".{target.name}.{os.getpid()}.part"
    shutil.rmtree(part, ignore_errors=True)
    try:
        todo = {n: s for n, s in names.items() if n != marker and not _hidden(n)}
        fs, _ = locate(base + "/" + urllib.parse.quote(marker))
        with _folder_bar(sum(todo.values()), f"downloading {base}", progress) as bar:
            meter = _Meter(bar)
            _each(_get, [(fs, locate(base + "/" + urllib.parse.quote(n))[1], part / n,
                          meter) for n in sorted(todo)])
        (part / marker).write_bytes(first)
        try:
            again = read_object(base + "/" + urllib.parse.quote(marker))
        except PhotoFetchError as exc:
            if str(exc) != "not found":
                raise
            again = None
        if again != first:  # republished while it was copied
            return False
        (part / ".complete").write_bytes(b"")
        try:
            os.rename(part, target)
        except OSError:  # another process made the same copy first: use theirs
            pass
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return True


def adopt_copy(uri: str, folder, marker: str):
    """Move the local folder ``folder``, just published as ``uri`` (:func:`publish_folder`),
    to where :func:`folder_copy` keeps its copy, so this machine does not download what it
    uploaded. Returns the copy's path."""
    import os
    import shutil

    base = uri.strip().rstrip("/")
    home = _local_home("copies", base)
    home.mkdir(parents=True, exist_ok=True)
    target = home / _copy_name((folder / marker).read_bytes())
    (folder / ".complete").write_bytes(b"")
    try:
        os.rename(folder, target)
    except OSError:  # a copy of it is there already (or another file system): keep that
        shutil.rmtree(folder, ignore_errors=True)
    if _ready(base, target):
        _sweep(home, target)
    return target
