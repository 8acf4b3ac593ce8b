"""``prodfusion add``: append new products to a built model, encoded by its own encoders,
re-encode the products whose title, photo or category changed, and (``--retire-missing``)
stop recommending the products a feed no longer lists."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from prodfusion.cli.engine_options import add_engine_options
from prodfusion.cli.options import (
    add_catalog_options,
    add_encoding_options,
    add_interaction_options,
    add_recommend_rows_option,
    embedding_cache,
    load_catalog,
    load_sessions,
)
from prodfusion.data.storage import is_object_uri
from prodfusion.errors import ParameterError

__all__ = ["add_add_parser", "cmd_add", "fill_catalog_from_record"]

#: From this many photo files found rewritten with the same photo, ``add`` records the check
#: in the model even when nothing else changed: reading them again every day costs more than
#: writing the folder once.
VERIFIED_RECORD = 1000

#: Catalog options ``add`` takes from the model's record when left at their defaults.
CATALOG_KEYS = ("id_col", "title_col", "image_col", "category_col", "group_col",
                "image_template", "encoding", "duplicate_ids", "alias_col")


def fill_catalog_from_record(args: argparse.Namespace, manifest: dict) -> list[str]:
    """Catalog column options left at their defaults taken from how the model's catalog was
    read (its manifest's ``data.catalog``); the image root too when the build named one
    (not the catalog's own folder). Returns one line per value taken."""
    rec = ((manifest or {}).get("data") or {}).get("catalog") or {}
    p = argparse.ArgumentParser(add_help=False)
    add_catalog_options(p, required=False)
    defaults = vars(p.parse_args([]))
    taken = []
    for key in CATALOG_KEYS:
        if key in rec and getattr(args, key) == defaults[key] and rec[key] != defaults[key]:
            setattr(args, key, rec[key])
            taken.append(f"--{key.replace('_', '-')} {rec[key]}")
    root, path = rec.get("image_root"), rec.get("path")
    if args.image_root is None and root and path \
            and os.path.realpath(root) != os.path.realpath(os.path.dirname(path)):
        args.image_root = root
        taken.append(f"--image-root {root}")
    return taken


def cmd_add(args) -> int:
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.model_folder import check_model_destination
    from prodfusion.recommender import Recommender

    t0 = time.perf_counter()
    out = check_model_destination(args.out or args.model, overwrite=False, option="--out")
    rec = Recommender.load(args.model)
    taken = fill_catalog_from_record(args, rec.manifest_)
    recorded = (((rec.manifest_ or {}).get("data") or {}).get("catalog") or {}).get(
        "recommend_rows")
    if args.recommend_rows is None and recorded:  # the build's; `--recommend-rows all`: none
        from prodfusion.data.interactions import format_keep_rows

        args.recommend_rows = recorded
        taken.append(format_keep_rows(recorded, "--recommend-rows"))
    if taken:
        print(f"from the model's record: {' '.join(taken)}", file=sys.stderr)
    retrain = bool(args.interactions or args.pairs or args.corpus)
    if args.corpus and (args.interactions or args.pairs):
        raise ParameterError("--corpus replaces --interactions/--pairs: give one or the other.")
    if retrain:
        _check_retrain(rec, args)
    catalog = load_catalog(args)
    offer_cols = _check_offer_cols(rec, catalog, args)  # the feed's dates read, before any work
    known = set(rec._ids.tolist())
    in_feed = set(catalog.ids.tolist())
    is_new = [p not in known for p in catalog.ids]
    n_known = len(is_new) - sum(is_new)
    _check_id_format(rec, catalog, is_new, args)
    _check_photo_paths(rec, catalog, args)
    changed = rec.changed_products(catalog) if n_known else None
    ids = rec._ids.tolist()
    gone = [p for p in ids if p not in in_feed]
    to_retire, back, unmatched = _retirements(rec, catalog, in_feed, args)
    missing = [p for p in to_retire if p not in in_feed]
    if len(missing) > len(rec.catalog) / 2:  # a feed read with the wrong --id-col, say
        raise ParameterError(
            f"--retire-missing would retire {len(missing):,} of the model's "
            f"{len(rec.catalog):,} products: {args.catalog} shares only "
            f"{len(rec.catalog) - len(gone):,} of their ids (e.g. {missing[:3]} are not in "
            f"it; its ids look like {catalog.ids[:3].tolist()}). Check --id-col; nothing was "
            "written. To retire that many: a feed listing them all with a column saying which "
            "are on sale and --recommend-rows (e.g. status=active), a rebuild from the feed, "
            "or Recommender.retire.")
    if gone and not args.retire_missing:
        retired_rows = rec.retired_ if rec.retired_ is not None else np.zeros(len(ids), bool)
        still = sum(not r for p, r in zip(ids, retired_rows, strict=True) if p not in in_feed)
        print(f"{len(gone):,} products of the model are not in {args.catalog}: "
              + (f"{still:,} still recommended (--retire-missing stops recommending them)"
                 if still else "all retired already")
              + (f", {len(gone) - still:,} retired already" if still and still < len(gone)
                 else ""), file=sys.stderr)
    update, same = None, 0
    if n_known and not args.keep_changed:
        _check_bulk_changes(changed, n_known, args)
    if getattr(args, "engine", "local") == "ray":
        _encode_first_on_ray(rec, catalog, is_new, None if args.keep_changed else changed, args)
    if n_known:
        if changed.height and not args.keep_changed:
            update, changed, same = _re_encode_changed(rec, catalog, changed, args)
            note = (f"; {same:,} photo files written since the model encoded them hold "
                    "the same photo") if same else ""
        else:
            note = ""
        print(f"{n_known:,} of {len(is_new):,} products of {args.catalog} are already in the "
              f"model: {_changed_line(changed, args.keep_changed)}{note}", file=sys.stderr)
    relocated = stamped = 0
    if n_known:  # photos found the same at another path: the model takes the feed's path
        from prodfusion.model_updates import adopt_web_stamps, relocate_photos

        relocated = relocate_photos(rec, catalog, set(changed["product_id"].to_list()))
        if relocated:
            print(f"{relocated:,} unchanged photos are now read from the feed's paths (e.g. "
                  "another --image-root): the model records them", file=sys.stderr)
        stamped = adopt_web_stamps(rec, catalog, set(changed["product_id"].to_list()))
        if stamped:
            print(f"{stamped:,} photos on web servers had no stamp in the model (built without "
                  "--check-photo-urls): what their servers say now is recorded, so a later "
                  "add --check-photo-urls finds them replaced", file=sys.stderr)
    retiring = bool(args.retire_missing or args.recommend_rows)
    dated = 0
    if offer_cols:  # a listing sold since: its end, for the tuning and evaluate
        from prodfusion.model_updates import copy_offer_times

        dated = copy_offer_times(rec, catalog)
        if dated:
            print(f"{dated:,} product{' of the model has' if dated == 1 else 's of the model have'}"
                  f" other {' / '.join(offer_cols)} "
                  f"times in {args.catalog} (--on-offer-cols): the model takes the feed's",
                  file=sys.stderr)
    if not any(is_new) and not to_retire and not back and update is None and not retrain \
            and not dated:
        msg = (f"nothing to add: every product of {args.catalog} is already in {args.model}"
               + (", unchanged" if not args.keep_changed else "")
               + (" and none is retired or recommended again" if retiring else ""))
        if same < VERIFIED_RECORD and not relocated and not stamped:
            print(msg + "; nothing was written.")
            return 0
        # many photo files rewritten with the same photos (an image folder synced again), or
        # photos at new paths: record the check, or every later add reads them all again
        done = []
        if same >= VERIFIED_RECORD:
            from prodfusion.model_updates import record_update

            record_update(rec, {"photos_verified": same})
            done.append(f"the check of {same:,} photo files")
        if relocated:
            done.append(f"the new paths of {relocated:,} photos")
        if stamped:
            done.append(f"the servers' stamps of {stamped:,} photos")
        rec.save(out)
        print(msg + f"; {' and '.join(done)} recorded in {out} (the next add does not read "
              "them again)")
        return 0
    new = Catalog(catalog.frame.filter(pl.Series(is_new)), source=catalog.source)
    if len(new) and "category" not in new.frame.columns \
            and getattr(rec, "category_", None) is not None:
        raise ParameterError(
            f"{args.catalog}: no category column ({args.category_col!r}), but the model "
            "fuses the category modality; name the column with --category-col.")
    n = len(new)
    n_changed = 0 if update is None else len(update[0])
    if update is not None:
        rec.update_products(*update)
    if n:
        embeddings = rec.encode_products(new, cache_dir=embedding_cache(args),
                                         batch_size=args.batch_size, progress=True)
        rec.add_products(new, embeddings)
    rec.retire(to_retire)
    rec.retire(back, retired=False)
    if retrain:
        retrained = _retrain_clicks(rec, args)
    rec.save(out)
    if not n:
        print(f"{out}: no new product; {n_changed:,} changed products re-encoded"
              + (f"; {_retired_line(to_retire, back, unmatched, args)}" if retiring else ""))
        if retrain:
            print(f"  {retrained}")
        return 0
    print(f"added {n:,} products to {out} ({len(rec.catalog):,} in all) in "
          f"{time.perf_counter() - t0:.1f}s")
    if n_changed:
        print(f"  {n_changed:,} changed products re-encoded")
    if retiring:
        print(f"  {_retired_line(to_retire, back, unmatched, args)}")
    if retrain:
        print(f"  {retrained}")
    for m in rec.embeddings_:
        e = embeddings.get(m)
        if retrain and m == "clicks":
            got = int(rec.embeddings_["clicks"].mask[-n:].sum())
            print(f"  clicks  {got:,}/{n:,}: from the sessions given")
            continue
        if e is None:
            why = {"clicks": "learned from sessions: none until the next build "
                          "(or add --interactions)"}.get(
                m, "not encoded (see the warning above)")
            if m == "image" and not any(new.image_paths):
                why = "the feed gives them no photo"
            print(f"  {m:<7} 0/{n:,}: {why}")
            continue
        info = e.info or {}
        extra = ""
        if m == "image" and (info.get("n_missing") or info.get("n_corrupt")):
            extra = f"; {info.get('n_missing', 0)} missing, {info.get('n_corrupt', 0)} corrupt"
        if m == "lexical" and e.n_present < n:
            extra = ("; the others have no title or no character n-gram of the model's "
                     "vocabulary (a rebuild learns new ones)")
        print(f"  {m:<7} {e.n_present:,}/{n:,}{extra}")
    for m in rec._pairwise():
        if m == "cooc" and not retrain:
            print(f"  cooc    0/{n:,}: counted from sessions, none until the next build "
                  "(or add --interactions)")
    same = (str(out) == str(args.model).strip().rstrip("/") if is_object_uri(out)
            else Path(out).resolve() == Path(args.model).resolve())
    print("  the new products are recommended by " + _recommended_by(rec, new, embeddings,
                                                                      retrain)
          + ("; a running `prodfusion serve` of this folder reloads it by itself" if same else
             f"; `prodfusion serve {out}` serves it" if is_object_uri(out) else
             f"; `prodfusion publish {out} LINK` puts it live for a service configured with "
             "LINK"))
    return 0


def _recommended_by(rec, new, embeddings: dict, retrain: bool) -> str:
    """What ranks the added products ``new``: what they got — titles, photos, their
    category where the model fuses it — not all the model has; the clicks of the sessions
    given where they retrained them; else the backfill."""
    have = [w for m, w in (("text", "titles"), ("lexical", "titles"), ("image", "photos"))
            if m in rec.embeddings_ and embeddings.get(m) is not None
            and embeddings[m].n_present]
    if "category" in rec._pairwise() and any(c is not None for c in new.categories or ()):
        have.append("category")
    by = ([f"their {' and '.join(dict.fromkeys(have))}"] if have else []) + (
        ["the clicks of the sessions given"] if retrain else [])
    return " and ".join(by) or "the backfill"


def _check_id_format(rec, catalog, is_new, args) -> None:
    """Refuse a feed whose new ids are mostly the model's ids written another way (leading
    zeros lost, ``.0``, case, spaces: an id column read as numbers): adding them would put
    every such product in the model twice. A few such ids are named on stderr."""
    from prodfusion.data.interactions import format_twins
    from prodfusion.errors import DataError

    new_ids = catalog.ids[np.asarray(is_new, bool)].tolist()
    twins = format_twins(new_ids, rec._ids.tolist()) if new_ids else []
    if not twins:
        return
    eg = ", ".join(f"{a!r} ~ {b!r}" for a, b in twins[:3])
    if 2 * len(twins) >= len(new_ids):
        raise DataError(
            f"{args.catalog}: {len(twins):,} of its {len(new_ids):,} new ids are ids of the "
            f"model written another way (e.g. {eg}: leading zeros, a trailing '.0', case or "
            "spaces), so adding them would put those products in the model twice. The feed's "
            "id column was probably read or written as numbers (a Parquet integer column, a "
            "spreadsheet); keep the ids as text, as the model has them. Nothing was written.")
    print(f"warning: {len(twins):,} of the {len(new_ids):,} new ids of {args.catalog} match "
          f"ids of the model written another way (e.g. {eg}); they are added as new "
          "products. Keep ids as text in every file.", file=sys.stderr)


def _encode_first_on_ray(rec, catalog, is_new, changed, args) -> None:
    """``--engine ray``: the titles and photos this ``add`` is about to encode (the new
    products, and those whose title or photo may have changed) are encoded on Ray Data first,
    with the model's encoders, into the embedding cache, where the local encoding then finds
    every vector — as ``build --engine ray`` does."""
    import polars as pl

    from prodfusion.cli.engine_options import encode_with_ray
    from prodfusion.data.catalog import ID, Catalog
    from prodfusion.errors import ProdfusionError

    ids = set(catalog.ids[np.asarray(is_new, bool)].tolist())
    if changed is not None and changed.height:
        ids |= set(changed.filter(pl.col("title") | pl.col("photo"))["product_id"].to_list())
    specs = {m: rec.embeddings_[m].spec if m in rec.embeddings_ else None
             for m in ("text", "image")}
    if not ids or not any(specs.values()):
        return
    cache = embedding_cache(args)
    if cache is None:
        raise ProdfusionError("--engine ray returns the vectors through the embedding cache; "
                              "drop --cache-dir none.")
    sub = Catalog(catalog.frame.filter(pl.col(ID).is_in(sorted(ids))), source=catalog.source)
    if not any(sub.image_paths):
        specs["image"] = None
    encode_with_ray(args, sub, specs, cache)


def _check_bulk_changes(changed, n_known: int, args) -> None:
    """Refuse a feed that changes the title or category of over half the products the model
    has: far more likely a wrong --title-col / --category-col than a day's edits (and a
    catalog-wide retitling wants a rebuild: the lexical vocabulary was fitted on the old
    titles)."""
    if n_known < 10:
        return
    for col, opt in (("title", "--title-col"), ("category", "--category-col")):
        n = int(changed[col].sum())
        if n > n_known / 2:
            raise ParameterError(
                f"{args.catalog}: the {col} of {n:,} of the {n_known:,} products the model has "
                f"differs from the model's (e.g. {changed.filter(changed[col])['product_id'][0]!r})"
                f"; read with {opt} {getattr(args, col + '_col')}. Check it; to change "
                "that many, rebuild the model, or pass --keep-changed to add only new "
                "products. Nothing was written.")


def _check_photo_paths(rec, catalog, args, sample: int = 200) -> None:
    """Refuse a feed whose photo paths mostly do not exist for products the model has a
    photo of (a feed in another folder with relative paths, a wrong --image-root): every
    new product would get no photo, and nothing tells a path problem from photos gone."""
    if "image" not in rec.embeddings_:
        return
    rows, found = rec.catalog.lookup(catalog.ids.tolist())
    paths = catalog.image_paths
    mask = rec.embeddings_["image"].mask
    from prodfusion.data.io import is_url

    # photos named by URL are fetched when encoded, not looked for here
    named = [i for i in np.flatnonzero(found) if paths[i] and mask[rows[i]]
             and not is_url(paths[i])]
    if len(named) < 5:
        return
    pick = np.random.default_rng(0).choice(named, size=min(sample, len(named)), replace=False)
    gone = [paths[i] for i in pick if not os.path.exists(paths[i])]
    if len(gone) > len(pick) / 2:
        raise ParameterError(
            f"{args.catalog}: {len(gone)} of {len(pick)} photo files it names for products the "
            f"model has a photo of do not exist (e.g. {gone[0]}; the model read "
            f"{rec.catalog.image_paths[rows[pick[0]]]}). Check --image-root / "
            "--image-template; nothing was written.")


def _check_retrain(rec, args) -> None:
    """``--interactions`` / ``--pairs`` need a model that learns from sessions; the column
    options left at their defaults are taken from the model's record."""
    from prodfusion.sources import fill_from_manifest

    if "clicks" not in rec.embeddings_ and getattr(rec, "cooc_", None) is None:
        raise ParameterError(
            f"--interactions: {args.model} has no click or co-occurrence modality to learn "
            "from sessions; rebuild it with `prodfusion build ... --interactions FILE`.")
    if not args.corpus:  # a corpus file was cleaned already: no column options
        p = argparse.ArgumentParser(add_help=False)
        add_interaction_options(p)
        taken = fill_from_manifest(args, rec.manifest_, vars(p.parse_args([])))
        if taken:
            print(f"from the model's record: {' '.join(taken)}", file=sys.stderr)
    rec_files = ((rec.manifest_ or {}).get("data") or {}).get("interactions") or {}
    for opt, key in (("interactions", "path"), ("pairs", "pairs"), ("corpus", "corpus")):
        if rec_files.get(key) and not getattr(args, opt):
            print(f"note: the model also learned from --{opt} {rec_files[key]}; the sessions "
                  f"given replace what it learned from (pass --{opt} again to keep it)",
                  file=sys.stderr)


def _retrain_clicks(rec, args) -> str:
    """Retrain Prod2Vec and recount co-occurrences on the sessions given (the grown
    catalog's products); record the files. Returns the line to print."""
    from prodfusion.sources import sources_from_args

    t = time.perf_counter()
    if args.corpus:  # cleaned beforehand (`prodfusion corpus`, on Ray at scale)
        from prodfusion.engine.corpus import CorpusFile

        sessions = CorpusFile(args.corpus)
    else:
        sessions = load_sessions(args, rec.catalog)
    if not args.replace_clicks:
        _check_history(rec, sessions, args)
    rec.rebuild_clicks(sessions)
    data = rec.manifest_.setdefault("data", {})
    data["interactions"] = sources_from_args(args)["interactions"]  # as build records it
    if getattr(rec, "data_sources_", None):
        rec.data_sources_["interactions"] = data["interactions"]
    e = rec.embeddings_["clicks"] if "clicks" in rec.embeddings_ else None
    what = [f"Prod2Vec retrained ({e.n_present:,} of {len(rec.catalog):,} products with a "
            "click vector)" if e is not None else None,
            "co-occurrences counted again" if getattr(rec, "cooc_", None) is not None
            else None]
    return (f"clicks: {len(sessions):,} sessions; " + ", ".join(w for w in what if w)
            + f" in {time.perf_counter() - t:.1f}s; " + _weights_note(rec))


def _check_history(rec, sessions, args) -> None:
    """Refuse sessions that cover under half the products the model has training clicks
    for: the sessions given replace the model's, so a day's clicks passed as if they were
    added to the history would take the click vectors (and co-occurrences) of every other
    product away."""
    counts = getattr(rec, "click_counts_", None)
    if counts is None:
        return
    clicked = np.flatnonzero(np.asarray(counts) > 0)
    if not len(clicked):
        return
    seen = sessions.product_counts()
    ids = rec._ids
    kept = sum(1 for i in clicked if ids[i] in seen)
    if kept < len(clicked) / 2:
        given = args.corpus or " ".join(f"--{o} {getattr(args, o)}" for o in
                                        ("interactions", "pairs") if getattr(args, o))
        raise ParameterError(
            f"{given}: its {len(sessions):,} sessions name {kept:,} of the {len(clicked):,} "
            f"products the model has training clicks for; they replace the sessions the model "
            f"learned from, so the other {len(clicked) - kept:,} would lose their click vectors "
            "and co-occurrences. Give the whole history, the new clicks included (or pass "
            "--replace-clicks to retrain on these sessions alone). Nothing was written.")


def _weights_note(rec) -> str:
    """What ``add --interactions`` did to the weights: kept, whether tuned or not."""
    m = rec.manifest_ or {}
    if m.get("tuning") or (m.get("settings") or {}).get("profiles"):
        return ("the weights kept (tuned on the old sessions: `prodfusion tune` to choose "
                "them again)")
    return "the weights kept (the model was not tuned: `prodfusion tune` chooses them)"


def _re_encode_changed(rec, catalog, changed, args):
    """Re-encode the changed products: ``(update, changed, n_same)``, where ``update`` is
    the catalog rows and vectors for ``update_products`` (``None`` when nothing is left),
    ``changed`` the table without the photos found unchanged, and ``n_same`` how many photo
    files written since the model encoded them hold the same photo (the new vector the
    model's own, cosine >= 0.9999): a product whose only change was that is left out. With
    an embedding cache an unchanged photo costs a read, not an encoding."""
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.model_updates import encode_for_update, photo_stamps, set_photo_stamps

    wanted = set(changed["product_id"].to_list())
    sub = Catalog(catalog.frame.filter(pl.Series([p in wanted for p in catalog.ids])),
                  source=catalog.source)
    # before the photos are read: what a photo found unchanged is stamped with
    stamps = photo_stamps(sub.image_paths) if "image" in rec.embeddings_ else None
    # both in the feed's order: changed_products keeps it, the filter too
    emb = encode_for_update(rec, sub, cache_dir=embedding_cache(args),
                            batch_size=args.batch_size, progress=True)
    photo = changed["photo"].to_numpy().copy()
    if "image" in rec.embeddings_:
        rows, _ = rec.catalog.lookup(sub.ids.tolist())
        old, new = rec.embeddings_["image"], emb["image"]
        for i in np.flatnonzero(photo):
            r = rows[i]
            if bool(old.mask[r]) != bool(new.mask[i]):
                continue
            a = np.asarray(old.vectors[r], np.float64)
            b = np.asarray(new.vectors[i], np.float64)
            same = not new.mask[i] or \
                a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30) >= 0.9999
            photo[i] = not same
        verified = np.flatnonzero(changed["photo"].to_numpy() & ~photo)
        if len(verified):  # the same photo in a rewritten file: not read again next time
            set_photo_stamps(rec, rows[verified], stamps[verified])
    n_same = int(changed["photo"].sum() - photo.sum())
    changed = changed.with_columns(pl.Series("photo", photo))
    keep = (changed["title"] | changed["photo"] | changed["category"]).to_numpy()
    changed = changed.filter(pl.Series(keep))
    if not keep.any():
        return None, changed, n_same
    if keep.all():
        return (sub, emb), changed, n_same
    idx = np.flatnonzero(keep)
    return (sub.take(idx), {m: e.take(idx) for m, e in emb.items()}), changed, n_same


def _changed_line(changed, keep: bool) -> str:
    """What ``add`` does with the products it has whose title, photo or category changed."""
    if not len(changed):
        return "none changed"
    photos = "photo files written since (not compared)" if keep else "photos"
    why = ", ".join(f"{label} {int(changed[c].sum()):,}" for c, label in
                    (("title", "titles"), ("photo", photos), ("category", "categories"))
                    if changed[c].any())
    return (f"{len(changed):,} changed since the model last encoded them ({why}): "
            + ("kept as they are (--keep-changed)" if keep else "re-encoded by the model's "
               "encoders (clicks and co-occurrences kept)"))


def _check_offer_cols(rec, catalog, args) -> list[str]:
    """The model's ``--on-offer-cols`` (:attr:`~prodfusion.Recommender.on_offer_cols`) the
    feed has, its times read as the build read them (a value that does not read: refused
    before any work); those it lacks are said, and keep the model's values."""
    from prodfusion.data.offer import offer_cols_of, offer_times

    both = offer_cols_of(rec)
    cols = [c for c in (both or ()) if c]
    if not cols:
        return []
    have = [c for c in cols if c in catalog.frame.columns]
    if len(have) < len(cols):
        print(f"{args.catalog} has no column {' or '.join(repr(c) for c in cols if c not in have)}"
              " of the model's --on-offer-cols: the times the model has stay (new products: "
              "none)", file=sys.stderr)
    if have:
        offer_times(catalog, tuple(c if c in have else None for c in both),
                    time_format=getattr(rec, "on_offer_time_format", None), where="add")
    return have


def _retirements(rec, catalog, in_feed: set, args) -> tuple[list, list, list]:
    """The products to retire, those to recommend again, and (of the first) those the
    feed lists without ``--recommend-rows``'s values (new ones included): a product the
    feed lists is recommended where its row matches ``--recommend-rows`` (without it: where
    ``--retire-missing`` is given); one it does not list is retired with ``--retire-missing``."""
    from prodfusion.pipeline import recommended_rows

    matches = recommended_rows(args, catalog, "add")  # None: no --recommend-rows
    if matches is None and not args.retire_missing:
        return [], [], []
    wanted = None if matches is None else dict(zip(catalog.ids.tolist(), matches.tolist(),
                                                   strict=True))
    ids = rec._ids.tolist()
    retired = rec.retired_ if rec.retired_ is not None else np.zeros(len(ids), bool)
    to_retire, back, unmatched = [], [], []
    for p, r in zip(ids, retired, strict=True):
        if p in in_feed:
            if wanted is None and not args.retire_missing:
                continue
            should = True if wanted is None else wanted[p]
        elif args.retire_missing:
            should = False
        else:
            continue
        if should and r:
            back.append(p)
        elif not should and not r:
            to_retire.append(p)
            if p in in_feed:
                unmatched.append(p)
    if wanted is not None:  # new products the feed lists as not to be recommended
        known = set(ids)
        new = [p for p, ok in wanted.items() if not ok and p not in known]
        to_retire += new
        unmatched += new
    return to_retire, back, unmatched


def _retired_line(to_retire, back, unmatched, args) -> str:
    """What ``add`` retired and recommended again, and why."""
    from prodfusion.data.interactions import format_keep_rows

    missing = len(to_retire) - len(unmatched)
    parts = []
    if args.retire_missing:
        parts.append(f"{missing:,} products no longer in the feed retired")
    if args.recommend_rows:
        parts.append(f"{len(unmatched):,} of the feed's products without "
                     f"{format_keep_rows(args.recommend_rows, None)} retired")
    return (", ".join(parts) + f" (never recommended; their own lists still served), "
            f"{len(back):,} back in the feed recommended again")


def add_add_parser(sub) -> None:
    a = sub.add_parser(
        "add", help="a day's feed into a model without a rebuild: new products, changed "
                    "ones re-encoded, (optionally) new clicks",
        description="Append the products of a catalog file that the model does not have yet, "
                    "encoded by the model's own text, image and lexical encoders, and "
                    "re-encode the products it has whose title, photo or category changed "
                    "(the others are left as they are); the folder is replaced atomically. "
                    "New products have no clicks until the next build, or until "
                    "--interactions / --pairs retrain the click vectors and recount the "
                    "co-occurrences on the sessions given (weights kept). With "
                    "--retire-missing, the products the feed no longer lists stop being "
                    "recommended.")
    a.add_argument("model", help="model folder (from `prodfusion build`)")
    add_catalog_options(a)
    a.add_argument("--retire-missing", action="store_true",
                   help="also stop recommending the model's products that the feed no longer "
                        "lists (discontinued; their vectors and own lists are kept), and "
                        "recommend again retired ones that are back in it")
    add_recommend_rows_option(a, ("recommend only the feed's products with one of these values in "
                              "COLUMN (e.g. status=active), retiring the others, new ones "
                              "included, and recommending again retired ones that match; "
                              "default: the build's --recommend-rows (all: none, every "
                              "product of the feed left as it is)"))
    a.add_argument("--keep-changed", action="store_true",
                   help="leave the products the model has as they are even when the feed "
                        "changed their title, photo or category (by default they are "
                        "re-encoded; a photo file written after the model's build or latest "
                        "update counts as changed when its new vector differs from the "
                        "model's)")
    a.add_argument("--out", default=None,
                   help="write the grown model here instead of replacing MODEL")
    add_encoding_options(a)
    add_interaction_options(a)
    a.add_argument("--corpus", default=None, metavar="FILE",
                   help="retrain the clicks from a corpus file written by `prodfusion corpus` "
                        "(instead of --interactions/--pairs; clean it against today's feed so "
                        "that new products keep their clicks)")
    a.add_argument("--replace-clicks", action="store_true",
                   help="retrain the clicks on the sessions given even when they name under "
                        "half the products the model has training clicks for (refused "
                        "otherwise: they replace the model's sessions)")
    add_engine_options(a)
    a.epilog = ("With --interactions (and/or --pairs) the click vectors are trained again "
                "and the co-occurrences counted again on those sessions, which replace the "
                "ones the model learned from: give the whole history, new products' clicks "
                "included. The column options not given are the model's; its weights are "
                "kept.")
    a.set_defaults(func=cmd_add)
