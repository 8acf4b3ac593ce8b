"""Options and loaders shared by several commands: the catalog, the interactions, caches."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager

from prodfusion.errors import DataError, ProdfusionError
from prodfusion.pipeline import none_or  # noqa: F401  (the CLI's name for it)
from prodfusion.sources import DEFAULT_PAIR_COLS

__all__ = [
    "check_local_outputs",
    "photo_workers",
    "csv_list",
    "duration",
    "session_gap",
    "KeepRows",
    "read_log",
    "none_or",
    "add_catalog_options",
    "add_interaction_options",
    "add_encoding_options",
    "load_catalog",
    "load_sessions",
    "embedding_cache",
    "default_cache_dir",
]


def csv_list(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def duration(s: str) -> float:
    """``--session-gap``: a pause as seconds (``30m``, ``2h``, ``90``; argparse type); ``0``
    or ``none``: no cut (0.0), which overrides a gap the model's record holds."""
    from prodfusion.data.interactions import parse_duration
    from prodfusion.errors import ParameterError

    if s.strip().lower() in ("0", "none", "off"):
        return 0.0
    try:
        return parse_duration(s)
    except ParameterError:
        raise argparse.ArgumentTypeError(
            f"{s!r} is not a positive duration: seconds, or a number with s, m, h or d "
            "(e.g. 30m)") from None


class KeepRows(argparse.Action):
    """``--keep-rows COLUMN=VALUE[,VALUE…]`` (repeatable, one column each) into
    ``{column: [values]}``; ``all``: ``{}``, every row, which overrides a filter the model's
    record holds."""

    def __call__(self, parser, namespace, value, option_string=None):
        from prodfusion.data.interactions import parse_keep_rows
        from prodfusion.errors import ParameterError

        current = dict(getattr(namespace, self.dest, None) or {})
        if value.strip().lower() in ("all", "none"):
            setattr(namespace, self.dest, {})
            return
        try:
            new = parse_keep_rows([value], option_string)
        except ParameterError:
            parser.error(f"{option_string} {value!r}: expected COLUMN=VALUE[,VALUE...] "
                         "(e.g. event=view,addtocart), or all")
        col = next(iter(new))
        if col in current:
            parser.error(f"{option_string}: column {col!r} named twice; list its values in "
                         f"one: {col}={','.join(current[col] + new[col])}")
        setattr(namespace, self.dest, {**current, **new})


def read_log(args):
    """``--interactions`` read with the interaction options (``build``, ``tune``,
    ``evaluate``, ``add``, ``stats``)."""
    import sys

    from prodfusion.data.interactions import format_keep_rows, read_interactions_counted

    keep = getattr(args, "keep_rows", None)
    frame, n_read = read_interactions_counted(
        args.interactions, session_cols=tuple(args.session_cols), item_col=args.item_col,
        time_col=args.time_col, sep=args.sep, keep_rows=keep,
        time_format=getattr(args, "time_format", None),
        encoding=getattr(args, "interactions_encoding", None))
    if keep:
        print(f"{format_keep_rows(keep)}: {frame.height:,} of {n_read:,} rows read",
              file=sys.stderr)
    return frame


def session_gap(args) -> float | None:
    """``--session-gap`` (seconds or None) for ``--interactions`` (None without them: pairs
    are never cut), refused before any reading where it cannot be measured: without
    ``--time-col``, or with several time columns (ranked, not times)."""
    gap = getattr(args, "session_gap", None) or None  # 0: no cut
    if gap is None or not getattr(args, "interactions", None):
        return None  # nothing to cut: --pairs have no times (a gap from the record stays)
    cols = csv_list(args.time_col or "")
    if len(cols) != 1:
        raise ProdfusionError(
            "--session-gap measures pauses between a key's clicks, so it needs one --time-col "
            "of times (ISO datetimes or Unix times)"
            + (f"; {','.join(cols)} are several columns, which are ranked, not read as times."
               if cols else "; none is given."))
    return gap


