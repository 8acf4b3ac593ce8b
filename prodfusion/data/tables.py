"""Read any table (CSV, TSV, Parquet, JSON Lines, an XML product feed; text formats also
compressed, ``.csv.gz``, ``.jsonl.bz2``, ``.xml.gz``) with every column as text: the format from the extension, the
separator sniffed, and errors that name the file, the row and what to do (bad UTF-8, ragged
CSV rows). :func:`prodfusion.data.io.read_catalog` and the interaction
readers (:mod:`prodfusion.data.interactions`) read through :func:`read_table`, which also
takes a table already in memory (a pandas or polars DataFrame, a pyarrow Table:
:func:`is_table`) in place of a file, read the same way.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import logging
import lzma
import os
import re
from pathlib import Path
from typing import Literal

import polars as pl

from prodfusion.errors import DataError, param_error

logger = logging.getLogger("prodfusion.data")

__all__ = ["read_table", "detect_format", "Format", "FORMATS", "is_table", "is_table_label",
           "table_label", "table_kind", "as_text", "is_remote", "source_name", "guess_encoding",
           "likely_encodings"]

Format = Literal["csv", "tsv", "parquet", "jsonl", "xml"]
FORMATS: tuple[str, ...] = ("csv", "tsv", "parquet", "jsonl", "xml")

_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xml": "xml",
    ".rss": "xml",
    ".atom": "xml",
}
_SNIFF = (",", ";", "\t", "|")
#: Compressed files, read through the standard library (``clicks.csv.gz``: a gzipped CSV).
_COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


#: What a web server's ``Content-Type`` says of a file whose URL has no known suffix.
_CONTENT_TYPES = {"text/csv": "csv", "application/csv": "csv",
                  "text/tab-separated-values": "tsv", "application/xml": "xml",
                  "text/xml": "xml", "application/rss+xml": "xml", "application/atom+xml": "xml",
                  "application/x-ndjson": "jsonl", "application/jsonl": "jsonl",
                  "application/x-jsonlines": "jsonl", "application/vnd.apache.parquet": "parquet",
                  "application/x-parquet": "parquet"}


def is_remote(path) -> bool:
    """Whether ``path`` names a file on a web server (``https://shop.example/feed.xml``: a
    merchant feed, an export a shop system publishes) or in object storage
    (``s3://shop-data/clicks.parquet``: :mod:`prodfusion.data.storage`), read by
    downloading it first.

    >>> is_remote("https://shop.example/feed.xml"), is_remote("s3://b/a.csv"), is_remote("a.csv")
    (True, True, False)
    """
    from prodfusion.data.photos import is_web_url
    from prodfusion.data.storage import is_object_uri

    return is_web_url(path) or is_object_uri(path)


def source_name(path):
    """What messages call ``path``: a table in memory's label (:func:`table_label`), a URL
    as it is (a ``Path`` would fold its ``//``), else the path."""
    if is_table(path):
        return table_label(path)
    return str(path).strip() if is_remote(path) else Path(path)


def _read_remote(url: str, fmt, sep, where: str, encoding) -> pl.DataFrame:
    """The file at ``url`` downloaded into a temporary folder (removed after), read as a local
    one; the format from the URL's name, else from the answer's ``Content-Type``; messages
    name the URL."""
    import tempfile
    import urllib.parse

    from prodfusion.data.photos import PhotoFetchError, download_file
    from prodfusion.data.storage import is_object_uri, list_objects

    url = url.strip()
    if is_object_uri(url):
        try:
            parts = list_objects(url, PART_SUFFIXES)
        except PhotoFetchError as e:
            raise DataError(f"{url}: cannot be downloaded ({e}).") from None
        if parts is not None:  # a folder: its parts downloaded, then read as a local folder
            with tempfile.TemporaryDirectory(prefix="prodfusion-download-") as tmp:
                for uri in parts:
                    name = urllib.parse.unquote(uri.split("?", 1)[0].rsplit("/", 1)[-1])
                    if _is_part(name):
                        try:
                            download_file(uri, Path(tmp) / name)
                        except PhotoFetchError as e:
                            raise DataError(f"{uri}: cannot be downloaded ({e}).") from None
                return _read_folder(Path(tmp), fmt, sep, where, encoding,
                                    label=url.split("?", 1)[0].rstrip("/"))
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1] or "download"
    with tempfile.TemporaryDirectory(prefix="prodfusion-download-") as tmp:
        local = Path(tmp) / name
        try:
            kind = download_file(url, local)
        except PhotoFetchError as e:
            raise DataError(f"{url}: cannot be downloaded ({e}).") from None
        if fmt is None:
            try:
                detect_format(local, None, where=where)
            except DataError:  # no known suffix: what the server says it is
                fmt = _CONTENT_TYPES.get((kind or "").split(";")[0].strip().lower())
                if fmt is None:
                    raise DataError(
                        f"{url}: its format cannot be told from its name nor from its "
                        f"Content-Type ({kind!r}); name it with fmt= ('csv', 'tsv', "
                        f"'parquet', 'jsonl' or 'xml').") from None
        try:
            return read_table(local, fmt=fmt, sep=sep, where=where, encoding=encoding)
        except DataError as e:
            raise DataError(str(e).replace(str(local), url)) from None


def is_table(obj) -> bool:
    """Whether ``obj`` is a table in memory that the readers take in place of a file: a
    polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table or RecordBatch, or
    anything else that hands out an Arrow stream (``__arrow_c_stream__``: DuckDB, …).

    >>> import polars as pl
    >>> is_table(pl.DataFrame({"a": [1]})), is_table("clicks.csv"), is_table(["a.csv"])
    (True, False, False)
    """
    if isinstance(obj, (str, bytes, os.PathLike)):
        return False
    if isinstance(obj, (pl.DataFrame, pl.LazyFrame)) or hasattr(obj, "__arrow_c_stream__"):
        return True
    kind = type(obj)
    return (kind.__module__.split(".")[0] == "pandas" and kind.__name__ == "DataFrame") or (
        kind.__module__.split(".")[0] == "pyarrow" and kind.__name__ in ("Table", "RecordBatch"))


def table_label(obj) -> Path:
    """What messages call a table in memory where they would name a file (its rows are
    numbered from 1, as a file's data rows are: row 1 is pandas' ``iloc[0]``); as a Path,
    so that relative photo paths in it resolve against the working folder.

    >>> import polars as pl
    >>> str(table_label(pl.DataFrame({"a": [1]})))
    '<polars DataFrame>'
    """
    return Path(f"<{table_kind(obj)}>")


def table_kind(obj) -> str:
    """``"pandas DataFrame"``: the library and the type of a table in memory, as messages say.

    >>> import polars as pl
    >>> table_kind(pl.DataFrame())
    'polars DataFrame'
    """
    kind = type(obj)
    return f"{kind.__module__.split('.')[0]} {kind.__name__}"


def is_table_label(path) -> bool:
    """Whether ``path`` is :func:`table_label`'s name for a table in memory, not a file's.

    >>> is_table_label(Path("<pandas DataFrame>")), is_table_label(Path("clicks.csv"))
    (True, False)
    """
    name = str(path)
    return name.startswith("<") and name.endswith(">") and os.sep not in name


def _polars_of(obj, label: Path) -> pl.DataFrame:
    """A table in memory as a polars DataFrame (pandas: a named index becomes columns)."""
    if isinstance(obj, pl.LazyFrame):
        return obj.collect()
    if isinstance(obj, pl.DataFrame):
        return obj
    kind = type(obj).__module__.split(".")[0]
    try:
        if kind == "pandas":
            return _polars_of_pandas(obj, label)
        if kind == "pyarrow":
            return pl.from_arrow(obj)
        return pl.DataFrame(obj)
    except DataError:
        raise
    except Exception as e:  # pyarrow/polars raise several types for what they cannot convert
        raise DataError(f"{label}: cannot be read as a table ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300]}).") from None


def _polars_of_pandas(df, label: Path) -> pl.DataFrame:
    names = [str(c) for c in df.columns]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DataError(f"{label}: column name(s) {twice} appear more than once; give each "
                        f"column its own name.")
    if any(n is not None for n in df.index.names):  # df.set_index("product_id"): the ids
        df = df.reset_index()
    df = df.set_axis([str(c) for c in df.columns], axis=1)
    try:
        return pl.from_pandas(df)
    except Exception:  # an object column mixing str, int, float (a sheet's ids): as text
        import pandas as pd

        mixed = {}
        for c in df.columns:
            if df[c].dtype == object:
                try:
                    pl.from_pandas(df[[c]])
                except Exception:
                    mixed[c] = df[c].map(lambda v: None if _missing(pd, v) else str(v))
        return pl.from_pandas(df.assign(**mixed))


def _missing(pd, value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array in a cell
        return False


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column of a typed table as text, as a delimited file would hold it; lists and
    structs stay. A float column holding only whole numbers is written as integers: pandas
    turns an integer column with a gap into floats, and its ids ``123.0`` would not match a
    log's ``123``.

    >>> import polars as pl
    >>> as_text(pl.DataFrame({"id": [123.0, None], "price": [9.5, 1.0]})).rows()
    [('123', '9.5'), (None, '1.0')]
    """
    out = []
    for c, t in frame.schema.items():
        if t == pl.Utf8 or isinstance(t, (pl.List, pl.Struct, pl.Array)):
            continue
        col = frame[c]
        if t.is_float():
            v = col.drop_nulls().drop_nans()
            if v.len() and bool(((v == v.round(0)) & (v.abs() < 2.0 ** 53)).all()):
                col = col.fill_nan(None).cast(pl.Int64)
        try:
            out.append(col.cast(pl.Utf8))
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            # a type polars cannot write as text (a duration, a Python object): each value's
            # str, as Python prints it
            out.append(pl.Series(c, [None if x is None else str(x) for x in col.to_list()],
                                 dtype=pl.Utf8))
    return frame.with_columns(out) if out else frame


def _compression(path: Path):
    """The opener of a compressed ``path`` (by its last extension), or None."""
    return _COMPRESSIONS.get(path.suffix.lower())


def _open(path: Path):
    """``path`` opened for reading bytes, decompressed where it is compressed."""
    opener = _compression(path)
    return opener(path, "rb") if opener else path.open("rb")


# --------------------------------------------------------------------------- formats
#: The names a folder of table parts is read for (``part-00000.snappy.parquet``, ``.csv.gz``);
#: a name beginning with ``_`` or ``.`` (``_SUCCESS``, ``.part-0.crc``) is a marker, not read.
PART_SUFFIXES = tuple(e + c for e in _EXTENSIONS for c in ("", ".gz", ".bz2", ".xz")
                      if not (c and _EXTENSIONS[e] == "parquet"))


def _is_part(name: str) -> bool:
    return not name.startswith(("_", ".")) and name.lower().endswith(PART_SUFFIXES)


def _read_folder(path: Path, fmt, sep, where: str, encoding, label=None) -> pl.DataFrame:
    """A folder of parts (a warehouse's or Spark's export: ``part-00000.parquet``, …,
    ``_SUCCESS``): its table files, all of one format and with the same columns, in name
    order, read as one table (row ``N`` in messages counts through the parts in that order).
    ``label``: what messages call the folder (its URI where it was downloaded)."""
    label = label or path
    files = sorted(f for f in path.iterdir() if f.is_file() and _is_part(f.name))
    if not files:
        raise DataError(f"{label}: folder holds no table file ({', '.join(_EXTENSIONS)}, "
                        "also compressed; a name beginning with _ or . is a marker, not read). "
                        "Name the file itself, or the folder of a table's parts.")
    kinds = {f.name: detect_format(f, fmt, where=where) for f in files}
    if len(set(kinds.values())) > 1:
        raise DataError(f"{label}: folder mixes formats ({', '.join(sorted(set(kinds.values())))}"
                        f": {files[0].name}, …); the parts of one table share one format.")
    frames = []
    for f in files:
        try:
            frames.append(read_table(f, fmt=fmt, sep=sep, where=where, encoding=encoding))
        except DataError as e:
            raise DataError(str(e).replace(str(f), f"{label}/{f.name}", 1)
                            if label != path else str(e)) from None
        if frames[-1].columns != frames[0].columns:
            raise DataError(f"{label}: {f.name} has the columns {frames[-1].columns} where "
                            f"{files[0].name} has {frames[0].columns}; the parts of one table "
                            "share its columns.")
    if len(files) > 1:
        logger.info("%s: %d parts read as one table (%s rows; rows counted through the "
                    "parts in name order).", label, len(files),
                    f"{sum(fr.height for fr in frames):,}")
    return pl.concat(frames)


def detect_format(path: str | Path, fmt: str | None = None, *, where: str = "read_catalog()") -> str:
    """The format of ``path``: ``fmt`` when given, else from the file extension.

    Raises
    ------
    ParameterError
        If ``fmt`` is not one of ``'csv'``, ``'tsv'``, ``'parquet'``, ``'jsonl'`` or None.
    DataError
        If ``fmt`` is None and the extension is not known.

    Examples
    --------
    >>> detect_format("articles.csv"), detect_format("x.NDJSON"), detect_format("x.dat", "tsv")
    ('csv', 'jsonl', 'tsv')
    >>> detect_format("clicks.2026-12-01.tsv.gz"), detect_format("events.jsonl.xz")
    ('tsv', 'jsonl')
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise param_error("fmt", where, "one of 'csv', 'tsv', 'parquet', 'jsonl', 'xml' or "
                              "None", fmt)
        return fmt
    p = Path(path)
    if _compression(p):
        p = p.with_suffix("")  # clicks.csv.gz: a CSV
    suffix = p.suffix.lower()
    if suffix in (".xlsx", ".xls", ".xlsm", ".ods"):
        raise DataError(
            f"{path}: a spreadsheet ({suffix}) is not read. Save the sheet as CSV (UTF-8) — in "
            f"Excel: File > Save As > 'CSV UTF-8' — or as Parquet, and read that file.")
    if suffix not in _EXTENSIONS:
        raise DataError(
            f"{path}: unknown file format {suffix or '(no extension)'!r}. Use a .csv, .tsv, .txt, "
            f".parquet, .jsonl, .ndjson or .xml file (text ones also compressed: .csv.gz, .bz2, "
            f".xz), or name the format with fmt= ('csv', 'tsv', 'parquet', 'jsonl' or 'xml')."
        )
    return _EXTENSIONS[suffix]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(
            f"{path}: file does not exist (resolved to {path.resolve()}). Check the path; relative "
            f"paths are read from the current folder."
        )
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}). Check its permissions.") from e


