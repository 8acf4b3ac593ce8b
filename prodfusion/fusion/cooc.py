"""The ``cooc`` modality: item-to-item co-occurrence in the training sessions, as a similarity.

Let ``B`` be the binary session × product incidence matrix of the sessions the click vectors
are trained on (a product clicked twice in a session counts once), ``n_i`` the number of
sessions holding product ``i`` and ``C = BᵀB`` (diagonal dropped) the co-occurrence counts.
The modality's similarity of a candidate ``j`` to a query ``i`` is, by ``norm``:

* ``"conditional"`` (default) — ``cooc(i, j) = C_ij / n_i``, the share of the query's
  sessions that also hold the candidate (the confidence of the rule i → j, in [0, 1]). For
  one query it ranks exactly as the raw counts do (the ``cooc`` reference baseline), while
  its scale is comparable across queries: a product seen in 3 sessions and one seen in 300
  both score 1 for a partner in all of their sessions. It is not symmetric.
* ``"cosine"`` — ``C_ij / sqrt(n_i · n_j)``, the cosine of the two products'
  session-incidence vectors (symmetric; it also discounts popular candidates). On the
  DIGINETICA sample it ranked held-out next views worse than the counts (nDCG@15 0.125 vs
  0.138, ``docs/results/README.md``), hence not the default.

**Proximity** (``decay`` = α ≥ 0, default 0): with α > 0 a pair of products counts, in each
session holding both, ``d^-α`` instead of 1, where ``d`` is the distance in clicks between
their nearest occurrences in that session (1 for neighbours; a pair still counts once per
session). ``n_i`` is unchanged, so ``cooc(i, j) ≤ 1`` still. α = 1 ranks the products viewed
right before or after the query above those viewed somewhere in the same session — the
"sequential rules" idea of session-based recommendation (Ludewig & Jannach, 2018). Whether
that helps depends on whether click order means something: on DIGINETICA's views it lifted
the validation nDCG@15 of cooc alone by 0.017 (± 0.003), on H&M's customer-day baskets
(whose order within a day is arbitrary) and on the demo's synthetic shop it lowered it by
about 0.002–0.003. So it is not a default but a choice ``prodfusion tune`` makes on
validation (:func:`~prodfusion.evaluation.tuning.tune_weights`' ``cooc_decays``), and the
``cooc`` reference baseline stays the plain counts. Co-interaction pairs are two-click
sessions: α changes nothing for them.

It is a pairwise score, not a vector: the counts are stored as a sparse matrix and the
score is computed exactly for any candidate pair.

Presence follows the data the score comes from: a product **with** training sessions has the
modality, and with a product it never shared a session with its similarity is ``0`` — a
measured absence of co-occurrence, not a missing value. A product with **no** training
session lacks the modality (like a product without a click vector lacks ``clicks``).

Only intermediate fusion can use it (early fusion concatenates vectors and late fusion
clusters them; a co-occurrence matrix is neither). Its calibration statistics are exact
(:meth:`Cooc.stats`: mean and standard deviation over every ordered pair of distinct present
products), not sampled: random pairs almost never co-occur, so a sample would see only zeros.

Examples
--------
>>> import polars as pl
>>> from prodfusion.data.catalog import Catalog
>>> from prodfusion.data.sessions import Sessions
>>> cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c", "d"], "title": list("wxyz")}))
>>> c = Cooc.from_sessions(Sessions.from_lists([["a", "b"], ["a", "b", "c"], ["a"]]), cat)
>>> c.mask.tolist()
[True, True, True, False]
>>> [round(float(x), 4) for x in c.scores([0], [1, 2, 3])[0]]  # 2/3, 1/3, 0 ("a": 3 sessions)
[0.6667, 0.3333, 0.0]
>>> cos = Cooc.from_sessions(Sessions.from_lists([["a", "b"], ["a", "b", "c"], ["a"]]), cat,
...                          norm="cosine")
>>> [round(float(x), 4) for x in cos.scores([0], [1, 2, 3])[0]]  # 2/sqrt(3·2), 1/sqrt(3·1)
[0.8165, 0.5774, 0.0]
>>> near = Cooc.from_sessions(Sessions.from_lists([["a", "b", "c"], ["c", "a"]]), cat, decay=1)
>>> [round(float(x), 4) for x in near.scores([0], [1, 2])[0]]  # (1/1)/2, (1/2 + 1/1)/2
[0.5, 0.75]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from prodfusion.errors import DataError, ModelError, ParameterError, param_error
from prodfusion.fusion.category import CATEGORY_MODALITY
from prodfusion.fusion.ngrams import NGRAMS
from prodfusion.fusion.popularity import POPULARITY

__all__ = ["Cooc", "COOC", "PAIRWISE_MODALITIES", "check_decay"]

COOC = "cooc"
#: Modalities scored pair by pair (no vector): only intermediate fusion can fuse them.
PAIRWISE_MODALITIES: tuple[str, ...] = (COOC, CATEGORY_MODALITY, POPULARITY, NGRAMS)
NORMS: tuple[str, ...] = ("conditional", "cosine")
#: Pairs per chunk when counting with a decay (bounds the memory of the pair table).
_PAIRS_PER_CHUNK = 20_000_000


def check_decay(decay: Any, where: str) -> float:
    """``decay`` as a float ≥ 0 (:class:`Cooc`'s proximity exponent), or a ParameterError
    naming ``where`` (a function, or a command-line option such as ``--cooc-decay``)."""
    from prodfusion._checks import is_real

    if not is_real(decay) or not 0 <= float(decay) <= 8:
        expected = "a number in [0, 8] (0: plain counts; 1: 1/distance)"
        if where.startswith("--"):
            raise ParameterError(f"{where} must be {expected}; got {decay!r}.")
        raise param_error("decay", where, expected, decay)
    return float(decay)


def _decayed_counts(sess: np.ndarray, pos: np.ndarray, rows: np.ndarray, n: int,
                    decay: float) -> Any:
    """``C_ij`` = Σ over sessions holding both of ``d^-decay``, ``d`` the distance between
    their nearest occurrences (``sess``/``pos``/``rows``: one entry per click, sessions
    contiguous and in position order)."""
    import polars as pl
    from scipy import sparse

    out = sparse.csr_matrix((n, n), dtype=np.float32)
    if len(rows) < 2:
        return out
    starts = np.flatnonzero(np.r_[True, sess[1:] != sess[:-1]])
    lengths = np.diff(np.r_[starts, len(sess)])
    pairs = lengths * (lengths - 1) // 2
    # chunks of whole sessions, about _PAIRS_PER_CHUNK pairs each (a chunk ends with the
    # session whose pairs cross the next multiple of it)
    block = np.cumsum(pairs) // _PAIRS_PER_CHUNK
    cuts = [0, *(np.flatnonzero(np.diff(block)) + 1).tolist(), len(lengths)]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        lo, hi = starts[a], (starts[b] if b < len(starts) else len(sess))
        s, p, r = sess[lo:hi], pos[lo:hi], rows[lo:hi]
        ss, rr, cc, vv = [], [], [], []
        idx = np.arange(len(s))
        d = 1
        while len(idx):  # the clicks with a partner d places later in their session
            idx = idx[idx + d < len(s)]
            idx = idx[s[idx + d] == s[idx]]
            if not len(idx):
                break
            x, y = r[idx], r[idx + d]
            keep = x != y
            ss.append(s[idx][keep])
            rr.append(x[keep])
            cc.append(y[keep])
            dist = (p[idx + d] - p[idx])[keep].astype(np.float64)
            vv.append(dist ** -decay)
            d += 1
        if not ss:
            continue
        f = pl.DataFrame({"s": np.concatenate(ss), "a": np.concatenate(rr),
                          "b": np.concatenate(cc), "v": np.concatenate(vv)})
        # unordered pair per session, at its nearest occurrences
        f = f.with_columns(pl.min_horizontal("a", "b").alias("i"),
                           pl.max_horizontal("a", "b").alias("j"))
        f = f.group_by(["s", "i", "j"]).agg(pl.col("v").max()).group_by(["i", "j"]).agg(
            pl.col("v").sum())
        i, j, v = f["i"].to_numpy(), f["j"].to_numpy(), f["v"].to_numpy().astype(np.float32)
        out = out + sparse.csr_matrix((np.r_[v, v], (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    return out


class Cooc:
    """Sparse co-occurrence similarities over one catalog (see the module docstring).

    Parameters
    ----------
    matrix : scipy.sparse matrix (n, n)
        Co-occurrence counts ``C_ij``, symmetric, zero diagonal; converted to CSR float32.
    counts : int array (n,)
        Training sessions holding each product (``n_i``); ``> 0`` means present.
    info : dict, optional
        JSON-able facts (sessions, nonzeros) for the manifest.
    norm : {"conditional", "cosine"}
        How counts become similarities (module docstring).
    decay : float
        The proximity exponent α the counts were made with (module docstring; 0: plain
        counts). Recorded, not applied: ``matrix`` already holds the weighted counts.
    """

    modality = COOC

    def __init__(self, matrix: Any, counts: np.ndarray, info: dict | None = None,
                 norm: str = "conditional", decay: float = 0.0) -> None:
        from scipy import sparse

        if norm not in NORMS:
            raise param_error("norm", "Cooc()", f"one of {list(NORMS)}", norm)
        self.decay = check_decay(decay, "Cooc()")
        m = sparse.csr_matrix(matrix, dtype=np.float32)
        counts = np.asarray(counts, dtype=np.int64)
        if m.shape != (len(counts), len(counts)):
            raise DataError(f"cooc matrix has shape {m.shape}; expected ({len(counts)},) * 2.")
        m.sort_indices()
        self.matrix = m
        self.counts = counts
        self.mask = counts > 0
        self.norm = norm
        self.spec = f"cooc:{norm}" + (f",decay={self.decay:g}" if self.decay else "")
        self.info = dict(info or {})
        # the similarity matrix S (row i: query i), computed once from the counts
        c = m.tocoo()
        n = counts.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            den = n[c.row] if norm == "conditional" else np.sqrt(n[c.row] * n[c.col])
            vals = np.where(den > 0, c.data / den, 0.0)
        self.sim = sparse.csr_matrix((vals.astype(np.float32), (c.row, c.col)), shape=m.shape)
        self.sim.sort_indices()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_sessions(cls, sessions: Any, catalog: Any, *, norm: str = "conditional",
                      decay: float = 0.0) -> Cooc:
        """Count co-occurrences in ``sessions`` (a :class:`~prodfusion.data.sessions.Sessions`)
        over ``catalog``'s rows; clicks on products outside the catalog are ignored (distances
        are still counted in the session's clicks). ``decay``: the proximity exponent α
        (module docstring; 0, the default, counts every pair of a session alike)."""
        from scipy import sparse

        decay = check_decay(decay, "Cooc.from_sessions()")
        n = len(catalog)
        f = sessions.frame
        rows, ok = catalog.lookup(f["product_id"].to_list())
        sess_all = np.repeat(np.arange(len(sessions)), sessions.lengths)
        sess = sess_all[ok]
        rows = rows[ok]
        b = sparse.csr_matrix((np.ones(len(rows), np.float32), (sess, rows)),
                              shape=(len(sessions), n))
        b.sum_duplicates()
        b.data[:] = 1.0  # a product clicked twice in a session counts once
        counts = np.asarray(b.sum(axis=0)).ravel().astype(np.int64)
        if decay:
            pos = np.asarray(f["position"].to_numpy(), np.int64)[ok]
            c = _decayed_counts(sess, pos, rows.astype(np.int64), n, decay).tocsr()
        else:
            c = (b.T @ b).tocsr().astype(np.float32)
        c.setdiag(0.0)
        c.eliminate_zeros()
        info = {"n_sessions": len(sessions), "n_present": int((counts > 0).sum()),
                "nnz": int(c.nnz)}
        return cls(c, counts, info, norm=norm, decay=decay)

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(self.counts)

    @property
    def n_present(self) -> int:
        return int(self.mask.sum())

    def take(self, rows: np.ndarray) -> Cooc:
        """The modality restricted to ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Cooc(self.matrix[rows][:, rows], self.counts[rows], dict(self.info), self.norm,
                    self.decay)

    def extended(self, n: int) -> Cooc:
        """The same modality over a catalog grown to ``n`` rows (new products: never seen)."""
        from scipy import sparse

        if n < len(self):
            raise DataError(f"cannot shrink the cooc modality from {len(self)} to {n} rows.")
        m = sparse.csr_matrix((self.matrix.data, self.matrix.indices,
                               np.concatenate([self.matrix.indptr,
                                               np.full(n - len(self), self.matrix.nnz)])),
                              shape=(n, n))
        return Cooc(m, np.concatenate([self.counts, np.zeros(n - len(self), np.int64)]),
                    dict(self.info), self.norm, self.decay)

    # ------------------------------------------------------------------ scoring
    def scores(self, query_rows, cand_rows=None) -> np.ndarray:
        """Dense ``(q, c)`` float32 similarities (0 wherever the pair never co-occurred;
        callers combine them with :attr:`mask` for presence)."""
        q = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
        block = self.sim[q]
        if cand_rows is not None:
            block = block[:, np.asarray(cand_rows, dtype=np.int64)]
        return np.asarray(block.toarray(), dtype=np.float32)

    def neighbours(self, row: int, limit: int | None = None) -> np.ndarray:
        """Rows co-occurring with ``row``, highest similarity first (ties: row ascending)."""
        lo, hi = self.sim.indptr[row], self.sim.indptr[row + 1]
        cols, vals = self.sim.indices[lo:hi], self.sim.data[lo:hi]
        order = np.lexsort((cols, -vals))
        out = cols[order].astype(np.int64)
        return out if limit is None else out[:limit]

    def stats(self) -> tuple[float, float]:
        """Exact mean and standard deviation of the similarity over ordered pairs of distinct
        present products (the z-score calibration's ``μ``, ``σ``)."""
        m = float(self.n_present)
        pairs = m * (m - 1)
        if pairs <= 0:
            return 0.0, 1.0
        d = self.sim.data.astype(np.float64)
        mu = float(d.sum() / pairs)
        var = float((d * d).sum() / pairs - mu * mu)
        sd = float(np.sqrt(max(var, 0.0)))
        return mu, sd if sd > 1e-12 else 1.0

    # ------------------------------------------------------------------ persistence
    FILE = "cooc.npz"

    def save(self, folder: Path) -> dict:
        """Write ``cooc.npz`` (CSR arrays + counts) into ``folder``; returns the manifest entry."""
        m = self.matrix
        np.savez(Path(folder) / self.FILE, data=m.data, indices=m.indices, indptr=m.indptr,
                 counts=self.counts)
        return {"file": self.FILE, "spec": self.spec, "norm": self.norm,
                **({"decay": self.decay} if self.decay else {}),  # absent: counts (older)
                "n_present": self.n_present, "info": self.info}

    @classmethod
    def load(cls, folder: Path, entry: dict) -> Cooc:
        from scipy import sparse

        path = Path(folder) / entry.get("file", cls.FILE)
        try:
            with np.load(path) as z:
                counts = z["counts"]
                n = len(counts)
                m = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=(n, n))
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read the cooc modality ({exc}).") from exc
        return cls(m, counts, entry.get("info"), entry.get("norm", "conditional"),
                   entry.get("decay", 0.0))