def add_catalog_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    g = p.add_argument_group("catalog")
    g.add_argument("--catalog", required=required, help="CSV/TSV/Parquet/JSONL catalog file")
    g.add_argument("--id-col", default="product_id", help="product id column (kept as a string)")
    g.add_argument("--title-col", default="title")
    g.add_argument("--image-col", default="image", help="image path column (if any)")
    g.add_argument("--category-col", default="category", help="category column (optional)")
    g.add_argument("--group-col", default=None, help="variation-group column (optional)")
    g.add_argument("--alias-col", default=None,
                   help="a column of other names by which click logs may name a product (a "
                        "variant's SKU, an EAN); with --duplicate-ids first, every row's")
    g.add_argument("--image-root", default=None, help="folder image paths are relative to")
    g.add_argument("--image-template", default=None,
                   help="build image paths from columns, e.g. '{product_id}.jpg'")
    g.add_argument("--encoding", default=None,
                   help="the catalog file's text encoding when it is not UTF-8, e.g. cp1252 "
                        "(saved on Windows in Western Europe) or latin-1")
    g.add_argument("--duplicate-ids", default="error", choices=["error", "first"],
                   help="a product id on several rows: refuse the file (default) or keep each "
                        "id's first row ('first': exports that list variants or further photos "
                        "on rows of their own, such as Shopify's)")


def fill_interactions_from_record(args: argparse.Namespace, rec) -> None:
    """Interaction options left at their defaults taken from the model's record (what the
    build read), as ``evaluate`` and ``tune`` do; one stderr line says what was taken."""
    import sys

    from prodfusion.sources import fill_from_manifest

    p = argparse.ArgumentParser(add_help=False)
    add_interaction_options(p)
    given = [opt for opt in ("interactions", "pairs") if getattr(args, opt, None)]
    taken = fill_from_manifest(args, rec.manifest_, vars(p.parse_args([])))
    if taken:
        print(f"from the model's record: {' '.join(taken)}", file=sys.stderr)
    recorded = ((rec.manifest_ or {}).get("data") or {}).get("interactions") or {}
    left = [f"--{opt} {recorded[key]}" for opt, key in (("interactions", "path"),
                                                         ("pairs", "pairs"))
            if given and opt not in given and recorded.get(key)]
    if left:  # files are taken from the record only when none is given
        print(f"not used: the build also read {' '.join(left)}; pass it again to use it",
              file=sys.stderr)


def add_interaction_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("interactions (sessions of anonymous clicks)")
    g.add_argument("--interactions", default=None,
                   help="CSV/TSV/Parquet of (session, product[, time]), or a folder of such "
                        "files (e.g. one a day: read in name order, a session spanning files "
                        "one session)")
    g.add_argument("--session-cols", default="session_id", type=csv_list,
                   help="session key column(s), comma-separated, e.g. customer_id,t_dat")
    g.add_argument("--item-col", default="product_id", help="product id column of the interactions")
    g.add_argument("--time-col", default=None, help="timestamp column(s), comma-separated")
    g.add_argument("--time-format", default=None, metavar="FORMAT",
                   help="strptime layout of --time-col when it holds neither numbers nor ISO "
                        "times, e.g. '%%d.%%m.%%Y %%H:%%M' or '%%m/%%d/%%Y %%I:%%M %%p' (UTC "
                        "unless %%z reads an offset)")
    g.add_argument("--sep", default=None, help="field separator (default: from the extension/sniffed)")
    g.add_argument("--interactions-encoding", default=None, metavar="ENCODING",
                   help="the text encoding of --interactions and --pairs when it is not UTF-8, "
                        "e.g. cp1252 (a log exported on Windows in Western Europe)")
    g.add_argument("--pairs", default=None,
                   help="co-interaction pairs file (e.g. H&M copurchase.csv): each row a 2-click session")
    g.add_argument("--pair-cols", default=",".join(DEFAULT_PAIR_COLS), type=csv_list,
                   help="the two product columns of --pairs")
    g.add_argument("--min-session-length", type=int, default=2)
    g.add_argument("--max-session-length", type=int, default=200,
                   help="cap very long sessions (0 = no cap)")
    g.add_argument("--keep-rows", action=KeepRows, default=None,
                   metavar="COLUMN=VALUE[,VALUE...]",
                   help="only the rows with one of these values in COLUMN, e.g. "
                        "event=view,addtocart for a log of several event types (repeat for "
                        "another column; values compared as text; all: every row, also over "
                        "a filter the model's record holds); not for --pairs")
    g.add_argument("--session-gap", type=duration, default=None, metavar="DURATION",
                   help="a log keyed by visitor (cookie, device) rather than by visit: cut "
                        "each key's clicks where they pause longer than this (e.g. 30m, 2h; "
                        "a bare number is seconds) into sessions; needs one --time-col "
                        "(ISO datetimes, or Unix times: s, or ms/µs/ns recognised by size); "
                        "0: none, also over a gap the model's record holds")