def _header_line(opener) -> bytes:
    with opener() as fh:
        line = fh.readline(1 << 20)
    return line.removeprefix(b"\xef\xbb\xbf")


def _sniff_separator(opener, default: str) -> str:
    """The candidate separator that occurs most often in the header line (``default`` if none)."""
    header = _header_line(opener).decode("utf-8", errors="replace")
    counts = {s: header.count(s) for s in _SNIFF}
    best = max(_SNIFF, key=lambda s: counts[s])
    return best if counts[best] > 0 else default


def _locate_bad_utf8(path: Path, fmt: str, sep: str, opener=None, caller: str = ""
                     ) -> DataError | None:
    """A DataError naming the first line holding bytes that are not UTF-8, or None."""
    with (opener or (lambda: _open(path)))() as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        start, bad = e.start, data[e.start : e.end]
    line_no = data.count(b"\n", 0, start) + 1
    if fmt == "jsonl":
        where, column = f"line {line_no} (row {line_no})", ""
    elif line_no == 1:
        where, column = "line 1 (the header)", ""
    else:
        # the record holding the bad line (quoted fields may span lines) and its bad field
        where, column = f"line {line_no} (data row {line_no - 1})", ""
        text = data[: data.find(b"\n", start) + 1 or len(data)].decode("utf-8", "replace")
        text = text.removeprefix("\ufeff")
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
            header = next(reader)
            for i, record in enumerate(reader, start=1):
                if reader.line_num >= line_no:
                    where = f"line {line_no} (data row {i})"
                    for name, value in zip(header, record, strict=False):
                        if "\ufffd" in value:
                            column = f", column {name!r}"
                            break
                    break
        except (StopIteration, csv.Error):  # the location by line is still useful without it
            pass
    option = {"read_catalog()": "--encoding", "read_interactions()": "--interactions-encoding",
              "read_pairs()": "--interactions-encoding"}.get(caller)
    line = data[data.rfind(b"\n", 0, start) + 1:].split(b"\n", 1)[0].rstrip(b"\r")
    readings: dict[str, str] = {}  # the line as each candidate reads it, the first of a kind
    for enc in likely_encodings(data):
        try:
            text = line.decode(enc).removeprefix("\ufeff")
        except UnicodeDecodeError:  # a guess from the file's start that this line refutes
            continue
        text = text if len(text) <= 80 else text[:77] + "…"
        if text not in readings:
            readings[text] = enc
    if not readings:
        hint = (f" — or read it as it is with {option} cp1252 (encoding= in Python) if it was "
                "saved on Windows in Western Europe" if option else "")
        return DataError(
            f"{path} {where}: bytes {bad!r} are not valid UTF-8{column}. Save the file as UTF-8 "
            f"(e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`) and read it again{hint}.")
    option = option or "encoding="
    python = "" if option == "encoding=" else " (encoding= in Python)"
    if len(readings) == 1:
        (text, enc), = readings.items()
        said = (f"The file reads as {enc} ({GUESSED_ENCODINGS[enc]}), that line as {text!r}: "
                f"read it as it is with {option} {enc}{python}")
        iconv = enc
    else:  # single-byte code pages a short file cannot tell apart: the user can
        said = "That line reads " + ", ".join(
            f"{text!r} in {enc} ({GUESSED_ENCODINGS[enc]})" for text, enc in readings.items()
        ) + f": read the file with {option} and the one that shows it right{python}"
        iconv = "ENCODING"
    return DataError(
        f"{path} {where}: bytes {bad!r} are not valid UTF-8{column}. {said}, or save it as "
        f"UTF-8 (e.g. `iconv -f {iconv} -t utf-8 in.csv > out.csv`) and read it again.")


