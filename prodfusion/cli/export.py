"""``prodfusion export``: every product's top-k list into one Parquet file.

Registered by :mod:`prodfusion.cli` through :func:`add_export_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys

from prodfusion._checks import FUSION_METHODS
from prodfusion.cli.engine_options import add_engine_options, executor_from_args
from prodfusion.cli.options import add_group_options, csv_list

__all__ = ["add_export_parser"]


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from prodfusion.batch.export import check_store_output, export_lists, publish, staged
    from prodfusion.batch.lists import FLAT_FORMATS, write_flat_lists
    from prodfusion.data.storage import is_object_uri
    from prodfusion.errors import ParameterError

    remote = is_object_uri(args.out)
    suffix = Path(args.out.split("?", 1)[0] if remote else args.out).suffix.lower()
    flat = suffix in FLAT_FORMATS
    if args.update:
        if flat:
            raise ParameterError(
                f"--out {args.out}: --update writes a Parquet lists file (as the one it "
                "updates); name a .parquet --out, or export in full without --update for a "
                f"{suffix} file.")
        return _cmd_update(args)
    if suffix not in (".parquet", ".pq") and not flat:
        print(f"warning: {args.out}: the lists are written as Parquet whatever the file's "
              "name (read them with pyarrow, polars or pandas.read_parquet; a .csv, .tsv or "
              ".jsonl --out writes one row per recommendation)", file=sys.stderr)
    if remote:  # computed into a local staging file (resumable there), uploaded at the end
        check_store_output(args.out, "--out")
    out = staged(args.out, args.model) if remote else Path(args.out)
    # a flat file: the lists computed into a hidden Parquet file beside it (resumable as any
    # export), then written one row per recommendation and the Parquet file removed
    lists = out.with_name(f".{out.name}.parquet") if flat else out
    executor = executor_from_args(args)
    try:
        rep = export_lists(
            args.model, lists, k=15 if args.k is None else args.k, fusion=args.fusion,
            modalities=args.modalities, batch_size=args.batch_size, start=args.start,
            stop=args.stop, executor=executor, resume=not args.restart,
            progress=False if args.quiet else None, explain=args.explain,
            profile=args.profile, one_per_group=args.one_per_group)
        where = executor.describe()
    finally:
        executor.close()
    tail = f"({rep['batches']} batches computed, {rep['reused']} reused)"
    if flat:
        rows = write_flat_lists(lists, out)
        lists.unlink()
        rep["out"] = str(args.out)
        tail += (f"; {rows:,} rows: product_id, rank, recommended_id, score"
                 + (", share_* (explain)" if args.explain else "")
                 + " (`serve --lists` and `export --update` read a .parquet export)")
    if remote:
        publish(out, args.out)
        rep["out"] = args.out.strip()
        if not flat:
            tail += " (`serve --lists` reads a local copy)"
    _report(args, rep, tail, where)
    return 0


def _report(args, rep: dict, tail: str, where: str) -> None:
    """The report as JSON on stdout (--json), else one line on stderr ending in ``tail``."""
    if args.json:
        print(json.dumps(rep, indent=2))
        return
    m = rep["meta"]
    prof = f", profile {m['profile']}" if m.get("profile") else ""
    prof += ", one product per group" if m.get("one_per_group") else ""
    print(f"wrote {rep['products']:,} lists (k={m['k']}, {m['fusion']} over "
          f"{'+'.join(m['modalities'])}{prof}) to {rep['out']} in {rep['seconds']:.1f}s on "
          f"{where} {tail}", file=sys.stderr)


def _cmd_update(args: argparse.Namespace) -> int:
    """``export --update PREVIOUS``: the previous file's settings, its still valid lists."""
    from prodfusion.batch.export import local_lists, update_lists
    from prodfusion.batch.lists import read_lists_meta
    from prodfusion.errors import ParameterError

    meta = read_lists_meta(local_lists(args.update))  # a file in a bucket: its local copy
    given = {"-k": (args.k, meta.get("k")), "--fusion": (args.fusion, meta.get("fusion")),
             "--modalities": (list(args.modalities) if args.modalities else None,
                              meta.get("modalities")),
             "--profile": (args.profile, meta.get("profile")),
             "--explain": (args.explain or None, bool(meta.get("explain")) or None),
             "--one-per-group": (None if args.one_per_group is None else _on(args.one_per_group),
                                 _on(meta.get("one_per_group", False)))}
    clash = [f"{opt} {mine!r} (the file: {theirs!r})" for opt, (mine, theirs) in given.items()
             if mine is not None and mine != theirs]
    if clash or args.start or args.stop is not None or args.restart:
        what = ", ".join(clash) or "--start / --stop / --restart"
        raise ParameterError(
            f"--update {args.update}: keeps that file's settings and covers every product; "
            f"{what} cannot apply. Leave them out, or export in full without --update.")
    executor = executor_from_args(args)
    try:
        rep = update_lists(args.model, args.update, args.out, batch_size=args.batch_size,
                           executor=executor, progress=False if args.quiet else None)
        where = executor.describe()
    finally:
        executor.close()
    _report(args, rep, f"— {rep['recomputed']:,} recomputed (products added or re-encoded "
            f"since {args.update} was exported, lists holding a re-encoded or retired "
            f"product, lists one of them enters), {rep['kept']:,} kept as they were", where)
    return 0


