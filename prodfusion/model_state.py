"""The state of a built model: what :meth:`~prodfusion.Recommender.build`, ``load``, the
incremental updates and ``tune`` set on the :class:`~prodfusion.Recommender`.

A built model holds its catalog and ids, one :class:`~prodfusion.encoders.base.Embeddings`
per modality (in the model's ``vector_dtype``), the optional co-occurrences (``cooc_``),
the category and group codes of the filters, the late-fusion labels (computed lazily), the
click counts of the confidence weighting, and its manifest; the fuser, searcher and
calibration caches start empty whenever the state changes.
"""

from __future__ import annotations

import numpy as np

from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import MODALITIES, Embeddings, check_finite
from prodfusion.errors import ModelError, ParameterError
from prodfusion.fusion import check_modalities
from prodfusion.fusion.weights import Weighting
from prodfusion.model_folder import new_manifest

__all__ = ["set_state", "apply_tuning", "apply_profile", "refresh_popularity"]


def set_state(rec, catalog: Catalog, embeddings: dict[str, Embeddings], *, sessions=None,
              late_labels: dict[str, np.ndarray] | None = None, verify: bool = True,
              keep_stats=None) -> None:
    """Make ``catalog`` and ``embeddings`` the state of ``rec`` (checked; caches emptied).

    ``verify`` scans every present vector for NaN/Inf/zero rows; a loaded folder was checked
    when it was built, so loading skips it unless asked (``load(verify=True)``).
    ``keep_stats`` (``{modality: (μ, σ)}``): calibration statistics that stay as they are —
    an update that appends or re-encodes a few products keeps the model's, so its other
    lists do not move (every score would otherwise shift with a new sample); the others
    are estimated again from these embeddings on first use.
    """
    for m, e in list(embeddings.items()):
        if m not in MODALITIES:
            raise ParameterError(f"Unknown modality {m!r}; expected one of {list(MODALITIES)}.")
        if len(e.mask) != len(catalog):
            raise ModelError(
                f"{m} embeddings have {len(e.mask)} rows but the catalog has {len(catalog)}."
            )
        embeddings[m] = e = e.astype(rec.vector_dtype)  # no-op when already that dtype
        if verify:
            check_finite(e, what=f"{m} embeddings ({e.spec})")
    rec.catalog = catalog
    rec._ids = catalog.ids  # Catalog.ids builds a new array per call: O(n) per query
    rec.embeddings_ = {m: embeddings[m] for m in MODALITIES if m in embeddings}
    if sessions is not None and hasattr(sessions, "product_counts"):
        counts = sessions.product_counts()
        rec.click_counts_ = np.array([counts.get(p, 0) for p in rec._ids], dtype=np.int64)
    else:  # appended products (add_products) were never seen in training: 0 occurrences
        rec.click_counts_ = _grown(getattr(rec, "click_counts_", None), len(catalog))
    refresh_popularity(rec)
    rec.retired_ = _grown(getattr(rec, "retired_", None), len(catalog))  # appended: active
    rec.updated_ = _grown(getattr(rec, "updated_", None), len(catalog))  # appended: 0
    stamps = getattr(rec, "photo_stamps_", None)  # appended: unknown until stamped
    rec.photo_stamps_ = None if stamps is None or len(stamps) > len(catalog) else \
        np.concatenate([stamps, np.full((len(catalog) - len(stamps), 2), -1, np.int64)])
    if getattr(rec, "cooc_", None) is not None and len(rec.cooc_) != len(catalog):
        rec.cooc_ = rec.cooc_.extended(len(catalog))  # appended products: never seen
    ng = getattr(rec, "ngrams_", None)
    if ng is not None and len(ng) != len(catalog):  # appended products: their titles encoded
        if len(ng) > len(catalog):
            raise ModelError(f"the ngrams modality has {len(ng)} rows but the catalog "
                             f"{len(catalog)}.")
        rec.ngrams_ = ng.extended(catalog.titles[len(ng):])
    if getattr(rec, "category_", None) is not None and len(rec.category_) != len(catalog):
        from prodfusion.fusion.category import CategoryMatch

        rec.category_ = CategoryMatch.from_catalog(  # appended products: their own
            catalog, sep=rec.category_.sep)
    rec.modalities = check_modalities(rec.modalities, rec.available_modalities,
                                      "Recommender()") \
        if rec.modalities else rec.available_modalities
    rec._category_codes = catalog.codes("category")
    rec._group_codes = catalog.codes("group")
    n_cat = None
    if rec._category_codes is not None:
        n_cat = len(np.unique(rec._category_codes[rec._category_codes >= 0])) or None
    rec.n_categories_ = n_cat
    # Late-fusion k-means runs when late fusion is first used (or by cluster_late()), not
    # at build time: most models never serve late fusion.
    rec.late_labels_ = late_labels or {}
    rec._fusers = {}
    rec._searchers = {}
    rec._index_meta = {}
    rec._calibration_stats = dict(keep_stats or {})  # the rest: estimated on first use
    rec.manifest_ = new_manifest(rec, catalog, sessions)


def _grown(per_row: np.ndarray | None, n: int) -> np.ndarray | None:
    """A per-product array padded with zeros (``False``) to ``n`` rows for appended
    products; ``None`` when there is none or it is longer than the catalog (another one)."""
    if per_row is None or len(per_row) > n:
        return None
    return np.concatenate([per_row, np.zeros(n - len(per_row), per_row.dtype)])


def refresh_popularity(rec) -> None:
    """The ``popularity`` modality from the model's click counts, when it has (or was asked
    for) one: it follows the counts (retraining, appended products, tuning's counts)."""
    if getattr(rec, "popularity", False) or getattr(rec, "popularity_", None) is not None:
        from prodfusion.fusion.popularity import PopularityPrior

        cc = getattr(rec, "click_counts_", None)
        rec.popularity_ = PopularityPrior(cc) if cc is not None else None


