"""Batch jobs over a whole model: every product's top-k list (``prodfusion export``) and the
stores the service reads precomputed lists from."""

from __future__ import annotations

from prodfusion.batch.lists import LAYOUTS, ListStore, lists_table, read_lists_meta, write_lists

__all__ = ["LAYOUTS", "ListStore", "lists_table", "read_lists_meta", "write_lists",
           "export_lists", "update_lists"]


def __getattr__(name: str):
    if name in ("export_lists", "update_lists"):  # import the recommender: kept lazy
        from prodfusion.batch import export

        return getattr(export, name)
    raise AttributeError(name)