def _on(value) -> str:
    return "on" if value else "off"


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``export`` to ``subparsers``."""
    e = subparsers.add_parser(
        "export", help="write every product's top-k list to a Parquet file (batch, resumable)",
        description="Compute the k most similar products of every product of a model and write "
        "them to one Parquet file (product_id, ids, scores), atomically. Interrupted exports "
        "resume from their finished batches. Serve the file with `prodfusion serve --lists`.")
    e.add_argument("model", help="model folder written by `prodfusion build`")
    e.add_argument("--out", required=True,
                   help="file to write: .parquet (one row per product, its list; what `serve "
                        "--lists` reads), or .csv, .tsv, .jsonl (one row per recommendation: "
                        "product_id, rank, recommended_id, score); or an object in a bucket "
                        "(s3://…: computed into a local staging file, then uploaded)")
    e.add_argument("-k", type=int, default=None, help="list length (default 15)")
    e.add_argument("--fusion", default=None, choices=FUSION_METHODS,
                   help="default: the model's")
    e.add_argument("--modalities", default=None, type=csv_list, help="default: the model's")
    e.add_argument("--profile", default=None,
                   help="rank by one of the model's weighting profiles (`prodfusion tune "
                        "--profile NAME`); default: its default weighting")
    e.add_argument("--batch-size", type=int, default=4096, help="products per batch / part file")
    e.add_argument("--start", type=int, default=0, help="first catalog row to export")
    e.add_argument("--stop", type=int, default=None, help="end (exclusive) of the rows to export")
    e.add_argument("--restart", action="store_true",
                   help="discard the finished batches of an interrupted export")
    e.add_argument("--explain", action="store_true",
                   help="also write share_<modality> columns: each modality's part of each score")
    add_group_options(e, exclude=False)
    e.add_argument("--update", default=None, metavar="PREVIOUS",
                   help="a lists file exported from this model before a `prodfusion add`: "
                        "recompute only the lists that changed (products added or "
                        "re-encoded since, lists holding a re-encoded or retired product or "
                        "that one of them enters), keep the others, with its settings: the "
                        "same file as a full export; --out may be PREVIOUS itself. "
                        "Refused when every list may have changed (clicks retrained, weights "
                        "tuned, model rebuilt)")
    e.add_argument("--quiet", action="store_true", help="no progress output")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    add_engine_options(e)
    e.set_defaults(func=cmd_export)
    return e
