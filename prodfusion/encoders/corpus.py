"""The click corpus Prod2Vec trains on: sessions as "sentences" of product ids.

:func:`split_session` cuts sessions gensim would truncate, :class:`_CoClickCorpus` is the
re-iterable view ``Prod2Vec.fit`` trains on (sessions with two distinct products or more),
and :func:`write_corpus` writes the same sentences to a gensim ``corpus_file`` for
``Prod2Vec.fit_corpus`` (and :mod:`prodfusion.engine.corpus` at scale).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prodfusion.errors import DataError

__all__ = ["MAX_SESSION_TOKENS", "split_session", "write_corpus"]

#: gensim's Cython training silently truncates a sentence after this many tokens
#: (``MAX_WORDS_IN_BATCH``); longer sessions are split into near-equal pieces instead.
MAX_SESSION_TOKENS = 10_000


def split_session(session: list[str], max_len: int = MAX_SESSION_TOKENS) -> list[list[str]]:
    """Cut a session longer than ``max_len`` into near-equal consecutive pieces (no click lost).

    >>> [len(p) for p in split_session(["a"] * 25, 10)]
    [9, 9, 7]
    """
    n = len(session)
    if n <= max_len:
        return [session]
    size = -(-n // -(-n // max_len))  # ceil(n / number of pieces)
    return [session[i : i + size] for i in range(0, n, size)]


class _CoClickCorpus:
    """Re-iterable view of ``sessions`` keeping those with at least two distinct products.

    A one-product session trains nothing in skip-gram but would still put the product in
    the vocabulary with its random initial vector, which is noise posing as a signal.
    """

    def __init__(self, sessions: Iterable) -> None:
        self.sessions = sessions

    def __iter__(self) -> Iterator[list[str]]:
        for s in self.sessions:
            s = list(s)
            if len(s) >= 2 and len(set(s)) >= 2:
                yield from split_session(s)


def _write_lines(fh, frame, stats: dict) -> list[str]:
    """Write the co-click sessions of a ``session, position, product_id`` frame, split if long;
    return the session key of each line written."""
    import polars as pl

    per = frame.group_by("session", maintain_order=True).agg(
        pl.len().alias("n"), pl.col("product_id").n_unique().alias("distinct")
    )
    keep = per.filter((pl.col("n") >= 2) & (pl.col("distinct") >= 2))
    stats["n_sessions"] += keep.height
    stats["n_clicks"] += int(keep["n"].sum() or 0)
    stats["n_dropped"] += per.height - keep.height
    stats["n_split"] += int((keep["n"] > MAX_SESSION_TOKENS).sum())
    size = (pl.col("n") / (pl.col("n") / MAX_SESSION_TOKENS).ceil()).ceil().cast(pl.Int64)
    pieces = (
        frame.join(keep.select("session", size.alias("size")), on="session", maintain_order="left")
        .with_columns((pl.col("position") // pl.col("size")).alias("piece"))
        .group_by("session", "piece", maintain_order=True)
        .agg(pl.col("product_id").str.join(" "))
    )
    stats["n_lines"] += pieces.height
    if pieces.height:
        fh.write("\n".join(pieces["product_id"].to_list()) + "\n")
    return pieces["session"].to_list()


def write_corpus(sessions, path: str | os.PathLike, *, batch_rows: int = 1 << 20) -> dict:
    """Write co-click sessions as a gensim ``corpus_file``: one session per line, ids by spaces.

    Sessions with fewer than two distinct products are left out (as in :meth:`Prod2Vec.fit`);
    sessions longer than :data:`MAX_SESSION_TOKENS` become several near-equal lines, so
    every click is kept.

    Parameters
    ----------
    sessions : str, PathLike or re-iterable of list of str
        A Parquet file written by :meth:`prodfusion.data.Sessions.to_parquet` (read in
        batches of ``batch_rows`` clicks: no list of sessions is ever built), or any
        re-iterable of sessions.
    path : str or PathLike
        The corpus file to write (UTF-8).

    Returns
    -------
    dict
        ``n_sessions`` and ``n_clicks`` written, ``n_lines``, ``n_split`` (sessions cut),
        ``n_dropped`` (sessions without two distinct products).

    Raises
    ------
    DataError
        If a product id contains whitespace (it would become several tokens).
    """
    import polars as pl

    stats = {"n_sessions": 0, "n_clicks": 0, "n_lines": 0, "n_split": 0, "n_dropped": 0}
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        if isinstance(sessions, (str, os.PathLike)):
            import pyarrow.parquet as pq

            try:
                pf = pq.ParquetFile(os.fspath(sessions))
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise DataError(f"{os.fspath(sessions)}: cannot be read as Parquet ({exc}).") from None
            missing = {"session", "position", "product_id"} - set(pf.schema_arrow.names)
            if missing:
                raise DataError(
                    f"{os.fspath(sessions)}: no column(s) {sorted(missing)}; write the file with "
                    "prodfusion.data.Sessions.to_parquet()."
                )
            carry = None
            for batch in pf.iter_batches(batch_size=batch_rows,
                                         columns=["session", "position", "product_id"]):
                frame = pl.from_arrow(batch)
                if carry is not None:
                    frame = pl.concat([carry, frame])
                last = frame["session"][-1]  # the last session may go on in the next batch
                tail = frame["session"] == last
                carry = frame.filter(tail)
                _check_tokens(frame, sessions)
                _write_lines(fh, frame.filter(~tail), stats)
            if carry is not None:
                _write_lines(fh, carry, stats)
        else:
            for k, s in enumerate(sessions):
                s = list(s)
                if len(s) < 2 or len(set(s)) < 2:
                    stats["n_dropped"] += 1
                    continue
                bad = next((p for p in s if not isinstance(p, str) or not p
                            or any(c.isspace() for c in p)), None)
                if bad is not None:
                    raise DataError(_whitespace_message(bad, f"session {k}"))
                pieces = split_session(s)
                stats["n_sessions"] += 1
                stats["n_clicks"] += len(s)
                stats["n_split"] += len(pieces) > 1
                stats["n_lines"] += len(pieces)
                fh.write("".join(" ".join(p) + "\n" for p in pieces))
    return stats


def _whitespace_message(pid: str, where: object) -> str:
    return (
        f"write_corpus(): product id {pid!r} in {where} is empty or contains whitespace, "
        "which would split it into several tokens of the corpus file. Map ids to "
        "whitespace-free tokens first, or train with Prod2Vec.fit(sessions)."
    )


def _check_tokens(frame, source) -> None:
    import polars as pl

    bad = frame.filter(pl.col("product_id").str.contains(r"\s") | (pl.col("product_id") == ""))
    if bad.height:
        raise DataError(_whitespace_message(bad["product_id"][0], source))
