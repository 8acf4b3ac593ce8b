"""Read catalogs from CSV, TSV, Parquet or JSON Lines, every column as text (any other table:
:func:`read_table`, from :mod:`prodfusion.data.tables`, importable from here as before).

Ids keep their leading zeros (``"0111565001"`` stays a string), every error names the file,
the 1-based data row (header excluded) and the column, and says what to do.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "cat.csv").write_text("product_id,title\\n007,Red  shoe \\n8,Blue hat\\n")
>>> cat = read_catalog(d / "cat.csv")
>>> cat.ids.tolist(), cat.titles
(['007', '8'], ['Red shoe', 'Blue hat'])
"""

from __future__ import annotations

import functools
import html
import logging
import os
import shlex
import string
from pathlib import Path

import numpy as np
import polars as pl

from prodfusion.data.catalog import (
    ALIASES,
    CATEGORY,
    GROUP,
    ID,
    IMAGE,
    TITLE,
    Catalog,
    group_key,
)
from prodfusion.data.tables import (
    Format,
    blank_rows,
    detect_format,
    is_remote,
    is_table_label,
    read_table,
    source_name,
)
from prodfusion.data.tables import blank as _blank
from prodfusion.errors import DataError, param_error

logger = logging.getLogger("prodfusion.data")

__all__ = ["read_catalog", "read_table", "detect_format", "shadowed_name", "Format"]


# --------------------------------------------------------------------------- helpers
#: Parameters whose command-line option is not their name in ``--kebab-case``.
_FLAGS = {"a_col": "--pair-cols A,B: A", "b_col": "--pair-cols A,B: B",
          "session_cols": "--session-cols", "time_col": "--time-col"}


def _option_flag(option: str) -> str:
    """The command-line option of a reader's parameter.

    >>> _option_flag("id_col"), _option_flag("a_col")
    ('--id-col', '--pair-cols A,B: A')
    """
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


#: Column names (lower case, letters and digits only) that exports commonly give each
#: column a reader asks for: shop systems, merchant feeds, H&M, DIGINETICA, German shops,
#: Japanese, Chinese and Korean shop exports.
_LIKELY = {  # in order of likelihood: the first named first
    "id_col": ("productid", "id", "itemid", "sku", "handle", "articleid", "articlenumber",
               "artikelnummer", "artnr", "offerid", "ean", "gtin", "asin",
               "商品コード", "商品id", "商品番号", "品番", "商品编号", "商品编码", "상품코드",
               "상품번호"),
    "title_col": ("title", "name", "productname", "prodname", "itemname", "producttitle",
                  "productdisplayname", "bezeichnung", "artikelname", "商品名", "商品名称",
                  "名称", "상품명"),
    "image_col": ("image", "imagelink", "imageurl", "imagesrc", "images", "imagepath",
                  "imagefile", "mainimage", "img", "picture", "pictures", "photo", "photos",
                  "photourl", "imageurls", "bild", "bilder", "bildurl", "画像", "画像url",
                  "商品画像", "图片", "图片链接", "主图", "이미지", "이미지url"),
    "category_col": ("category", "categories", "categoryname", "productcategory",
                     "producttype", "producttypename", "kategorie", "googleproductcategory",
                     "categoryid", "type", "カテゴリ", "カテゴリー", "カテゴリ名", "分类", "类目",
                     "카테고리"),
    "item_col": ("itemid", "productid", "articleid", "sku", "item", "product", "artikel",
                 "商品コード", "商品id", "品番", "商品编号", "상품코드"),
    "session_cols": ("sessionid", "session", "visitorid", "userid", "customerid", "sitzung",
                     "セッションid", "セッション", "会话id", "세션id"),
    "group_col": ("itemgroupid", "gtin", "ean", "ean13", "gtin13", "upc", "isbn", "mpn",
                  "productcode", "parentsku", "parentid", "janコード", "jan"),
    "time_col": ("timestamp", "time", "ts", "datetime", "eventtime", "eventdate", "date", "tdat",
                 "zeit", "日時", "日付", "時刻", "时间", "일시"),
}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def likely_columns(option: str, column: str, found: list[str]) -> list[str]:
    """Columns of ``found`` that may be the one ``option`` asked for as ``column``: the same
    name up to case and punctuation, else names exports commonly give it.

    >>> likely_columns("id_col", "product_id", ["Handle", "Title", "Image Src"])
    ['Handle']
    >>> likely_columns("title_col", "Name", ["sku", "name"])
    ['name']
    """
    same = [c for c in found if _norm(c) == _norm(column)]
    if same:
        return same
    names = _LIKELY.get(option, ())
    return sorted((c for c in found if _norm(c) in names), key=lambda c: names.index(_norm(c)))


