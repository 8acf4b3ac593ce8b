"""Model folders behind the service: loading, validation, hot reload and atomic publishing.

Publishing protocol
-------------------
Point the service at a *symlink* (``models/current``) and publish a newly built folder with
:func:`publish_model` (or ``ln -s new tmp && mv -T tmp models/current``): the rename of a
symlink is atomic, so the service sees either the old or the new folder, never a half-written
one. The service polls every ``reload_interval_s`` seconds; when the resolved folder or its
``manifest.json`` changed, it loads the new folder *beside* the old one, validates it (loads,
builds every variant's fusion/index and answers a probe query with each) and only then swaps the
reference that requests read. Requests in flight finish on the object they started with. A
folder that fails validation is refused: the old model keeps serving, ``/readyz`` shows the
error and ``prodfusion_model_reloads_total{outcome="refused"}`` counts it; the same broken
publication is not retried until it changes again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from prodfusion.errors import ModelError
from prodfusion.service.experiments import ExperimentConfig, VariantConfig

__all__ = ["LoadedModel", "ModelRegistry", "publish_model", "preflight", "preflight_variants",
           "IMAGE_SUFFIXES"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif"}


def image_media_type(head: bytes) -> str | None:
    """The media type of a JPEG, PNG, GIF or WebP image by its first bytes, else None.

    >>> image_media_type(b"\\xff\\xd8\\xff\\xe0"), image_media_type(b"not an image")
    ('image/jpeg', None)
    """
    for magic, kind in ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                        (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif")):
        if head.startswith(magic):
            return kind
    return "image/webp" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else None


def looks_like_image(head: bytes) -> bool:
    """Whether the first bytes of a file are those of a JPEG, PNG, GIF or WebP image (a file
    named ``.png`` that holds text is not served as one).

    >>> looks_like_image(b"\\x89PNG\\r\\n\\x1a\\n"), looks_like_image(b"not an image")
    (True, False)
    """
    return image_media_type(head) is not None


#: Model folders in a bucket whose store did not answer the last poll (warned about once).
_UNREACHABLE: set[str] = set()


def ask_store(uri: str, fn, what: str, logger, unreachable: set):
    """``fn()``, a request to the store holding ``uri``, polled for a new publication; None
    where the store cannot be asked, said once (``"<what> <uri> cannot be checked: …"`` on
    ``logger``) until it answers again. A missing object is an answer (None, not said):
    ``fn`` may raise :class:`~prodfusion.data.photos.PhotoFetchError` ``"not found"``."""
    from prodfusion.data.photos import PhotoFetchError

    try:
        out = fn()
    except PhotoFetchError as exc:
        if str(exc) != "not found" and uri not in unreachable:
            unreachable.add(uri)
            logger.warning("%s %s cannot be checked: %s", what, uri, exc)
        return None
    unreachable.discard(uri)
    return out


def model_key(model) -> str:
    """One name per served folder: its real path, or its URI for a folder in a bucket."""
    from prodfusion.data.storage import is_object_uri

    return str(model).strip().rstrip("/") if is_object_uri(model) else os.path.realpath(model)


def _stamp(path: Path | str) -> tuple | None:
    """What identifies one publication of a model folder (None when it cannot be read): its
    real path, the manifest's inode, time and size; of a folder in a bucket, its URI and a
    hash of its ``manifest.json`` (absent while an upload is under way: the model served
    stays), None where the store cannot be asked (said once until it answers)."""
    from prodfusion.data.storage import is_object_uri

    if is_object_uri(path):
        import hashlib

        from prodfusion.data.storage import read_object

        uri = model_key(path)
        data = ask_store(uri, lambda: read_object(uri + "/manifest.json"), "model folder",
                         log, _UNREACHABLE)
        return None if data is None else (uri, hashlib.sha256(data).hexdigest())
    try:
        real = os.path.realpath(path)
        st = os.stat(os.path.join(real, "manifest.json"))
    except OSError:
        return None
    return (real, st.st_ino, st.st_mtime_ns, st.st_size)


def _image_root(paths: list[str | None], configured: Path | None,
                recorded: str | None = None) -> Path | None:
    """The folder ``/images/{id}`` may serve from (symlinks of the folder itself resolved).

    In order: the service's ``images`` setting; the image root the model was built with
    (``--image-root``, or the catalog's folder, recorded in the manifest) when every image
    path lies under it; else the deepest
    folder holding every catalog image path *as written* (``os.path.normpath``, never a
    symlink's target, so a link inside the folder cannot widen it). None when that is the
    file-system root.
    """
    if configured is not None:
        return Path(os.path.realpath(configured))
    from prodfusion.data.io import is_url

    # photos named by URL are not files here (/images/{id} redirects to http(s) ones)
    present = [os.path.normpath(os.path.abspath(p)) for p in paths if p and not is_url(p)]
    if recorded and not is_url(recorded):  # a URL root: its photos are redirected to
        rec_root = os.path.normpath(os.path.abspath(recorded))
        # absolute catalog paths elsewhere: the recorded root does not describe them
        if all(os.path.commonpath([rec_root, p]) == rec_root for p in present):
            return Path(os.path.realpath(rec_root))
    if not present:
        return None
    try:
        root = os.path.commonpath([os.path.dirname(p) for p in present])
    except ValueError:
        return None
    if root == os.path.dirname(root):  # the file-system root: too broad to expose
        log.warning("catalog images share no folder below '/'; set `images` to serve them")
        return None
    return Path(os.path.realpath(root))


def confined_image(raw: str | None, root: Path | None) -> Path | None:
    """The real path of an image to serve, or None: it must be a regular file whose resolved
    path lies inside ``root``, has an image suffix and starts as an image does
    (:func:`looks_like_image`)."""
    import stat

    if not raw or root is None:
        return None
    real = Path(os.path.realpath(raw))
    if not real.is_relative_to(root) or real.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        st = os.stat(real)
        if not stat.S_ISREG(st.st_mode):
            return None
        with open(real, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    return real if looks_like_image(head) else None


def model_id(manifest: dict, folder: Path) -> str:
    """The public name of a model: its manifest's ``model_id`` (folders written before it
    existed: a hash of the manifest file)."""
    mid = manifest.get("model_id")
    if isinstance(mid, str) and mid:
        return mid
    import hashlib

    try:
        data = (folder / "manifest.json").read_bytes()
    except OSError:
        data = repr(sorted(manifest)).encode()
    return "m-" + hashlib.sha256(data).hexdigest()[:12]


class ResultCache:
    """A thread-safe LRU of finished recommendation lists, one per loaded model.

    Recommendations of a model folder never change, so they can be kept; the cache lives and
    dies with its :class:`LoadedModel` (a hot reload starts a new, empty one). ``size`` 0
    disables it. With ``weigh`` (e.g. ``len`` of byte strings) ``size`` bounds the sum of
    the values' weights instead of their number (a value heavier than ``size`` is not kept).

    >>> c = ResultCache(2)
    >>> c.put("a", 1); c.put("b", 2); c.get("a"); c.put("c", 3)
    1
    >>> c.get("b") is None, c.get("c"), (c.hits, c.misses)
    (True, 3, (2, 1))
    >>> b = ResultCache(5, weigh=len)
    >>> b.put("x", b"abc"); b.put("y", b"de"); b.put("z", b"f"); b.get("x") is None, len(b)
    (True, 2)
    """

    def __init__(self, size: int, weigh=None) -> None:
        self.size = int(size)
        self._weigh = weigh or (lambda _: 1)
        self._weight = 0
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key):
        if self.size <= 0:
            return None
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value) -> None:
        weight = self._weigh(value)
        if self.size <= 0 or weight > self.size:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._weight -= self._weigh(old)
            self._data[key] = value
            self._weight += weight
            while self._weight > self.size:
                self._weight -= self._weigh(self._data.popitem(last=False)[1])


@dataclass
class LoadedModel:
    """One loaded, validated model folder."""

    path: Path
    stamp: tuple
    recommender: object
    loaded_at: float
    image_root: Path | None
    titles_lower: pl.Series = field(repr=False)
    results: ResultCache = field(default_factory=lambda: ResultCache(0), repr=False)

    @property
    def resolved(self) -> str:
        return self.stamp[0]

    @cached_property
    def model_id(self) -> str:
        """The public name of the model (computed once: old folders hash their manifest)."""
        return model_id(self.recommender.manifest_, Path(self.resolved))

    def describe(self) -> dict:
        """What ``/readyz`` shows: no server paths (the folder's last component at most)."""
        rec = self.recommender
        m = rec.manifest_
        return {
            "model_id": self.model_id,
            "folder": Path(self.resolved).name,
            "products": len(rec.catalog),
            "modalities": list(rec.available_modalities),
            "profiles": sorted(rec.profiles),
            "created": m.get("created"),
            "catalog_fingerprint": (m.get("fingerprints") or {}).get("catalog", "")[:16],
            "loaded_at": self.loaded_at,
        }


def preflight(experiment, page_profile: str | None = None) -> None:
    """What would stop every worker at start-up, found before the server starts (one clear
    error, not a traceback per worker): a variant's model folder without a readable
    manifest, or a weighting profile its model lacks — its own, or the web page's second row
    (``page_profile``), which every variant must serve. Reads the manifests only."""
    for v in experiment.variants:
        stamp = _stamp(v.model)
        if stamp is None:
            raise ModelError(f"variant {v.name!r}: model folder {str(v.model)!r} has no "
                             "readable manifest.json (check the path in the configuration"
                             + ("; a warning above says why the store could not be read)"
                                if model_key(v.model) in _UNREACHABLE else ")") + ".")
        if page_profile and v.paper:
            raise ModelError(
                f"variant {v.name!r} ranks by the paper's formulas, so the web page's second "
                f"row (page_profile {page_profile!r}, a weighting profile) cannot be shown to "
                "its visitors, and the arms would show different pages; leave page_profile "
                "out, or serve that arm without 'paper'.")
        for what, name in (("profile", v.profile), ("page_profile", page_profile)):
            if not name:
                continue
            settings = _manifest(stamp[0]).get("settings") or {}
            profiles = settings.get("profiles") or {}
            if name not in profiles:
                raise ModelError(
                    f"variant {v.name!r}: {what} {name!r} is not in the model "
                    f"{str(v.model)!r} (it has {sorted(profiles) or 'none'}); `prodfusion tune "
                    f"MODEL --profile {name}` tunes one.")


def _manifest(folder: str) -> dict:
    """The manifest of a model folder (its path, or its URI in a bucket)."""
    from prodfusion.data.storage import is_object_uri, read_object
    from prodfusion.model_folder import read_manifest_file

    if is_object_uri(folder):
        import json

        try:
            return json.loads(read_object(folder + "/manifest.json"))
        except Exception as exc:
            raise ModelError(f"{folder}/manifest.json cannot be read: {exc}") from None
    return read_manifest_file(Path(folder))


def _cannot_serve(folder: str, v, rec, exc: Exception) -> ModelError:
    prof = f", profile={v.profile}" if v.profile else ", paper" if v.paper else ""
    return ModelError(
        f"Model folder {folder!r} cannot serve variant {v.name!r} "
        f"(fusion={v.fusion or rec.fusion}, modalities={v.modalities or rec.modalities}"
        f"{prof}): {exc}")


def preflight_variants(experiment) -> dict:
    """After :func:`preflight`: each variant's model loaded once (memory-mapped, about 1.5 s
    at a million products) and asked for the variant's fusion and modalities as a worker
    will, so that a modality the model lacks is one clear error before the server starts.
    Returns the models by folder (for :func:`prodfusion.service.lists.preflight_lists`);
    the workers load their own."""
    from prodfusion.recommender import Recommender

    models: dict[str, object] = {}
    for v in experiment.variants:
        folder = model_key(v.model)
        if folder not in models:
            models[folder] = Recommender.load(folder)
        rec = models[folder]
        try:
            v.variant(*v.resolve(rec))
        except Exception as exc:
            raise _cannot_serve(folder, v, rec, exc) from exc
    return models


def _load(path: Path, variants: list[VariantConfig], images: Path | None,
          cache_size: int = 0) -> LoadedModel:
    from prodfusion.recommender import Recommender

    stamp = _stamp(path)
    if stamp is None:
        raise ModelError(f"Model folder {str(path)!r} has no readable manifest.json.")
    rec = Recommender.load(stamp[0])
    if len(rec.catalog) < 2:
        raise ModelError(f"Model folder {stamp[0]!r} holds {len(rec.catalog)} product(s); need >= 2.")
    probe = rec.catalog.ids[0]
    for v in variants:
        try:
            # builds (or loads) and caches what similar() searches with: fusion or index
            rec.similar(probe, 1, fusion=v.fusion, modalities=v.modalities, profile=v.profile)
            if v.paper:  # the paper's weighting searches with its own fuser or index
                v.variant(*v.resolve(rec)).recommend_scored(rec, [0], 1)
            # and a product the zero-weight fallback ranks: its index too is built before
            # the model goes live, not on the first request for a new product
            cold = rec.fallback_query(v.fusion, v.modalities, v.profile)
            if cold is not None:
                rec.similar(str(rec.catalog.ids[cold]), 1, fusion=v.fusion,
                            modalities=v.modalities, profile=v.profile)
        except Exception as exc:
            raise _cannot_serve(stamp[0], v, rec, exc) from exc
    if _stamp(path) != stamp:
        raise ModelError(f"Model folder {str(path)!r} changed while it was being loaded; retrying.")
    # searched in NFKC (full-width and ASCII letters, both katakana widths alike), as the
    # lexical modality reads them (normalize_title)
    titles = rec.catalog.frame["title"].fill_null("").str.normalize("NFKC").str.to_lowercase()
    recorded = ((rec.manifest_.get("data") or {}).get("catalog") or {}).get("image_root")
    return LoadedModel(path, stamp, rec, time.time(),
                       _image_root(rec.catalog.image_paths, images, recorded),
                       titles, ResultCache(cache_size))


class ModelRegistry:
    """The models of an experiment's variants (one load per distinct folder), hot-reloadable.

    Parameters
    ----------
    experiment : ExperimentConfig
    images : Path or None
        Image folder override (see :class:`ServiceSettings`).
    on_reload : callable, optional
        ``on_reload(outcome, path, error_or_None)`` after each reload attempt (metrics hook).
    cache_size : int
        Recommendation lists kept per loaded model (:class:`ResultCache`; 0: none).
    """

    def __init__(self, experiment: ExperimentConfig, *, images: Path | None = None,
                 on_reload=None, cache_size: int = 0) -> None:
        self.experiment = experiment
        self.images = images
        self.cache_size = int(cache_size)
        self.on_reload = on_reload
        self._by_path: dict[Path, LoadedModel] = {}
        self._failed: dict[Path, tuple] = {}
        self.errors_: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _variants_of(self, path: Path) -> list[VariantConfig]:
        return [v for v in self.experiment.variants if v.model == path]

    @property
    def paths(self) -> list[Path]:
        seen: list[Path] = []
        for v in self.experiment.variants:
            if v.model not in seen:
                seen.append(v.model)
        return seen

    def load_all(self) -> ModelRegistry:
        """Load every folder; raises :class:`ModelError` naming the first that fails."""
        for p in self.paths:
            self._by_path[p] = _load(p, self._variants_of(p), self.images, self.cache_size)
            log.info("loaded model %s (%d products)", self._by_path[p].resolved,
                     len(self._by_path[p].recommender.catalog))
        return self

    def public_errors(self) -> dict[str, str]:
        """``errors_`` for public responses: keyed by the configured folder's last component,
        absolute paths reduced to their last component (the log keeps them whole)."""
        from prodfusion.service.guards import redact_paths

        known = [str(p) for p in self.paths] + [os.path.realpath(p) for p in self.paths]
        return {Path(k).name: redact_paths(v, known) for k, v in self.errors_.items()}

    @property
    def ready(self) -> bool:
        return all(p in self._by_path for p in self.paths)

    def get(self, variant: str) -> tuple[LoadedModel, VariantConfig]:
        """The current model and configuration of ``variant`` (a consistent snapshot)."""
        v = self.experiment.variant(variant)
        return self._by_path[v.model], v

    def models(self) -> list[LoadedModel]:
        return [self._by_path[p] for p in self.paths if p in self._by_path]

    def check_reload(self) -> list[str]:
        """Reload every folder whose publication changed; returns what happened, one line each."""
        out = []
        with self._lock:
            for p in self.paths:
                current = self._by_path.get(p)
                stamp = _stamp(p)
                if current is not None and stamp == current.stamp and str(p) in self.errors_:
                    # published back to what is served: the refused folder is history
                    self._failed.pop(p, None)
                    self.errors_.pop(str(p), None)
                    log.warning("%s points at the served model again (%s)", p, current.resolved)
                if stamp is None or (current is not None and stamp == current.stamp) \
                        or self._failed.get(p) == stamp:
                    continue
                try:
                    new = _load(p, self._variants_of(p), self.images, self.cache_size)
                except Exception as exc:  # refuse anything that cannot serve; keep the old one
                    self._failed[p] = stamp
                    self.errors_[str(p)] = f"{type(exc).__name__}: {exc}"
                    log.error("refused model folder %s: %s", stamp[0], exc)
                    out.append(f"refused {stamp[0]}: {exc}")
                    if self.on_reload:
                        self.on_reload("refused", p, exc)
                    continue
                self._by_path[p] = new  # atomic reference swap
                self._failed.pop(p, None)
                self.errors_.pop(str(p), None)
                if len(new.stamp) == 2:  # a folder in a bucket: (URI, hash of its manifest)
                    log.warning("switched %s to its new upload (manifest %s…)", p,
                                new.stamp[1][:12])
                else:
                    log.warning("switched %s to %s", p, new.resolved)  # seen at default level
                out.append(f"loaded {new.resolved}")
                if self.on_reload:
                    self.on_reload("loaded", p, None)
        return out

    def start_watcher(self, interval_s: float) -> None:
        """Poll for new publications every ``interval_s`` seconds in a daemon thread."""
        if interval_s <= 0 or self._thread is not None:
            return
        start_polling(self, interval_s, "model")

    def stop_watcher(self) -> None:
        stop_polling(self)


def start_polling(registry, interval_s: float, what: str) -> None:
    """Call ``registry.check_reload()`` every ``interval_s`` seconds in a daemon thread kept
    in ``registry._thread`` (stopped by :func:`stop_polling` through ``registry._stop``); an
    error in one check is logged and never ends the thread."""
    registry._stop.clear()

    def loop() -> None:
        while not registry._stop.wait(interval_s):
            try:
                registry.check_reload()
            except Exception:  # never let the watcher die; the error is logged
                log.exception("%s reload check failed", what)

    registry._thread = threading.Thread(target=loop, name=f"prodfusion-{what}-watcher",
                                        daemon=True)
    registry._thread.start()


def stop_polling(registry) -> None:
    """Stop the thread of :func:`start_polling` (no-op when none runs)."""
    if registry._thread is not None:
        registry._stop.set()
        registry._thread.join(timeout=30)
        registry._thread = None


def publish_model(model_dir: str | os.PathLike, link: str | os.PathLike, *,
                  validate: bool = True) -> Path:
    """Atomically point the symlink ``link`` at ``model_dir`` (created if missing).

    Parameters
    ----------
    model_dir : path
        A built model folder (``Recommender.save``). Stored as an absolute path.
    link : path
        The symlink the service is configured with. Must not be a real folder.
    validate : bool
        Load the folder first and refuse to publish it when it does not load.

    Returns
    -------
    Path
        The resolved folder now published.

    Examples
    --------
    >>> publish_model("models/2024-06-02", "models/current")    # doctest: +SKIP
    """
    from prodfusion.data.storage import is_object_uri

    if is_object_uri(model_dir) or is_object_uri(link):
        raise ModelError(
            f"publish points a local symlink at a local model folder ({model_dir} → {link}). "
            "A model folder in a bucket is published by writing it there (`prodfusion build "
            "--out s3://…`, `tune` or `add` on it upload its manifest last), and `prodfusion "
            "serve s3://…` switches to each new one by itself.")
    target = Path(os.path.realpath(model_dir))
    link = Path(link)
    if validate:
        from prodfusion.recommender import Recommender

        Recommender.load(target, verify=True)  # scans every vector before it goes live
    if link.exists() and not link.is_symlink():
        raise ModelError(
            f"{link} is a real folder, not a symlink; move it aside and publish again so that "
            "the switch can be atomic."
        )
    if not link.parent.is_dir():
        raise ModelError(f"{link}: the folder {link.parent} does not exist; create it, or "
                         "name a link in an existing folder.")
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp, target_is_directory=True)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
