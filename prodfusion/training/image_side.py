"""ConVIRT's image side: frozen features through the encoders and cache, or a trainable tower."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from prodfusion.errors import ParameterError
from prodfusion.training._st import logger

__all__ = ["ImageTower", "KeptPhotos", "image_tower", "frozen_features", "prepare_batch"]

#: Bytes of photos named by URL that a trainable tower keeps in memory between epochs
#: (:class:`KeptPhotos`); those beyond it are fetched again each epoch.
KEEP_PHOTO_BYTES = 2 * 2**30


class KeptPhotos:
    """Photos' bytes for a training run that reads every photo once an epoch: those named
    by URL (a web server's, a bucket's) are fetched once and kept, up to ``budget`` bytes
    (a JPEG of a product is some 50 KB: 2 GiB hold ~40,000), and a batch's are fetched
    together (``$PRODFUSION_PHOTO_WORKERS`` at a time, as a build fetches them); a local
    file is read each time (the system's file cache keeps it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.jpg"
    >>> _ = p.write_bytes(b"photo")
    >>> KeptPhotos().read(str(p))
    b'photo'
    """

    def __init__(self, budget: int = KEEP_PHOTO_BYTES, reader: Callable[[str], bytes] | None = None
                 ) -> None:
        from prodfusion.encoders.image import _read

        self.budget = int(budget)
        self._read = reader or _read
        self._kept: dict[str, bytes] = {}
        self._batch: dict[str, bytes] = {}  # the last prefetch's beyond the budget
        self.n_kept_bytes = self.n_fetches = 0
        self._lock = threading.Lock()

    def _fetch(self, path: str) -> bytes:
        data = self._read(path)
        with self._lock:
            self.n_fetches += 1
            if path not in self._kept and self.n_kept_bytes + len(data) <= self.budget:
                self._kept[path] = data
                self.n_kept_bytes += len(data)
        return data

    def read(self, path: str) -> bytes:
        """The photo's bytes (kept ones from memory); raises as the reader does."""
        from prodfusion.data.io import is_url

        kept = self._kept.get(path, self._batch.get(path))
        if kept is not None:
            return kept
        return self._fetch(path) if is_url(path) else self._read(path)

    def prefetch(self, paths: Sequence[str]) -> None:
        """Fetch the photos named by URL among ``paths`` that are not kept, at once; a
        failure is left for :meth:`read` to raise."""
        from concurrent.futures import ThreadPoolExecutor

        from prodfusion.data.io import is_url
        from prodfusion.encoders.image import url_workers

        self._batch = {}
        todo = list(dict.fromkeys(p for p in paths if p and is_url(p) and p not in self._kept))
        if len(todo) < 2:
            return
        with ThreadPoolExecutor(max_workers=min(url_workers(), len(todo)),
                                thread_name_prefix="pf-convirt") as pool:
            for path, data in zip(todo, pool.map(self._quiet, todo), strict=True):
                if data is not None and path not in self._kept:
                    self._batch[path] = data

    def _quiet(self, path: str) -> bytes | None:
        try:
            return self._fetch(path)
        except Exception:  # noqa: BLE001  # read() raises it for the batch, with the row
            return None


@dataclass
class ImageTower:
    """A trainable image side for ConVIRT.

    Attributes
    ----------
    module : torch.nn.Module
        Maps a float tensor batch ``(n, 3, H, W)`` to features ``(n, dim)``.
    prepare : callable
        Image path → float32 array ``(3, H, W)``; raises on an unreadable file.
    dim : int
    spec : str
    photos : KeptPhotos, optional
        Where ``prepare`` reads the photos; :func:`prepare_batch` fetches a batch's photos
        named by URL through it at once, and later epochs read them from memory.
    """

    module: object
    prepare: Callable[[str], np.ndarray]
    dim: int
    spec: str
    photos: KeptPhotos | None = None


def image_tower(spec: str, *, device: str = "cpu",
                keep_photo_bytes: int = KEEP_PHOTO_BYTES) -> ImageTower:
    """The trainable tower of an image encoder spec (``effnet-lite0`` or ``clip:…``); its
    photos named by URL are kept in memory up to ``keep_photo_bytes`` (:class:`KeptPhotos`)."""
    import torch

    from prodfusion.encoders import CLIPImageEncoder, EfficientNetLite0Encoder, make_encoder
    from prodfusion.encoders.image import _decode_rgb

    enc = make_encoder(spec, device=device, progress=False)
    enc.load()
    net = enc._model

    class _Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            if isinstance(enc, EfficientNetLite0Encoder):
                return self.net.extract_features(x).mean(dim=(2, 3))
            if isinstance(enc, CLIPImageEncoder):
                return self.net.visual_projection(self.net.vision_model(pixel_values=x).pooler_output)
            raise ParameterError(f"image encoder {spec!r} has no trainable tower")  # pragma: no cover

    photos = KeptPhotos(keep_photo_bytes)
    return ImageTower(_Tower(), lambda path: enc._prepare(_decode_rgb(photos.read(path))),
                      enc.dim, spec, photos)


def frozen_features(catalog, config, cache, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, mask)`` of ``config.image`` for every catalog row, read from / written to ``cache``."""
    from prodfusion.encoders import make_encoder

    enc = make_encoder(config.image, device=config.device, cache=cache, progress=progress)
    emb = enc.encode(catalog)
    return np.asarray(emb.vectors, dtype=np.float32), np.asarray(emb.mask, dtype=bool)


def prepare_batch(tower: ImageTower, paths, idx: np.ndarray, failed: set[int]):
    """Rows of ``idx`` whose photo could be prepared, and their arrays; failures are remembered."""
    keep, arrays = [], []
    if tower.photos is not None:  # a batch's photos named by URL fetched together
        tower.photos.prefetch([paths[i] for i in idx if i not in failed])
    for i in idx:
        if i in failed:
            continue
        try:
            arrays.append(tower.prepare(paths[i]))
            keep.append(i)
        except Exception as exc:  # an unreadable photo costs its pair, never the run
            failed.add(int(i))
            logger.warning("adapt convirt: photo %r of row %d left out (%s)", paths[i], i, exc)
    return np.asarray(keep, dtype=np.int64), arrays
