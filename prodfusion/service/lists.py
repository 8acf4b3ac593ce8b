"""Serving precomputed lists (``prodfusion export``) with a live-search fallback.

A variant configured with ``lists = "lists.parquet"`` (or ``prodfusion serve MODEL --lists
lists.parquet``) answers ``/v1/similar/{id}`` from that file when it can:

* the product has a list in the file and the request asks for ``k`` ≤ the file's k, with no
  filter (``same_category``, ``exclude``, ``exclude_group``);
* every listed product is still in the serving model's catalog, and none is retired
  (``prodfusion add --retire-missing``, :meth:`prodfusion.Recommender.retire`);
* neither the product nor a listed one was re-encoded after the export (its title, photo
  or category changed: ``prodfusion add``, :meth:`prodfusion.Recommender.update_products`).

Anything else — a product added after the export (a new product), a larger k, a filter —
is answered by live search, exactly as without lists. ``/metrics`` counts which path
answered (``prodfusion_similar_answers_total{path="lists"|"live"|"cache"}``).

At load the Parquet file is turned into a serving copy beside it (memory-mapped Arrow by
default, :mod:`prodfusion.batch.lists`), and its metadata must match the variant: same fusion
and modalities (a list of other fusion would silently change the experiment). Hot reload
works like a model folder's: publish a new file by renaming it over the old one (``prodfusion
export --out`` does) or by repointing a symlink; the service polls, opens and checks the new
file beside the old one, then swaps. A refused file leaves the old one serving and is shown in
``/readyz``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from prodfusion.errors import ModelError
from prodfusion.index.backfill import score_or_none
from prodfusion.service.models import ask_store, model_key, start_polling, stop_polling

__all__ = ["LoadedLists", "ListsRegistry", "ListsMetrics"]

log = logging.getLogger(__name__)


#: Lists objects whose store did not answer the last poll (warned about once).
_UNREACHABLE: set[str] = set()


def _stamp(path) -> tuple | None:
    """What identifies one publication of a lists file: its real path, inode, time and size;
    of an object in a bucket (``s3://…``), its URI, time and size (None where the store
    cannot be asked: the lists served stay)."""
    from prodfusion.data import storage

    if storage.is_object_uri(path):  # said once until the store answers again
        return ask_store(path, lambda: storage.object_stamp(path), "lists file", log,
                         _UNREACHABLE)
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_ino, st.st_mtime_ns, st.st_size)


def _local(stamp: tuple) -> Path:
    """The local file of a publication: the file itself, or a bucket object's local copy
    (:func:`prodfusion.data.storage.local_copy`)."""
    from prodfusion.data.storage import is_object_uri, local_copy

    return local_copy(stamp) if is_object_uri(stamp[0]) else Path(stamp[0])


class ListsMetrics:
    """The collectors of the lists path, in the app's registry."""

    def __init__(self, registry) -> None:
        from prometheus_client import Counter

        self.answers = Counter(
            "prodfusion_similar_answers", "Recommendation lists answered, by the path that "
            "answered: lists (precomputed file), cache (result cache) or live (search).",
            ["path"], registry=registry)
        self.reloads = Counter(
            "prodfusion_lists_reloads", "Lists file publications seen, by outcome "
            "(loaded | refused).", ["outcome"], registry=registry)


