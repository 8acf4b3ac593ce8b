"""Precomputed recommendation lists: the Parquet layout ``prodfusion export`` writes and the
stores the service reads them from.

Layout of a lists file (Parquet, one row per product, rows in the model's catalog order)::

    product_id : string              the product the list is for
    ids        : list<string>        its k most similar other products, best first
                                     (fewer than k when fewer candidates exist)
    scores     : list<float32>       their fused similarities, same order

The schema metadata key ``prodfusion.lists`` holds JSON: ``format_version``, ``k``,
``fusion``, ``modalities``, ``normalize``, ``model`` (path, catalog fingerprint, created),
``n_products`` (of the model), ``start``/``stop`` (the catalog rows exported),
``created`` and ``started`` (when the export began, seconds since the epoch: the service
answers live a product the model re-encoded after it). ``docs/benchmarks/export.md`` has recipes to load it into Redis, DynamoDB and
PostgreSQL.

Serving reads a *serving copy* of that file (:meth:`ListStore.prepare`), in one of three
layouts measured by ``benchmarks/lists_store.py``:

``"arrow"``  uncompressed Arrow IPC, rows sorted by product id, memory-mapped; a lookup is a
             binary search over the mapped id column (nothing read into memory at open, pages
             shared by every worker process through the page cache). The service default.
``"sqlite"`` one ``WITHOUT ROWID`` table keyed by product id, opened read-only.
``"memory"`` the Parquet file read into memory with a dict id → row (the simple baseline).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from bisect import bisect_left
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prodfusion._outputs import usual_permissions
from prodfusion.errors import DataError, param_error

__all__ = ["LISTS_FORMAT_VERSION", "LAYOUTS", "ListStore", "write_lists", "read_lists_meta",
           "lists_table", "exported_at", "stale_reasons", "FLAT_FORMATS", "write_flat_lists"]

LISTS_FORMAT_VERSION = 1
META_KEY = b"prodfusion.lists"
LAYOUTS = ("arrow", "sqlite", "memory")
_SUFFIX = {"arrow": ".arrow", "sqlite": ".sqlite"}


def lists_table(product_ids, ids: np.ndarray, scores: np.ndarray) -> pa.Table:
    """The lists of ``product_ids`` as an Arrow table in the file layout.

    ``ids`` (object array, ``None`` where a list is short) and ``scores`` (float32, ``-inf``
    there) have shape ``(len(product_ids), k)``, as :meth:`Recommender.similar_batch` returns.
    """
    ids = np.asarray(ids, dtype=object)
    scores = np.asarray(scores, dtype=np.float32)
    valid = np.array([[x is not None for x in row] for row in ids], dtype=bool).reshape(ids.shape)
    lengths = valid.sum(axis=1)
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat_ids = pa.array(ids[valid].tolist(), type=pa.string())  # row-major: best first per row
    flat_scores = pa.array(scores[valid], type=pa.float32())
    off = pa.array(offsets)
    return pa.table({
        "product_id": pa.array(list(product_ids), type=pa.string()),
        "ids": pa.ListArray.from_arrays(off, flat_ids),
        "scores": pa.ListArray.from_arrays(off, flat_scores),
    })


def _epoch(stamp) -> float | None:
    """Seconds since the epoch of a manifest time (``"%Y-%m-%dT%H:%M:%S%z"``), else None."""
    import datetime as dt

    try:
        return dt.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def exported_at(meta: dict) -> float:
    """When the export of a lists file began: its ``started`` (seconds since the epoch);
    for files written before that was recorded, their ``created`` less a second; 0 when
    neither is there. A product the model re-encoded later may have an old list in it."""
    if isinstance(meta.get("started"), (int, float)):
        return float(meta["started"])
    t = _epoch(meta.get("created"))
    return 0.0 if t is None else t - 1.0


def stale_reasons(meta: dict, manifest: dict) -> list[str]:
    """Why *every* list of a lists file (``meta``) may differ from what the model of
    ``manifest`` would list now: the file was exported from an earlier build, or the model's
    click vectors were retrained (``prodfusion add --interactions``) or its weights (or the
    file's profile) tuned after the export began. Empty when none applies: then only the
    products added, re-encoded or retired since differ (what ``export --update``
    recomputes, and what the service answers live)."""
    m = manifest or {}
    made = exported_at(meta)
    out = []
    built = m.get("built") or m.get("created")
    of = (meta.get("model") or {}).get("created")
    of_build = (meta.get("model") or {}).get("built")  # files written since the 25th session
    ids = ((meta.get("model") or {}).get("build_id"), m.get("build_id"))
    if None not in ids:  # exact, where both record it
        other = ids[0] != ids[1]
    elif of_build is not None and built is not None:
        other = of_build != built
    else:  # older files: judged by their build times
        other = None
    if other:
        earlier = (_epoch(of_build) or 0) < (_epoch(built) or 0)
        out.append(f"exported from {'an earlier build of the model' if earlier else 'another model'} "
                   f"(built {of_build}; this model was built {built})")
    elif other is None and _epoch(of) is not None and _epoch(built) is not None \
            and _epoch(of) < _epoch(built):
        out.append(f"exported from an earlier build of the model (built {of}; the model "
                   f"now was built {built})")
    elif other is None and _epoch(of) is not None and _epoch(m.get("created")) is not None \
            and _epoch(of) > _epoch(m["created"]) + 1:
        out.append(f"exported from another model (one saved at {of}, after this model's "
                   f"last save at {m['created']})")
    for u in m.get("updates") or []:
        t = _epoch(u.get("time"))
        if u.get("retrained_clicks") and t is not None and t + 1 > made:
            out.append(f"the model's click vectors were retrained at {u['time']}, after the "
                       "export began")
    profile = meta.get("profile")
    tuning = (((m.get("settings") or {}).get("profiles") or {}).get(profile) or {}).get(
        "tuning") if profile else m.get("tuning")
    t = _epoch((tuning or {}).get("created"))
    if t is not None and t + 1 > made:
        out.append(f"{'profile ' + repr(profile) if profile else 'the weights'} tuned at "
                   f"{tuning['created']}, after the export began")
    return out


def _atomic_target(path: Path) -> Path:
    """A new empty temp file beside ``path`` with the usual permissions (mkstemp's are 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    usual_permissions(tmp)
    return Path(tmp)


def write_lists(table: pa.Table, path: str | os.PathLike, meta: dict,
                *, row_group_size: int = 65_536) -> Path:
    """Write ``table`` with ``meta`` to ``path`` atomically (a temp file beside it, renamed).

    A reader never sees a half-written file: a service polling ``path`` switches from the old
    file to the new one in one step (the old inode stays readable while it is mapped).
    """
    path = Path(path)
    schema = table.schema.with_metadata({META_KEY: json.dumps(meta).encode()})
    tmp = _atomic_target(path)
    try:
        pq.write_table(table.replace_schema_metadata(schema.metadata), tmp,
                       row_group_size=row_group_size, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


#: Files ``export`` writes one row per recommendation to, by suffix: for a shop's database
#: import or a spreadsheet, where a Parquet file of lists is not read.
FLAT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def write_flat_lists(lists: str | os.PathLike, out: str | os.PathLike) -> int:
    """A lists file (Parquet, one row per product) as one row per recommendation, atomically:
    ``product_id, rank, recommended_id, score`` (then ``share_*`` where it was exported with
    ``explain``), in the lists' order; a short list has fewer rows. The format is ``out``'s
    suffix (:data:`FLAT_FORMATS`). Returns the rows written.

    >>> import tempfile, pathlib, numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> t = lists_table(["a", "b"], np.array([["b", "c"], ["a", None]], dtype=object),
    ...                 np.array([[0.9, 0.5], [0.9, -np.inf]], dtype=np.float32))
    >>> _ = write_lists(t, d / "l.parquet", {"format_version": 1})
    >>> write_flat_lists(d / "l.parquet", d / "l.csv")
    3
    >>> print((d / "l.csv").read_text().strip())
    product_id,rank,recommended_id,score
    a,1,b,0.9
    a,2,c,0.5
    b,1,a,0.9
    """
    import polars as pl

    out = Path(out)
    kind = FLAT_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise param_error("out", "write_flat_lists()", f"a file ending in one of "
                          f"{', '.join(FLAT_FORMATS)}", str(out))
    frame = pl.read_parquet(lists)
    listed = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
    flat = (frame.with_columns(pl.int_ranges(1, pl.col("ids").list.len() + 1).alias("rank"))
            .explode([*listed, "rank"])
            .filter(pl.col("ids").is_not_null())  # an empty list explodes to one null row
            .rename({"ids": "recommended_id", "scores": "score"}))
    flat = flat.select("product_id", "rank", "recommended_id", "score",
                       *[c for c in flat.columns if c.startswith("share_")])
    tmp = _atomic_target(out)
    try:
        if kind == "jsonl":
            flat.write_ndjson(tmp)
        else:
            flat.write_csv(tmp, separator="\t" if kind == "tsv" else ",")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return flat.height


def _meta_of(schema: pa.Schema, where) -> dict:
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DataError(f"{where}: not a prodfusion lists file (no {META_KEY.decode()!r} "
                        "metadata). Write one with `prodfusion export`.")
    meta = json.loads(raw)
    fv = meta.get("format_version")
    if not isinstance(fv, int) or fv > LISTS_FORMAT_VERSION:
        raise DataError(f"{where}: lists format version {fv!r}; this prodfusion reads "
                        f"≤ {LISTS_FORMAT_VERSION}. Upgrade prodfusion or re-export.")
    return meta


def read_lists_meta(path: str | os.PathLike) -> dict:
    """The ``prodfusion.lists`` metadata of a lists file (Parquet or a serving copy)."""
    path = Path(path)
    if path.suffix == ".sqlite":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (raw,) = con.execute("SELECT value FROM meta WHERE key='lists'").fetchone()
        finally:
            con.close()
        return json.loads(raw)
    try:
        if path.suffix == ".arrow":
            with pa.memory_map(str(path)) as src:
                return _meta_of(pa.ipc.open_file(src).schema, path)
        return _meta_of(pq.read_schema(path), path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read the lists file ({exc})."
                        + _flat_hint(path)) from exc


def _flat_hint(path: Path) -> str:
    """What to do with a flat export (``export --out lists.csv``) named as a lists file."""
    if path.suffix.lower() not in FLAT_FORMATS:
        return ""
    return (f" A {path.suffix} export holds one row per recommendation, for a database; the "
            f"service and `export --update` read the Parquet one: prodfusion export MODEL --out "
            f"{path.with_suffix('.parquet').name}")


def _read_parquet(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read the lists file ({exc})."
                        + _flat_hint(path)) from exc
    _meta_of(table.schema, path)
    missing = {"product_id", "ids", "scores"} - set(table.column_names)
    if missing:
        raise DataError(f"{path}: lists file lacks column(s) {sorted(missing)}.")
    return table


class ListStore:
    """Read-only lookup of one product's precomputed list. Thread-safe.

    Open a serving copy made by :meth:`prepare` (or a Parquet file with ``layout="memory"``)::

        store = ListStore.open(ListStore.prepare("lists.parquet"))
        ids, scores = store.get("P0000042")        # None when the product has no list
    """

    layout = ""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path = Path(path)
        self.meta = meta

    # ------------------------------------------------------------------ making and opening
    @staticmethod
    def serving_path(parquet: str | os.PathLike, layout: str = "arrow") -> Path:
        """Where :meth:`prepare` puts the serving copy of ``parquet`` (beside it)."""
        if layout not in LAYOUTS:
            raise param_error("layout", "ListStore", f"one of {list(LAYOUTS)}", layout)
        p = Path(parquet)
        return p if layout == "memory" else p.with_name(p.name + _SUFFIX[layout])

    @classmethod
    def prepare(cls, parquet: str | os.PathLike, layout: str = "arrow") -> Path:
        """Make (or reuse) the serving copy of a lists Parquet file; returns its path.

        The copy is rewritten (atomically) when it is older than the Parquet file, so a newly
        exported file replaces it on the next reload. ``"memory"`` needs no copy.
        """
        src = Path(parquet)
        out = cls.serving_path(src, layout)
        if layout == "memory" or (out.exists() and out.stat().st_mtime_ns >= src.stat().st_mtime_ns):
            return out
        table = _read_parquet(src)
        meta = _meta_of(table.schema, src)
        order = pc.sort_indices(table, [("product_id", "ascending")])
        table = table.take(order).combine_chunks()
        tmp = _atomic_target(out)
        try:
            if layout == "arrow":
                with pa.OSFile(str(tmp), "wb") as sink, \
                        pa.ipc.new_file(sink, table.schema) as writer:
                    writer.write_table(table, max_chunksize=len(table) or None)
            else:
                _write_sqlite(table, meta, tmp)
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return out

    @classmethod
    def open(cls, path: str | os.PathLike, layout: str | None = None) -> ListStore:
        """Open a serving copy; the layout follows the suffix unless given."""
        path = Path(path)
        if layout is None:
            layout = {".arrow": "arrow", ".sqlite": "sqlite"}.get(path.suffix, "memory")
        kind = {"arrow": _ArrowStore, "sqlite": _SqliteStore, "memory": _MemoryStore}.get(layout)
        if kind is None:
            raise param_error("layout", "ListStore.open()", f"one of {list(LAYOUTS)}", layout)
        if not path.is_file():
            raise DataError(f"{path}: no such lists file.")
        return kind._open(path)

    # ------------------------------------------------------------------ lookups
    def get(self, product_id: str) -> tuple[list[str], list[float]] | None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _str_buffers(arr: pa.Array) -> tuple[np.ndarray, memoryview]:
    """Offsets and data of a non-null string array, zero-copy."""
    if arr.null_count:
        raise DataError("lists file: null product ids are not allowed.")
    _, off, data = arr.buffers()
    offsets = np.frombuffer(off, dtype=np.int32, count=len(arr) + 1 + arr.offset)[arr.offset:]
    return offsets, memoryview(data)


class _SortedKeys:
    """Sequence view of a sorted string array for :func:`bisect.bisect_left`, zero-copy."""

    def __init__(self, offsets: np.ndarray, data: memoryview) -> None:
        self.off = offsets.tolist() if len(offsets) < 4096 else offsets
        self.data = data
        self.n = len(offsets) - 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> bytes:
        return bytes(self.data[int(self.off[i]):int(self.off[i + 1])])


class _ArrowStore(ListStore):
    layout = "arrow"

    @classmethod
    def _open(cls, path: Path) -> _ArrowStore:
        self = cls.__new__(cls)
        self._source = pa.memory_map(str(path))
        reader = pa.ipc.open_file(self._source)
        meta = _meta_of(reader.schema, path)
        ListStore.__init__(self, path, meta)
        table = reader.read_all()
        if table.num_rows == 0:
            self._keys = _SortedKeys(np.zeros(1, dtype=np.int32), memoryview(b""))
            return self
        pid = table.column("product_id").chunk(0)
        self._keys = _SortedKeys(*_str_buffers(pid))
        lists = table.column("ids").chunk(0)
        self._list_off = np.frombuffer(lists.buffers()[1], dtype=np.int32,
                                       count=len(lists) + 1 + lists.offset)[lists.offset:]
        self._id_off, self._id_data = _str_buffers(lists.values)
        sc = table.column("scores").chunk(0)
        self._score_off = np.frombuffer(sc.buffers()[1], dtype=np.int32,
                                        count=len(sc) + 1 + sc.offset)[sc.offset:]
        v = sc.values
        self._scores = np.frombuffer(v.buffers()[1], dtype=np.float32,
                                     count=len(v) + v.offset)[v.offset:]
        self._table = table  # keeps the mapped buffers alive
        return self

    def __len__(self) -> int:
        return self._keys.n

    def get(self, product_id: str):
        key = product_id.encode()
        i = bisect_left(self._keys, key)
        if i >= self._keys.n or self._keys[i] != key:
            return None
        lo, hi = int(self._list_off[i]), int(self._list_off[i + 1])
        bounds = self._id_off[lo:hi + 1].tolist()
        data = self._id_data
        ids = [bytes(data[a:b]).decode() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        slo, shi = int(self._score_off[i]), int(self._score_off[i + 1])
        return ids, self._scores[slo:shi].tolist()

    def close(self) -> None:
        self._table = None
        self._source.close()


def _write_sqlite(table: pa.Table, meta: dict, path: Path) -> None:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO meta VALUES ('lists', ?)", (json.dumps(meta),))
        con.execute("CREATE TABLE lists (product_id TEXT PRIMARY KEY, ids TEXT, scores BLOB) "
                    "WITHOUT ROWID")
        for batch in table.to_batches(max_chunksize=65_536):
            pids = batch.column(0).to_pylist()
            ids = batch.column(1).to_pylist()
            sc = batch.column(2)
            off = np.frombuffer(sc.buffers()[1], dtype=np.int32,
                                count=len(sc) + 1 + sc.offset)[sc.offset:]
            vals = sc.values.to_numpy(zero_copy_only=False).astype(np.float32)
            con.executemany("INSERT INTO lists VALUES (?, ?, ?)", (
                (p, json.dumps(i, ensure_ascii=False), vals[off[j]:off[j + 1]].tobytes())
                for j, (p, i) in enumerate(zip(pids, ids, strict=True))))
        con.commit()
    finally:
        con.close()


class _SqliteStore(ListStore):
    layout = "sqlite"

    @classmethod
    def _open(cls, path: Path) -> _SqliteStore:
        self = cls.__new__(cls)
        ListStore.__init__(self, path, read_lists_meta(path))
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        (self._n,) = self._con().execute("SELECT count(*) FROM lists").fetchone()
        return self

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:  # one read-only connection per thread; the file is never modified
            con = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True,
                                  check_same_thread=False)
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def __len__(self) -> int:
        return self._n

    def get(self, product_id: str):
        row = self._con().execute("SELECT ids, scores FROM lists WHERE product_id=?",
                                  (product_id,)).fetchone()
        if row is None:
            return None
        return json.loads(row[0]), np.frombuffer(row[1], dtype=np.float32).tolist()

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()


class _MemoryStore(ListStore):
    layout = "memory"

    @classmethod
    def _open(cls, path: Path) -> _MemoryStore:
        self = cls.__new__(cls)
        table = _read_parquet(path)
        ListStore.__init__(self, path, _meta_of(table.schema, path))
        self._pos = {p: i for i, p in enumerate(table.column("product_id").to_pylist())}
        ids = table.column("ids").combine_chunks()
        self._off = ids.offsets.to_numpy()
        self._ids = np.asarray(ids.values.to_pylist(), dtype=object)
        self._scores = table.column("scores").combine_chunks().values.to_numpy()
        return self

    def __len__(self) -> int:
        return len(self._pos)

    def get(self, product_id: str):
        i = self._pos.get(product_id)
        if i is None:
            return None
        lo, hi = int(self._off[i]), int(self._off[i + 1])
        return self._ids[lo:hi].tolist(), self._scores[lo:hi].tolist()