def add_encoding_options(p: argparse.ArgumentParser) -> None:
    """``--batch-size``, ``--cache-dir``, ``--cache-dtype``: how titles and photos are
    encoded (``build``, ``add``)."""
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cache-dir", default=default_cache_dir(),
                   help="embedding cache ('none' to disable; default %(default)s); a folder "
                   "in a bucket (s3://…) is mirrored locally and saved back when the command "
                   "ends")
    p.add_argument("--cache-dtype", default="float32", choices=["float32", "float16"],
                   help="how the embedding cache stores new vectors (float16: half the disk; "
                        "see docs/encoders.md)")
    p.add_argument("--photo-workers", type=_photo_workers, default=None, metavar="N",
                   help="threads fetching photos named by URL or in a bucket (default 16, or "
                        "$PRODFUSION_PHOTO_WORKERS; more where a GPU encodes faster than "
                        "they arrive)")
    p.add_argument("--check-photo-urls", action="store_true",
                   help="ask the web server of each photo named by URL (a HEAD request) for "
                        "its ETag or Last-Modified, so a photo replaced under the same URL is "
                        "found by `add` and encoded again (also $PRODFUSION_CHECK_PHOTO_URLS=1); "
                        "give it to the build and every add")


def _photo_workers(text: str) -> int:
    """``--photo-workers`` (argparse type): a whole number from 1 to 1024."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"a whole number of threads from 1 to 1024, got "
                                         f"{text!r}")
    return int(text)


@contextmanager
def photo_workers(args):
    """``--photo-workers N`` and ``--check-photo-urls`` for the command:
    ``$PRODFUSION_PHOTO_WORKERS`` and ``$PRODFUSION_CHECK_PHOTO_URLS`` set while it runs (what
    the image encoders read), restored after."""
    from prodfusion.data.photos import CHECK_URLS_ENV
    from prodfusion.encoders.image import PHOTO_WORKERS_ENV, web_stamps_asked_once

    n = getattr(args, "photo_workers", None)
    wanted = {PHOTO_WORKERS_ENV: None if n is None else str(n),
              CHECK_URLS_ENV: "1" if getattr(args, "check_photo_urls", False) else None}
    before = {k: os.environ.get(k) for k, v in wanted.items() if v is not None}
    os.environ.update({k: v for k, v in wanted.items() if v is not None})
    try:
        with web_stamps_asked_once():  # one HEAD per web photo for the whole command
            yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_catalog(args):
    from prodfusion.data import read_catalog

    return read_catalog(
        args.catalog, id_col=args.id_col, title_col=args.title_col, image_col=args.image_col,
        category_col=args.category_col, group_col=args.group_col, image_root=args.image_root,
        image_template=args.image_template, encoding=getattr(args, "encoding", None),
        duplicate_ids=getattr(args, "duplicate_ids", None) or "error",
        alias_col=getattr(args, "alias_col", None),
    )


def load_sessions(args, catalog):
    """Read --interactions and/or --pairs and clean them into Sessions (None if neither)."""
    import polars as pl

    from prodfusion.data import clean_sessions, read_pairs

    frames = []
    gap = session_gap(args)  # refused before reading
    if args.interactions:
        frames.append(read_log(args))
    if args.pairs:
        if len(args.pair_cols) != 2:
            raise ProdfusionError(f"--pair-cols needs exactly two columns, got {args.pair_cols}.")
        pf = read_pairs(args.pairs, a_col=args.pair_cols[0], b_col=args.pair_cols[1], sep=args.sep,
                        encoding=getattr(args, "interactions_encoding", None))
        # Keep pair sessions apart from click sessions that might share a key.
        frames.append(pf.with_columns((pl.lit("pairs\x1f") + pl.col("session")).alias("session")))
    if not frames:
        return None
    inter = frames[0] if len(frames) == 1 else pl.concat(
        [f.with_columns(pl.col("ts").cast(pl.Float64)) for f in frames], how="vertical_relaxed")
    sessions = clean_sessions(
        inter, catalog, min_length=args.min_session_length,
        max_length=args.max_session_length or None, session_gap=gap,
    )
    if args.interactions and gap is None and len(csv_list(args.time_col or "")) == 1:
        # one time column: times, not ranks, so a visitor's key shows in its pauses
        from prodfusion.data.interactions import long_pauses, warn_long_pauses

        warn_long_pauses(long_pauses(sessions), len(sessions),
                         f"--session-cols {','.join(args.session_cols)}")
    return sessions


def embedding_cache(args):
    """The command's embedding cache (None: ``--cache-dir none``; :func:`cache_folder`)."""
    folder = cache_folder(args)
    if folder is None:
        return None
    from prodfusion.encoders import EmbeddingCache

    return EmbeddingCache(folder, dtype=args.cache_dtype)  # a PathLike of the folder