@dataclass
class LoadedLists:
    """One opened, checked lists file of one variant."""

    path: Path | str  # a file, or an object's URI
    stamp: tuple
    store: object
    k: int

    @functools.cached_property
    def exported(self) -> float:
        """When the export began (:func:`prodfusion.batch.lists.exported_at`): a product
        re-encoded since then may have an old list in it."""
        from prodfusion.batch.lists import exported_at

        return exported_at(self.store.meta)

    def lookup(self, product_id: str, k: int):
        """``(ids, scores)`` of the first ``k`` of the product's list, or None (use live)."""
        if k > self.k:
            return None
        got = self.store.get(product_id)
        if got is None:
            return None
        ids, scores = got
        return ids[:k], scores[:k]

    def body(self, model, product_id: str, k: int, product, dumps) -> str | None:
        """The model-dependent part of a ``/v1/similar`` response rendered from the list, or
        None when live search must answer (no list, k too large, a listed product gone)."""
        got = self.lookup(product_id, k)
        if got is None:
            return None
        cat = model.recommender.catalog
        rows, found = cat.lookup(got[0])
        if not found.all():
            return None
        rec = model.recommender
        retired = getattr(rec, "retired_", None)
        if retired is not None and retired[rows].any():  # retired after the export
            return None
        q = cat.row_of(product_id)
        updated = getattr(rec, "updated_", None)
        if updated is not None:  # re-encoded since the export (prodfusion add): old lists
            made = self.exported
            if updated[q] > made or updated[rows].max() > made:
                return None
        items = [{**product(model, int(r)), "rank": i, "score": score_or_none(s)}
                 for i, (r, s) in enumerate(zip(rows, got[1], strict=True), start=1)]
        return dumps({"product": product(model, q), "items": items})[1:-1]

    def describe(self, rec=None) -> dict:
        """What ``/readyz`` shows; with the variant's model ``rec``, also ``stale``: why the
        file may no longer be what the model lists (:meth:`stale_reasons`)."""
        m = self.store.meta
        out = {"file": str(self.stamp[0]).rsplit("/", 1)[-1], "layout": self.store.layout,
               "products": len(self.store), "k": self.k, "fusion": m.get("fusion"),
               "modalities": m.get("modalities"), "profile": m.get("profile"),
               # a request asking the other way is answered live
               "one_per_group": bool(m.get("one_per_group", False)),
               "created": m.get("created"),
               "model_catalog_fingerprint": ((m.get("model") or {}).get("catalog_fingerprint")
                                             or "")[:16]}
        if rec is not None:
            out["stale"] = self.stale_reasons(getattr(rec, "manifest_", None) or {})
        return out

    def stale_reasons(self, manifest: dict) -> list[str]:
        """Why every list of the file may differ from what the model of ``manifest`` would
        list now (:func:`prodfusion.batch.lists.stale_reasons`). The file is still served —
        a snapshot, as a re-encoded product's list is not (:meth:`body`) — until it is
        exported again; ``/readyz`` says so."""
        from prodfusion.batch.lists import stale_reasons

        return stale_reasons(self.store.meta, manifest)


def _warn_stale(variant: str, lists: LoadedLists, rec) -> None:
    """Log why ``lists`` may be out of date for ``rec`` (it is served all the same)."""
    for why in lists.stale_reasons(getattr(rec, "manifest_", None) or {}):
        log.warning("variant %s: lists file %s may be out of date: %s; export it again",
                    variant, lists.stamp[0], why)


def check_lists_meta(meta: dict, rec, variant, where) -> None:
    """:class:`ModelError` unless the lists file ``where`` (its metadata ``meta``) ranks as
    ``variant`` serves on model ``rec``: the same fusion, modalities and weighting."""
    profile = variant.profile
    fusion, mods = variant.resolve(rec)  # as the export resolved them
    mods = list(mods)
    if meta.get("fusion") != fusion or list(meta.get("modalities") or []) != mods:
        raise ModelError(
            f"Lists file {str(where)!r} holds {meta.get('fusion')} fusion over "
            f"{meta.get('modalities')}, but variant {variant.name!r} serves {fusion} over {mods}; "
            "export the lists with the variant's --fusion and --modalities.")
    if meta.get("profile") != profile:
        raise ModelError(
            f"Lists file {str(where)!r} was ranked by "
            f"{'profile ' + repr(meta['profile']) if meta.get('profile') else 'the default weighting'}"
            f", but variant {variant.name!r} serves "
            f"{'profile ' + repr(profile) if profile else 'the default weighting'}; export the "
            "lists with the variant's --profile.")


def preflight_lists(experiment, default: Path | None, models: dict) -> None:
    """The variants' lists files checked against their models before the server starts (one
    clear error instead of a start-up traceback per worker): each file exists, is a lists
    file, and ranks as its variant serves. Reads the files' metadata; ``models``: the
    variants' models by folder, from :func:`~prodfusion.service.models.preflight_variants`."""
    from prodfusion.batch.lists import read_lists_meta
    from prodfusion.data.storage import path_or_uri

    for v in experiment.variants:
        path = getattr(v, "lists", None) or default
        if path is None:
            continue
        stamp = _stamp(path_or_uri(path))
        if stamp is None:
            raise ModelError(f"Lists file {str(path)!r} of variant {v.name!r} does not exist.")
        try:
            meta = read_lists_meta(_local(stamp))
        except Exception as exc:
            raise ModelError(f"Lists file {stamp[0]!r} of variant {v.name!r} cannot be read: "
                             f"{exc}") from exc
        check_lists_meta(meta, models[model_key(v.model)], v, stamp[0])


