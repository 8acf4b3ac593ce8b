"""Incremental updates of a built model: new products (cold start), replaced modalities.

The :class:`~prodfusion.Recommender` methods of the same names delegate here; the existing
products are neither re-encoded nor re-clustered, and every built index grows or is rebuilt
piece by piece.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from prodfusion.data.catalog import ID, Catalog
from prodfusion.encoders.base import MODALITIES, Embeddings, check_finite
from prodfusion.encoders.image import remote_photo_stamps
from prodfusion.errors import ParameterError, param_error
from prodfusion.index.clustering import assign_to_centroids, centroids_from_labels

#: How the manifest writes times (``created``, ``updates[].time``).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

__all__ = ["add_products", "adopt_web_stamps", "changed_products", "copy_offer_times",
           "encode_products", "photo_stamps", "relocate_photos", "retire", "retired_count",
           "set_photo_stamps", "update_embeddings", "update_products"]


def copy_offer_times(rec, catalog: Catalog) -> int:
    """Take the feed ``catalog``'s :attr:`~prodfusion.Recommender.on_offer_cols` values for
    the model's products it lists (a listing sold since has its end now), so that the
    tuning and ``evaluate`` know when each was on offer; a column the feed lacks is left as
    the model has it. Returns how many products' values changed."""
    from prodfusion.data.offer import offer_cols_of

    cols = [c for c in (offer_cols_of(rec) or ()) if c]
    cols = [c for c in cols if c in catalog.frame.columns]
    if not cols:
        return 0
    old = rec.catalog.frame
    feed = catalog.frame.select(ID, *[pl.col(c).cast(pl.Utf8).alias(f"__new_{c}")
                                      for c in cols])
    joined = old.select(ID).join(feed, on=ID, how="left", maintain_order="left")
    listed = old[ID].is_in(catalog.frame[ID].implode())
    changed = pl.Series([False] * old.height)
    updates = []
    for c in cols:
        new = joined[f"__new_{c}"].fill_null("").str.strip_chars()
        was = (old[c].cast(pl.Utf8) if c in old.columns
               else pl.Series([None] * old.height, dtype=pl.Utf8)).fill_null("").str.strip_chars()
        diff = listed & (new != was)
        changed = changed | diff
        updates.append(pl.when(listed).then(new).otherwise(was).alias(c))
    if not changed.any():
        return 0
    rec.catalog = Catalog(old.with_columns(updates), source=rec.catalog.source)
    return int(changed.sum())


def retired_count(rec) -> int:
    """How many of ``rec``'s products are retired (never listed; 0 for any model without)."""
    retired = getattr(rec, "retired_", None)
    return 0 if retired is None else int(np.count_nonzero(retired))


def retire(rec, product_ids, *, retired: bool = True) -> int:
    """See :meth:`prodfusion.Recommender.retire`."""
    from prodfusion.errors import UnknownProductError

    rec._check_built()
    ids = [product_ids] if isinstance(product_ids, str) else list(product_ids)
    rows, found = rec.catalog.lookup(ids)
    if not found.all():
        bad = [p for p, f in zip(ids, found, strict=True) if not f]
        raise UnknownProductError(
            f"retire(): {len(bad):,} product id(s) are not in the model, e.g. {bad[:3]}.")
    mask = rec.retired_ if rec.retired_ is not None else np.zeros(len(rec.catalog), bool)
    mask = np.array(mask, dtype=bool, copy=True)
    rows = np.unique(rows)
    changed = int((mask[rows] != retired).sum())
    back = rows[mask[rows] & (not retired)]  # recommended again: they may enter any list
    mask[rows] = retired
    rec.retired_ = mask if mask.any() else None
    if len(back):  # stamped as re-encoded products are (export --update, the service)
        import time

        updated = rec.updated_ if rec.updated_ is not None else np.zeros(len(mask))
        updated = updated.astype(np.float64, copy=True)
        updated[back] = time.time()
        rec.updated_ = updated
    return changed