def cache_folder(args):
    """The command's ``--cache-dir`` (None: ``none``). A folder in a bucket (``s3://…``) is
    mirrored into a local folder once per command
    (:class:`prodfusion.data.storage.FolderMirror`), that local folder returned, and
    :func:`save_cache_mirror` copies it back when the command ends."""
    if args.cache_dir in ("", "none"):
        return None
    from prodfusion.data.storage import is_object_uri

    folder = args.cache_dir
    if is_object_uri(folder):
        mirror = getattr(args, "cache_mirror_", None)
        if mirror is None:
            from prodfusion.data.photos import PhotoFetchError
            from prodfusion.data.storage import FolderMirror

            mirror = FolderMirror(folder)
            try:
                n = mirror.download()
            except PhotoFetchError as e:
                raise DataError(f"--cache-dir {folder}: cannot be read ({e}).") from None
            print(f"embedding cache {folder}: {n:,} file(s) downloaded into {mirror.local}",
                  file=sys.stderr)
            args.cache_mirror_ = mirror
        folder = mirror.local
    return folder


#: Commands whose ``--out`` may name a folder or object in a bucket (they upload it).
BUCKET_OUTPUTS = frozenset({"build", "add", "export"})


def check_local_outputs(args) -> None:
    """Refuse, before any work, a ``--out`` / ``--work-dir`` in a bucket (``s3://…``) of a
    command that writes a local file or folder (an evaluation report, a corpus, a demo, a
    categorizer…): it would be written to a local folder named ``s3:``."""
    from prodfusion.data.storage import is_object_uri
    from prodfusion.errors import ParameterError

    for attr, opt in (("out", "--out"), ("work_dir", "--work-dir")):
        value = getattr(args, attr, None)
        if not is_object_uri(value) or (attr == "out" and args.command in BUCKET_OUTPUTS):
            continue
        raise ParameterError(
            f"{opt} {value!r}: `prodfusion {args.command}` writes it locally; name a local "
            "path and copy it to the bucket afterwards. Model folders (`build --out`, `add "
            "--out`), lists (`export --out`) and the embedding cache (`--cache-dir`) go to a "
            "bucket themselves.")