def load_lists(path, rec, variant, layout: str = "arrow") -> LoadedLists:
    """Open ``path`` (a file, or an object in a bucket: its local copy) for ``variant``
    served by ``rec``; :class:`ModelError` when it cannot serve."""
    from prodfusion.batch.lists import ListStore

    stamp = _stamp(path)
    if stamp is None:
        raise ModelError(f"Lists file {str(path)!r} of variant {variant.name!r} does not exist.")
    local = None
    try:
        local = _local(stamp)
        store = ListStore.open(ListStore.prepare(local, layout), layout)
    except Exception as exc:  # a bucket's object named by its URI, not by its local copy
        why = str(exc) if local is None else str(exc).replace(str(local), str(stamp[0]))
        raise ModelError(f"Lists file {stamp[0]!r} of variant {variant.name!r} cannot be read: "
                         f"{why}") from exc
    try:
        check_lists_meta(store.meta, rec, variant, stamp[0])
    except ModelError:
        store.close()
        raise
    if _stamp(path) != stamp:
        store.close()
        raise ModelError(f"Lists file {str(path)!r} changed while it was being opened; retrying.")
    return LoadedLists(path, stamp, store, int(store.meta.get("k", 0)))


class ListsRegistry:
    """The lists of every variant that has some; hot-reloadable like the models.

    ``get(variant)`` is the current :class:`LoadedLists` or None. The lists of a variant are
    checked against the variant's model when that model is (re)loaded and when the file changes.
    """

    def __init__(self, experiment, models, *, default: Path | None = None,
                 layout: str = "arrow", metrics=None) -> None:
        self.experiment = experiment
        self.default = default
        self.models = models  # the ModelRegistry
        self.layout = layout
        self.metrics = metrics
        self._by_variant: dict[str, LoadedLists] = {}
        self._failed: dict[str, tuple] = {}
        self.errors_: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def variants(self) -> list:
        """``(variant, lists path)`` of every variant served from lists (its own, else the
        service-wide ``lists`` setting)."""
        from prodfusion.data.storage import path_or_uri

        out = []
        for v in self.experiment.variants:
            path = getattr(v, "lists", None) or self.default
            if path is not None:
                out.append((v, path_or_uri(path)))
        return out

    def load_all(self) -> ListsRegistry:
        """Open every variant's lists; raises :class:`ModelError` naming the first that fails."""
        for v, path in self.variants:
            model, _ = self.models.get(v.name)
            self._by_variant[v.name] = load_lists(path, model.recommender, v, self.layout)
            log.info("variant %s serves lists %s", v.name, self._by_variant[v.name].stamp[0])
            _warn_stale(v.name, self._by_variant[v.name], model.recommender)
        return self

    def get(self, variant: str) -> LoadedLists | None:
        return self._by_variant.get(variant)

    def warn_stale(self) -> None:
        """Log, per variant, why its lists may be out of date for the model it now serves
        (called when a model is reloaded: a file fine for the old model may not be)."""
        for name, lst in list(self._by_variant.items()):
            _warn_stale(name, lst, self.models.get(name)[0].recommender)

    def describe(self) -> dict:
        """What ``/readyz`` shows per variant (file names, no server paths)."""
        out = {}
        for name, lst in self._by_variant.items():
            try:
                rec = self.models.get(name)[0].recommender
            except Exception:  # noqa: BLE001 - a model being swapped: describe the file alone
                rec = None
            out[name] = lst.describe(rec)
        return out

    def public_errors(self) -> dict[str, str]:
        """Refused publications by variant, absolute paths reduced to their last component."""
        from prodfusion.service.guards import redact_paths

        known = [str(p) for _, p in self.variants] + [os.path.realpath(p) for _, p in self.variants]
        return {f"lists:{name}": redact_paths(v, known) for name, v in self.errors_.items()}

    def check_reload(self) -> list[str]:
        out = []
        with self._lock:
            for v, path in self.variants:
                current = self._by_variant.get(v.name)
                stamp = _stamp(path)
                if stamp is None or (current is not None and stamp == current.stamp) \
                        or self._failed.get(v.name) == stamp:
                    continue
                try:
                    model, _ = self.models.get(v.name)
                    new = load_lists(path, model.recommender, v, self.layout)
                except Exception as exc:  # keep serving the old file
                    self._failed[v.name] = stamp
                    self.errors_[v.name] = f"{type(exc).__name__}: {exc}"
                    log.error("refused lists file %s: %s", stamp[0], exc)
                    out.append(f"refused {stamp[0]}: {exc}")
                    if self.metrics:
                        self.metrics.reloads.labels("refused").inc()
                    continue
                self._by_variant[v.name] = new  # atomic reference swap
                self._failed.pop(v.name, None)
                self.errors_.pop(v.name, None)
                out.append(f"loaded {new.stamp[0]}")
                log.info("variant %s switched to lists %s", v.name, new.stamp[0])
                _warn_stale(v.name, new, model.recommender)
                if self.metrics:
                    self.metrics.reloads.labels("loaded").inc()
        return out

    def start_watcher(self, interval_s: float) -> None:
        if interval_s <= 0 or self._thread is not None or not self.variants:
            return
        start_polling(self, interval_s, "lists")

    def stop_watcher(self) -> None:
        stop_polling(self)