def _suggested(option: str, columns: list[str], python: bool = False) -> tuple[str, str]:
    """``("'A' or 'B'", "--x A or --x B")`` for up to three columns (quoted for a shell);
    ``python``: as parameters, ``x='A' or x='B'`` (a table in memory has no command line).

    >>> _suggested("id_col", ["SKU", "Handle"]), _suggested("id_col", ["SKU"], python=True)
    (("'SKU' or 'Handle'", '--id-col SKU or --id-col Handle'), ("'SKU'", "id_col='SKU'"))
    """
    import shlex

    return (" or ".join(repr(c) for c in columns[:3]),
            " or ".join(f"{option}={c!r}" if python else
                        f"{_option_flag(option)} {shlex.quote(c)}" for c in columns[:3]))


def missing_column_error(
    path: Path | str, column: str, option: str, found: list[str], what: str = "column"
) -> DataError:
    """The house message for a column that the options name but the file lacks (naming the
    file's columns that look like it, :func:`likely_columns`)."""
    likely = likely_columns(option, column, found)
    python = is_table_label(path)  # a DataFrame: no command line to name
    hint = ""
    if likely and not option.endswith(("a_col", "b_col")):
        names, flags = _suggested(option, likely, python)
        hint = f" {names} {'looks' if len(likely) == 1 else 'look'} like it: {flags}."
    flag = "" if python else f" ({_option_flag(option)} on the command line)"
    return DataError(
        f"{path}: no {what} {column!r} (found columns: {', '.join(map(repr, found))}). Name the "
        f"right column with {option}={flag}.{hint}"
    )


def first_bad_row(mask: pl.Series) -> tuple[int, int]:
    """(1-based row of the first True, number of True) in a boolean series."""
    n = int(mask.sum())
    return (int(mask.arg_true()[0]) + 1 if n else 0), n


#: A value that names a resource by URL (``https://…``, ``s3://…``) rather than a file path.
URL_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*://"


#: An image cell naming several photos: two or more paths with an image suffix, separated by
#: ``|``, ``;`` or ``,`` (a path's own commas stay: each part must end in a photo suffix).
_PHOTO = r"[^|;,]+?\.(?i:jpe?g|png|webp|gif|bmp|tiff?)"
_SEVERAL_PHOTOS = rf"^\s*{_PHOTO}(?:\s*[|;,]\s*{_PHOTO})+\s*$"

#: An HTML character reference in a title (``&amp;``, ``&#39;``, ``&#x27;``): feeds exported
#: from web pages often carry them; :func:`read_catalog` decodes titles holding one.
HTML_ENTITY = r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});"


def _file_row(r: int, kept=None) -> int:
    """The file's 1-based data row of frame position ``r`` (``kept``: the positions a
    filter kept, in order; None: none dropped)."""
    return int(r if kept is None else kept[r]) + 1


def decode_entities(title: str) -> str:
    """A title with its HTML character references decoded (once: ``&amp;amp;`` → ``&amp;``).

    >>> decode_entities("Shirt &amp; tie, 32&#8243; &lt;slim&gt;")
    'Shirt & tie, 32″ <slim>'
    >>> decode_entities("AT&T; R&D")  # not references: unchanged
    'AT&T; R&D'
    """
    return html.unescape(title)


