"""Product feeds in XML: Google Merchant Center (RSS 2.0 ``<item>`` / Atom ``<entry>`` with
``g:`` fields), Yandex Market YML (``<offer id="…">``, the price-comparison format of much
of Eastern Europe and Turkey), and plain ``<products><product>…`` exports.

:func:`read_xml` turns the feed's records into a table of text columns, as
:func:`prodfusion.data.tables.read_table` gives for CSV:

* the records are the feed's repeated elements: those named ``item``, ``entry``,
  ``offer``, ``product``, ``record`` or ``row`` where the feed has any, else the element
  with children that repeats most (outside the root; at least twice);
* a record's attributes and its children without children become columns named by their
  local name (``<g:image_link>`` → ``image_link``; ``g:title`` where a plain ``title`` came
  first); a child with children gives one column per grandchild, ``shipping.country``;
* a name repeated within a record (``<picture>`` × 3, ``<g:additional_image_link>``) gives a
  list column (``read_catalog`` takes a product's first photo from it);
* the file is streamed twice (once to find the records, in its first part, once to read
  them), so a feed of a million products never sits in memory as a tree.

The encoding is the one the XML declaration names (UTF-8 by default).
"""

from __future__ import annotations

import html.entities
import io
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import polars as pl

from prodfusion.errors import DataError

__all__ = ["read_xml", "RECORD_NAMES"]

logger = logging.getLogger("prodfusion.data")

#: Local names that are records wherever a feed has them.
RECORD_NAMES = ("item", "entry", "offer", "product", "record", "row")
#: The first pass stops once one candidate has been seen this many times.
_ENOUGH = 1000


def _local(tag: str) -> tuple[str, str]:
    """``("{uri}name")`` → ``(uri, name)``."""
    if tag.startswith("{"):
        uri, _, name = tag[1:].partition("}")
        return uri, name
    return "", tag


def _record_path(open_source, path) -> tuple[str, ...]:
    """The path of local names (root first) of the feed's records."""
    counts: Counter = Counter()
    stack: list[list] = []  # [local name, element children seen]
    with open_source() as fh:
        for event, elem in ET.iterparse(fh, events=("start", "end")):
            if event == "start":
                stack.append([_local(elem.tag)[1], 0])
                continue
            name, children = stack.pop()
            if stack:
                stack[-1][1] += 1
            if children and stack:  # not the root
                key = tuple(s[0] for s in stack) + (name,)
                counts[key] += 1
                if counts[key] >= _ENOUGH:
                    break
            elem.clear()
    named = {k: n for k, n in counts.items() if k[-1].lower() in RECORD_NAMES}
    if not named and max(counts.values(), default=0) < 2:  # nothing repeats: no records
        counts.clear()
    if not counts:
        raise DataError(f"{path}: no records found in the XML: a feed repeats one element per "
                        f"product (<item>, <entry>, <offer>, <product>), each holding its "
                        f"fields.")
    pool = named or counts
    top = max(pool.values())  # a record's own child with children repeats as often as it
    return min((k for k in pool if pool[k] >= top - 1), key=len)  # (one less, at the stop)


def read_xml(source: Path | io.BytesIO, path: Path | str) -> pl.DataFrame:
    """Read the records of an XML product feed as a table (see the module's notes).

    Parameters
    ----------
    source : Path or BytesIO
        The file, or its bytes (decompressed).
    path : str or Path
        The file's name, for messages.

    Returns
    -------
    polars.DataFrame
        One column per field (text, or a list of texts where a record repeats the field),
        one row per record, in file order; a field a record lacks is null.

    Examples
    --------
    >>> feed = b'''<?xml version="1.0"?>
    ... <rss xmlns:g="http://base.google.com/ns/1.0"><channel><title>Shop</title>
    ... <item><g:id>0012</g:id><title>Red dress</title>
    ...   <g:image_link>https://cdn.example/12.jpg</g:image_link>
    ...   <g:shipping><g:country>DE</g:country></g:shipping></item>
    ... <item><g:id>0013</g:id><title>Blue shirt</title></item>
    ... </channel></rss>'''
    >>> read_xml(io.BytesIO(feed), "feed.xml").rows()
    [('0012', 'Red dress', 'https://cdn.example/12.jpg', 'DE'), ('0013', 'Blue shirt', None, None)]
    >>> read_xml(io.BytesIO(feed), "feed.xml").columns
    ['id', 'title', 'image_link', 'shipping.country']
    """
    def open_source():
        return io.BytesIO(source.getvalue()) if isinstance(source, io.BytesIO) else open(source, "rb")

    size = source.getbuffer().nbytes if isinstance(source, io.BytesIO) else Path(source).stat().st_size
    try:
        return _read_records(open_source, path, size)
    except ET.ParseError as e:
        if not str(e).startswith("undefined entity"):
            raise DataError(f"{path}: cannot be parsed as XML ({e}). Check that the file is a "
                            f"whole XML feed.") from None
        first = str(e)
    logger.warning("%s: the feed uses HTML entities XML does not define (%s; &nbsp;, "
                   "&eacute;, …): read as the characters they name.", path, first)
    try:
        return _read_records(lambda: _HtmlEntities(open_source()), path, size)
    except ET.ParseError as e:
        raise DataError(f"{path}: cannot be parsed as XML ({e}). Check that the file is a "
                        f"whole XML feed.") from None