#: The legacy encodings a catalog or log may arrive in (Windows' code pages and their
#: East Asian counterparts), the only ones :func:`guess_encoding` names, with the script
#: each is for (named in messages; a language guessed from a short file is often wrong).
GUESSED_ENCODINGS = {
    "cp932": "Japanese", "euc-jp": "Japanese", "gb18030": "Chinese, simplified",
    "big5": "Chinese, traditional", "cp949": "Korean", "cp1251": "Cyrillic",
    "koi8-r": "Cyrillic", "cp1250": "Central European", "cp1252": "Western European",
    "cp1253": "Greek", "cp1254": "Turkish", "cp1255": "Hebrew", "cp1256": "Arabic",
    "cp874": "Thai", "cp1258": "Vietnamese"}
#: Of those, the multi-byte ones: a text that decodes cleanly in one of them is rarely
#: anything else, so a file read otherwise is warned about (:func:`_check_named_encoding`).
_MULTIBYTE = ("cp932", "euc-jp", "gb18030", "big5", "cp949")


def _codec_name(encoding: str) -> str:
    return codecs.lookup(encoding).name


def likely_encodings(data: bytes) -> list[str]:
    """The :data:`GUESSED_ENCODINGS` the bytes most plausibly are, best first: charset-
    normalizer's verdict on the first 100 KB and the single-byte code pages it finds just
    as plausible (a short file's few accented letters rarely tell cp1250, cp1252 and cp1254
    apart), Windows' Western European one first among those that read the sample alike; an
    East Asian multi-byte encoding only from 40 non-ASCII bytes on. Empty when it has none.
    Only ever a hint in a message: a file is decoded with the encoding the user names.

    >>> likely_encodings("商品コード,商品名\\n1,ランニングシューズ 赤\\n".encode("cp932") * 20)
    ['cp932']
    >>> likely_encodings("sku,title\\n2,Kırmızı deri çanta\\n".encode("cp1254"))
    ['cp1252', 'cp1250', 'cp1254', 'cp1258']
    """
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # an optional help: without it, the message names cp1252
        return []
    sample = data[:100_000]
    cut = sample.rfind(b"\n")  # whole lines: a multi-byte character is not cut in two
    sample = sample[:cut + 1] if cut > 0 and len(data) > len(sample) else sample
    candidates = list(GUESSED_ENCODINGS)
    if sum(b >= 0x80 for b in sample) < 40:  # a few accented letters: two bytes of them can
        candidates = [c for c in candidates if c not in _MULTIBYTE]  # pass for one Chinese
    by_codec = {_codec_name(c): c for c in candidates}
    matches = [m for m in from_bytes(sample, cp_isolation=candidates, threshold=0.5)
               if _codec_name(m.encoding) in by_codec]
    if not matches:
        return []
    best = matches[0]
    if by_codec[_codec_name(best.encoding)] in _MULTIBYTE:
        return [by_codec[_codec_name(best.encoding)]]
    tied = [by_codec[_codec_name(m.encoding)] for m in matches
            if m.chaos <= best.chaos + 1e-6 and m.coherence >= best.coherence - 1e-6
            and by_codec[_codec_name(m.encoding)] not in _MULTIBYTE]
    try:  # the Western one first where it reads the sample as the verdict does
        western = sample.decode("cp1252")
        same = [e for e in tied if sample.decode(e, "replace") == western]
        if same:
            tied = ["cp1252", *[e for e in tied if e != "cp1252"]]
    except UnicodeDecodeError:
        pass
    return tied


