"""The ``prodfusion`` command line, one module per command group.

``prodfusion.cli.main`` is the entry point; the shared options live in
:mod:`prodfusion.cli.options`. The library never imports this package.
"""

from __future__ import annotations

from prodfusion.cli.main import COMMANDS, build_parser, main
from prodfusion.cli.options import (
    add_catalog_options,
    add_interaction_options,
    csv_list,
    default_cache_dir,
    load_catalog,
    load_sessions,
)

__all__ = [
    "main",
    "build_parser",
    "COMMANDS",
    "add_catalog_options",
    "add_interaction_options",
    "load_catalog",
    "load_sessions",
    "csv_list",
    "default_cache_dir",
]
