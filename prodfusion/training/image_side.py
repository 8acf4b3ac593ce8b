"""ConVIRT's image side: frozen features through the encoders and cache, or a trainable tower."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from prodfusion.errors import ParameterError
from prodfusion.training._st import logger

__all__ = ["ImageTower", "image_tower", "frozen_features", "prepare_batch"]


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
    """

    module: object
    prepare: Callable[[str], np.ndarray]
    dim: int
    spec: str


def image_tower(spec: str, *, device: str = "cpu") -> ImageTower:
    """The trainable tower of an image encoder spec (``effnet-lite0`` or ``clip:…``)."""
    import torch

    from prodfusion.encoders import CLIPImageEncoder, EfficientNetLite0Encoder, make_encoder
    from prodfusion.encoders.image import _decode_rgb, _read

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

    return ImageTower(_Tower(), lambda path: enc._prepare(_decode_rgb(_read(path))), enc.dim, spec)


def frozen_features(catalog, config, cache, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, mask)`` of ``config.image`` for every catalog row, read from / written to ``cache``."""
    from prodfusion.encoders import make_encoder

    enc = make_encoder(config.image, device=config.device, cache=cache, progress=progress)
    emb = enc.encode(catalog)
    return np.asarray(emb.vectors, dtype=np.float32), np.asarray(emb.mask, dtype=bool)


def prepare_batch(tower: ImageTower, paths, idx: np.ndarray, failed: set[int]):
    """Rows of ``idx`` whose photo could be prepared, and their arrays; failures are remembered."""
    keep, arrays = [], []
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