def guess_encoding(data: bytes) -> tuple[str, str] | None:
    """``(encoding, script)``: the first of :func:`likely_encodings`, or ``None``.

    >>> guess_encoding("商品コード,商品名\\n1,ランニングシューズ 赤\\n".encode("cp932") * 20)
    ('cp932', 'Japanese')
    """
    found = likely_encodings(data)
    return (found[0], GUESSED_ENCODINGS[found[0]]) if found else None


def _check_named_encoding(path: Path, data: bytes, encoding: str) -> None:
    """Warn when a file read with ``encoding`` decodes cleanly in a multi-byte East Asian
    encoding that reads it otherwise (a Shift_JIS catalog read as latin-1: every title
    mojibake, no error)."""
    if _codec_name(encoding) in {_codec_name(m) for m in _MULTIBYTE} or data.isascii():
        return
    guess = guess_encoding(data)
    if guess is None or guess[0] not in _MULTIBYTE:
        return
    enc, language = guess
    line = next((x for x in data[:100_000].splitlines() if not x.isascii()), b"")
    ours, theirs = line.decode(encoding, "replace"), line.decode(enc, "replace")
    if ours == theirs:
        return
    short = [t if len(t) <= 60 else t[:57] + "…" for t in (ours, theirs)]
    logger.warning("%s: read as %s (--encoding), but it reads as %s (%s): the line %r would "
                   "be %r. If the titles look garbled, read it with --encoding %s.", path,
                   encoding, enc, language, short[0], short[1], enc)


