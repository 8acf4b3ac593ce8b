"""What a model folder remembers about its data: files and how they were read.

``prodfusion build`` stores a ``data`` section in ``manifest.json``::

    "data": {
      "catalog": {"path": "/abs/articles.csv", "id_col": "article_id", "title_col": "prod_name",
                  "image_col": "image", "category_col": "product_type_name", "group_col": null,
                  "image_root": "/abs/images", "image_template": "{product_id}.jpg",
                  "shadowed": {"category": "category (file)"},
                  "recommend_rows": {"status": ["active"]}},
      "interactions": {"path": "/abs/transactions.csv", "session_cols": ["customer_id", "t_dat"],
                       "item_col": "article_id", "time_col": "t_dat", "time_format": null,
                       "sep": null,
                       "pairs": "/abs/copurchase.csv", "pair_cols": [...],
                       "min_session_length": 2, "max_session_length": 200,
                       "session_gap": null, "keep_rows": {"event": ["view"]}}
    }

so that ``prodfusion evaluate retrieval MODEL`` needs no ``--interactions … --session-cols …``
(any option given on the command line wins), the service knows the image root the catalog
was read with, and ``evaluate clustering --category-col`` can name a file column.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["sources_from_args", "fill_from_manifest", "INTERACTION_KEYS", "label_column",
           "DEFAULT_PAIR_COLS"]

#: The columns of a ``--pairs`` file when none are named (H&M's ``copurchase.csv``).
DEFAULT_PAIR_COLS = ("article_id", "partner_article_id")

#: Interaction options recorded by ``build`` and reused by ``evaluate``.
INTERACTION_KEYS = ("session_cols", "item_col", "time_col", "time_format", "sep",
                    "interactions_encoding", "pair_cols",
                    "min_session_length", "max_session_length", "session_gap", "keep_rows")


def _abs(p) -> str | None:
    """An absolute path; a URL (a feed a web server publishes) as it is."""
    from prodfusion.data.tables import is_remote

    if not p:
        return None
    return p.strip() if is_remote(p) else os.path.abspath(os.fspath(p))


def sources_from_args(args: argparse.Namespace, catalog=None) -> dict:
    """The ``data`` section for a build from its parsed command-line options."""
    from prodfusion.data.io import is_url
    root = args.image_root if args.image_root else os.path.dirname(_abs(args.catalog))
    shadowed = {}
    if catalog is not None:
        from prodfusion.data.io import shadowed_name

        shadowed = {c: shadowed_name(c) for c in ("product_id", "title", "image", "category",
                                                  "group")
                    if shadowed_name(c) in catalog.frame.columns}
    return {
        "catalog": {
            "path": _abs(args.catalog), "id_col": args.id_col, "title_col": args.title_col,
            "image_col": args.image_col or None, "category_col": args.category_col or None,
            "group_col": args.group_col,
            "image_root": root if is_url(root) else str(Path(root).resolve()),
            "image_template": args.image_template, "shadowed": shadowed,
            "encoding": getattr(args, "encoding", None),
            "duplicate_ids": getattr(args, "duplicate_ids", None) or "error",
            "alias_col": getattr(args, "alias_col", None),
            # only these products recommended (`build --recommend-rows`); `add` applies it
            "recommend_rows": getattr(args, "recommend_rows", None) or None,
        },
        "interactions": {
            "path": _abs(args.interactions), "pairs": _abs(args.pairs),
            **{k: getattr(args, k, None) for k in INTERACTION_KEYS if k != "keep_rows"},
            "keep_rows": getattr(args, "keep_rows", None) or None,  # {} (all) is no filter
            # a corpus file (`prodfusion corpus`) the clicks were trained from instead
            **({"corpus": _abs(args.corpus)} if getattr(args, "corpus", None) else {}),
        },
    }


def fill_from_manifest(args: argparse.Namespace, manifest: dict, defaults: dict) -> list[str]:
    """Fill interaction options of ``args`` that were left at their ``defaults`` from the
    model's record; the files too when neither ``--interactions`` nor ``--pairs`` is given.

    Returns one line per value taken from the record (to print).
    """
    rec = ((manifest or {}).get("data") or {}).get("interactions") or {}
    taken = []
    if not (getattr(args, "interactions", None) or getattr(args, "pairs", None)):
        for opt, key in (("interactions", "path"), ("pairs", "pairs")):
            if rec.get(key):
                setattr(args, opt, rec[key])
                taken.append(f"--{opt} {rec[key]}")
    for key in INTERACTION_KEYS:
        if key in rec and getattr(args, key, None) == defaults.get(key) \
                and rec[key] != defaults.get(key):
            setattr(args, key, rec[key])
            v = rec[key]
            if key == "keep_rows":  # {column: [values]}
                from prodfusion.data.interactions import format_keep_rows

                taken.append(format_keep_rows(v))
            else:
                taken.append(f"--{key.replace('_', '-')} "
                             f"{','.join(v) if isinstance(v, list) else v}")
    return taken


def label_column(catalog, name: str, manifest: dict | None = None) -> str:
    """The column of a model's catalog holding the file column ``name``.

    ``name`` may be the file's name of a column (``product_type_name`` that became
    ``category``), a column carried through unchanged, or a standard column another option
    replaced (kept as ``"category (file)"``).
    """
    from prodfusion.errors import ParameterError

    data = ((manifest or {}).get("data") or {}).get("catalog") or {}
    cols = catalog.frame.columns
    if name in (data.get("shadowed") or {}):
        return data["shadowed"][name]
    for std, opt in (("category", "category_col"), ("title", "title_col"),
                     ("group", "group_col"), ("product_id", "id_col")):
        if data.get(opt) == name and std in cols:
            return std
    if name in cols:
        return name
    raise ParameterError(
        f"--category-col {name!r}: the model's catalog has no such column; it has "
        f"{[c for c in cols if c not in ('image',)]}. Rebuild the model from a catalog with "
        "that column."
    )
