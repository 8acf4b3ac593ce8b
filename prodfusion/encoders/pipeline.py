"""Encoding a catalog into its modalities: what :meth:`prodfusion.Recommender.build` runs.

Text and image encoders (through the embedding cache), the lexical TF-IDF modality and
Prod2Vec over sessions, each skipped with a reason when it has no data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from prodfusion.encoders import DEFAULT_IMAGE, DEFAULT_TEXT, EmbeddingCache, make_encoder
from prodfusion.encoders.base import MODALITIES, Embeddings
from prodfusion.progress import heartbeat

__all__ = ["encode_catalog", "fit_clicks"]

log = logging.getLogger("prodfusion.recommender")


def fit_clicks(catalog, sessions, params, *, progress=None, vector_dtype="float32") -> Embeddings:
    """Prod2Vec (:class:`~prodfusion.encoders.clicks.Prod2VecParams` ``params``) trained on
    ``sessions`` (or on the file of a prepared corpus, gensim's ``corpus_file`` mode), as the
    catalog's click modality.

    With no thread count given, sessions of at most
    :data:`~prodfusion.encoders.clicks.REPRODUCIBLE_MAX_CLICKS` clicks train on one thread,
    so two builds on the same data serve the same lists
    (:func:`~prodfusion.encoders.clicks.reproducible_params`; a corpus file keeps every core).
    """
    from prodfusion.encoders import Prod2Vec
    from prodfusion.encoders.clicks import (
        REPRODUCIBLE_MAX_CLICKS,
        Prod2VecParams,
        reproducible_params,
    )

    corpus = getattr(sessions, "corpus_file", None)  # a prepared corpus (engine.corpus.CorpusFile)
    given = params if params is not None else Prod2VecParams()
    params = reproducible_params(given, None if corpus is not None
                                 else getattr(sessions, "n_clicks", None))
    if params.workers != given.workers:
        log.info("prod2vec on one thread, reproducible (at most %s clicks; --workers N for "
                 "more threads)", f"{REPRODUCIBLE_MAX_CLICKS:,}")
    p2v = Prod2Vec(**asdict(params), progress=progress)
    p2v = p2v.fit_corpus(corpus) if corpus is not None else p2v.fit(sessions)
    return p2v.encode(catalog).astype(vector_dtype)


def encode_catalog(settings, catalog, sessions=None):
    """``(embeddings, skipped, seconds, fitted)`` of ``catalog`` under the encoder settings of
    ``settings`` (a :class:`~prodfusion.Recommender`: ``text``, ``image``, ``clicks``,
    ``lexical``, ``modalities``, ``prod2vec``, ``cache_dir``, ``batch_size``, ``seed``,
    ``progress``, ``vector_dtype``). ``skipped`` maps a modality to why it was not built;
    ``seconds`` the time per modality; ``fitted`` the encoders fitted on the catalog
    (``{"lexical": LexicalEncoder}``), which encode products added later.
    """
    t0 = time.perf_counter()
    cache = EmbeddingCache(settings.cache_dir) if settings.cache_dir else None
    embeddings: dict[str, Embeddings] = {}
    timings: dict[str, float] = {}
    specs = {
        "text": DEFAULT_TEXT if settings.text == "default" else settings.text,
        "image": DEFAULT_IMAGE if settings.image == "default" else settings.image,
    }
    wanted = set(settings.modalities) if settings.modalities else set(MODALITIES)
    skipped: dict[str, str] = {}  # modality -> why it was not built
    fitted: dict = {}
    if specs["image"] is not None and "image" in wanted and not any(catalog.image_paths):
        # No image column and no template: no image modality at all (no zero matrix, no
        # encoder load).
        skipped["image"] = ("the catalog has no image paths (no image column with "
                            "values and no image template)")
    for m in ("text", "image"):
        if specs[m] is None or m not in wanted or m in skipped:
            continue
        t = time.perf_counter()
        enc = make_encoder(specs[m], batch_size=settings.batch_size, cache=cache, progress=settings.progress)
        log.info("encoding %s with %s", m, specs[m])
        # Cast now, so that only one modality is ever held in float32 at a time.
        emb = enc.encode(catalog).astype(settings.vector_dtype)
        timings[m] = time.perf_counter() - t
        if emb.n_present == 0:
            skipped[m] = f"no product could be encoded by {specs[m]} (0 present)"
            continue
        embeddings[m] = emb
    if settings.lexical and "lexical" in wanted:
        from prodfusion.encoders.lexical import LexicalEncoder, parse_lexical_spec

        t = time.perf_counter()
        enc = LexicalEncoder(dim=parse_lexical_spec(settings.lexical), seed=settings.seed)
        # no count to show (TF-IDF, then TruncatedSVD): minutes at 1M titles, lines meanwhile
        with heartbeat(f"{enc.spec} of {len(catalog):,} titles",
                       enabled=settings.progress is not False):
            emb = enc.encode(catalog).astype(settings.vector_dtype)
        timings["lexical"] = time.perf_counter() - t
        if emb.n_present == 0:
            skipped["lexical"] = "no title has a character n-gram (0 present)"
        else:
            embeddings["lexical"] = emb
            fitted["lexical"] = enc
    if settings.clicks and "clicks" in wanted:
        if sessions is None:
            skipped["clicks"] = "no sessions given (--interactions / --pairs)"
        else:
            emb = fit_clicks(catalog, sessions, settings.prod2vec, progress=settings.progress,
                                 vector_dtype=settings.vector_dtype)
            timings["clicks"] = time.perf_counter() - t0 - sum(timings.values())
            if emb.n_present == 0:
                skipped["clicks"] = "no catalog product occurs in the sessions"
            else:
                embeddings["clicks"] = emb
    return embeddings, skipped, timings, fitted