def _tuning_counts(rec, sessions, pairs) -> np.ndarray:
    """Training occurrences of every catalog product in the given interactions (``n0``)."""
    merged: dict[str, int] = {}
    for s in (sessions, pairs):
        for pid, n in (s.product_counts().items() if s is not None else ()):
            merged[pid] = merged.get(pid, 0) + n
    return np.array([merged.get(p, 0) for p in rec._ids], dtype=np.int64)


def apply_profile(rec, name: str, res: dict, *, sessions=None, pairs=None) -> None:
    """Keep a tuning record as the weighting profile ``name`` of ``rec``
    (``tune(..., profile=name)``), leaving the model's default weighting, fusion,
    co-occurrences and click counts as they are. Checked before anything changes.

    A profile shares the model's arrays, so what tuning would otherwise change in them is
    refused: another cooc decay (``tune`` keeps the model's for a profile), or an ``n0``
    whose click counts (occurrences in the interactions tuned on) differ from the model's.
    """
    from prodfusion.fusion.weighting import check_profile_name

    check_profile_name(name, "tune()")
    scorer = res.pop("scorer", None)  # a learned weighting's trees (tune_learned)
    wt = Weighting.make(res["weights"], res["calibration"], None, res["n0"], where="tune()",
                        fallback=res.get("fallback", False), impute=res.get("impute", 0.0),
                        fallback_missing=res.get("fallback_missing", "drop"),
                        confidence=res.get("confidence", "ratio"), learned=scorer)
    set_counts = None
    # trees and n0 both read the click counts the tuning counted: counted once for both
    counts = _tuning_counts(rec, sessions, pairs) \
        if scorer is not None or res["n0"] is not None else None
    have = getattr(rec, "click_counts_", None)
    same = have is not None and counts is not None and np.array_equal(have, counts)
    if scorer is not None:
        if have is None:  # a model built without interactions: it gets these
            set_counts = counts
        elif not same:
            raise ParameterError(
                f"tune(): the trees of profile {name!r} read each product's click count, "
                "which needs the model's click counts, but the interactions tuned on count "
                "products differently; tune it on the interactions the model was built (or "
                "tuned) with.")
    decay = res.get("cooc_decay")
    if decay is not None and getattr(rec, "cooc_", None) is not None \
            and decay != rec.cooc_.decay:
        raise ParameterError(
            f"tune(): profile {name!r} chose cooc decay {decay:g} but the model counts with "
            f"{rec.cooc_.decay:g}; a profile shares the model's co-occurrences (tune a profile "
            "with cooc_decays=(), which tune(profile=...) does by default).")
    if res["n0"] is not None and not same:
        raise ParameterError(
            f"tune(): profile {name!r} weighs clicks by confidence (n0 {res['n0']:g}), "
            "which needs the model's click counts, but the interactions tuned on count "
            "products differently; tune the profile on the interactions the model was "
            "built (or tuned) with, or with n0_grid=(None,).")
    profiles = dict(getattr(rec, "profiles_", None) or {})
    profiles[name] = {"weighting": wt.to_dict(), "tuning": res}
    rec.profiles_ = profiles  # written into the manifest by save()
    if set_counts is not None:
        rec.click_counts_ = set_counts
        rec._fusers, rec._searchers = {}, {}


def apply_tuning(rec, res: dict, *, sessions=None, pairs=None) -> None:
    """Make a tuning record (:func:`prodfusion.evaluation.tuning.tune_weights`) the model's
    weighting: weights, calibration, click confidence (``n0``, with the click counts of every
    given interaction), fallback and fusion. Checked before anything changes."""
    counts = None
    scorer = res.pop("scorer", None)  # learned trees (tune_learned): the model's own
    if res["n0"] is not None or scorer is not None:  # occurrences, as the clicks saw them
        counts = _tuning_counts(rec, sessions, pairs)
    Weighting.make(res["weights"], res["calibration"], None, res["n0"], where="tune()",
                   fallback=res.get("fallback", False), impute=res.get("impute", 0.0),
                   fallback_missing=res.get("fallback_missing", "drop"),
                   confidence=res.get("confidence", "ratio"), learned=scorer)
    decay = res.get("cooc_decay")
    if decay is not None and getattr(rec, "cooc_", None) is not None \
            and decay != rec.cooc_.decay:  # recounted on the interactions tuned on
        from prodfusion.data.sessions import concat_sessions
        from prodfusion.fusion.cooc import Cooc

        both = concat_sessions({"s": sessions, "p": pairs})
        if both is None:
            raise ParameterError("tune(): the cooc decay changed but no interactions were "
                                 "given to recount the co-occurrences.")
        rec.cooc_ = Cooc.from_sessions(both, rec.catalog, decay=decay)
        rec.cooc_decay = decay
        rec._calibration_stats.pop("cooc", None)  # the z-score's μ, σ follow the counts
    rec.zero_weight_fallback = res.get("fallback", False)
    rec.impute = res.get("impute", 0.0)
    rec.fallback_missing = res.get("fallback_missing", "drop")
    rec.weights, rec.calibration, rec.click_n0 = res["weights"], res["calibration"], res["n0"]
    rec.click_confidence = res.get("confidence", "ratio")
    rec.learned_ = scorer  # a linear tuning drops the model's trees
    if counts is not None:
        rec.click_counts_ = counts
        refresh_popularity(rec)
    rec.fusion = res["fusion"]
    rec._fusers, rec._searchers = {}, {}
    rec.manifest_["tuning"] = res
    rec.manifest_["settings"]["fusion"] = rec.fusion