def encode_products(rec, catalog: Catalog, *, cache_dir=None, batch_size: int | None = None,
                    progress: bool | None = None) -> dict[str, Embeddings]:
    """See :meth:`prodfusion.Recommender.encode_products`."""
    from prodfusion.encoders import make_encoder
    from prodfusion.errors import ModelError, ProdfusionError

    rec._check_built()
    out: dict[str, Embeddings] = {}
    progress = rec.progress if progress is None else progress
    if cache_dir is not None and not hasattr(cache_dir, "put"):  # a path
        from prodfusion.encoders import EmbeddingCache

        cache_dir = EmbeddingCache(cache_dir)
    for m in ("text", "image"):
        if m not in rec.embeddings_:
            continue
        spec = rec.embeddings_[m].spec
        if m == "image" and not any(catalog.image_paths):
            continue  # no photo among the new products: absent, like a build would leave it
        try:
            enc = make_encoder(spec, batch_size=batch_size, cache=cache_dir,
                               progress=progress is not False)
            out[m] = enc.encode(catalog)
        except ProdfusionError as exc:
            raise ModelError(
                f"encode_products(): the model's {m} encoder {spec!r} failed ({exc}). Encode "
                f"the new products' {m} yourself and pass add_products(catalog, embeddings)."
            ) from exc
    if "lexical" in rec.embeddings_:
        enc = getattr(rec, "lexical_encoder_", None)
        if enc is None:
            import logging

            logging.getLogger("prodfusion.recommender").warning(
                "this model folder does not keep its fitted lexical encoder (built before "
                "prodfusion kept it, or its lexical vectors were replaced): the new products "
                "get no lexical vector. Rebuild the model to keep it.")
        else:
            out["lexical"] = enc.transform(catalog)
    return out


def encode_for_update(rec, catalog: Catalog, **kwargs) -> dict[str, Embeddings]:
    """:func:`encode_products` of products the model has, for :func:`update_products`: a
    title or photo modality that none of them has now (no photo among them) comes back as
    absent for all of them, so that the update drops their old vectors. ``kwargs`` go to
    :func:`encode_products`."""
    out = encode_products(rec, catalog, **kwargs)
    for m in ("text", "image", "lexical"):
        if m in rec.embeddings_ and m not in out \
                and (m != "lexical" or rec.lexical_encoder_ is not None):
            e = rec.embeddings_[m]
            out[m] = Embeddings(np.zeros((len(catalog), e.dim), np.float32),
                                np.zeros(len(catalog), bool), e.spec)
    return out


def record_update(rec, update: dict) -> None:
    """Append ``update`` to the manifest's ``updates``, stamped with the time now (what
    :func:`changed_products` compares photo files with)."""
    import time

    m = rec.manifest_
    m["updates"] = list(m.get("updates") or []) + [
        {"time": time.strftime(TIME_FORMAT), **update}]


def check_new_ids(rec, catalog: Catalog) -> None:
    """Refuse products ``rec`` already has (``add_products`` appends only new ones)."""
    old_ids = set(rec.catalog.ids.tolist())
    dup = [p for p in catalog.ids if p in old_ids]
    if dup:
        raise ParameterError(
            f"add_products(): {len(dup):,} of the {len(catalog):,} products are already in the "
            f"model (e.g. {dup[0]!r}); pass only new ones. To re-encode products whose title or "
            "photo changed: changed_products() and update_products() (CLI: `prodfusion add` "
            "with the whole feed does both).")


