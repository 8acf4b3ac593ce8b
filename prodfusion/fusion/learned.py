"""A learned fusion: gradient-boosted trees over the modalities' similarities
(``prodfusion tune MODEL --learner gbdt [--profile NAME]``).

The linear weightings of :mod:`prodfusion.fusion.weights` add calibrated similarities with
one weight per modality. A :class:`LearnedScorer` instead scores a (query, candidate) pair
by trees (scikit-learn's ``HistGradientBoostingClassifier``, trained on the tuning's
validation splits: :func:`prodfusion.evaluation.tuning_learned.tune_learned`) over
these features, per fused modality ``m`` (missing where either product lacks ``m``):

* ``sim:m`` — the raw similarity (cosine; the co-occurrence, category or popularity score);
* ``gap:m`` — that similarity minus the query's best over the catalog in ``m``
  (:func:`query_best`: how far the candidate is from the query's nearest product there);

both products' training clicks, ``log(1 + n)`` (``clicks:candidate``, ``clicks:query``),
and the score of the linear weighting it re-scores (``linear``: the trees start from what the
weights already know and learn corrections, which keeps them near the weights where the
validation cases are few).
The trees learn what a linear weighting cannot: that a co-occurrence counts only when the
candidate is among the query's nearest, that a rarely clicked product's click cosine means
little, how to rank a pair lacking a modality (missing values take their own branch, learnt).
They also learn that clicked products are likelier answers, which buries new products: a
candidate without training clicks gets :attr:`LearnedScorer.cold_bonus`, chosen out of
fold by the tuning. A query without training clicks (a new product asking for its list),
which the validation queries seldom show them, can be ranked by trees of its own or by the
weights instead (:attr:`LearnedScorer.new_query`), also chosen out of fold.

The trees score a query's **pool**: each modality's ``pool`` (200) nearest products, the
category's bestsellers (:func:`pool_mask`; at scale each modality's own index,
:mod:`prodfusion.index.learned`). Every other product ranks after the pool by the learned
weighting's linear weights (:class:`~prodfusion.fusion.weights.Weighting`'s ``weights``,
whose score is also the ``linear`` feature). The trees are stored as arrays (no pickle) in
the ``weighting`` entry of the manifest — the model's own or a profile's — (``learned``:
base64 of a ``numpy.savez`` file) and scored by :meth:`LearnedScorer.predict`, which
reproduces scikit-learn's ``decision_function`` (``tests/fusion/test_learned.py``).

A query's best similarity in a modality is read off the rows its list is ranked from: the
full rows in the exact search, its pool through the indexes (which holds each modality's
nearest, so the maximum is the same where the index finds them) — nothing is computed ahead
for the catalog, and a learned weighting scales as the indexes do.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.errors import ModelError, ParameterError
from prodfusion.fusion.cooc import PAIRWISE_MODALITIES

__all__ = ["LearnedScorer", "pair_features", "pool_mask", "query_best", "top_n_mask", "DEFAULT_POOL",
           "POOL_OFFSET"]

#: Each modality's nearest products a query's trees score (:func:`pool_mask`).
DEFAULT_POOL = 200
#: Below every tree score: products outside the pool rank after it, by the linear weighting.
POOL_OFFSET = 1.0e6
#: Rows scored at a time by :meth:`LearnedScorer.predict`.
PREDICT_CHUNK = 32768
_NODE_FIELDS = ("feature", "threshold", "missing_left", "left", "right", "value")


#: From this many rows (the tuning's validation pools, not one query's) the compiled walker
#: runs on scikit-learn's OpenMP threads (``OMP_NUM_THREADS`` honoured); each row's sum is
#: the same on any number of threads.
THREADED_ROWS = 50_000


def _walker_threads(n_rows: int) -> int:
    if n_rows < THREADED_ROWS:
        return 1
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    return _openmp_effective_n_threads()


def feature_names(modalities: Sequence[str]) -> list[str]:
    """The features of a learned scorer over ``modalities``, in order.

    >>> feature_names(("text", "cooc"))
    ['sim:text', 'gap:text', 'sim:cooc', 'gap:cooc', 'clicks:candidate', 'clicks:query', 'linear']
    """
    out = []
    for m in modalities:
        out += [f"sim:{m}", f"gap:{m}"]
    return out + ["clicks:candidate", "clicks:query", "linear"]


def pair_features(modalities: Sequence[str], cos: Mapping, both: Mapping, best_q: Mapping,
                  log_q, log_c, linear=None) -> np.ndarray:
    """Features ``(q, c, F)`` float32 of every (query, candidate) pair (:func:`feature_names`).

    ``cos[m]``, ``both[m]``: ``(q, c)`` similarities and presence; ``best_q[m]``: ``(q,)``
    each query's best similarity in ``m`` (NaN where it lacks ``m``); ``log_q`` ``(q,)`` and
    ``log_c`` ``(c,)`` or ``(q, c)``: ``log(1 + clicks)``, or None (missing); ``linear``
    ``(q, c)``: the linear weighting's fused score (``-inf`` or None: missing).

    The cosines of vector modalities are clipped to [-1, 1]: the exact search and the index
    path compute them in different orders, and products with the same title (cosine 1) came
    out as 1.0000001 on one and 1.0 on the other, which moved a ``gap`` across a tree's
    threshold (thirty-first session).
    """
    shape = np.shape(both[modalities[0]])
    cols = []
    for m in modalities:
        c = np.asarray(cos[m], np.float32)
        b = np.asarray(best_q[m], np.float32).reshape(-1, 1)
        if m not in PAIRWISE_MODALITIES:
            c, b = np.clip(c, -1.0, 1.0), np.clip(b, -1.0, 1.0)
        c = np.where(both[m], c, np.float32(np.nan))
        cols += [c, c - b]
    nan = np.full(shape, np.nan, np.float32)
    cols.append(nan if log_c is None else np.broadcast_to(
        np.asarray(log_c, np.float32), shape))
    cols.append(nan if log_q is None else np.broadcast_to(
        np.asarray(log_q, np.float32).reshape(-1, 1), shape))
    if linear is None:
        cols.append(nan)
    else:
        lin = np.asarray(linear, np.float32)
        cols.append(np.where(np.isfinite(lin), lin, np.float32(np.nan)))
    return np.stack(cols, axis=-1).astype(np.float32, copy=False)


class LearnedScorer:
    """Boosted trees over pair features (module docstring); equal and hashed by content.

    Build one with :meth:`from_estimator` (a fitted ``HistGradientBoostingClassifier`` or
    ``HistGradientBoostingRegressor`` trained on :func:`pair_features`) or :meth:`from_dict`.

    ``cold_bonus`` (``>= 0``, default 0) is added to the trees' score of a pair whose
    candidate has no training clicks (``clicks:candidate`` is 0): new products, which the
    trees, having learnt that clicked products are likelier answers, rank below what titles
    and photos alone would (the tuning chooses it on validation, out of fold:
    :func:`~prodfusion.evaluation.tuning_learned.tune_learned`).

    ``new_query`` (optional): what scores the pairs whose query has no training clicks
    (``clicks:query`` is 0: a new product asking for its list), which the trees, learnt on
    clicked queries, may rank poorly: trees over the same features (the bonus added to them
    too), or ``"linear"``, the weights' score (the ``linear`` feature, no bonus). The tuning
    chooses among the trees, trees for new queries and the weights out of fold.
    """

    def __init__(self, modalities: Sequence[str], nodes: Mapping[str, np.ndarray],
                 roots: np.ndarray, baseline: float, pool: int = DEFAULT_POOL,
                 cold_bonus: float = 0.0, new_query: LearnedScorer | str | None = None
                 ) -> None:
        self.modalities = tuple(modalities)
        if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool < 1:
            raise ModelError(f"a learned scorer's pool must be a count >= 1, got {pool!r}.")
        self.pool = int(pool)
        if isinstance(cold_bonus, bool) or not isinstance(cold_bonus, (int, float, np.number)) \
                or not np.isfinite(cold_bonus) or cold_bonus < 0:
            raise ModelError("a learned scorer's cold_bonus must be a finite number >= 0, got "
                             f"{cold_bonus!r}.")
        self.cold_bonus = float(cold_bonus)
        if new_query is not None and new_query != "linear" and not (
                isinstance(new_query, LearnedScorer) and new_query.modalities == self.modalities
                and new_query.new_query is None and not new_query.cold_bonus):
            raise ModelError("a learned scorer's new-query trees must be 'linear' or trees "
                             "over the same modalities, without a bonus or trees of their "
                             "own.")
        self.new_query = new_query
        self.nodes = {k: np.asarray(nodes[k]) for k in _NODE_FIELDS}
        self.roots = np.asarray(roots, np.int64)
        self.baseline = float(baseline)
        n_feat = len(feature_names(self.modalities))
        f = self.nodes["feature"]
        inner = f >= 0
        n = len(f)
        if (f[inner] >= n_feat).any() or (self.roots >= n).any() or (self.roots < 0).any() or (
                inner.any() and ((self.nodes["left"][inner] >= n).any()
                                 or (self.nodes["right"][inner] >= n).any())):
            raise ModelError("a learned scorer's trees are damaged (node or feature out of "
                             "range).")
        h = hashlib.sha256(repr(self.modalities).encode())
        h.update(np.float64(self.baseline).tobytes())
        h.update(np.int64(self.pool).tobytes())
        h.update(self.roots.tobytes())
        for k in _NODE_FIELDS:
            h.update(np.ascontiguousarray(self.nodes[k]).tobytes())
        if self.cold_bonus:  # (none: the fingerprint trees without it always had)
            h.update(np.float64(self.cold_bonus).tobytes())
        if self.new_query is not None:  # (none: likewise)
            h.update(b"new_query" + (b"linear" if self.new_query == "linear"
                                     else self.new_query.fingerprint.encode()))
        self.fingerprint = h.hexdigest()[:16]

    def __eq__(self, other) -> bool:
        return isinstance(other, LearnedScorer) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        bonus = f", cold bonus {self.cold_bonus:g}" if self.cold_bonus else ""
        if self.new_query == "linear":
            bonus += ", new queries by the weights"
        elif self.new_query is not None:
            bonus += f", {self.new_query.n_trees} trees for new queries"
        return (f"LearnedScorer({'+'.join(self.modalities)}, {len(self.roots)} trees{bonus}, "
                f"{self.fingerprint})")

    def with_cold_bonus(self, cold_bonus: float) -> LearnedScorer:
        """The same trees with another :attr:`cold_bonus` (class docstring)."""
        out = LearnedScorer(self.modalities, self.nodes, self.roots, self.baseline, self.pool,
                            cold_bonus, self.new_query)
        if getattr(self, "_walkers_cache", False) is not False:  # the same trees' walkers
            out._walkers_cache = self._walkers_cache
        return out

    def with_new_query(self, new_query: LearnedScorer | str | None) -> LearnedScorer:
        """The same trees (and bonus) with other :attr:`new_query` trees (class docstring;
        None: none)."""
        out = LearnedScorer(self.modalities, self.nodes, self.roots, self.baseline, self.pool,
                            self.cold_bonus, new_query)
        if getattr(self, "_walkers_cache", False) is not False:
            out._walkers_cache = self._walkers_cache
        return out

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @classmethod
    def from_estimator(cls, est, modalities: Sequence[str],
                       pool: int = DEFAULT_POOL) -> LearnedScorer:
        """From a fitted scikit-learn histogram gradient-boosting model (binary or
        regression: one tree per iteration), its raw score's trees as arrays."""
        preds = getattr(est, "_predictors", None)
        if not preds or any(len(p) != 1 for p in preds):
            raise ParameterError("LearnedScorer.from_estimator() needs a fitted binary "
                                 "HistGradientBoosting model (one tree per iteration).")
        parts, roots, off = {k: [] for k in _NODE_FIELDS}, [], 0
        for (tree,) in preds:
            nd = tree.nodes
            if np.any(nd["is_categorical"]):
                raise ParameterError("categorical splits are not supported.")
            leaf = nd["is_leaf"].astype(bool)
            parts["feature"].append(np.where(leaf, -1, nd["feature_idx"]).astype(np.int32))
            parts["threshold"].append(nd["num_threshold"].astype(np.float64))
            parts["missing_left"].append(nd["missing_go_to_left"].astype(bool))
            parts["left"].append(np.where(leaf, 0, nd["left"].astype(np.int64) + off))
            parts["right"].append(np.where(leaf, 0, nd["right"].astype(np.int64) + off))
            parts["value"].append(nd["value"].astype(np.float64))
            roots.append(off)
            off += len(nd)
        nodes = {k: np.concatenate(v) for k, v in parts.items()}
        nodes["left"] = nodes["left"].astype(np.int32)
        nodes["right"] = nodes["right"].astype(np.int32)
        base = float(np.ravel(est._baseline_prediction)[0])
        return cls(modalities, nodes, np.array(roots, np.int64), base, pool)

    def to_dict(self) -> dict:
        """JSON-able: ``{"modalities", "trees", "fingerprint", "npz"}`` (base64 of the
        arrays' ``numpy.savez_compressed``; no pickle)."""
        buf = io.BytesIO()
        np.savez_compressed(buf, roots=self.roots, baseline=np.float64(self.baseline),
                            **self.nodes)
        return {"modalities": list(self.modalities), "trees": self.n_trees, "pool": self.pool,
                **({"cold_bonus": self.cold_bonus} if self.cold_bonus else {}),
                **({"new_query": self.new_query if self.new_query == "linear"
                    else self.new_query.to_dict()} if self.new_query is not None else {}),
                "fingerprint": self.fingerprint,
                "npz": base64.b64encode(buf.getvalue()).decode("ascii")}

    @classmethod
    def from_dict(cls, d: Mapping) -> LearnedScorer:
        """From :meth:`to_dict`; a damaged entry is a :class:`ModelError`."""
        cached = _DECODED.get(d.get("fingerprint")) if isinstance(d, Mapping) else None
        if cached is not None and d.get("cold_bonus", 0.0) == cached.cold_bonus and (
                "new_query" in d) == (cached.new_query is not None):
            return cached
        try:
            nq = d.get("new_query")
            nq = None if nq is None else nq if nq == "linear" else cls.from_dict(nq)
            raw = base64.b64decode(d["npz"], validate=True)
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                out = cls(d["modalities"], {k: z[k] for k in _NODE_FIELDS}, z["roots"],
                          float(z["baseline"]), d.get("pool", DEFAULT_POOL),
                          d.get("cold_bonus", 0.0), nq)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - any damage: one clear error
            raise ModelError(f"a learned scorer entry is damaged ({type(exc).__name__}: "
                             f"{exc}).") from exc
        if d.get("fingerprint") not in (None, out.fingerprint):
            raise ModelError("a learned scorer entry is damaged (its fingerprint does not "
                             "match its trees).")
        _DECODED[out.fingerprint] = out
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw scores ``(n,)`` float64 of feature rows ``X`` ``(n, F)`` (the sum of the
        trees' leaves plus the baseline: scikit-learn's ``decision_function``; plus
        :attr:`cold_bonus` where the candidate has no training clicks).

        Scored by scikit-learn's compiled tree walker, rebuilt from the arrays, where this
        scikit-learn has the one it was written against (about 5 times faster); else by
        :meth:`predict_numpy`. The two agree to the bit (``tests/fusion/test_learned.py``)."""
        X = np.ascontiguousarray(X, np.float64)
        new = self._new_rows(X)
        if new is not None:
            return self._routed(X, new, numpy=False)
        walkers = self._walkers()
        if walkers is None:
            return self.predict_numpy(X)
        out = np.full(len(X), self.baseline, np.float64)
        known = np.zeros((0, 8), np.uint32)
        f_map = np.zeros(X.shape[1], np.uint32)
        threads = _walker_threads(len(X))
        for w in walkers:
            out += w.predict(X, known, f_map, threads)
        return self._add_cold_bonus(X, out)

    def _new_rows(self, X: np.ndarray) -> np.ndarray | None:
        """Bool per row: the query has no training clicks (``clicks:query`` is 0) and
        :attr:`new_query` trees score it; None where no row goes to them."""
        if self.new_query is None or not len(X):
            return None
        new = X[:, 2 * len(self.modalities) + 1] == 0
        return new if new.any() else None

    def _routed(self, X: np.ndarray, new: np.ndarray, numpy: bool) -> np.ndarray:
        main = getattr(self, "_plain", None)
        if main is None:  # the same trees, alone and without the bonus (added below)
            main = self._plain = self.with_new_query(None).with_cold_bonus(0.0)
        out = np.empty(len(X), np.float64)
        for rows, trees in ((~new, main), (new, self.new_query)):
            if not rows.any():
                continue
            if trees == "linear":  # the weights' score (the last feature), as it is
                continue
            out[rows] = trees.predict_numpy(X[rows]) if numpy else trees.predict(X[rows])
        out = self._add_cold_bonus(X, out)
        if self.new_query == "linear":  # no bonus: the weights do not bury new products
            lin = X[new, -1]  # missing only where no modality is shared (explain's base)
            out[new] = np.where(np.isnan(lin), 0.0, lin)
        return out

    def _add_cold_bonus(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.cold_bonus:  # clicks:candidate, 0 for a product without training clicks
            out += self.cold_bonus * (X[:, 2 * len(self.modalities)] == 0)
        return out

    def _walkers(self):
        """scikit-learn ``TreePredictor`` objects of the trees, or None where unavailable."""
        if getattr(self, "_walkers_cache", False) is not False:
            return self._walkers_cache
        walkers = None
        try:
            from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
            from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

            nd = self.nodes
            ends = list(self.roots[1:]) + [len(nd["feature"])]
            walkers = []
            empty = np.zeros((0, 8), np.uint32)
            for lo, hi in zip(self.roots, ends, strict=True):
                rec = np.zeros(hi - lo, PREDICTOR_RECORD_DTYPE)
                leaf = nd["feature"][lo:hi] < 0
                rec["value"] = nd["value"][lo:hi]
                rec["feature_idx"] = np.where(leaf, 0, nd["feature"][lo:hi])
                rec["num_threshold"] = nd["threshold"][lo:hi]
                rec["missing_go_to_left"] = nd["missing_left"][lo:hi]
                rec["left"] = np.where(leaf, 0, nd["left"][lo:hi] - lo)
                rec["right"] = np.where(leaf, 0, nd["right"][lo:hi] - lo)
                rec["is_leaf"] = leaf
                walkers.append(TreePredictor(rec, empty, empty))
        except Exception:  # noqa: BLE001 - another scikit-learn: the numpy walk
            walkers = None
        self._walkers_cache = walkers
        return walkers

    def predict_numpy(self, X: np.ndarray) -> np.ndarray:
        """:meth:`predict` in numpy alone (one tree at a time, rows walking down together)."""
        X = np.asarray(X, np.float64)
        new = self._new_rows(X)
        if new is not None:
            return self._routed(X, new, numpy=True)
        out = np.full(len(X), self.baseline, np.float64)
        nd = self.nodes
        feat, thr, ml = nd["feature"], nd["threshold"], nd["missing_left"]
        left, right, val = nd["left"], nd["right"], nd["value"]
        for lo in range(0, len(X), PREDICT_CHUNK):
            x = X[lo:lo + PREDICT_CHUNK]
            idx = np.arange(len(x))
            acc = out[lo:lo + PREDICT_CHUNK]
            for root in self.roots:  # one tree at a time: rows walk down together
                node = np.full(len(x), root, np.int64)
                open_ = idx
                while len(open_):
                    nn = node[open_]
                    f = feat[nn]
                    inner = f >= 0
                    open_, nn, f = open_[inner], nn[inner], f[inner]
                    if not len(open_):
                        break
                    v = x[open_, f]
                    go_left = np.where(np.isnan(v), ml[nn], v <= thr[nn])
                    node[open_] = np.where(go_left, left[nn], right[nn])
                acc += val[node]
        return self._add_cold_bonus(X, out)

    def scores(self, cos: Mapping, both: Mapping, best_q: Mapping, log_q, log_c,
               where: np.ndarray | None = None, linear=None) -> np.ndarray:
        """``(q, c)`` float32 scores of the pairs (:func:`pair_features`); with ``where``
        (bool ``(q, c)``) only those pairs are scored (the others: NaN)."""
        X = pair_features(self.modalities, cos, both, best_q, log_q, log_c, linear)
        shape = X.shape[:2]
        if where is None:
            return self.predict(X.reshape(-1, X.shape[-1])).reshape(shape).astype(np.float32)
        out = np.full(shape, np.nan, np.float32)
        out[where] = self.predict(X[where])
        return out


def pool_mask(modalities: Sequence[str], cos: Mapping, both: Mapping, n: int,
              exclude: np.ndarray | None = None, prior=None) -> np.ndarray:
    """Bool ``(q, c)``: the candidates among each modality's ``n`` highest for each query
    (vector modalities: every product both have; pairwise ones: those scoring above 0),
    ``exclude`` (bool ``(q, c)``, the query itself) left out. The ``category`` scores 1 for
    its whole group, so its ``n`` are the group's highest by ``prior`` (``(c,)``, the
    candidates' ``log(1 + clicks)``: its bestsellers; None: the first by row). Ties at the ``n``-th place go
    to the lower position (row), as the indexes and neighbour lists order them (the
    tuning's pools take any of the tied: a category's 200 of its many members may differ).

    >>> cos = {"text": np.array([[0.9, 0.1, 0.5, 0.7]], "float32")}
    >>> both = {"text": np.ones((1, 4), bool)}
    >>> pool_mask(("text",), cos, both, 2).tolist()
    [[True, False, False, True]]
    """
    shape = np.shape(both[modalities[0]])
    out = np.zeros(shape, bool)
    for m in modalities:
        row = np.where(both[m], np.asarray(cos[m], np.float32), -np.inf)
        if m in PAIRWISE_MODALITIES:
            row = np.where(row > 0, row, -np.inf)
        if m == "category":  # the group's bestsellers (ties: the lower row)
            pr = np.zeros(shape[1], np.float32) if prior is None else np.asarray(prior,
                                                                               np.float32)
            row = np.where(np.isfinite(row), np.broadcast_to(pr, shape), -np.inf)
        if exclude is not None:
            row = np.where(exclude, -np.inf, row)
        out |= top_n_mask(row, n)
    return out


def top_n_mask(row: np.ndarray, n: int) -> np.ndarray:
    """Bool ``(q, c)``: each row's ``n`` highest finite entries, ties at the ``n``-th place
    to the lower positions (what the first ``n`` of a stable descending sort hold), in
    linear time (a partition, not a sort).

    >>> top_n_mask(np.array([[0.5, 0.9, 0.5, 0.5, -np.inf]]), 3).tolist()
    [[True, True, True, False, False]]
    """
    row = np.asarray(row)
    if n >= row.shape[1]:
        return np.isfinite(row)
    part = np.argpartition(-row, n - 1, axis=1)[:, :n]
    thr = np.take_along_axis(row, part, axis=1).min(axis=1, keepdims=True)  # the n-th
    above = row > thr
    tied = row == thr
    room = n - above.sum(axis=1, keepdims=True)
    return (above | (tied & (np.cumsum(tied, axis=1) <= room))) & np.isfinite(row)


_DECODED: dict[str, LearnedScorer] = {}


def query_best(modalities: Sequence[str], cos: Mapping, both: Mapping,
               exclude: np.ndarray | None = None) -> dict:
    """Each query's best similarity per modality (``{m: (q,) float32}``, NaN where no
    candidate shares ``m`` with it): the maximum of ``cos[m]`` (``(q, c)``) over the
    candidates both products have it for, ``exclude`` (bool ``(q, c)``, the query itself)
    left out. Given the full rows it is the best over the catalog (the exact search);
    given a pool — each modality's nearest products — the same value, since the pool
    holds each modality's nearest (the tuning, the search through the indexes).

    >>> cos = {"text": np.array([[1.0, 0.2, 0.7], [0.3, 1.0, 0.9]], "float32")}
    >>> both = {"text": np.array([[True, True, True], [True, True, False]])}
    >>> query_best(("text",), cos, both, np.eye(2, 3, dtype=bool))["text"].tolist()
    [0.699999988079071, 0.30000001192092896]
    """
    out = {}
    for m in modalities:
        ok = np.asarray(both[m], bool)
        if exclude is not None:
            ok = ok & ~exclude
        with np.errstate(invalid="ignore"):
            b = np.where(ok, np.asarray(cos[m], np.float32), -np.inf).max(
                axis=1, initial=-np.inf)
        out[m] = np.where(np.isfinite(b), b, np.nan).astype(np.float32)
    return out
