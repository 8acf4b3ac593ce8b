"""The in-memory catalog: product ids, titles, image paths, categories and extra columns.

The reader that fills it from CSV/TSV/Parquet/JSON Lines is :func:`prodfusion.data.read_catalog`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from prodfusion.errors import DataError, UnknownProductError

__all__ = ["Catalog", "check_catalog"]

#: Standard column names inside a :class:`Catalog` frame.
ID, TITLE, IMAGE, CATEGORY, GROUP = "product_id", "title", "image", "category", "group"
#: Other names of a product (a list per product: its variants' SKUs, EANs, former ids), by
#: which click logs and requests may name it (``read_catalog(alias_col=…)``).
ALIASES = "aliases"
_PLURAL = {"category": "categories"}


def check_catalog(catalog, where: str, what: str = "a Catalog") -> None:
    """Refuse anything but a :class:`Catalog` for ``where``'s ``catalog``, saying how to make
    one: a DataFrame is read by ``read_catalog(frame, …)`` as a file is.

    >>> import polars as pl
    >>> check_catalog(pl.DataFrame({"id": ["1"]}), "build()")
    Traceback (most recent call last):
    ...
    prodfusion.errors.ParameterError: build(): 'catalog' is a polars DataFrame; read it first with read_catalog(frame, id_col=…, title_col=…, image_col=…, category_col=…), which reads a table in memory as it reads a file (its columns named, ids and titles checked).
    """
    if isinstance(catalog, Catalog):
        return
    from prodfusion.data.tables import is_table, table_kind
    from prodfusion.errors import ParameterError, param_error

    if is_table(catalog):
        raise ParameterError(
            f"{where}: 'catalog' is a {table_kind(catalog)}; read it first with "
            "read_catalog(frame, id_col=…, title_col=…, image_col=…, category_col=…), which "
            "reads a table in memory as it reads a file (its columns named, ids and titles "
            "checked).")
    raise param_error("catalog", where, f"{what} (read_catalog(path_or_frame, …))",
                      type(catalog).__name__)


def group_key(column: str) -> pl.Expr:
    """The value groups compare by (:meth:`Catalog.codes`): spaces around cut, and a code of
    digits alone without its leading zeros, so ``0885909950805`` and ``885909950805`` (the
    same EAN read through a spreadsheet, which keeps numbers, not digits) are one group.

    >>> pl.DataFrame({"g": ["0885909950805", "885909950805", " AB-1 ", "000"]}).select(
    ...     group_key("g")).to_series().to_list()
    ['885909950805', '885909950805', 'AB-1', '0']
    """
    v = pl.col(column).cast(pl.Utf8).str.strip_chars()
    digits = v.str.contains(r"^[0-9]+$")
    return (pl.when(digits).then(pl.coalesce(v.str.strip_chars_start("0").replace("", None),
                                              pl.lit("0")))
            .otherwise(v).alias(column))


@dataclass
class Catalog:
    """Products in a fixed row order. Ids are strings; rows are ints; this object maps them.

    Parameters
    ----------
    frame : polars.DataFrame
        Must hold ``product_id`` (Utf8, unique, non-empty) and ``title`` (Utf8). Optional:
        ``image`` (Utf8 absolute path or null), ``category`` (Utf8 or null), ``group``
        (Utf8 or null: products of one group are variations of one product). Any other
        column is carried through to outputs unchanged.
    source : str
        Where the catalog came from (file path or ``"<synthetic>"``), used in messages.

    Examples
    --------
    >>> import polars as pl
    >>> cat = Catalog(pl.DataFrame({"product_id": ["007", "8"], "title": ["red shoe", "blue hat"]}))
    >>> cat.rows_of(["8"]).tolist(), cat.ids[0]
    ([1], '007')
    """

    frame: pl.DataFrame
    source: str = "<memory>"
    _row: dict[str, int] = field(init=False, repr=False)
    _lengths: list[int] | None = field(init=False, repr=False, default=None)
    _ids: np.ndarray | None = field(init=False, repr=False, default=None)
    _aliases: dict[str, str] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pl.DataFrame):
            from prodfusion.data.tables import table_kind
            from prodfusion.errors import ParameterError

            raise ParameterError(
                f"Catalog() takes a polars DataFrame with the standard columns; got a "
                f"{table_kind(self.frame)}: "
                "read_catalog(frame, id_col=…, title_col=…) reads a pandas or polars "
                "DataFrame or a pyarrow Table as it reads a file (its columns named and "
                "checked).")
        for col in (ID, TITLE):
            if col not in self.frame.columns:
                raise DataError(f"{self.source}: catalog has no {col!r} column.")
        self.frame = self.frame.with_columns(pl.col(ID).cast(pl.Utf8), pl.col(TITLE).cast(pl.Utf8))
        ids = self.frame[ID].to_list()
        self._row = {pid: i for i, pid in enumerate(ids)}
        if len(self._row) != len(ids):
            seen: dict[str, int] = {}
            for i, pid in enumerate(ids):
                if pid in seen:
                    raise DataError(
                        f"{self.source} row {i + 1}: duplicate product id {pid!r} "
                        f"(first seen at row {seen[pid] + 1}, column {ID!r}). Ids must be unique."
                    )
                seen[pid] = i

    def __repr__(self) -> str:
        """What a user needs to see of a catalog: its size, how many products have each
        known column filled, the other columns carried through, and where it came from.

        >>> import polars as pl
        >>> Catalog(pl.DataFrame({"product_id": ["1", "2"], "title": ["red shoe", ""],
        ...                       "category": ["shoe", None], "price": [9.5, 3.0]}), "shop.csv")
        Catalog(2 products: 1 title, 1 category; also price; source='shop.csv')
        """
        f, parts = self.frame, []
        for col, word in ((TITLE, "title"), (IMAGE, "photo path"), (CATEGORY, "category"),
                          (GROUP, "group")):
            if col in f.columns:
                n = f.select(pl.col(col).cast(pl.Utf8).fill_null("").str.len_chars().gt(0)
                             .sum()).item()
                parts.append(f"{n:,} {word if n == 1 else _PLURAL.get(word, word + 's')}")
        if isinstance(f.schema.get(ALIASES), pl.List):
            n = f.select(pl.col(ALIASES).list.len().fill_null(0).sum()).item()
            parts.append(f"{n:,} alias{'' if n == 1 else 'es'}")
        other = [c for c in f.columns if c not in (ID, TITLE, IMAGE, CATEGORY, GROUP, ALIASES)]
        also = f"; also {', '.join(other[:8])}{', …' if len(other) > 8 else ''}" if other else ""
        return (f"Catalog({len(self):,} product{'' if len(self) == 1 else 's'}: "
                f"{', '.join(parts)}{also}; source={self.source!r})")

    # ----------------------------------------------------------------- basic access
    def __len__(self) -> int:
        return self.frame.height

    @property
    def ids(self) -> np.ndarray:
        """Product ids as a read-only NumPy array of Python strings (object dtype), in row order.

        Built once and kept: the catalog does not change after construction.
        """
        if self._ids is None:
            ids = np.asarray(self.frame[ID].to_list(), dtype=object)
            ids.flags.writeable = False
            self._ids = ids
        return self._ids

    @property
    def titles(self) -> list[str]:
        return self.frame[TITLE].to_list()

    @property
    def image_paths(self) -> list[str | None]:
        if IMAGE not in self.frame.columns:
            return [None] * len(self)
        return self.frame[IMAGE].to_list()

    @property
    def categories(self) -> list[str | None] | None:
        if CATEGORY not in self.frame.columns:
            return None
        return self.frame[CATEGORY].cast(pl.Utf8).to_list()

    @property
    def groups(self) -> list[str | None] | None:
        if GROUP not in self.frame.columns:
            return None
        return self.frame[GROUP].cast(pl.Utf8).to_list()

    def codes(self, column: str) -> np.ndarray | None:
        """An int64 code per row of ``column`` (``"category"``, ``"group"``): equal values get
        equal codes, a missing value ``-1``; ``None`` when the catalog has no such column.

        The one place categories and variation groups are coded (query filters, evaluation).
        Groups compare by :func:`group_key` (an EAN that lost its leading zero in a
        spreadsheet is still the same product's).

        >>> import polars as pl
        >>> cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c"], "title": ["x", "y", "z"],
        ...                             "category": ["s", None, "s"]}))
        >>> cat.codes("category").tolist()
        [0, -1, 0]
        >>> cat.codes("group") is None
        True
        """
        if column not in self.frame.columns:
            return None
        s = self.frame.select(group_key(GROUP)).to_series() if column == GROUP \
            else self.frame[column].cast(pl.Utf8)
        codes = s.cast(pl.Categorical).to_physical().cast(pl.Int64).to_numpy()
        return np.where(s.is_null().to_numpy(), -1, codes).astype(np.int64)

    @property
    def has_categories(self) -> bool:
        return CATEGORY in self.frame.columns and self.frame[CATEGORY].null_count() < len(self)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._row

    def row_of(self, product_id: str) -> int:
        """Row index of one product id.

        Raises
        ------
        UnknownProductError
            If the id is not in the catalog.
        """
        try:
            return self._row[product_id]
        except (KeyError, TypeError):  # TypeError: an unhashable id (a list, an array)
            hint, twin = "", None
            if not isinstance(product_id, str):
                as_text = str(product_id)
                twin = as_text if as_text in self._row else (
                    self.twin_of(as_text) if isinstance(product_id, (int, np.integer)) else None)
                hint = (f" The id given is of type {type(product_id).__name__}, not str"
                        + (f": did you mean {twin!r}?" if twin is not None else "."))
            else:
                twin = self.twin_of(product_id)
                hint = f" Did you mean {twin!r}?" if twin is not None else ""
            err = UnknownProductError(
                f"Product id {product_id!r} is not in the catalog ({len(self)} products from "
                f"{self.source}). Ids are compared as exact strings, leading zeros included."
                + hint
            )
            err.product_id, err.n_products = product_id, len(self)  # for messages without paths
            err.twin = twin
            raise err from None

    def twin_of(self, product_id: str) -> str | None:
        """The catalog's id that ``product_id`` is written another way, or None: the same
        once spaces, a trailing ``.0``, leading zeros, the case or the width of its letters
        and digits differ (``"7"`` for ``"000007"``, ``"sku-12"`` for ``"SKU-12"``,
        ``"ＪＰ０７"`` for ``"JP07"``). A few dictionary lookups, whatever the
        catalog's size (zero-padded to the lengths its ids have).

        >>> import polars as pl
        >>> cat = Catalog(pl.DataFrame({"product_id": ["000007", "SKU-12"], "title": ["a", "b"]}))
        >>> cat.twin_of("7"), cat.twin_of("7.0"), cat.twin_of(" sku-12 "), cat.twin_of("8")
        ('000007', '000007', 'SKU-12', None)
        >>> cat.twin_of("ＳＫＵ－１２"), cat.twin_of("７")
        ('SKU-12', '000007')
        """
        import unicodedata

        if self._lengths is None:  # the id lengths, once
            self._lengths = sorted({len(p) for p in self._row})
        s = unicodedata.normalize("NFKC", product_id).strip()  # typed full-width: ＪＰ０１
        if s.endswith(".0") and s[:-2].isdigit():
            s = s[:-2]
        tries = [s, s.upper(), s.lower()]
        if s.isdigit():
            core = s.lstrip("0") or "0"
            tries += [core.zfill(n) for n in self._lengths if n >= len(core)]
        twin = next((t for t in tries if t != product_id and t in self._row), None)
        return twin if twin is not None else self.alias_map().get(s)

    def alias_map(self) -> dict[str, str]:
        """Each alias (:data:`ALIASES`) → the product it names; an alias that is some
        product's id, or names several products, is left out (ids come first; an ambiguous
        name is no name). Empty without the column.

        >>> import polars as pl
        >>> cat = Catalog(pl.DataFrame({"product_id": ["red-dress", "hat"], "title": ["a", "b"],
        ...                             "aliases": [["RD-S", "RD-M", "X"], ["X", "hat"]]}))
        >>> cat.alias_map()
        {'RD-S': 'red-dress', 'RD-M': 'red-dress'}
        """
        if self._aliases is None:
            self._aliases = {}
            if isinstance(self.frame.schema.get(ALIASES), pl.List):
                pairs = (self.frame.select(ID, ALIASES).explode(ALIASES)
                         .drop_nulls(ALIASES).unique(maintain_order=True)
                         .filter(~pl.col(ALIASES).is_in(self.frame[ID].implode())))
                once = pairs.filter(pl.col(ALIASES).is_unique())  # in one product only
                self._aliases = dict(zip(once[ALIASES].to_list(), once[ID].to_list(),
                                         strict=True))
        return self._aliases

    def rows_of(self, product_ids: Iterable[str]) -> np.ndarray:
        """Row indices of many product ids (raises on the first unknown one)."""
        return np.fromiter((self.row_of(p) for p in product_ids), dtype=np.int64)

    def lookup(self, product_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``product_ids`` and a mask of which were found (never raises)."""
        rows = np.array([self._row.get(p, -1) for p in product_ids], dtype=np.int64)
        return rows, rows >= 0

    def rows_where(self, spec, where: str, *, option: str = "--recommend-rows",
                   names: dict | None = None) -> np.ndarray:
        """A bool per product: whether its row holds one of ``spec``'s values in every
        column ``spec`` names (``{"status": ["active"]}`` or ``"status=active"``, as
        :func:`~prodfusion.data.interactions.parse_keep_rows` reads them; values compared
        as text, spaces around cut; an empty cell never matches).

        ``names`` maps a file's column name to this frame's (``{"product_type_name":
        "category"}``: a column read as a standard one); a column neither names is refused,
        naming the columns there are.

        >>> import polars as pl
        >>> cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c"], "title": ["x", "y", "z"],
        ...                             "status": ["active", "sold", None]}))
        >>> cat.rows_where("status=active", "build()").tolist()
        [True, False, False]
        """
        from prodfusion.data.interactions import parse_keep_rows

        wanted = parse_keep_rows(spec, where, option.lstrip("-").replace("-", "_"))
        names = names or {}
        mask = np.ones(len(self), bool)
        for col, values in wanted.items():
            name = col if col in self.frame.columns else names.get(col)
            if name not in self.frame.columns:
                raise DataError(
                    f"{self.source}: {option} names no column {col!r}; the catalog has "
                    f"{[c for c in self.frame.columns if c not in (IMAGE, ALIASES)]}.")
            s = self.frame[name].cast(pl.Utf8).str.strip_chars()
            mask &= s.is_in(values).fill_null(False).to_numpy()
        return mask

    def record(self, row: int) -> dict:
        """All columns of one row as a dict (for printing and serving)."""
        return self.frame.row(int(row), named=True)

    def take(self, rows: np.ndarray) -> Catalog:
        """A new catalog holding only ``rows`` (in that order)."""
        return Catalog(self.frame[np.asarray(rows, dtype=np.int64)], source=self.source)