def is_url(value: object) -> bool:
    """Whether ``value`` looks like a URL (``https://…``, ``s3://…``), not a local path."""
    import re

    return isinstance(value, str) and re.match(URL_PATTERN, value.strip()) is not None


def _hint_group(frame: pl.DataFrame, path, others: list[str]) -> None:
    """Without a group column: name a column that looks like one (an EAN, a feed's
    ``item_group_id``) whose values repeat, as offers of one product from several shops or
    a product's variants share one."""
    for col in likely_columns("group_col", "group", others):
        if col not in frame.columns or frame[col].dtype != pl.Utf8:
            continue
        counts = frame[col].str.strip_chars().replace("", None).drop_nulls().value_counts(
            sort=True)
        if counts.height and counts[:, 1][0] > 1:
            n = int(counts.filter(pl.col(counts.columns[1]) > 1)[:, 1].sum())
            logger.warning(
                "%s: column %r holds the same value on several products (%s products share "
                "one with another; %r on %d). If those are one product for a visitor (offers "
                "from several shops, a product's variants), --group-col %s --one-per-group "
                "lists each once (group_col= and one_per_group= in Python).", path, col,
                f"{n:,}", counts[0, 0], counts[0, 1], shlex.quote(col))
            return


def _note_groups(frame: pl.DataFrame, path, col: str) -> None:
    """Warn of products without a group and of groups written with and without leading
    zeros (taken as one: :func:`~prodfusion.data.catalog.group_key`)."""
    n = frame[GROUP].null_count()
    if n:
        logger.warning(
            "%s: %s of %s products have no group (column %r); each counts as a group of its "
            "own, so lists kept to one product per group (--one-per-group) can still show "
            "two of them that are the same product.", path, f"{n:,}", f"{frame.height:,}", col)
    raw = frame.select(pl.col(GROUP).str.strip_chars().alias("raw"), group_key(GROUP)
                       .alias("key")).drop_nulls().unique()
    twins = raw.group_by("key").agg(pl.col("raw").sort()).filter(pl.col("raw").list.len() > 1)
    if twins.height:
        ex = twins.sort("key").row(0)[1]
        logger.warning(
            "%s: %s group(s) of column %r are written both with and without leading zeros "
            "(e.g. %s); each is taken as one group (a spreadsheet drops the zeros of a code "
            "it reads as a number).", path, f"{twins.height:,}", col,
            " and ".join(repr(v) for v in ex[:2]))


def _template_expr(template: str, columns: list[str], aliases: dict[str, str], path: Path) -> pl.Expr:
    """A polars expression that fills ``template`` (``"{product_id}.jpg"``) row by row."""
    parts: list[pl.Expr] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise param_error("image_template", "read_catalog()",
                          "a pattern such as '{product_id}.jpg'", template) from e
    n_fields = 0
    for literal, field, spec, conv in parsed:
        if literal:
            parts.append(pl.lit(literal))
        if field is None:
            continue
        if spec or conv:
            raise param_error("image_template", "read_catalog()",
                              "a pattern of plain {column} fields such as '{product_id}.jpg'",
                              template)
        name = aliases.get(field, field)
        if name not in columns:
            # the file's own names (a column read as the id or title is renamed by then)
            back = {std: orig for orig, std in aliases.items()}
            shown = [back.get(c, c) for c in columns]
            raise DataError(
                f"{path}: image_template {template!r} names column {field!r}, which the catalog "
                f"lacks (found columns: {', '.join(map(repr, shown))}). Use one of those names "
                f"in braces."
            )
        n_fields += 1
        parts.append(pl.col(name))
    if n_fields == 0:
        raise param_error("image_template", "read_catalog()",
                          "a pattern with at least one {column} field such as '{product_id}.jpg'",
                          template)
    return pl.concat_str(parts, ignore_nulls=False)