def add_products(rec, catalog: Catalog, embeddings: Mapping[str, Embeddings]) -> dict:
    """See :meth:`prodfusion.Recommender.add_products`."""
    rec._check_built()
    extra = [m for m in embeddings if m not in rec.embeddings_]
    if extra:
        raise ParameterError(
            f"add_products(): the model has no {extra} modality (it has "
            f"{list(rec.embeddings_)}). Rebuild the model to add a modality."
        )
    for m, e in embeddings.items():
        if len(e.mask) != len(catalog):
            raise ParameterError(
                f"add_products(): {m} embeddings have {len(e.mask)} rows but the new catalog "
                f"has {len(catalog)}; align them to its rows."
            )
        if e.dim != rec.embeddings_[m].dim:
            raise ParameterError(
                f"add_products(): {m} vectors have {e.dim} dimensions, the model "
                f"{rec.embeddings_[m].dim}. Encode them with {rec.embeddings_[m].spec!r}."
            )
    check_new_ids(rec, catalog)
    embeddings = {m: e.astype(rec.vector_dtype) for m, e in embeddings.items()}
    searchers = rec._all_searchers()
    n0, n1 = len(rec.catalog), len(catalog)
    frame = pl.concat([rec.catalog.frame, catalog.frame], how="diagonal_relaxed")
    merged, labels = {}, {}
    for m, e in rec.embeddings_.items():
        if m in embeddings:
            new = embeddings[m]
        else:  # the new products lack this modality
            new = Embeddings(np.zeros((n1, e.dim), e.vectors.dtype), np.zeros(n1, bool), e.spec)
        check_finite(new, what=f"new {m} embeddings")
        if m in rec.late_labels_.computed:  # clusters not computed yet are computed later
            old = rec.late_labels_[m]
            cent = centroids_from_labels(e, old)
            labels[m] = np.concatenate([old, assign_to_centroids(new, cent)])
        merged[m] = Embeddings(np.concatenate([e.vectors, new.vectors]),
                               np.concatenate([e.mask, new.mask]), e.spec, e.info)
    before = dict(getattr(rec, "manifest_", None) or {})
    # only the new rows need the scan (done above); the old ones were checked before
    # appended products: the model's calibration statistics kept (its other lists unchanged)
    rec._set_state(Catalog(frame, source=rec.catalog.source), merged, late_labels=labels,
                   verify=False, keep_stats=rec._calibration_stats)
    _keep_provenance(rec, before, {"added_products": n1,
                                   "present": {m: int(e.n_present)
                                               for m, e in embeddings.items()}})
    new_rows = np.arange(n0, n0 + n1)
    report = {}
    for (method, mods), s in searchers.items():
        report[f"{method}/{'+'.join(mods)}"] = s.add(
            rec.embeddings_, new_rows, labels=rec.late_labels_ if method == "late" else None)
    rec._searchers = searchers
    return report


def _keep_provenance(rec, before: dict, update: dict, *, same_sessions: bool = True) -> None:
    """After an update, keep what the manifest recorded about how the model was built and
    tuned (the data it read, the sessions' fingerprint, the tuning record, the build's
    timings): the new manifest would otherwise describe a model without them. With
    ``same_sessions=False`` (clicks retrained on other sessions) the new manifest's own
    record of the sessions stays. The update itself is appended to ``updates``."""
    m = rec.manifest_
    keys = ("tuning", "data", "build", "updates", "build_id")
    for key in keys + (("sessions_report",) if same_sessions else ()):
        if before.get(key) is not None:
            m[key] = before[key]
    for section in ("fingerprints", "counts") if same_sessions else ():
        if "sessions" in (before.get(section) or {}):  # of the sessions it was built on
            m[section]["sessions"] = before[section]["sessions"]
    if before.get("created"):
        m["built"] = before.get("built", before["created"])
    record_update(rec, update)