def _diagnose_csv(opener, sep: str) -> str | None:
    """The first row whose field count differs from the header's, described in words."""
    with io.TextIOWrapper(opener(), encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            return None
        try:
            for i, row in enumerate(reader, start=1):
                if row and len(row) > len(header):
                    return (
                        f"data row {i} has {len(row)} fields but the header has {len(header)} "
                        f"(separator {sep!r})"
                    )
        except csv.Error as e:
            return f"data row {reader.line_num - 1}: {e}"
    return None


def blank(col: str) -> pl.Expr:
    """Whether a text cell of ``col`` is empty: null, or only spaces."""
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def blank_rows(frame: pl.DataFrame) -> pl.Series:
    """Per row, whether every cell is empty (null or spaces; a list column: null or no
    item): an empty line of a CSV file."""
    if not frame.width:
        return pl.Series([False] * frame.height)
    return frame.select(pl.all_horizontal(
        blank(c) if t == pl.Utf8 else pl.col(c).is_null()
        | (pl.col(c).list.len() == 0 if isinstance(t, pl.List) else pl.lit(False))
        for c, t in frame.schema.items())).to_series()


def _without_trailing_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame less the empty lines at its end (an editor's or a spreadsheet's); the rows
    before keep their numbers. Empty lines between rows stay: readers that number the file's
    rows leave them out themselves (:mod:`prodfusion.data.interactions`) or name them."""
    blank = blank_rows(frame)
    if not frame.height or not blank[-1]:
        return frame
    kept = blank.not_().arg_true()
    return frame.head(int(kept[-1]) + 1 if len(kept) else 0)


def _codec(encoding, where: str) -> str:
    """``encoding`` when Python knows it, else a ParameterError naming the option."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise param_error("encoding", where, "a text encoding Python knows, e.g. 'cp1252', "
                          "'latin-1' or 'utf-8'", encoding) from None
    return encoding


