"""The service's own traffic as an interaction log: every verified product-page view in the
event store, written as ``(visitor, product_id, ts)`` for ``prodfusion build`` / ``tune`` /
``add --interactions`` (``prodfusion ab views``).

A view event is what a product page sends when it shows its recommendations, so the views of
one visitor are the pages they looked at, in time order: a click log keyed by visitor (the
``pf_visitor`` cookie), without visit ids. Cut it into visits at pauses when building::

    prodfusion ab views serve.toml --out views.parquet
    prodfusion build --catalog … --interactions views.parquet --session-cols visitor \\
        --time-col ts --session-gap 30m --out model

``ts`` is the server's Unix time (seconds) at which the view arrived. One row per impression
(a reload within the impression period repeats its request id and is not a new view);
quarantined events (unverified or of another variant) are left out.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["export_views", "is_views_file", "VIEWS_COLUMNS"]

VIEWS_COLUMNS = ("visitor", "product_id", "ts")
_META_KEY = b"prodfusion.views"


def is_views_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an earlier :func:`export_views` output (which a new one may replace)."""
    import pyarrow.parquet as pq

    p = Path(path)
    if p.suffix.lower() == ".parquet":
        meta = pq.read_schema(p).metadata or {}
        return _META_KEY in meta
    with open(p, encoding="utf-8") as fh:
        return [c.strip().strip('"') for c in fh.readline().split(",")] == list(VIEWS_COLUMNS)


def export_views(store, out: str | os.PathLike, *, experiment: str | None = None,
                 where: str = "export_views(): out") -> dict:
    """Write the store's verified page views to ``out`` (``.parquet`` or ``.csv``),
    atomically. Returns ``{"views", "visitors", "first", "last", "path"}`` (times as Unix
    seconds, None without views). ``where`` names ``out`` in messages.

    Raises
    ------
    ParameterError
        ``out`` is neither Parquet nor CSV, a folder, or an existing file that an earlier
        export did not write.
    """
    import pyarrow as pa

    from prodfusion._outputs import check_output_file
    from prodfusion.errors import ParameterError

    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".parquet", ".csv"):
        raise ParameterError(f"{where} {str(out)!r} must end in .parquet or .csv.")
    check_output_file(out, where, ours=is_views_file,
                      written_by="an earlier views export (`prodfusion ab views`)")
    schema = pa.schema([("visitor", pa.string()), ("product_id", pa.string()),
                        ("ts", pa.float64())], metadata={_META_KEY: b"1"})
    tmp = out.with_name(f".{out.name}.tmp")
    state = {"visitors": 0, "last_visitor": None, "first": None, "last": None}
    if kind == ".parquet":
        import pyarrow.parquet as pq

        writer = pq.ParquetWriter(tmp, schema)
    else:
        import pyarrow.csv as pcsv

        writer = pcsv.CSVWriter(tmp, schema.remove_metadata())

    def write(rows) -> None:
        visitor, product, ts = (list(c) for c in zip(*rows, strict=True))
        state["visitors"] += sum(1 for i, v in enumerate(visitor)
                                 if v != (visitor[i - 1] if i else state["last_visitor"]))
        state["last_visitor"] = visitor[-1]
        lo, hi = min(ts), max(ts)
        state["first"] = lo if state["first"] is None else min(state["first"], lo)
        state["last"] = hi if state["last"] is None else max(state["last"], hi)
        table = pa.table([visitor, product, [float(t) for t in ts]],
                         schema=schema if kind == ".parquet" else schema.remove_metadata())
        writer.write_table(table)

    try:
        n = store.page_views(write, experiment=experiment)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return {"views": n, "visitors": state["visitors"], "first": state["first"],
            "last": state["last"], "path": str(out)}