def update_embeddings(rec, embeddings: Mapping[str, Embeddings], *, sessions=None) -> dict:
    """See :meth:`prodfusion.Recommender.update_embeddings`."""
    rec._check_built()
    for m, e in embeddings.items():
        if m not in MODALITIES:
            raise param_error("embeddings", "update_embeddings()",
                              f"a mapping with keys among {list(MODALITIES)}", m)
        if len(e.mask) != len(rec.catalog):
            raise ParameterError(
                f"update_embeddings(): {m} embeddings have {len(e.mask)} rows but the "
                f"catalog has {len(rec.catalog)}; align them to the catalog rows."
            )
    embeddings = {m: e.astype(rec.vector_dtype) for m, e in embeddings.items()}
    searchers = rec._all_searchers()
    merged = dict(rec.embeddings_)
    merged.update(embeddings)
    labels = {m: lab for m, lab in rec.late_labels_.computed.items() if m not in embeddings}
    for m, e in embeddings.items():
        check_finite(e, what=f"{m} embeddings ({e.spec})")
    # the replaced modalities were scanned just above; the kept ones when they arrived
    # statistics of the replaced modalities estimated again, the others kept; new sessions
    # also change the co-occurrences and the click counts (popularity)
    gone = set(embeddings) | ({"cooc", "popularity"} if sessions is not None else set())
    rec._set_state(rec.catalog, merged, sessions=sessions, late_labels=labels,
                   verify=False, keep_stats={m: v for m, v in rec._calibration_stats.items()
                                             if m not in gone})
    if "lexical" in embeddings:  # vectors from elsewhere: the fitted encoder no longer matches
        rec.lexical_encoder_ = None
    if "image" in embeddings:  # photo vectors from elsewhere: which files they came from,
        rec.photo_stamps_ = None  # and when, is unknown: changed_products goes by time
    return _update_searchers(rec, searchers, list(embeddings))


def _update_searchers(rec, searchers: dict, changed: list[str]) -> dict:
    """Give every built searcher the model's new vectors of the ``changed`` modalities (the
    pieces they touch are rebuilt); per index, what was rebuilt or kept."""
    report = {}
    for (method, mods), s in searchers.items():
        report[f"{method}/{'+'.join(mods)}"] = s.update(
            rec.embeddings_, changed, labels=rec.late_labels_ if method == "late" else None)
    rec._searchers = searchers
    return report


def _last_encoded(rec) -> float | None:
    """When the model last encoded photos, in seconds since the epoch: the latest of its
    build time and its updates' times (``None`` when the manifest records neither)."""
    import datetime as dt

    m = getattr(rec, "manifest_", None) or {}
    stamps = [m.get("built") or m.get("created")]
    stamps += [u.get("time") for u in m.get("updates") or []]
    out = None
    for s in stamps:
        try:
            t = dt.datetime.strptime(s, TIME_FORMAT).timestamp()
        except (TypeError, ValueError):
            continue
        out = t if out is None else max(out, t)
    return out


def photo_stamps(paths) -> np.ndarray:
    """``(size, mtime_ns)`` of each photo file (of a photo in a bucket, its object's; of one
    on a web server, what its ``HEAD`` says where ``--check-photo-urls`` asks:
    :func:`prodfusion.encoders.image.remote_photo_stamps`), ``(-1, -1)`` where there is no
    path, no file or another URL: what :func:`changed_products` compares a feed's photos
    with (``make``'s and ``rsync``'s quick check). Taken *before* the photos are encoded, so a file replaced
    while they are read is found changed next time rather than missed."""
    import os

    from prodfusion.data.io import is_url

    out = np.full((len(paths), 2), -1, dtype=np.int64)
    objects = remote_photo_stamps(paths)
    for i, p in enumerate(paths):
        if not p:
            continue
        if is_url(p):
            out[i] = objects.get(str(p).strip(), (-1, -1))
            continue
        try:
            st = os.stat(p)
        except OSError:
            continue
        out[i] = (st.st_size, st.st_mtime_ns)
    return out


def set_photo_stamps(rec, rows: np.ndarray, stamps: np.ndarray) -> None:
    """Record ``stamps`` (:func:`photo_stamps`) for the model's ``rows`` whose photo vectors
    were just set; the other rows keep theirs (``(-1, -1)``: unknown, the older rule)."""
    cur = getattr(rec, "photo_stamps_", None)  # grown with the catalog (_set_state)
    cur = np.full((len(rec.catalog), 2), -1, dtype=np.int64) if cur is None else cur.copy()
    cur[rows] = stamps
    rec.photo_stamps_ = cur


