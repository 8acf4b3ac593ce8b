"""``prodfusion corpus``: many interaction files -> one cleaned Prod2Vec corpus file.

Registered by :mod:`prodfusion.cli` through :func:`add_corpus_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys

from prodfusion.cli.engine_options import add_engine_options, executor_from_args
from prodfusion.cli.options import KeepRows, add_catalog_options, csv_list, duration, load_catalog

__all__ = ["add_corpus_parser"]


def cmd_corpus(args: argparse.Namespace) -> int:
    from prodfusion.engine.corpus import prepare_corpus

    catalog = load_catalog(args) if args.catalog else None
    executor = executor_from_args(args, default_cpus=0.5)
    try:
        corpus = prepare_corpus(
            args.sources, args.out, catalog=catalog, session_cols=tuple(args.session_cols),
            item_col=args.item_col, time_col=args.time_col, time_format=args.time_format,
            sep=args.sep, encoding=args.interactions_encoding,
            min_length=args.min_session_length, max_length=args.max_session_length or None,
            session_gap=args.session_gap or None, keep_rows=args.keep_rows, buckets=args.buckets,
            executor=executor, work_dir=args.work_dir,
            keep_work=args.keep_work, progress=False if args.quiet else None)
    finally:
        executor.close()
    m = corpus.meta
    if args.json:
        print(json.dumps(m, indent=2))
    else:
        r, c = m["report"], m["corpus"]
        print(f"corpus: {c['n_sessions']:,} sessions ({c['n_lines']:,} lines, {c['n_clicks']:,} "
              f"clicks) from {r['n_rows_in']:,} rows of {len(m['sources'])} file(s) written to "
              f"{corpus.path} in {m['seconds']:.1f}s on {m['engine']} "
              f"({r['n_unknown_rows']:,} rows of unknown products, {r['n_short_dropped']:,} "
              f"short sessions and {c['n_dropped']:,} one-product sessions dropped, "
              f"{r['n_capped']:,} capped"
              + (f", {r['n_split_at_gaps']:,} more cut at pauses"
                 if r.get("n_split_at_gaps") else "") + ")", file=sys.stderr)
    return 0


def add_corpus_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``corpus`` to ``subparsers``."""
    c = subparsers.add_parser(
        "corpus", help="clean many interaction files into one Prod2Vec corpus file (local or Ray)",
        description="Read interaction logs (files or folders of CSV/TSV/Parquet/JSONL), clean "
        "them into sessions exactly as `build --interactions` does, and write one gensim "
        "corpus file (one session per line) with OUT.json (what cleaning did) and "
        "OUT.counts.parquet (clicks per product). The file is identical whatever the engine; "
        "`prodfusion build --corpus OUT` trains Prod2Vec from it.")
    c.add_argument("sources", nargs="+", help="interaction files or folders of them")
    c.add_argument("--out", required=True, help="corpus file to write (atomically)")
    add_catalog_options(c, required=False)
    g = c.add_argument_group("reading and cleaning")
    g.add_argument("--session-cols", default="session_id", type=csv_list,
                   help="session key column(s), comma-separated, e.g. customer_id,t_dat")
    g.add_argument("--item-col", default="product_id", help="product id column")
    g.add_argument("--time-col", default=None,
                   help="timestamp column (several comma-separated only with one source file)")
    g.add_argument("--time-format", default=None, metavar="FORMAT",
                   help="strptime layout of --time-col when it holds neither numbers nor ISO "
                        "times, e.g. '%%d.%%m.%%Y %%H:%%M'")
    g.add_argument("--sep", default=None, help="field separator (default: from the extension)")
    g.add_argument("--interactions-encoding", default=None, metavar="ENCODING",
                   help="the files' text encoding when it is not UTF-8, e.g. cp1252")
    g.add_argument("--min-session-length", type=int, default=2)
    g.add_argument("--max-session-length", type=int, default=200,
                   help="cap very long sessions (0 = no cap)")
    g.add_argument("--keep-rows", action=KeepRows, default=None,
                   metavar="COLUMN=VALUE[,VALUE...]",
                   help="only the rows with one of these values in COLUMN (e.g. event=view), "
                        "as `build --keep-rows`")
    g.add_argument("--session-gap", type=duration, default=None, metavar="DURATION",
                   help="cut each session key's clicks where they pause longer than this "
                        "(e.g. 30m; a log keyed by visitor, not visit), as `build "
                        "--session-gap`; needs one --time-col")
    g.add_argument("--buckets", type=int, default=8,
                   help="hash partitions of the sessions, cleaned in parallel (default 8)")
    g.add_argument("--work-dir", default=None,
                   help="folder for intermediate pieces (default OUT.parts; shared storage on "
                        "a multi-node cluster)")
    g.add_argument("--keep-work", action="store_true", help="keep the intermediate pieces")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    c.add_argument("--json", action="store_true", help="print the corpus's JSON sidecar")
    add_engine_options(c)
    c.set_defaults(func=cmd_corpus)
    return c
