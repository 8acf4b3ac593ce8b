"""The query-time filters of a fused index, compiled once per ``topk`` call.

:class:`prodfusion.index.topk.Filters` says what a query may not return; a fused index never
holds an ``n × n`` mask, so it compiles the filters into per-query checks over candidate rows
(:class:`_Filter`) backed by inverted lists of the code arrays (:class:`_Codes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from prodfusion.index.topk import Filters

if TYPE_CHECKING:
    from prodfusion.index.fused.base import FusedIndex


class _Codes:
    """Inverted lists and counts of an int code array (category / group), cached per array."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes
        valid = codes >= 0
        rows = np.flatnonzero(valid)
        order = np.argsort(codes[rows], kind="stable")
        self.sorted_rows = rows[order]
        size = int(codes.max()) + 1 if valid.any() else 0
        self.counts = np.bincount(codes[rows], minlength=size)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])

    def rows(self, code: int) -> np.ndarray:
        if code < 0 or code >= len(self.counts):
            return np.zeros(0, dtype=np.int64)
        return self.sorted_rows[self.offsets[code] : self.offsets[code + 1]]

    def count(self, code: int) -> int:
        return 0 if code < 0 or code >= len(self.counts) else int(self.counts[code])


class _Filter:
    """The query-time filters of one ``topk`` call."""

    def __init__(self, owner: FusedIndex, filters: Filters | None) -> None:
        self.filters = f = (filters or Filters()).check(owner.n)
        self.n_banned = 0 if f.banned is None else int(f.banned.sum())
        self.same = None if f.same_code is None else owner._codes(f.same_code)
        self.diff = None if f.diff_code is None else owner._codes(f.diff_code)
        self._unbanned: np.ndarray | None = None

    def unbanned(self, present: np.ndarray) -> np.ndarray:
        """The ``present`` rows not banned, computed once per call (an exact pass over the
        rows left reads only them, not the whole catalog, when most are retired)."""
        if self._unbanned is None:
            keep = present if self.filters.banned is None else present & ~self.filters.banned
            self._unbanned = np.flatnonzero(keep)
        return self._unbanned

    def ok(self, q: int, c: np.ndarray) -> np.ndarray:
        """Which candidate rows ``c`` query row ``q`` may return (:meth:`Filters.allows`)."""
        return self.filters.allows(q, c)

    def universe(self, q: int) -> np.ndarray | None:
        """Rows that can pass ``same_code`` (``None``: every row)."""
        if self.same is None:
            return None
        return self.same.rows(int(self.same.codes[q]))

    def n_removed(self, q: int) -> int:
        """Rows removed besides ``same_code``: an upper bound used to size the over-fetch."""
        r = self.n_banned + 1
        if self.diff is not None:
            r += self.diff.count(int(self.diff.codes[q]))
        return r