def relocate_photos(rec, catalog: Catalog, keep: set | frozenset = frozenset()) -> int:
    """Point the model at the feed's photo paths where only the path changed.

    For the products of ``catalog`` the model has (but those in ``keep``: changed, kept, or
    about to be re-encoded), whose photo path differs from the model's while both name a
    photo and the model has its vector, the model's catalog takes the feed's path and the
    photo is stamped (:func:`photo_stamps`); vectors, lists and ``updated_`` stay. Call it
    once :func:`changed_products` (and ``add``'s check of the vectors) found those photos
    unchanged: an image folder moved to another root then costs one comparison, not one
    per ``add``. Returns how many products were pointed elsewhere.
    """
    from prodfusion.data.catalog import IMAGE

    if "image" not in rec.embeddings_ or IMAGE not in catalog.frame.columns \
            or IMAGE not in rec.catalog.frame.columns:
        return 0
    rows, found = rec.catalog.lookup(catalog.ids.tolist())
    old = rec.catalog.image_paths
    new = catalog.image_paths
    mask = rec.embeddings_["image"].mask
    ids = catalog.ids
    pick = [(int(rows[i]), new[i]) for i in np.flatnonzero(found)
            if ids[i] not in keep and new[i] and old[rows[i]] and new[i] != old[rows[i]]
            and mask[rows[i]]]
    if not pick:
        return 0
    at = np.array([r for r, _ in pick], dtype=np.int64)
    paths = [p for _, p in pick]
    column = rec.catalog.frame[IMAGE].scatter(at, pl.Series(paths, dtype=pl.Utf8))
    rec.catalog = Catalog(rec.catalog.frame.with_columns(column), source=rec.catalog.source)
    set_photo_stamps(rec, at, photo_stamps(paths))
    return len(pick)


def adopt_web_stamps(rec, catalog: Catalog, keep: set | frozenset = frozenset()) -> int:
    """Record what the web servers say now (:func:`photo_stamps` where
    ``--check-photo-urls`` asks) for the model's photos named by web URL that have no stamp
    yet — a model built without the option, or before it existed — and whose URL the feed
    names again (but those in ``keep``: changed, about to be re-encoded). A photo replaced
    before this check is not seen; one replaced after it is, by the next ``add`` with the
    option. Returns how many were stamped."""
    from prodfusion.data.catalog import IMAGE
    from prodfusion.data.photos import checks_photo_urls, is_web_url

    stamps = getattr(rec, "photo_stamps_", None)
    if not checks_photo_urls() or "image" not in rec.embeddings_ \
            or IMAGE not in catalog.frame.columns:
        return 0
    rows, found = rec.catalog.lookup(catalog.ids.tolist())
    old, new = rec.catalog.image_paths, catalog.image_paths
    mask = rec.embeddings_["image"].mask
    ids = catalog.ids
    pick = [(int(rows[i]), new[i]) for i in np.flatnonzero(found)
            if ids[i] not in keep and new[i] and is_web_url(new[i]) and new[i] == old[rows[i]]
            and mask[rows[i]] and (stamps is None or stamps[rows[i], 0] < 0)]
    if not pick:
        return 0
    now = photo_stamps([p for _, p in pick])
    known = now[:, 0] >= 0
    if known.any():
        set_photo_stamps(rec, np.array([r for r, _ in pick], dtype=np.int64)[known], now[known])
    return int(known.sum())


