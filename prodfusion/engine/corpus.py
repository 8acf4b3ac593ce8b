"""Session preparation at scale: many interaction files -> cleaned sessions -> one corpus file.

Prod2Vec on one big machine trains fastest from a gensim ``corpus_file`` (one session per line,
read by every worker thread in C++: :meth:`prodfusion.encoders.clicks.Prod2Vec.fit_corpus`).
Reading and cleaning tens of millions of clicks is the part that spreads over workers, in two
stages on an :class:`~prodfusion.engine.Executor` (this process, or Ray tasks):

1. **split** — each source file is read with :func:`~prodfusion.data.read_interactions`, its
   rows numbered across all files (file ``i``, data row ``r`` -> ``i * 2**40 + r``), and
   hash-partitioned by session key into ``buckets`` Parquet pieces;
2. **clean** — each bucket is cleaned with :func:`~prodfusion.data.clean_sessions` (the one
   cleaning formula: catalog filter, time order, repeats collapsed, cap, short sessions
   dropped) and written as corpus lines (:func:`~prodfusion.encoders.clicks.write_corpus`'s
   line formula) together with each line's session first source row.

This process then merges the shards by first source row — the order the single-process
``clean_sessions`` gives — into the corpus file, so the file is **byte-identical** whatever
the engine and the number of buckets, and writes two sidecars: ``<out>.json`` (what cleaning
did, line counts, sources, options, SHA-256) and ``<out>.counts.parquet`` (clicks per product,
for confidence-weighted clicks). Read them back with :class:`CorpusFile`;
``Recommender.build(catalog, CorpusFile(path))`` and ``prodfusion build --corpus`` train
Prod2Vec from the file.

On a multi-node Ray cluster the work folder (``work_dir``, default ``<out>.parts``) must be on
storage every worker reads and writes (NFS, a shared volume); the sources too.

>>> import tempfile, pathlib, polars as pl
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> pl.DataFrame({"session_id": ["s1", "s1", "s2", "s2"],
...               "product_id": ["a", "b", "b", "c"]}).write_csv(d / "day1.csv")
>>> corpus = prepare_corpus([d / "day1.csv"], d / "corpus.txt", buckets=2, progress=False)
>>> (d / "corpus.txt").read_text().splitlines(), corpus.product_counts()["b"]
(['a b', 'b c'], 2)
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from prodfusion._checks import check_int
from prodfusion._outputs import check_output_file, check_replaceable_folder
from prodfusion.errors import DataError, param_error

__all__ = ["prepare_corpus", "CorpusFile", "FORMAT"]

FORMAT = "prodfusion-corpus-v1"
#: Marks a working folder as this module's pieces (only such a folder is emptied by a run).
WORK_MARKER = ".prodfusion-corpus-work"


class _Split:
    """Stage 1 for one source file: read, number rows globally, hash-partition by session."""

    def __init__(self, work: Path, buckets: int, read: dict) -> None:
        self.work, self.buckets, self.read = work, buckets, read

    def __call__(self, item: tuple[int, str]) -> dict:
        import polars as pl

        from prodfusion.data.interactions import ROW_STRIDE, read_interaction_file

        i, path = item  # rows numbered across files as read_interactions numbers them
        frame, seen, n_read = read_interaction_file(path, **self.read)
        frame = frame.with_columns(
            (pl.col("row") + i * ROW_STRIDE).alias("row"),
            (pl.col("session").hash(seed=0) % self.buckets).alias("_bucket"))
        for (b,), part in frame.partition_by("_bucket", as_dict=True).items():
            folder = self.work / "split" / f"b{int(b):05d}"
            folder.mkdir(parents=True, exist_ok=True)
            part.drop("_bucket").write_parquet(folder / f"f{i:06d}.parquet")
        # keep_rows is checked over all the files at once (prepare_corpus)
        return {"path": str(path), "rows": n_read, "kept": frame.height, "seen": seen}


class _Clean:
    """Stage 2 for one bucket: clean its sessions, write corpus lines + their first rows."""

    def __init__(self, work: Path, options: dict, with_catalog: bool,
                 pauses: bool = False) -> None:
        self.work, self.options, self.with_catalog = work, options, with_catalog
        self.pauses = pauses  # count the sessions holding a pause of over an hour

    def __call__(self, b: int) -> dict:
        import polars as pl

        from prodfusion.data import Catalog, clean_sessions
        from prodfusion.encoders.corpus import _check_tokens, _write_lines

        files = sorted((self.work / "split" / f"b{b:05d}").glob("f*.parquet"))
        out = self.work / "shards" / f"b{b:05d}"
        stats = {"n_sessions": 0, "n_clicks": 0, "n_lines": 0, "n_split": 0, "n_dropped": 0}
        if not files:
            return {"bucket": b, "stats": stats, "report": None, "unknown": []}
        frame = pl.concat([pl.read_parquet(f) for f in files])
        catalog = None
        if self.with_catalog:
            ids = pl.read_parquet(self.work / "catalog_ids.parquet")
            catalog = Catalog(ids.with_columns(pl.lit("").alias("title")), source="<catalog ids>")
        options = dict(self.options)
        gap = options.pop("session_gap", None)
        n_split = 0
        if gap is not None:  # before the first rows below: a piece's first row is its own
            from prodfusion.data.interactions import split_at_gaps

            frame, n_split, _ = split_at_gaps(frame, gap, "prepare_corpus()")
        # the unknown ids are checked once for the whole log (prepare_corpus), not per bucket
        sessions = clean_sessions(frame, catalog, **options, check_unknown=False)
        unknown = []
        if catalog is not None:
            unknown = frame.filter(~pl.col("product_id").is_in(ids["product_id"].implode()))[
                "product_id"].unique().to_list()
        first = frame.group_by("session").agg(pl.col("row").min().alias("first"))
        _check_tokens(sessions.frame, f"bucket {b}")
        with open(out.with_suffix(".txt"), "w", encoding="utf-8", newline="\n") as fh:
            keys = _write_lines(fh, sessions.frame, stats)
        lines = pl.DataFrame({"session": pl.Series(keys, dtype=pl.Utf8)})
        rows = lines.join(first, on="session", how="left", maintain_order="left")["first"]
        np.save(out.with_suffix(".first.npy"), rows.to_numpy().astype(np.int64))
        counts = sessions.frame.group_by("product_id").len("count")
        counts.write_parquet(out.with_suffix(".counts.parquet"))
        report = sessions.report.as_dict()
        report["n_sessions_in"] -= n_split  # the keys read, as clean_sessions counts them
        report["n_split_at_gaps"] = n_split
        pauses = (0, 0.0)
        if self.pauses:
            from prodfusion.data.interactions import long_pauses

            pauses = long_pauses(sessions)
        return {"bucket": b, "stats": stats, "report": report, "unknown": unknown,
                "pauses": pauses}


def _lines(txt: Path, first: Path) -> Iterator[tuple[int, str]]:
    rows = np.load(first)
    with open(txt, encoding="utf-8", newline="\n") as fh:
        yield from zip(rows.tolist(), fh, strict=True)


def prepare_corpus(
    sources,
    out: str | os.PathLike,
    *,
    catalog=None,
    session_cols: str | Sequence[str] = ("session_id",),
    item_col: str = "product_id",
    time_col: str | Sequence[str] | None = None,
    sep: str | None = None,
    fmt: str | None = None,
    time_format: str | None = None,
    encoding: str | None = None,
    min_length: int = 2,
    max_length: int | None = 200,
    collapse_repeats: bool = True,
    session_gap: str | float | None = None,
    keep_rows=None,
    buckets: int = 8,
    executor=None,
    work_dir: str | os.PathLike | None = None,
    keep_work: bool = False,
    progress: bool | None = None,
) -> CorpusFile:
    """Clean interaction logs (many files) into one gensim corpus file, in parallel.

    Parameters
    ----------
    sources : path, folder or sequence of them
        Interaction files (CSV/TSV/Parquet/JSON Lines, as :func:`prodfusion.data.read_interactions`
        reads them); a folder stands for its files, sorted by name. A session may span files.
    out : str or PathLike
        The corpus file to write (atomically); ``<out>.json`` and ``<out>.counts.parquet`` go
        beside it.
    catalog : Catalog, optional
        Keep only clicks on its products (as :func:`~prodfusion.data.clean_sessions`).
    session_cols, item_col, time_col, sep, fmt, time_format, encoding
        How to read each file (:func:`~prodfusion.data.read_interactions`). Several time
        columns are ranked per file, so they need a single source file.
    min_length, max_length, collapse_repeats, session_gap
        Cleaning (:func:`~prodfusion.data.clean_sessions`); ``session_gap`` needs one time
        column (a session key's clicks are gathered from every file before it is cut).
    keep_rows : mapping or sequence of str, optional
        Only the rows with these values, e.g. ``{"event": ["view"]}`` (as
        :func:`~prodfusion.data.read_interactions`), checked over all the files at once.
    buckets : int
        Hash partitions of the sessions: the units of parallel cleaning (each must fit in one
        worker's memory).
    executor : Executor, optional
        Where the two stages run (:func:`prodfusion.engine.make_executor`); default this process.
    work_dir : str or PathLike, optional
        Folder for the intermediate pieces (default ``<out>.parts``; emptied first, removed
        at the end unless ``keep_work``). Must be shared storage on a multi-node cluster.
    progress : bool, optional
        Progress lines (None: on).

    Returns
    -------
    CorpusFile
        The written corpus, with its cleaning report and click counts.

    Raises
    ------
    DataError
        Missing or unreadable source files (the message names the file and row), product ids
        with whitespace, several time columns over several files, nothing left after cleaning.
    """
    from prodfusion.engine import LocalExecutor
    from prodfusion.progress import Progress, heartbeat

    where = "prepare_corpus()"
    t0 = time.perf_counter()
    from prodfusion.data.interactions import (
        _merge_seen,
        check_kept,
        interaction_files,
        parse_keep_rows,
    )

    files = interaction_files(sources, where)
    keep = parse_keep_rows(keep_rows, where)
    buckets = check_int(buckets, "buckets", where, low=1)
    n_time_cols = len(time_col.split(",") if isinstance(time_col, str) else time_col or ())
    if n_time_cols > 1 and len(files) > 1:
        raise param_error("time_col", where, "one column when there are several source files "
                          "(several columns are ranked per file)", time_col)
    if session_gap is not None:
        from prodfusion.data.interactions import parse_duration

        session_gap = parse_duration(session_gap, "session_gap", where)
        if n_time_cols != 1:
            raise param_error("time_col", where, "one column of times with session_gap (it "
                              "measures pauses; several columns are ranked, not read as "
                              "times)", time_col)
    out = Path(out)
    check_output_file(out, f"{where}: out", ours=CorpusFile, inputs=files,
                      written_by="a corpus file of an earlier `prodfusion corpus` (with its "
                                 ".json sidecar)")
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".parts")
    if work_dir is not None:  # a folder given: emptied only where empty or marked ours
        check_replaceable_folder(work, WORK_MARKER, f"{where}: work_dir")
    if work.exists():
        shutil.rmtree(work)
    (work / "shards").mkdir(parents=True)
    (work / WORK_MARKER).touch()  # emptied by the next run only where this marks it ours
    if catalog is not None:
        import polars as pl

        pl.DataFrame({"product_id": catalog.frame["product_id"]}).write_parquet(
            work / "catalog_ids.parquet")
    executor = executor or LocalExecutor()
    read = {"session_cols": session_cols, "item_col": item_col, "time_col": time_col,
            "sep": sep, "fmt": fmt, "keep_rows": keep, "time_format": time_format,
            "encoding": encoding}
    split = _Split(work, buckets, read)
    rows_of: dict[str, int] = {}
    seen: dict[str, dict[str, int]] = {}
    n_kept = 0
    bar = Progress(len(files), "corpus: reading and splitting", "files", enabled=progress)
    for _, res in executor.run(split, [(i, str(f)) for i, f in enumerate(files)]):
        rows_of[res["path"]] = res["rows"]
        n_kept += res["kept"]
        _merge_seen(seen, res["seen"])
        bar.update(1)
    bar.close()
    if keep:
        try:
            check_kept(keep, seen, sum(rows_of.values()), n_kept,
                       str(files[0]) if len(files) == 1 else f"{len(files)} interaction files")
        except DataError:
            shutil.rmtree(work, ignore_errors=True)
            raise
    clean = _Clean(work, {"min_length": min_length, "max_length": max_length,
                          "collapse_repeats": collapse_repeats, "session_gap": session_gap},
                   catalog is not None, pauses=session_gap is None and n_time_cols == 1)
    parts = []
    bar = Progress(buckets, "corpus: cleaning sessions", "buckets", enabled=progress)
    for _, res in executor.run(clean, range(buckets)):
        parts.append(res)
        bar.update(1)
    bar.close()
    parts.sort(key=lambda p: p["bucket"])
    stats = {k: sum(p["stats"][k] for p in parts) for k in parts[0]["stats"]}
    reports = [p["report"] for p in parts if p["report"] is not None]
    report = {k: sum(r[k] for r in reports) for k in reports[0]} if reports else {}
    if report:
        unknown = set().union(*(p["unknown"] for p in parts))
        report["n_unknown_products"] = len(unknown)
        if catalog is not None:  # as clean_sessions would say it of the whole log
            from prodfusion.data.interactions import check_unknown_ids

            try:
                check_unknown_ids(sorted(unknown)[:1000], catalog, report["n_unknown_rows"],
                                  report["n_rows_in"])
            except DataError:
                shutil.rmtree(work, ignore_errors=True)
                raise
        from prodfusion.data.interactions import warn_capped, warn_long_pauses
        from prodfusion.data.sessions import SessionReport

        warn_capped(SessionReport(**report), max_length)
        with_pauses = [p["pauses"] for p in parts if p["report"] is not None]
        warn_long_pauses((sum(n for n, _ in with_pauses), max(t for _, t in with_pauses)),
                         report["n_sessions"], "the session key ("
                         + (session_cols if isinstance(session_cols, str)
                            else ",".join(session_cols)) + ")")
    if stats["n_lines"] == 0:
        shutil.rmtree(work, ignore_errors=True)
        raise DataError(f"{', '.join(map(str, files[:3]))}{' …' if len(files) > 3 else ''}: no "
                        "session with two distinct products left after cleaning "
                        f"({report.get('n_rows_in', 0):,} rows read).")
    shards = [(work / "shards" / f"b{p['bucket']:05d}") for p in parts if p["report"] is not None]
    tmp = out.with_name(f".{out.name}.tmp")
    sha = hashlib.sha256()
    with heartbeat(f"corpus: merging {len(shards)} shards into {out}", enabled=progress is not False):
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            merged = heapq.merge(*(_lines(s.with_suffix(".txt"), s.with_suffix(".first.npy"))
                                   for s in shards), key=lambda t: t[0])
            for _, line in merged:
                fh.write(line)
                sha.update(line.encode("utf-8"))
        import polars as pl

        counts = (pl.concat([pl.read_parquet(s.with_suffix(".counts.parquet")) for s in shards])
                  .group_by("product_id").agg(pl.col("count").sum()).sort("product_id"))
    counts_tmp = tmp.with_name(tmp.name + ".counts.parquet")
    counts.write_parquet(counts_tmp)
    describe = getattr(executor, "describe", None)
    meta = {
        "format": FORMAT,
        "sha256": sha.hexdigest(),
        "corpus": stats,
        "report": report,
        # a file named by URL (https://, s3://) has no size here: null
        "sources": [{"path": str(f), "bytes": f.stat().st_size if isinstance(f, Path) else None,
                     "rows": rows_of[str(f)]} for f in files],
        "options": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in read.items()},
                    "min_length": min_length, "max_length": max_length,
                    "collapse_repeats": collapse_repeats, "session_gap": session_gap,
                    "buckets": buckets,
                    "catalog": getattr(catalog, "source", None)},
        "engine": describe() if callable(describe) else type(executor).__name__,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    json_tmp = tmp.with_name(tmp.name + ".json")
    json_tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    # the corpus last: a corpus file beside sidecars from an older run is never visible
    os.replace(counts_tmp, out.with_name(out.name + ".counts.parquet"))
    os.replace(json_tmp, out.with_name(out.name + ".json"))
    os.replace(tmp, out)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return CorpusFile(out)


class CorpusFile:
    """A corpus written by :func:`prepare_corpus`: the file, what cleaning did, click counts.

    Pass it where sessions are expected to train Prod2Vec from the file (gensim's
    ``corpus_file`` mode): ``Recommender(...).build(catalog, CorpusFile("corpus.txt"))``.
    Iterating yields each line's product ids (a long session may span several lines).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        side = self.path.with_name(self.path.name + ".json")
        if not self.path.is_file():
            raise DataError(f"{self.path}: corpus file does not exist; write it with "
                            "`prodfusion corpus` (prepare_corpus()).")
        try:
            self.meta = json.loads(side.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{side}: missing; the corpus was not written by prepare_corpus() "
                            "(write it with `prodfusion corpus`).") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{side}: not valid JSON ({exc}).") from None
        if self.meta.get("format") != FORMAT:
            raise DataError(f"{side}: format {self.meta.get('format')!r}, expected {FORMAT!r}.")

    def __repr__(self) -> str:
        c = self.meta["corpus"]
        return f"CorpusFile({str(self.path)!r}, {c['n_sessions']} sessions, {c['n_lines']} lines)"

    def __len__(self) -> int:
        return int(self.meta["corpus"]["n_sessions"])

    def __iter__(self) -> Iterator[list[str]]:
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                yield line.split()

    @property
    def report(self):
        """What cleaning did (:class:`~prodfusion.data.SessionReport`)."""
        from prodfusion.data.sessions import SessionReport

        return SessionReport(**self.meta["report"])

    @property
    def corpus_file(self) -> str:
        """The file's path as a string: what Prod2Vec trains from (``Prod2Vec.fit_corpus``)."""
        return str(self.path)

    def fingerprint(self) -> str:
        """SHA-256 of the corpus file's content (recorded when it was written)."""
        return str(self.meta["sha256"])

    def sessions(self):
        """The corpus as :class:`~prodfusion.data.sessions.Sessions`, one per line (what the
        ``cooc`` modality counts; a session longer than a line, which gensim caps, counts
        as several). Read with polars: no Python object per click."""
        import polars as pl

        from prodfusion.data.sessions import ID, POSITION, SESSION, TS, Sessions

        lines = pl.read_csv(self.path, has_header=False, new_columns=["line"], separator="\t",
                            quote_char=None, schema_overrides={"line": pl.Utf8})
        frame = (lines.with_row_index(SESSION)
                 .select(pl.col(SESSION).cast(pl.Utf8), pl.col("line").str.split(" ").alias(ID))
                 .explode(ID)
                 .filter(pl.col(ID).is_not_null() & (pl.col(ID) != ""))
                 .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(SESSION)
                               .alias(POSITION), pl.lit(None, dtype=pl.Float64).alias(TS)))
        return Sessions(frame, self.report)

    def product_counts(self) -> dict[str, int]:
        """Clicks per product id in the cleaned sessions (as ``Sessions.product_counts``)."""
        import polars as pl

        c = pl.read_parquet(self.path.with_name(self.path.name + ".counts.parquet"))
        return dict(zip(c["product_id"].to_list(), c["count"].to_list(), strict=True))