def _transcode(path: Path, source, encoding: str) -> io.BytesIO:
    """The file (or its decompressed bytes) decoded with ``encoding``, as UTF-8 bytes; a byte
    the encoding does not define is named with its line."""
    data = source.getvalue() if isinstance(source, io.BytesIO) else path.read_bytes()
    try:
        text = data.decode(encoding)
        _check_named_encoding(path, data, encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        guess = guess_encoding(data)
        said = f" (it reads as {guess[0]}: {guess[1]})" if guess and \
            _codec_name(guess[0]) != _codec_name(encoding) else ""
        raise DataError(
            f"{path} line {line}: bytes {data[e.start:e.end]!r} are not {encoding} text ("
            f"{e.reason}). Name the file's real encoding with --encoding (encoding=){said}, or "
            f"save it as UTF-8.") from None
    return io.BytesIO(text.removeprefix("\ufeff").encode("utf-8"))


def read_table(
    path: str | Path,
    *,
    fmt: str | None = None,
    sep: str | None = None,
    where: str = "read_catalog()",
    encoding: str | None = None,
) -> pl.DataFrame:
    """Read a whole table with every column as text (Utf8), exactly as written in the file.

    Parameters
    ----------
    path : str, Path, URL or a table in memory
        A ``.csv``/``.tsv``/``.txt`` (delimited text), ``.parquet``, ``.jsonl``/``.ndjson``
        or ``.xml`` (a product feed: :func:`prodfusion.data.feeds.read_xml`) file; text files
        may be compressed (``.csv.gz``, ``.jsonl.bz2``, ``.xml.gz``: read into memory
        decompressed). Or a pandas / polars DataFrame, a pyarrow Table (:func:`is_table`):
        its columns as text (:func:`as_text`; pandas' named index as columns), ``fmt``,
        ``sep`` and ``encoding`` unused. Or an ``http(s)://`` URL (:func:`is_remote`):
        downloaded into a temporary folder and read as that file (the format from the
        URL's name or the server's ``Content-Type``), messages naming the URL; or an
        ``s3://`` / ``gs://`` one (:mod:`prodfusion.data.storage`). Or a folder (local or in
        a bucket) of one table's parts, as a warehouse or Spark writes it
        (``part-00000.parquet``, …; ``_SUCCESS`` and other names beginning with ``_`` or
        ``.`` left out): its files of one format, in name order, as one table.
    fmt : {'csv', 'tsv', 'parquet', 'jsonl', 'xml'}, optional
        Overrides the format guessed from the extension.
    sep : str, optional
        Separator of delimited text. Default: tab for ``.tsv``, otherwise the most frequent of
        ``,`` ``;`` tab ``|`` in the header line.
    where : str
        Name of the calling function, used in parameter errors.
    encoding : str, optional
        The text encoding of a CSV/TSV/JSON Lines file when it is not UTF-8, e.g.
        ``"cp1252"`` (Windows, Western Europe) or ``"latin-1"``: the file is decoded with it in
        memory. Default: UTF-8 (a byte-order mark is skipped).

    Returns
    -------
    polars.DataFrame
        One Utf8 column per file column; data row ``i`` (1-based, header excluded) is frame
        row ``i - 1``. Empty delimited fields are null or ``""``. Parquet columns of other
        types are cast to text (an integer id column has already lost its leading zeros
        there). JSON numbers become their text form; blank JSON lines are skipped.

    Raises
    ------
    DataError
        Missing, unreadable, empty or malformed file; bytes that are not UTF-8.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.tsv"
    >>> _ = p.write_text("id\\tn\\n0012\\t3\\n")
    >>> read_table(p).row(0)
    ('0012', '3')
    """
    if is_remote(path):  # a feed or an export a web server publishes
        return _read_remote(path, fmt, sep, where, encoding)
    if is_table(path):  # a DataFrame in memory: its columns as a file would hold them
        unused = [n for n, v in (("fmt", fmt), ("sep", sep), ("encoding", encoding))
                  if v is not None]
        if unused:
            logger.warning("%s: %s not used: the table is already in memory, its columns "
                           "typed.", table_label(path), ", ".join(f"{n}=" for n in unused))
        return as_text(_polars_of(path, table_label(path)))
    path = Path(path)
    if path.is_dir():  # the parts of one table
        return _read_folder(path, fmt, sep, where, encoding)
    _check_file(path)  # first: a typo is named as such, not as an unknown format
    kind = detect_format(path, fmt, where=where)
    source: Path | io.BytesIO = path
    if _compression(path):  # decompressed in memory, as polars does with a gzipped CSV
        try:
            with _open(path) as fh:
                source = io.BytesIO(fh.read())
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise DataError(f"{path}: cannot be decompressed as {path.suffix.lower()} ({e}). "
                            f"Check that the file is whole and compressed as its name says."
                            ) from None
    if encoding is not None and kind in ("parquet", "xml"):
        logger.warning("%s: encoding=%r (--encoding) is not used: %s", path, encoding,
                       "a Parquet file's text is UTF-8" if kind == "parquet" else
                       "an XML file names its own encoding (<?xml … encoding=\"…\"?>)")
    elif encoding is not None and codecs.lookup(_codec(encoding, where)).name != "utf-8":
        source = _transcode(path, source, encoding)
    opener = (lambda: io.BytesIO(source.getvalue())) if isinstance(source, io.BytesIO) \
        else (lambda: _open(path))
    if kind in ("csv", "tsv"):
        if sep is None:
            sep = "\t" if kind == "tsv" else _sniff_separator(opener, ",")
        elif not isinstance(sep, str) or len(sep) != 1:
            raise param_error("sep", where, "a single character or None", sep)
        try:
            frame = pl.read_csv(source, separator=sep, infer_schema=False, quote_char='"')
        except pl.exceptions.NoDataError:
            raise DataError(f"{path}: file is empty (no header row). Write a header row with the "
                            f"column names, then one row per record.") from None
        except pl.exceptions.ComputeError as e:
            bad = _locate_bad_utf8(path, kind, sep, opener, where)
            if bad is not None:
                raise bad from None
            detail = _diagnose_csv(opener, sep) or str(e).splitlines()[0]
            raise DataError(
                f"{path}: cannot be parsed as delimited text: {detail}. Quote fields that contain "
                f"the separator, or pass the right separator with sep=."
            ) from None
        twins = [c for c in frame.columns if re.search(r"_duplicated_\d+$", c)
                 and re.sub(r"_duplicated_\d+$", "", c) in frame.columns]
        if twins:  # polars renames a repeated header; say so, the first is the one options name
            logger.warning("%s: the header repeats column(s) %s; the first of each is read "
                           "under its name, the others as %s.", path,
                           sorted({re.sub(r"_duplicated_\d+$", "", c) for c in twins}), twins)
        return _without_trailing_blank_rows(frame)
    if kind == "xml":  # the XML declaration names its own encoding
        from prodfusion.data.feeds import read_xml

        return read_xml(source, path)
    if kind == "jsonl":
        if (source.getbuffer().nbytes if isinstance(source, io.BytesIO)
                else path.stat().st_size) == 0:
            raise DataError(f"{path}: file is empty. Write one JSON object per line.")
        try:
            frame = pl.read_ndjson(source, infer_schema_length=None)
        except pl.exceptions.ComputeError as e:
            bad = _locate_bad_utf8(path, kind, ",", opener, where)
            if bad is not None:
                raise bad from None
            raise DataError(
                f"{path}: cannot be parsed as JSON Lines ({str(e).splitlines()[0]}). Write one JSON "
                f"object per line."
            ) from None
    else:
        try:
            frame = pl.read_parquet(source)
        except Exception as e:  # polars/pyarrow raise several types for a broken file
            raise DataError(
                f"{path}: cannot be read as Parquet ({type(e).__name__}: {str(e).splitlines()[0]}). "
                f"Check that it is a Parquet file, or pass fmt= with its real format."
            ) from None
    return as_text(frame)