def _same_file(a: str, b: str) -> bool:
    import filecmp

    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def changed_products(rec, catalog: Catalog) -> pl.DataFrame:
    """See :meth:`prodfusion.Recommender.changed_products`."""
    import os

    from prodfusion.data.catalog import CATEGORY, ID, IMAGE, TITLE

    rec._check_built()
    rows, found = rec.catalog.lookup(catalog.ids.tolist())
    feed = np.flatnonzero(found)
    rows = rows[found]
    old, new = rec.catalog.frame, catalog.frame

    def column(frame, name, idx):
        if name not in frame.columns:
            return [None] * len(idx)
        return frame[name].cast(pl.Utf8).gather(idx).to_list()

    titles = np.array([a != b for a, b in zip(column(old, TITLE, rows), column(new, TITLE, feed),
                                              strict=True)], bool)
    cats = np.zeros(len(feed), bool)
    if CATEGORY in new.columns:  # a feed without the column changes no category
        cats = np.array([a != b for a, b in zip(column(old, CATEGORY, rows),
                                                column(new, CATEGORY, feed), strict=True)], bool)
    photos = np.zeros(len(feed), bool)
    missing, first_missing = 0, None
    if "image" in rec.embeddings_ and IMAGE in new.columns:  # no column: no photo news
        from prodfusion.data.io import is_url
        from prodfusion.progress import progress_bar

        since = _last_encoded(rec)
        mask = rec.embeddings_["image"].mask
        stamps = getattr(rec, "photo_stamps_", None)
        if stamps is not None and len(stamps) != len(mask):
            stamps = None
        feed_photos = column(new, IMAGE, feed)
        same_uri = [b for a, b in zip(column(old, IMAGE, rows), feed_photos, strict=True)
                    if a == b]
        objects = remote_photo_stamps(same_uri)  # in a bucket: listed; on a web server:
        # asked (HEAD) where --check-photo-urls is given
        with progress_bar(len(feed), "photos checked", "photo",
                          rec.progress is not False and len(feed) >= 50_000) as bar:
            for i, (a, b, r) in enumerate(zip(column(old, IMAGE, rows), feed_photos, rows,
                                              strict=True)):
                if i % 10_000 == 9_999:
                    bar.update(10_000)
                if not b:  # no photo now: changed when the model has one
                    photos[i] = bool(mask[r])
                    continue
                if is_url(b):  # a photo named by URL: changed when its URL did; one in a
                    # bucket also when its object's size or time differs from when encoded,
                    # one on a web server when its HEAD does (--check-photo-urls)
                    now = objects.get(b.strip())
                    photos[i] = a != b or (now is not None and now[0] >= 0 and stamps is not
                                           None and stamps[r, 0] >= 0
                                           and now != tuple(stamps[r]))
                    continue
                try:
                    st = os.stat(b)
                except OSError:  # named but missing: more likely a path than a photo gone
                    if mask[r]:
                        missing += 1
                        first_missing = first_missing or b
                    continue
                if a != b:  # another file: changed unless it is the same photo
                    photos[i] = not (a and _same_file(a, b))
                elif stamps is not None and stamps[r, 0] >= 0:  # the same file: changed
                    # when its size or modification time differs from when it was encoded
                    photos[i] = (st.st_size, st.st_mtime_ns) != tuple(stamps[r])
                else:  # no stamp (an older folder, vectors given): written after the model
                    photos[i] = since is None or st.st_mtime > since  # last encoded
            bar.update(len(feed) % 10_000)
    if missing:
        import logging

        logging.getLogger("prodfusion.model_updates").warning(
            "%s photo files named by the catalog are missing (e.g. %s) for products the model "
            "has a photo of: their photos are kept as they are (check the image root or "
            "template the catalog was read with)", f"{missing:,}", first_missing)
    changed = titles | photos | cats
    return pl.DataFrame({ID: catalog.ids[feed][changed].tolist(),
                         "title": titles[changed], "photo": photos[changed],
                         "category": cats[changed]},
                        schema={ID: pl.Utf8, "title": pl.Boolean, "photo": pl.Boolean,
                                "category": pl.Boolean})