class _HtmlEntities:
    """A binary file whose HTML named entities that XML does not define (``&nbsp;``,
    ``&eacute;``) read as numeric character references (``&#160;``), which XML does (a
    read that would cut one reads on to its end)."""

    _ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
    _XML = {b"amp", b"lt", b"gt", b"quot", b"apos"}

    def __init__(self, raw) -> None:
        self.raw = raw

    def _sub(self, m: re.Match) -> bytes:
        name = m.group(1)
        cp = html.entities.name2codepoint.get(name.decode("ascii"))
        return m.group(0) if name in self._XML or cp is None else b"&#%d;" % cp

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        while True:  # an '&' near the end without its ';': read on, so no entity is cut
            cut = data.rfind(b"&")
            if cut < 0 or b";" in data[cut:] or len(data) - cut > 33:
                break
            more = self.raw.read(34)
            if not more:
                break
            data += more
        return self._ENTITY.sub(self._sub, data)

    def tell(self) -> int:
        return self.raw.tell()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.raw.close()


#: Feeds from this size on show the second pass's progress (MiB read).
PROGRESS_FROM = 64 * 2**20


def _read_records(open_source, path, size: int = 0) -> pl.DataFrame:
    """Both passes of :func:`read_xml` over ``open_source()`` (raises ET.ParseError)."""
    from prodfusion.progress import progress_bar

    want = _record_path(open_source, path)
    depth = len(want)
    prefixes: dict[str, str] = {}
    names: dict[str, str] = {}  # qualified name → column
    columns: dict[str, list] = {}  # this chunk's values, as Python objects
    repeated: set[str] = set()
    chunks: list[pl.DataFrame] = []  # the chunks before, as tables (a tenth of the memory)
    n = 0  # records in this chunk

    def column(qualified: str, uri: str, local: str) -> str:
        if qualified not in names:
            name = local
            if name in names.values():  # 'title' and 'g:title': the later one prefixed
                name = f"{prefixes.get(uri, 'ns')}:{local}"
            names[qualified] = name
            columns[name] = [None] * n
        return names[qualified]

    stack: list[str] = []
    parents: list = []
    mib = size // 2**20
    with (open_source() as fh,
          progress_bar(mib, f"reading {Path(str(path)).name}", "MiB",
                       size >= PROGRESS_FROM) as bar):
        for event, elem in ET.iterparse(fh, events=("start-ns", "start", "end")):
            if event == "start-ns":
                prefix, uri = elem
                prefixes.setdefault(uri, prefix or "ns")
                continue
            if event == "start":
                stack.append(_local(elem.tag)[1])
                parents.append(elem)
                continue
            here = tuple(stack)
            stack.pop()
            parents.pop()
            if len(here) > depth and here[:depth] == want:
                continue  # a record's field: read with its record
            if here != want:  # outside any record: nothing kept
                elem.clear()
                if parents:
                    parents[-1].remove(elem)
                continue
            record: dict[str, list[str | None]] = {}
            for key, value in elem.attrib.items():
                uri, local = _local(key)
                record.setdefault(column(key, uri, local), []).append(value)
            for child in elem:
                uri, local = _local(child.tag)
                if len(child):
                    for grand in child:
                        g_uri, g_local = _local(grand.tag)
                        record.setdefault(column(f"{child.tag}.{grand.tag}", g_uri,
                                                 f"{local}.{g_local}"), []).append(
                            (grand.text or "").strip() or None)
                else:
                    record.setdefault(column(child.tag, uri, local), []).append(
                        (child.text or "").strip() or None)
            for name, values in columns.items():
                got = record.get(name)
                if got is None:
                    values.append(None)
                elif len(got) == 1:
                    values.append(got[0])
                else:
                    repeated.add(name)
                    values.append(got)
            n += 1
            if n == _CHUNK:
                chunks.append(_table(columns, repeated))
                columns = {name: [] for name in columns}
                n = 0
                bar.update(min(mib, fh.tell() // 2**20) - bar.done)
            elem.clear()
            if parents:
                parents[-1].remove(elem)
        bar.update(mib - bar.done)
    chunks.append(_table(columns, repeated))
    order = list(dict.fromkeys(names.values()))
    lists = pl.List(pl.Utf8)
    chunks = [c.with_columns(  # a field a later chunk repeats: a list in every chunk
        pl.when(pl.col(name).is_null()).then(pl.lit(None, dtype=lists))
        .otherwise(pl.concat_list(pl.col(name))).alias(name)
        for name in repeated if name in c.columns and c.schema[name] != lists) for c in chunks]
    return pl.concat(chunks, how="diagonal").select(order)


#: Records read into Python lists before they are turned into a table.
_CHUNK = 50_000


def _table(columns: dict[str, list], repeated: set[str]) -> pl.DataFrame:
    """One chunk's values as a table: text columns, lists where a record repeated a field."""
    data = {}
    for name, values in columns.items():
        if name in repeated:
            data[name] = pl.Series(name, [v if isinstance(v, list) or v is None else [v]
                                          for v in values], dtype=pl.List(pl.Utf8))
        else:
            data[name] = pl.Series(name, values, dtype=pl.Utf8)
    return pl.DataFrame(data)