# --------------------------------------------------------------------------- the catalog
def shadowed_name(column: str) -> str:
    """Where :func:`read_catalog` keeps a file column named like a standard column (e.g.
    ``category``) when another column is chosen for that role (``--category-col sub``).

    >>> shadowed_name("category")
    'category (file)'
    """
    return f"{column} (file)"


def read_catalog(
    path,
    *,
    id_col: str = ID,
    title_col: str = TITLE,
    image_col: str | None = IMAGE,
    category_col: str | None = CATEGORY,
    group_col: str | None = None,
    alias_col: str | None = None,
    image_root: str | Path | None = None,
    image_template: str | None = None,
    fmt: str | None = None,
    sep: str | None = None,
    encoding: str | None = None,
    duplicate_ids: str = "error",
) -> Catalog:
    """Read and validate a product catalog.

    Parameters
    ----------
    path : str, Path or a table in memory
        CSV/TSV/TXT (separator from ``sep`` or guessed), Parquet, JSON Lines or XML file.
        Every column is read as text, so ids keep leading zeros. Or a pandas or polars
        DataFrame or a pyarrow Table (a query's result in a notebook), read as such a file
        would be: its columns as text (whole-number floats as integers), a named pandas index
        as columns, relative photo paths against the working folder, rows numbered from 1 in
        messages (:func:`~prodfusion.data.tables.read_table`).
    id_col, title_col : str
        Columns holding the product id and the title (both required).
    image_col : str or None
        Column holding a local image path. When left at its default and the file has no
        ``image`` column, products have no image; when named explicitly, it must exist.
        None (or ``""``) ignores any image column.
    category_col : str or None
        Column holding a category label (optional in the same way as ``image_col``; None or
        ``""`` for none: a file column named ``category`` is then kept as
        ``"category (file)"``, not used as the categories).
    alias_col : str, optional
        Column holding another name of the product (a variant's SKU, an EAN, a former id) by
        which click logs and requests may name it. Its values over all of an id's rows
        (``duplicate_ids="first"`` keeps them all) become the ``aliases`` column, a list
        per product: :func:`~prodfusion.data.interactions.clean_sessions` reads a log's ids
        through it, and an unknown id is answered with the product it names.
    group_col : str or None
        Column holding a group key (products of one group are variations of one product).
    image_root : str or Path, optional
        Folder that relative image paths are resolved against; default: the catalog's folder.
        A URL (``https://shop.example/media/catalog/product``) joins them, and paths that
        begin with ``/``, to it: photos on a web server, fetched when encoded.
    image_template : str, optional
        Builds the image path from other columns when the catalog has no image column, e.g.
        ``"{product_id}.jpg"`` (standard or original column names in braces).
    fmt : {'csv', 'tsv', 'parquet', 'jsonl', 'xml'}, optional
        Overrides the format guessed from the extension.
    sep : str, optional
        Separator of delimited text.
    encoding : str, optional
        The file's text encoding when it is not UTF-8, e.g. ``"cp1252"`` for a catalog
        saved on Windows in Western Europe (:func:`read_table`).
    duplicate_ids : {"error", "first"}
        What a product id on several rows means: ``"error"`` (default) refuses the file;
        ``"first"`` keeps each id's first row and drops the others, with a warning — for
        exports that give a product's variants or further photos rows of their own, the
        product's fields on its first (Shopify's product CSV). Rows named in later messages
        are the file's rows either way.

    Returns
    -------
    Catalog
        Standard columns ``product_id``, ``title`` (stripped, inner whitespace collapsed to one
        space, HTML character references such as ``&amp;`` decoded, with a warning; null when
        empty), ``image`` (absolute path or null; existence is not checked here), ``category``
        and ``group`` (null when empty) where available, then every other file column
        unchanged.

    Raises
    ------
    DataError
        Missing/unreadable/unknown-format file, non-UTF-8 bytes, missing columns, empty ids
        or duplicate ids. (An empty title is kept as null, with a warning: that product gets no
        text vector.) The message names the file, the 1-based data row and
        the column.

    Examples
    --------
    H&M articles, whose photos are named after the article id::

        cat = read_catalog("../shared/data/hm/articles.csv", id_col="article_id",
                           title_col="prod_name", category_col="product_type_name",
                           image_root="../shared/data/hm/images", image_template="{product_id}.jpg")
    """
    if duplicate_ids not in ("error", "first"):
        raise param_error("duplicate_ids", "read_catalog()", "'error' or 'first'", duplicate_ids)
    frame = read_table(path, fmt=fmt, sep=sep, where="read_catalog()", encoding=encoding)
    if image_root is None and is_remote(path):  # a feed's relative photo paths: its folder
        image_root = path.strip().rstrip("/").rsplit("/", 1)[0] + "/"  # a folder's: its parent
    path = source_name(path)
    found = list(frame.columns)
    at = _file_row  # the file's 1-based row of a frame position (rows may be dropped below)
    kept = None  # the file positions of the frame's rows, where some were dropped
    empty = blank_rows(frame)
    if empty.any():  # an empty line between rows (a hand-edited file): no product in it
        lines = np.flatnonzero(empty.to_numpy())
        logger.warning("%s: %s empty line(s) skipped (first: data row %d).", path,
                       f"{len(lines):,}", int(lines[0]) + 1)
        frame = frame.filter(~empty)
        kept = np.flatnonzero(~empty.to_numpy())
        at = functools.partial(_file_row, kept=kept)

    # which file column becomes which standard column
    chosen: dict[str, str] = {}  # standard name -> file column
    for std, col, option, optional_default in (
        (ID, id_col, "id_col", None),
        (TITLE, title_col, "title_col", None),
        (IMAGE, image_col, "image_col", IMAGE),
        (CATEGORY, category_col, "category_col", CATEGORY),
        (GROUP, group_col, "group_col", None),
    ):
        required = std in (ID, TITLE)
        if not required and col in (None, ""):
            continue  # "" reads as None, so a command line can switch an optional column off
        if not isinstance(col, str) or not col:
            expected = "a column name (str)" if required else "a column name (str) or None"
            raise param_error(option, "read_catalog()", expected, col)
        if col in found:
            chosen[std] = col
        elif col != optional_default:
            raise missing_column_error(path, col, option, found)
        elif not (std == IMAGE and image_template is not None):  # an optional column left
            # at its default and absent: said where the file has one that looks likely
            likely = [c for c in likely_columns(option, col, found)
                      if c not in (id_col, title_col)]
            if likely:
                python = is_table_label(path)
                logger.warning(
                    "%s: no %r column, so the products have no %s; %s may be one: %s (or %s "
                    "to say there is none).", path, col,
                    "photos" if std == IMAGE else "categories",
                    *_suggested(option, likely, python),
                    f"{option}=None" if python else f"{_option_flag(option)} ''")
    if IMAGE in chosen and image_template is not None:
        raise DataError(
            f"{path}: both an image column ({chosen[IMAGE]!r}) and image_template="
            f"{image_template!r} were given. Pass image_col=None (--image-col '') to build paths "
            f"from the template, or drop image_template to use the column."
        )
    used = set(chosen.values())
    shadowed = {}  # a file column named like a standard one that another column replaces
    for std, col in chosen.items():
        if std != col and std in found and std not in used:
            keep = shadowed_name(std)
            if keep in found:
                raise DataError(
                    f"{path}: column {std!r} would be overwritten by {col!r} chosen as the {std} "
                    f"column, and {keep!r} (where it would be kept) exists too. Rename one of them."
                )
            shadowed[std] = keep
    if not category_col and CATEGORY in found and CATEGORY not in used \
            and shadowed_name(CATEGORY) not in found:
        shadowed[CATEGORY] = shadowed_name(CATEGORY)  # switched off: kept, but not as categories
    if shadowed:  # kept under another name: e.g. --category-col subcategory with a 'category' column
        frame = frame.rename(shadowed)
        found = [shadowed.get(c, c) for c in found]
    if not image_col and IMAGE in found and IMAGE not in used:
        frame = frame.drop(IMAGE)  # ignored on request; the standard name is reserved
        found.remove(IMAGE)

    # list columns (Parquet, JSON Lines): a product's photos may be a list, the rest may not
    for std, col in chosen.items():
        if not isinstance(frame.schema[col], (pl.List, pl.Array)):
            continue
        if std != IMAGE:
            raise DataError(
                f"{path}: column {col!r} (the {std} column) holds lists; a product has one "
                f"{std}. Pick one value per product (e.g. the first) before reading.")
        n_many = int(frame.select((pl.col(col).list.len() > 1).fill_null(False).sum()).item())
        frame = frame.with_columns(pl.col(col).list.first().cast(pl.Utf8).alias(col))
        if n_many:
            logger.warning("%s: column %r holds lists of photos (%s products have several): "
                           "the first of each is used, as the product's photo.",
                           path, col, f"{n_many:,}")
    if IMAGE in chosen:  # "a.jpg|b.jpg", "a.jpg, b.jpg": several photos in one cell
        col = chosen[IMAGE]
        several = frame.select(pl.col(col).str.contains(_SEVERAL_PHOTOS).fill_null(False)
                               ).to_series()
        if several.any():
            r = int(several.arg_true()[0])
            cell = frame[col][r]
            frame = frame.with_columns(
                pl.when(several).then(pl.col(col).str.strip_chars().str.extract(
                    r"^([^|;,]+?)\s*[|;,]", 1)).otherwise(pl.col(col)).alias(col))
            logger.warning(
                "%s: %s of %s image cells name several photos (column %r; first: row %d, %r); "
                "the first of each is used (%r).", path, f"{int(several.sum()):,}",
                f"{frame.height:,}", col, at(r), cell, frame[col][r])

    # ids and titles
    pid = chosen[ID]
    row, n = first_bad_row(frame.select(_blank(pid)).to_series())
    if n:
        raise DataError(
            f"{path} row {at(row - 1)}: empty product id (column {pid!r}; {n} row(s) in all). "
            f"Every product needs a unique id: fill it in or remove the row.")
    aliases = None
    if alias_col not in (None, ""):
        if not isinstance(alias_col, str) or alias_col not in found:
            if isinstance(alias_col, str):
                raise missing_column_error(path, alias_col, "alias_col", found)
            raise param_error("alias_col", "read_catalog()", "a column name (str) or None",
                              alias_col)
        a = pl.col(alias_col).str.strip_chars()
        aliases = frame.group_by(pid, maintain_order=True).agg(
            a.filter(a.is_not_null() & (a != "")).unique(maintain_order=True).alias(ALIASES))
    repeat = frame.select(~pl.col(pid).is_first_distinct()).to_series()
    if repeat.any():
        r = int(repeat.arg_true()[0])  # the first row whose id was seen before
        value, row = frame[pid][r], at(r)
        first = at(int((frame.select(pl.col(pid) == value).to_series().arg_true())[0]))
        n_dup = int(frame.select(pl.col(pid).is_duplicated()).to_series().sum())
        if duplicate_ids != "first":
            raise DataError(
                f"{path} row {row}: duplicate product id {value!r} (first seen at row "
                f"{first}, column {pid!r}; {n_dup} rows hold a repeated id). Ids must be "
                f"unique: remove or rename the duplicates, or keep each id's first row with "
                f"duplicate_ids='first' (--duplicate-ids first), as for an export that gives a "
                f"product's variants or further photos rows of their own (Shopify's)."
            )
        firsts = np.flatnonzero(~repeat.to_numpy())
        kept = firsts if kept is None else kept[firsts]
        frame = frame.filter(~repeat)
        at = functools.partial(_file_row, kept=kept)
        logger.warning(
            "%s: %s rows repeat a product id seen on an earlier row (column %r; first: row %d, "
            "%r, first seen at row %d); each id's first row is kept (--duplicate-ids first): "
            "%s products.", path, f"{int(repeat.sum()):,}", pid, row, value, first,
            f"{frame.height:,}")
    padded = frame.select(pl.col(pid) != pl.col(pid).str.strip_chars()).to_series()
    if padded.any():  # kept as they are: ids are exact strings, and stripping could collide
        r = int(padded.arg_true()[0])
        logger.warning(
            "%s: %s product id(s) begin or end with spaces (column %r; first: row %d, %r); they "
            "are kept as they are, and ids are compared as exact strings, so a click log or "
            "request naming %r will not find it. Strip them in the file if that is not meant.",
            path, f"{int(padded.sum()):,}", pid, at(r), frame[pid][r], frame[pid][r].strip())
    tcol = chosen[TITLE]
    raw = frame[tcol]
    coded = frame.select(pl.col(tcol).str.contains(HTML_ENTITY).fill_null(False)).to_series()
    if coded.any():  # "Shirt &amp; tie": what a page shows and an encoder reads is "Shirt & tie"
        frame = frame.with_columns(
            pl.when(coded).then(pl.col(tcol).map_elements(decode_entities, return_dtype=pl.String))
            .otherwise(pl.col(tcol)).alias(tcol))
        coded = (frame[tcol] != raw).fill_null(False)  # a reference-like "&Tx;" stays
    frame = frame.with_columns(
        pl.col(tcol).str.replace_all(r"\s+", " ").str.strip_chars().alias(tcol)
    )
    if coded.any():
        r = int(coded.arg_true()[0])
        logger.warning(
            "%s: %s of %s titles hold HTML character references (column %r; first: row %d, "
            "%r read as %r); they are decoded, so the encoders, lists and pages see the "
            "characters. Decode them in the file to silence this.",
            path, f"{int(coded.sum()):,}", f"{frame.height:,}", tcol, at(r), raw[r],
            frame[tcol][r])
    row, n = first_bad_row(frame.select(_blank(tcol)).to_series())
    if n:  # kept, without a text vector (like a product without a photo)
        logger.warning(
            "%s: %s of %s products have an empty title (column %r; first: row %d, product %r); "
            "they are kept without one (no text or lexical vector in a model, which recommends "
            "them by their other modalities; categorization leaves them out).",
            path, f"{n:,}", f"{frame.height:,}", tcol, at(row - 1), frame[pid][row - 1])
        frame = frame.with_columns(
            pl.when(_blank(tcol)).then(None).otherwise(pl.col(tcol)).alias(tcol))

    if ALIASES in frame.columns and pid != ALIASES:  # the name is the standard column's:
        frame = frame.rename({ALIASES: shadowed_name(ALIASES)})  # a file's kept under another
    if aliases is not None:  # every row's alias, the dropped repeats' too
        frame = frame.join(aliases, on=pid, how="left", maintain_order="left")

    # renaming; the standard columns first, the rest unchanged
    frame = frame.rename({col: std for std, col in chosen.items() if col != std})
    for std in (CATEGORY, GROUP):
        if std in frame.columns:
            frame = frame.with_columns(
                pl.when(_blank(std)).then(None).otherwise(pl.col(std)).alias(std)
            )
    if GROUP in frame.columns:
        _note_groups(frame, path, chosen[GROUP])
    else:
        _hint_group(frame, path, [c for c in found if c not in chosen.values()])

    # images
    # a URL root: the photos are on a web server by the paths the catalog gives (a shop
    # system's media folder, a CDN); fetched when encoded
    web_root = image_root is not None and is_url(str(image_root))
    root = path.parent.resolve() if image_root is None else \
        str(image_root).strip() if web_root else Path(image_root).resolve()
    if image_template is not None:
        if not isinstance(image_template, str):
            raise param_error("image_template", "read_catalog()",
                              "a pattern such as '{product_id}.jpg' or None", image_template)
        aliases = {orig: std for std, orig in chosen.items()}
        frame = frame.with_columns(
            _template_expr(image_template, frame.columns, aliases, path).alias(IMAGE)
        )
    if IMAGE in frame.columns:
        # relative paths join the root; absolute ones stay (a '/' after the root resets it)
        prefix = str(root).rstrip("/\\") + "/"
        is_abs = pl.col(IMAGE).str.strip_chars().str.contains(URL_PATTERN)  # a URL stays a URL
        rel = pl.col(IMAGE).str.strip_chars()
        if web_root:  # '/m/b/mb01.jpg' (Magento's export): a path on that server
            rel = rel.str.strip_chars_start("/")
        else:
            is_abs = is_abs | pl.col(IMAGE).str.starts_with("/") \
                | pl.col(IMAGE).str.contains(r"^[A-Za-z]:[\\/]")
        windows = frame.select((~is_abs & ~_blank(IMAGE) & rel.str.contains("\\", literal=True))
                               .fill_null(False)).to_series()
        if windows.any() and os.sep == "/":  # "img\\001.jpg" from a catalog saved on Windows
            r = int(windows.arg_true()[0])
            logger.warning(
                "%s: %s of %s image paths are relative paths with Windows separators (first: "
                "row %d, %r); read with '/' ('%s').",
                path, f"{int(windows.sum()):,}", f"{frame.height:,}", at(r), frame[IMAGE][r],
                frame[IMAGE][r].strip().replace("\\", "/"))
            rel = pl.when(pl.lit(windows)).then(rel.str.replace_all("\\", "/", literal=True)
                                                ).otherwise(rel)
        frame = frame.with_columns(
            pl.when(_blank(IMAGE)).then(None)
            .when(is_abs).then(pl.col(IMAGE).str.strip_chars())
            .otherwise(pl.lit(prefix) + rel)
            .alias(IMAGE)
        )
        urls = frame.select(pl.col(IMAGE).fill_null("").str.contains(URL_PATTERN)).to_series()
        if urls.any():
            from prodfusion.data.photos import SCHEMES
            from prodfusion.data.storage import OBJECT_SCHEMES

            fetched = frame.select(pl.col(IMAGE).fill_null("").str.to_lowercase().str.contains(
                "^(" + "|".join(SCHEMES + OBJECT_SCHEMES) + ")://")).to_series()
            other = urls & ~fetched
            if fetched.any():
                r = int(fetched.arg_true()[0])
                logger.info(
                    "%s: %s of %s image paths are URLs (first: row %d, %r); the photos are "
                    "fetched when they are encoded (into memory; the embedding cache keeps "
                    "their vectors under the URL, so later runs fetch only new URLs).",
                    path, f"{int(fetched.sum()):,}", f"{frame.height:,}", at(r), frame[IMAGE][r])
            if other.any():
                r = int(other.arg_true()[0])
                logger.warning(
                    "%s: %s of %s image paths are URLs prodfusion does not download (first: "
                    "row %d, %r; it fetches %s), so those products get no image vector. Copy "
                    "the photos to a local folder and point the image column (or --image-root "
                    "with --image-template '{product_id}.jpg') at the files.",
                    path, f"{int(other.sum()):,}", f"{frame.height:,}", at(r), frame[IMAGE][r],
                    ", ".join(f"{s}://" for s in SCHEMES + OBJECT_SCHEMES))
    order = [c for c in (ID, TITLE, IMAGE, CATEGORY, GROUP, ALIASES) if c in frame.columns]
    frame = frame.select(order + [c for c in frame.columns if c not in order])
    return Catalog(frame, source=str(path))