def update_products(rec, catalog: Catalog, embeddings: Mapping[str, Embeddings]) -> dict:
    """See :meth:`prodfusion.Recommender.update_products`."""
    import time

    from prodfusion.data.catalog import ID
    from prodfusion.errors import UnknownProductError

    rec._check_built()
    rows, found = rec.catalog.lookup(catalog.ids.tolist())
    if not found.all():
        bad = catalog.ids[~found].tolist()
        raise UnknownProductError(
            f"update_products(): {len(bad):,} product id(s) are not in the model, e.g. "
            f"{bad[:3]}; append new products with add_products().")
    bad = [m for m in embeddings if m not in rec.embeddings_ or m == "clicks"]
    if bad:
        raise ParameterError(
            f"update_products(): cannot replace {bad} vectors (the model's title and photo "
            f"modalities: {[m for m in rec.embeddings_ if m != 'clicks']}; click vectors are "
            "learned from sessions: rebuild_clicks()).")
    for m, e in embeddings.items():
        if len(e.mask) != len(catalog) or e.dim != rec.embeddings_[m].dim:
            raise ParameterError(
                f"update_products(): {m} embeddings are {len(e.mask)} x {e.dim}; expected "
                f"{len(catalog)} x {rec.embeddings_[m].dim} (the products given, the model's "
                f"{rec.embeddings_[m].spec!r} width).")
        check_finite(e, what=f"{m} embeddings of the updated products")
    embeddings = {m: e.astype(rec.vector_dtype) for m, e in embeddings.items()}
    searchers = rec._all_searchers()
    # the catalog's own columns of these rows take the feed's values
    cols = [c for c in catalog.frame.columns if c in rec.catalog.frame.columns and c != ID]
    schema = rec.catalog.frame.schema
    patch = catalog.frame.select([ID, *[pl.col(c).cast(schema[c], strict=False) for c in cols]])
    frame = (rec.catalog.frame.with_row_index("__row")
             .update(patch, on=ID, include_nulls=True).sort("__row").drop("__row"))
    merged, labels = dict(rec.embeddings_), {}
    for m, e in embeddings.items():
        old = rec.embeddings_[m]
        vec, mask = old.vectors.copy(), old.mask.copy()
        vec[rows], mask[rows] = e.vectors, e.mask
        vec[rows[~e.mask]] = 0
        merged[m] = Embeddings(vec, mask, old.spec, old.info)
    for m, lab in rec.late_labels_.computed.items():
        if m in embeddings:  # the products move to the cluster of their nearest centroid
            lab = lab.copy()
            lab[rows] = assign_to_centroids(embeddings[m],
                                            centroids_from_labels(rec.embeddings_[m], lab))
        labels[m] = lab
    before = dict(getattr(rec, "manifest_", None) or {})
    categories_before = rec.catalog.codes("category")
    titles_before = [rec.catalog.titles[r] for r in rows]
    rec._set_state(Catalog(frame, source=rec.catalog.source), merged, late_labels=labels,
                   verify=False, keep_stats=rec._calibration_stats)  # as add_products
    if getattr(rec, "category_", None) is not None:
        after = rec.catalog.codes("category")
        if categories_before is None or not np.array_equal(categories_before, after):
            from prodfusion.fusion.category import CategoryMatch

            rec.category_ = CategoryMatch.from_catalog(rec.catalog, sep=rec.category_.sep)
    if getattr(rec, "ngrams_", None) is not None:  # changed titles: their n-grams again
        titles_now = [rec.catalog.titles[r] for r in rows]
        moved = [i for i, (a, b) in enumerate(zip(titles_before, titles_now, strict=True))
                 if a != b]
        if moved:
            rec.ngrams_ = rec.ngrams_.replaced(rows[moved], [titles_now[i] for i in moved])
            rec._fusers = {}  # (the model's calibration statistics are kept, as above)
    _keep_provenance(rec, before, {"updated_products": len(catalog),
                                   "modalities": sorted(embeddings)})
    updated = rec.updated_ if rec.updated_ is not None else np.zeros(len(rec.catalog))
    updated = updated.astype(np.float64, copy=True)
    updated[rows] = time.time()
    rec.updated_ = updated
    return _update_searchers(rec, searchers, list(embeddings))
