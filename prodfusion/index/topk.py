"""The one top-k kernel and the query-time :class:`Filters` every search takes.

A leaf module (NumPy only): the fusions' exact search, the exact index and the fused
indexes all select their best ``k`` here, with the same tie rule (score descending, then
row ascending) and the same padding (row ``-1``, score ``-inf``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodfusion.errors import ParameterError

__all__ = ["Filters", "topk_rows", "topk_exact", "NO_FILTERS", "first_per_code",
           "firsts_of_codes", "topk_one_per_code"]

#: Scores computed per block of queries in :func:`topk_exact`: block × n float32 stays
#: under this many bytes.
_BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Filters:
    """What a query may not return, beyond its ranking.

    Parameters
    ----------
    exclude_self : bool
        Never return the query row itself (default).
    banned : bool array (n,), optional
        Candidates never returned (excluded ids).
    same_code : int array (n,), optional
        Candidates must share the query's code (e.g. category); code ``-1`` matches nothing.
    diff_code : int array (n,), optional
        Candidates must *not* share the query's code (e.g. variation group); ``-1`` never
        clashes.

    Examples
    --------
    Every ``topk(query_rows, k, filters=...)`` of the library takes one (``None``: the
    default ``Filters()``, which only excludes the query itself).

    >>> f = Filters(banned=np.array([False, True, False]))
    >>> f.mask(np.array([0]), 3).tolist()
    [[False, False, True]]
    >>> f.allows(0, np.array([0, 1, 2])).tolist()
    [False, False, True]
    """

    exclude_self: bool = True
    banned: np.ndarray | None = None
    same_code: np.ndarray | None = None
    diff_code: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.banned is not None:  # ~banned must negate booleans, not the bits of ints
            object.__setattr__(self, "banned", np.asarray(self.banned, dtype=bool))

    def check(self, n: int, where: str = "topk()") -> Filters:
        """Refuse filter arrays whose length is not the searched catalog's ``n`` rows."""
        for name in ("banned", "same_code", "diff_code"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ParameterError(f"{where}: {name} has {len(arr)} entries, the index {n} rows.")
        return self

    def allows(self, q: int, candidates: np.ndarray) -> np.ndarray:
        """Booleans: which of the ``candidates`` rows query row ``q`` may return (the rule of
        :meth:`apply`, for one query and a list of candidate rows)."""
        c = np.asarray(candidates, dtype=np.int64)
        ok = np.ones(len(c), dtype=bool)
        if self.exclude_self:
            ok &= c != q
        if self.banned is not None:
            ok &= ~self.banned[c]
        if self.same_code is not None:
            qc = self.same_code[q]
            ok &= (self.same_code[c] == qc) & (qc >= 0)
        if self.diff_code is not None:
            qc = self.diff_code[q]
            if qc >= 0:
                ok &= self.diff_code[c] != qc
        return ok

    def mask(self, query_rows: np.ndarray, n: int) -> np.ndarray:
        """``(len(query_rows), n)`` booleans: which candidates each query may return."""
        s = np.zeros((len(query_rows), n), dtype=np.float32)
        self.apply(s, query_rows)
        return np.isfinite(s)

    def apply(self, scores: np.ndarray, query_rows: np.ndarray) -> np.ndarray:
        """Set ``scores[i, c] = -inf`` (in place) where query ``query_rows[i]`` may not
        return candidate ``c``; returns ``scores``."""
        rows = np.asarray(query_rows, dtype=np.int64)
        if self.exclude_self:
            scores[np.arange(len(rows)), rows] = -np.inf
        if self.banned is not None:
            scores[:, self.banned] = -np.inf
        if self.same_code is not None:
            qc = self.same_code[rows]
            ok = (self.same_code[None, :] == qc[:, None]) & (qc[:, None] >= 0)
            scores[~ok] = -np.inf
        if self.diff_code is not None:
            qc = self.diff_code[rows]
            clash = (self.diff_code[None, :] == qc[:, None]) & (qc[:, None] >= 0)
            scores[clash] = -np.inf
        return scores


NO_FILTERS = Filters(exclude_self=False)


def topk_rows(scores: np.ndarray, k: int, labels: np.ndarray | None = None):
    """Best ``k`` per row of ``scores`` (desc, ties by label asc); ``-1``/``-inf`` padding.

    Non-finite scores are never returned.

    >>> topk_rows(np.array([[0.1, 0.9, 0.5]], "float32"), 2)[0].tolist()
    [[1, 2]]
    >>> topk_rows(np.array([[0.5, 0.9, 0.5, 0.5, 0.5]], "float32"), 3)[0].tolist()
    [[1, 0, 2]]
    """
    q, n = scores.shape
    by_row = labels is None  # labels ascending with the row: ties at the cut need no sort
    if labels is None:
        labels = np.broadcast_to(np.arange(n, dtype=np.int64), (q, n))
    out_l = np.full((q, k), -1, dtype=np.int64)
    out_s = np.full((q, k), -np.inf, dtype=np.float32)
    kk = min(k, n)
    if kk == 0:
        return out_l, out_s
    if kk < n:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        # argpartition keeps an arbitrary few of the products tied at the cut: take the
        # lowest labels among them, as promised (rows with such a tie only)
        kept = np.take_along_axis(scores, part, axis=1)
        cut = kept.min(axis=1)
        fin = np.flatnonzero(np.isfinite(cut))  # a cut at -inf pads: nothing to choose
        if len(fin):
            sub = scores if len(fin) == q else scores[fin]
            c = cut[fin, None]
            torn = fin[np.count_nonzero(sub == c, axis=1)
                       > np.count_nonzero(kept[fin] == c, axis=1)]
            for i in torn:
                above = np.flatnonzero(scores[i] > cut[i])
                tied = np.flatnonzero(scores[i] == cut[i])
                if not by_row:
                    tied = tied[np.argsort(labels[i, tied], kind="stable")]
                part[i] = np.concatenate([above, tied[:kk - len(above)]])
    else:
        part = np.tile(np.arange(n), (q, 1))
    ps = np.take_along_axis(scores, part, axis=1)
    pl_ = np.take_along_axis(labels, part, axis=1)
    order = np.lexsort((pl_, -ps), axis=1)
    best_l = np.take_along_axis(pl_, order, axis=1)
    best_s = np.take_along_axis(ps, order, axis=1).astype(np.float32)
    bad = ~np.isfinite(best_s)
    best_l[bad] = -1
    best_s[bad] = -np.inf
    out_l[:, :kk] = best_l
    out_s[:, :kk] = best_s
    return out_l, out_s


def topk_exact(
    score_block,
    query_rows: np.ndarray,
    n: int,
    k: int,
    *,
    filters: Filters | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by scoring query blocks against all ``n`` rows.

    Parameters
    ----------
    score_block : callable
        ``score_block(rows) -> ndarray (len(rows), n)`` of similarities; ``-inf`` marks
        pairs that must never be returned.
    filters : Filters, optional
        What the queries may not return (default ``Filters()``: the query itself).

    Returns
    -------
    rows : int64 array (q, k), best first, ``-1`` where fewer than k candidates exist
    scores : float32 array (q, k), ``-inf`` at the padding
    """
    flt = (filters or Filters()).check(n, "topk_exact()")
    query_rows = np.asarray(query_rows, dtype=np.int64)
    out_rows = np.full((len(query_rows), k), -1, dtype=np.int64)
    out_scores = np.full((len(query_rows), k), -np.inf, dtype=np.float32)
    block = max(1, min(4096, _BLOCK_BYTES // max(1, 4 * n)))
    for start in range(0, len(query_rows), block):
        rows = query_rows[start : start + block]
        s = flt.apply(np.asarray(score_block(rows), dtype=np.float32), rows)
        r, sc = topk_rows(s, k)
        out_rows[start : start + len(rows)] = r
        out_scores[start : start + len(rows)] = sc
    return out_rows, out_scores


def firsts_of_codes(c: np.ndarray) -> np.ndarray:
    """Booleans: which entries of ``c`` are the first of their code; every ``-1`` (no code)
    counts as a code of its own.

    >>> firsts_of_codes(np.array([3, -1, 3, -1, 2])).tolist()
    [True, True, False, True, True]
    """
    c = np.asarray(c, dtype=np.int64)
    _, first = np.unique(c, return_index=True)
    keep = c < 0
    keep[first] = True
    return keep


def first_per_code(rows: np.ndarray, scores: np.ndarray, codes: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each ranked list kept to its first row of every code, cut to ``k``.

    ``rows`` / ``scores`` are a ``topk`` answer (``(q, m)``, best first, ``-1`` / ``-inf``
    pad the end); ``codes`` an int code per catalog row (``-1``: no code, such a row is
    always kept). Returns ``(q, k)`` arrays padded the same way.

    >>> r, s = first_per_code(np.array([[4, 2, 3, 0]]), np.array([[.9, .8, .7, .6]]),
    ...                       np.array([7, -1, 5, -1, 5]), 3)
    >>> r.tolist()  # row 2 repeats row 4's code 5; row 3 has none
    [[4, 3, 0]]
    """
    rows = np.asarray(rows, dtype=np.int64)
    out_r = np.full((len(rows), k), -1, dtype=np.int64)
    out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
    for i in range(len(rows)):
        live = rows[i] >= 0
        r = rows[i][live]
        take = np.flatnonzero(firsts_of_codes(codes[r]))[:k]
        out_r[i, :len(take)] = r[take]
        out_s[i, :len(take)] = np.asarray(scores[i])[live][take]
    return out_r, out_s


def topk_one_per_code(search, query_rows: np.ndarray, k: int, codes: np.ndarray,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` with at most one row per code (:func:`first_per_code`) from ``search``
    (``search(rows, m) -> (rows, scores)``, a ``topk`` that already applies the query's
    filters): each query's list is fetched four times longer until ``k`` codes are in it,
    or its candidates ran out, or all ``n`` rows were read."""
    query_rows = np.asarray(query_rows, dtype=np.int64)
    out_r = np.full((len(query_rows), k), -1, dtype=np.int64)
    out_s = np.full((len(query_rows), k), -np.inf, dtype=np.float32)
    todo = np.arange(len(query_rows))
    m = min(n, 4 * k)
    while len(todo):
        r, s = search(query_rows[todo], m)
        cr, cs = first_per_code(r, s, codes, k)
        out_r[todo], out_s[todo] = cr, cs
        short = (cr < 0).any(axis=1) & (r >= 0).all(axis=1)  # short, more may be ranked
        if m >= n:
            break
        todo, m = todo[short], min(n, 4 * m)
    return out_r, out_s