def save_cache_mirror(args) -> None:
    """Copy a command's mirrored embedding cache back to its bucket (also after a failed or
    interrupted command: what it encoded is kept); a failure is a warning, not the
    command's."""
    mirror = getattr(args, "cache_mirror_", None)
    if mirror is None:
        return
    from prodfusion.data.photos import PhotoFetchError

    try:
        up, gone = mirror.upload()
    except PhotoFetchError as e:
        print(f"warning: embedding cache {mirror.uri}: not saved back ({e}); it is kept at "
              f"{mirror.local}", file=sys.stderr)
        return
    if up or gone:
        print(f"embedding cache {mirror.uri}: {up:,} file(s) uploaded, {gone:,} removed",
              file=sys.stderr)




def default_cache_dir() -> str:
    base = os.environ.get("PRODFUSION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "prodfusion")
    return base


def on_off(value: str) -> bool:
    """``on`` / ``off`` (also ``true`` / ``false``, ``yes`` / ``no``, ``1`` / ``0``) as a bool."""
    v = str(value).strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {value!r}")


def add_group_options(p, exclude: bool = True) -> None:
    """``--exclude-group`` (with ``exclude``) and ``--one-per-group [on|off]`` of the
    commands that list (``similar``; ``export`` has the second only)."""
    if exclude:
        p.add_argument("--exclude-group", action="store_true",
                       help="leave out the products of the query's group (--group-col at "
                            "build)")
    p.add_argument("--one-per-group", nargs="?", const=True, default=None, type=on_off,
                   metavar="on|off",
                   help="at most one product of each group (--group-col at build: a "
                        "product's colours, one product's offers keyed by EAN), the best "
                        "ranked, none of the query's own (default: the model's setting, "
                        "build --one-per-group)")


def add_recommend_rows_option(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--recommend-rows COLUMN=VALUE[,VALUE…]`` (``build``, ``add``): which catalog rows
    may be listed, parsed as ``--keep-rows`` is (:class:`KeepRows`)."""
    p.add_argument("--recommend-rows", action=KeepRows, default=None,
                   metavar="COLUMN=VALUE[,VALUE...]", help=help_text)


def add_on_offer_option(p, what: str) -> None:
    """``--on-offer-cols FROM[,UNTIL]|none`` of ``tune`` and ``evaluate retrieval``: the
    model's catalog columns of when each product was on offer (``build --on-offer-cols``),
    given or replaced for ``what``; ``none``: not read."""
    p.add_argument("--on-offer-cols", default=None, metavar="FROM[,UNTIL]|none",
                   help="the model's catalog columns of when each product went on offer and "
                        "left it (e.g. posted,sold_at), read as the log's times: each "
                        f"held-out click ranks the products on offer at its time; {what} "
                        "(default: the build's --on-offer-cols; none: not read)")


def apply_on_offer_option(args, rec, where: str) -> None:
    """Set ``rec.on_offer_cols`` from ``--on-offer-cols`` where given (checked against the
    model's catalog before any work: a column it lacks, a time that does not read)."""
    spec = getattr(args, "on_offer_cols", None)
    if spec is None:
        return
    if spec.strip().lower() == "none":
        rec.on_offer_cols = None
        return
    from prodfusion.data.offer import offer_times, parse_on_offer_cols

    cols = parse_on_offer_cols(spec, where)
    fmt = getattr(args, "time_format", None) or getattr(rec, "on_offer_time_format", None)
    offer_times(rec.catalog, cols, time_format=fmt, where=where)
    rec.on_offer_cols, rec.on_offer_time_format = cols, fmt
