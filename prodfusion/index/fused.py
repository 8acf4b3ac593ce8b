"""Approximate top-k for each fusion method, with exact re-scoring, filters and incremental updates.

Every searcher here has the fusers' ``topk`` signature and returns what the exact fuser
would return, up to the recall of its candidate generation:

* **early** — one vector index over the fused unit vectors (absent blocks are empty, so the
  inner product *is* the fused cosine). Candidates are re-scored exactly.
* **intermediate** — one index *per presence pattern* (which of the fused modalities a
  product has). Within a pattern ``P`` a product's vector is the concatenation of its
  L2-normalised blocks; a query ``q`` searches pattern ``P`` with its own blocks of ``P``
  (zero where ``q`` lacks one), and the inner product divided by ``|P ∩ P_q|`` is the exact
  mean cosine over the modalities both have. So products lacking a modality are ranked
  fairly, not pushed down by zero blocks as in a single ``X/sqrt(M)`` index. Patterns
  smaller than ``IndexSettings.exact_below`` are searched exactly.
* **late** — no vectors at all: per-modality cluster inverted lists. The candidates are the
  products sharing at least one cluster with the query; their count is exact from the
  labels, the intermediate tie-break is computed only for the count levels that can reach
  the top ``k``. When fewer than ``k`` such products pass the filters, the search falls
  back to exact (count-0 products are then ranked by the tie-break alone, as in the fuser).

Exact scores come from the library's own fusion classes fitted on just the rows involved
(query ∪ candidates): every fused similarity is row-local, so this equals the full
fuser's value without ever holding an ``N × D`` fused matrix.

Filters (``banned``, ``same_code``, ``diff_code``; see :func:`prodfusion.fusion.base.topk_exact`)
are applied after re-scoring. Candidates are over-fetched in proportion to how much the
filter removes; if too few survive, the fetch grows, and beyond
``IndexSettings.max_candidates`` (or when the allowed rows are few) the search is exact
over the allowed rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ModelError, NotBuiltError, ParameterError
from prodfusion.fusion import EarlyFusion, IntermediateFusion, make_fuser
from prodfusion.index.base import IndexSettings, choose_backend
from prodfusion.index.exact import ExactIndex, topk_rows
from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex

__all__ = ["FusedIndex", "EarlyIndex", "IntermediateIndex", "LateIndex", "make_fused_index",
           "load_fused_index"]

log = logging.getLogger(__name__)

#: Rows whose fused vectors are computed at once while building (bounds the build's memory).
_BUILD_CHUNK = 32_768
#: Queries re-scored together (their candidates share one fitted subset fuser).
_QUERY_BLOCK = 64
#: Rows scored at once by the exact fallback.
_EXACT_CHUNK = 32_768

_BACKENDS = {"exact": ExactIndex, "hnsw": HNSWIndex, "ivfpq": IVFPQIndex}


def _pattern_name(mods: Sequence[str]) -> str:
    return "+".join(mods)


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

    def __init__(self, owner: FusedIndex, exclude_self, banned, same_code, diff_code) -> None:
        n = owner.n
        for name, arr in (("banned", banned), ("same_code", same_code), ("diff_code", diff_code)):
            if arr is not None and len(arr) != n:
                raise ParameterError(f"topk(): {name} has {len(arr)} entries, the index {n} rows.")
        self.exclude_self = exclude_self
        self.banned = None if banned is None else np.asarray(banned, dtype=bool)
        self.n_banned = 0 if self.banned is None else int(self.banned.sum())
        self.same = None if same_code is None else owner._codes(same_code)
        self.diff = None if diff_code is None else owner._codes(diff_code)

    def ok(self, q: int, c: np.ndarray) -> np.ndarray:
        m = np.ones(len(c), dtype=bool)
        if self.exclude_self:
            m &= c != q
        if self.banned is not None:
            m &= ~self.banned[c]
        if self.same is not None:
            qc = self.same.codes[q]
            m &= (self.same.codes[c] == qc) & (qc >= 0)
        if self.diff is not None:
            qc = self.diff.codes[q]
            if qc >= 0:
                m &= self.diff.codes[c] != qc
        return m

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


class FusedIndex:
    """Approximate top-k for one fusion method over one modality subset (base class).

    Parameters
    ----------
    modalities : sequence of str
        The fused modalities, e.g. ``("text", "image", "clicks")``.
    backend : {"auto", "exact", "hnsw", "ivfpq"}
        Vector index used by each piece; ``"auto"`` picks by the number of products.
    settings : IndexSettings, optional
    normalize : bool
        Early fusion only (see :class:`prodfusion.fusion.EarlyFusion`).

    Attributes
    ----------
    n : int
        Catalog rows covered.
    backend_ : str
        The resolved backend.
    """

    method = ""

    def __init__(
        self,
        *,
        modalities: Sequence[str],
        backend: str = "auto",
        settings: IndexSettings | None = None,
        normalize: bool = False,
    ) -> None:
        self.modalities = tuple(modalities)
        self.backend = backend
        self.settings = settings or IndexSettings()
        self.normalize = normalize
        self._code_cache: list[tuple[np.ndarray, _Codes]] = []

    # ----------------------------------------------------------------- state
    def _set_data(self, embeddings: Mapping[str, Embeddings], labels=None) -> None:
        missing = [m for m in self.modalities if m not in embeddings]
        if missing:
            raise ParameterError(f"{type(self).__name__}: no embeddings for {missing}.")
        self.embeddings_ = {m: embeddings[m] for m in self.modalities}
        self.n = len(self.embeddings_[self.modalities[0]].mask)
        self.masks_ = np.stack([self.embeddings_[m].mask for m in self.modalities], axis=1)
        self.present = self.masks_.any(axis=1)
        self.n_present_ = int(self.present.sum())
        if labels is not None:
            self.labels_ = {m: np.asarray(labels[m], dtype=np.int32) for m in self.modalities}

    def _check_built(self) -> None:
        if not hasattr(self, "embeddings_"):
            raise NotBuiltError(f"{type(self).__name__} is not built: call build() first.")

    def _codes(self, codes: np.ndarray) -> _Codes:
        for arr, c in self._code_cache:
            if arr is codes:
                return c
        c = _Codes(np.asarray(codes, dtype=np.int64))
        self._code_cache = [(codes, c)] + self._code_cache[:3]
        return c

    def _sub(self, rows: np.ndarray):
        """The library's fuser fitted on ``rows`` only (sorted unique catalog rows)."""
        sub = {m: e.take(rows) for m, e in self.embeddings_.items()}
        labels = None
        if self.method == "late":
            labels = {m: lab[rows] for m, lab in self.labels_.items()}
        return make_fuser(self.method, sub, self.modalities, normalize=self.normalize,
                          late_labels=labels)

    def exact_scores(self, query_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """Exact fused similarity ``(len(query_rows), len(cand_rows))`` without an N×D matrix."""
        q = np.asarray(query_rows, dtype=np.int64)
        c = np.asarray(cand_rows, dtype=np.int64)
        union, inv = np.unique(np.concatenate([q, c]), return_inverse=True)
        f = self._sub(union)
        return f.similarity(inv[: len(q)], inv[len(q) :])

    def _resolved_backend(self, n: int) -> str:
        return choose_backend(self.backend, n, self.settings)

    # ----------------------------------------------------------------- search
    def _validate_rows(self, query_rows) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
        if rows.size and (rows.min() < 0 or rows.max() >= self.n):
            raise ParameterError(
                f"Query rows must be in [0, {self.n}); got {rows.min()}..{rows.max()}."
            )
        return rows

    def topk(
        self,
        query_rows,
        k: int = 15,
        *,
        exclude_self: bool = True,
        banned: np.ndarray | None = None,
        same_code: np.ndarray | None = None,
        diff_code: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and exact fused scores per query row, as the fuser's ``topk``.

        Returns
        -------
        rows : int64 array (q, k), best first, ``-1`` padding
        scores : float32 array (q, k), ``-inf`` padding
        """
        self._check_built()
        rows = self._validate_rows(query_rows)
        k = int(k)
        flt = _Filter(self, exclude_self, banned, same_code, diff_code)
        out_r = np.full((len(rows), k), -1, dtype=np.int64)
        out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
        todo = [i for i in range(len(rows)) if self.present[rows[i]]]
        self._search(rows, todo, k, flt, out_r, out_s)
        return out_r, out_s

    def exact_topk(
        self,
        query_rows,
        k: int = 15,
        *,
        exclude_self: bool = True,
        banned: np.ndarray | None = None,
        same_code: np.ndarray | None = None,
        diff_code: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by scanning every row in chunks (the oracle, in bounded memory)."""
        self._check_built()
        rows = self._validate_rows(query_rows)
        flt = _Filter(self, exclude_self, banned, same_code, diff_code)
        out_r = np.full((len(rows), k), -1, dtype=np.int64)
        out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
        for i, q in enumerate(rows):
            if self.present[q]:
                out_r[i], out_s[i] = self._exact_over(int(q), k, flt)
        return out_r, out_s

    def _exact_over(self, q: int, k: int, flt: _Filter) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of one query over every row the filters allow."""
        universe = flt.universe(q)
        if universe is None:
            universe = np.flatnonzero(self.present)
        universe = universe[flt.ok(q, universe)]
        best_r = np.zeros(0, dtype=np.int64)
        best_s = np.zeros(0, dtype=np.float32)
        for lo in range(0, len(universe), _EXACT_CHUNK):
            c = universe[lo : lo + _EXACT_CHUNK]
            s = self.exact_scores([q], c)[0]
            best_r = np.concatenate([best_r, c])
            best_s = np.concatenate([best_s, s.astype(np.float32)])
            r, sc = topk_rows(best_s[None, :], k, best_r[None, :])
            keep = r[0] >= 0
            best_r, best_s = r[0][keep], sc[0][keep]
        out_r = np.full(k, -1, dtype=np.int64)
        out_s = np.full(k, -np.inf, dtype=np.float32)
        out_r[: len(best_r)] = best_r
        out_s[: len(best_s)] = best_s
        return out_r, out_s

    def _search(self, rows, todo, k, flt, out_r, out_s) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- persistence
    def save(self, folder: Path) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self) -> dict:
        """What was built: backend and the size of each piece (for manifests and reports)."""
        return {"method": self.method, "modalities": list(self.modalities),
                "requested": self.backend}


# =================================================================== vector-index fusions
class _Piece:
    """One vector index over some catalog rows, all sharing the same present modalities."""

    def __init__(self, name: str, modalities: tuple[str, ...], rows: np.ndarray, index) -> None:
        self.name = name
        self.modalities = modalities
        self.rows = rows
        self.index = index

    def __len__(self) -> int:
        return len(self.rows)


class _VectorFusedIndex(FusedIndex):
    """Shared machinery of early and intermediate fusion: pieces, candidates, re-scoring."""

    def _pieces_plan(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:  # pragma: no cover
        raise NotImplementedError

    def _piece_vectors(self, rows: np.ndarray, mods: tuple[str, ...]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _vectors_chunked(self, rows: np.ndarray, mods: tuple[str, ...]):
        for lo in range(0, len(rows), _BUILD_CHUNK):
            yield self._piece_vectors(rows[lo : lo + _BUILD_CHUNK], mods)

    def _make_piece(self, name: str, mods: tuple[str, ...], rows: np.ndarray) -> _Piece:
        backend = self._resolved_backend(self.n)
        dim = int(sum(self.embeddings_[m].dim for m in mods))
        if backend == "exact" or len(rows) < self.settings.exact_below:
            index = ExactIndex(dim)
        else:
            rng = np.random.default_rng(self.settings.seed)
            ns = min(len(rows), self.settings.train_sample)
            sample = np.sort(rng.choice(rows, size=ns, replace=False))
            index = _BACKENDS[backend](dim, self.settings, n_expected=len(rows))
            index.train(np.concatenate(list(self._vectors_chunked(sample, mods))))
        for v in self._vectors_chunked(rows, mods):
            index.add(v)
        return _Piece(name, mods, rows.astype(np.int64), index)

    def build(self, embeddings: Mapping[str, Embeddings], labels=None) -> _VectorFusedIndex:
        """Compute the fused vectors in chunks and index every piece."""
        self._set_data(embeddings)
        self.backend_ = self._resolved_backend(self.n)
        self.pieces_: dict[str, _Piece] = {}
        for name, (mods, rows) in self._pieces_plan().items():
            self.pieces_[name] = self._make_piece(name, mods, rows)
        return self

    # ----------------------------------------------------------------- search
    def _n_fetch(self, q: int, k: int, flt: _Filter) -> int | None:
        """Candidates per piece for the first pass; ``None``: go exact over the allowed rows.

        The fetch is ``k · over_fetch`` divided by the fraction of rows the filters keep,
        plus the few rows they remove by name (banned ids, the query's group).
        """
        s = self.settings
        n_present = max(1, self.n_present_)
        allowed = n_present
        universe = flt.universe(q)
        if universe is not None:
            if len(universe) <= s.exact_below:
                return None
            allowed = len(universe)
        frac = allowed / n_present
        removed = flt.n_removed(q)
        extra = removed
        if removed >= n_present / 2:  # most rows are banned: treat it as a selective filter
            frac *= max(1.0 - removed / n_present, 1e-9)
            extra = 0
        kp = max(s.min_candidates, math.ceil(k * s.over_fetch / frac)) + extra
        if kp > s.max_candidates:
            return None
        return 1 << (kp - 1).bit_length()  # powers of two let queries share a search call

    def _candidates(self, q_rows: np.ndarray, kp: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Candidate rows per query from every relevant piece, and whether that was exhaustive."""
        cands: list[list[np.ndarray]] = [[] for _ in q_rows]
        exhaustive = np.ones(len(q_rows), dtype=bool)
        qmask = self.masks_[q_rows]
        for piece in self.pieces_.values():
            pm = np.array([m in piece.modalities for m in self.modalities])
            sel = np.flatnonzero((qmask & pm).any(axis=1))
            if not len(sel) or not len(piece):
                continue
            kk = min(kp, len(piece))
            if kk < len(piece):
                exhaustive[sel] = False
            vecs = self._piece_vectors(q_rows[sel], piece.modalities)
            labels, _ = piece.index.search(vecs, kk)
            for j, i in enumerate(sel):
                lab = labels[j]
                cands[i].append(piece.rows[lab[lab >= 0]])
        out = [np.unique(np.concatenate(c)) if c else np.zeros(0, np.int64) for c in cands]
        return out, exhaustive

    def _search(self, rows, todo, k, flt, out_r, out_s) -> None:
        plan: dict[int | None, list[int]] = {}
        for i in todo:
            plan.setdefault(self._n_fetch(int(rows[i]), k, flt), []).append(i)
        while plan:
            kp, idx = plan.popitem()
            if kp is None:
                for i in idx:
                    out_r[i], out_s[i] = self._exact_over(int(rows[i]), k, flt)
                continue
            for lo in range(0, len(idx), _QUERY_BLOCK):
                block = idx[lo : lo + _QUERY_BLOCK]
                q_rows = rows[block]
                cands, exhaustive = self._candidates(q_rows, kp)
                scored = self._rescore(q_rows, cands)
                for j, i in enumerate(block):
                    q = int(q_rows[j])
                    c, s = cands[j], scored[j]
                    keep = flt.ok(q, c) & np.isfinite(s)
                    r, sc = topk_rows(s[keep][None, :], k, c[keep][None, :])
                    if keep.sum() >= k or exhaustive[j]:
                        out_r[i], out_s[i] = r[0], sc[0]
                    else:
                        nxt = kp * 4
                        plan.setdefault(nxt if nxt <= self.settings.max_candidates else None,
                                        []).append(i)

    def _rescore(self, q_rows: np.ndarray, cands: list[np.ndarray]) -> list[np.ndarray]:
        """Exact scores of each query's candidates with one subset fuser for the whole block."""
        union, inv = np.unique(np.concatenate([q_rows, *cands]), return_inverse=True)
        f = self._sub(union)
        out = []
        pos = len(q_rows)
        for j, c in enumerate(cands):
            lc = inv[pos : pos + len(c)]
            pos += len(c)
            out.append(f.similarity([inv[j]], lc)[0].astype(np.float32) if len(c) else
                       np.zeros(0, np.float32))
        return out

    # ----------------------------------------------------------------- updates
    def add(self, embeddings: Mapping[str, Embeddings], new_rows: np.ndarray, labels=None) -> dict:
        """Index rows appended to the catalog (cold start). Existing pieces grow in place.

        ``embeddings`` are the full, grown embeddings; ``new_rows`` the appended rows.
        Returns which pieces grew and which were created.
        """
        self._check_built()
        self._set_data(embeddings)
        new_rows = np.asarray(new_rows, dtype=np.int64)
        plan = self._pieces_plan(new_rows)
        report = {"grown": [], "created": []}
        for name, (mods, rows) in plan.items():
            if not len(rows):
                continue
            piece = self.pieces_.get(name)
            if piece is None:
                self.pieces_[name] = self._make_piece(name, mods, rows)
                report["created"].append(name)
                continue
            if isinstance(piece.index, ExactIndex) and self.backend_ != "exact" and (
                len(piece) + len(rows) >= self.settings.exact_below
            ):  # the piece outgrew exact search
                self.pieces_[name] = self._make_piece(name, mods, np.concatenate([piece.rows, rows]))
                report["created"].append(name)
                continue
            for v in self._vectors_chunked(rows, mods):
                piece.index.add(v)
            piece.rows = np.concatenate([piece.rows, rows])
            report["grown"].append(name)
        return report

    def update(self, embeddings: Mapping[str, Embeddings], changed: Sequence[str], labels=None) -> dict:
        """Take new vectors for the ``changed`` modalities; rebuild only the pieces they touch.

        A piece is rebuilt when it indexes a changed modality or when its rows changed
        (a product gained or lost that modality); every other piece is kept as it is.
        """
        self._check_built()
        self._set_data(embeddings)
        changed = set(changed)
        report = {"rebuilt": [], "kept": [], "dropped": []}
        plan = self._pieces_plan()
        for name in list(self.pieces_):
            if name not in plan:
                del self.pieces_[name]
                report["dropped"].append(name)
        for name, (mods, rows) in plan.items():
            piece = self.pieces_.get(name)
            if piece is not None and not (changed & set(mods)) and np.array_equal(piece.rows, rows):
                report["kept"].append(name)
                continue
            self.pieces_[name] = self._make_piece(name, mods, rows)
            report["rebuilt"].append(name)
        return report

    # ----------------------------------------------------------------- persistence
    def save(self, folder: Path) -> dict:
        self._check_built()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pieces = {}
        for i, (name, piece) in enumerate(self.pieces_.items()):
            stem = f"piece{i}"
            np.save(folder / f"{stem}.rows.npy", piece.rows)
            meta = piece.index.save(folder, stem)
            meta["rows"] = f"{stem}.rows.npy"
            meta["modalities"] = list(piece.modalities)
            meta["size"] = len(piece)
            pieces[name] = meta
        return {**self.info(), "pieces": pieces}

    def _load_pieces(self, folder: Path, meta: dict, mmap: bool) -> None:
        classes = {"exact": ExactIndex, "hnsw": HNSWIndex, "ivfpq": IVFPQIndex}
        self.pieces_ = {}
        for name, pm in meta["pieces"].items():
            cls = classes.get(pm.get("kind"))
            if cls is None:
                raise ModelError(f"{folder}: unknown index kind {pm.get('kind')!r} for {name!r}.")
            try:
                rows = np.load(Path(folder) / pm["rows"])
            except (OSError, ValueError) as exc:
                raise ModelError(f"{folder / pm['rows']}: cannot read ({exc}).") from exc
            index = cls.load(folder, pm, mmap=mmap)
            if len(index) != len(rows):
                raise ModelError(
                    f"{folder}: piece {name!r} indexes {len(index)} vectors but lists {len(rows)} rows."
                )
            self.pieces_[name] = _Piece(name, tuple(pm["modalities"]), rows, index)

    def info(self) -> dict:
        out = super().info()
        out["backend"] = getattr(self, "backend_", None)
        out["pieces_summary"] = {
            name: {"kind": p.index.kind, "size": len(p)} for name, p in getattr(self, "pieces_", {}).items()
        }
        return out


class EarlyIndex(_VectorFusedIndex):
    """Approximate early fusion: one index over the fused unit vectors (see module docs)."""

    method = "early"

    def _pieces_plan(self, rows: np.ndarray | None = None):
        r = np.flatnonzero(self.present) if rows is None else rows[self.present[rows]]
        return {"all": (self.modalities, r.astype(np.int64))}

    def _piece_vectors(self, rows, mods):
        sub = {m: self.embeddings_[m].take(rows) for m in self.modalities}
        return EarlyFusion(modalities=self.modalities, normalize=self.normalize).fit(sub).vectors_


class IntermediateIndex(_VectorFusedIndex):
    """Approximate intermediate fusion: one index per presence pattern (see module docs)."""

    method = "intermediate"

    def _pieces_plan(self, rows: np.ndarray | None = None):
        rows = np.arange(self.n) if rows is None else rows
        code = (self.masks_[rows] * (1 << np.arange(len(self.modalities)))).sum(axis=1)
        plan = {}
        for c in np.unique(code):
            if c == 0:
                continue
            mods = tuple(m for j, m in enumerate(self.modalities) if c >> j & 1)
            plan[_pattern_name(mods)] = (mods, rows[code == c].astype(np.int64))
        return plan

    def _piece_vectors(self, rows, mods):
        sub = {m: self.embeddings_[m].take(rows) for m in mods}
        return IntermediateFusion(modalities=mods).fit(sub).vectors_


# =================================================================== late fusion
class LateIndex(FusedIndex):
    """Late fusion from per-modality cluster inverted lists (no vectors indexed)."""

    method = "late"

    def build(self, embeddings: Mapping[str, Embeddings], labels=None) -> LateIndex:
        if labels is None:
            raise ParameterError("LateIndex.build() needs the k-means++ labels of every modality.")
        self._set_data(embeddings, labels)
        self.backend_ = "inverted-lists"
        self.lists_ = {m: _Codes(self.labels_[m].astype(np.int64)) for m in self.modalities}
        return self

    def _search(self, rows, todo, k, flt, out_r, out_s) -> None:
        for i in todo:
            q = int(rows[i])
            universe = flt.universe(q)
            if universe is not None and len(universe) <= self.settings.exact_below:
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            lists = [self.lists_[m].rows(int(self.labels_[m][q])) for m in self.modalities]
            lists = [x for x in lists if len(x)]
            if not lists:
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            cand, count = np.unique(np.concatenate(lists), return_counts=True)
            keep = flt.ok(q, cand)
            cand, count = cand[keep], count[keep]
            if len(cand) < k:  # count-0 products enter the top k: rank them exactly
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            level = np.partition(count, len(count) - k)[len(count) - k]
            need = cand[count >= level]
            s = self.exact_scores([q], need)[0].astype(np.float32)
            out_r[i], out_s[i] = topk_rows(s[None, :], k, need[None, :])

    def add(self, embeddings: Mapping[str, Embeddings], new_rows: np.ndarray, labels=None) -> dict:
        """Appended rows join the inverted lists of their (nearest-centroid) clusters."""
        self._check_built()
        self.build(embeddings, labels)
        return {"grown": list(self.modalities), "created": []}

    def update(self, embeddings: Mapping[str, Embeddings], changed: Sequence[str], labels=None) -> dict:
        """Rebuild the inverted lists of the changed modalities only."""
        self._check_built()
        self._set_data(embeddings, labels)
        report = {"rebuilt": [], "kept": [], "dropped": []}
        for m in self.modalities:
            if m in set(changed):
                self.lists_[m] = _Codes(self.labels_[m].astype(np.int64))
                report["rebuilt"].append(m)
            else:
                report["kept"].append(m)
        return report

    def save(self, folder: Path) -> dict:
        self._check_built()
        return {**self.info(), "backend": self.backend_, "pieces": {}}

    def info(self) -> dict:
        out = super().info()
        out["backend"] = "inverted-lists"
        out["pieces_summary"] = {
            m: {"kind": "clusters", "size": int(len(c.counts))} for m, c in getattr(self, "lists_", {}).items()
        }
        return out


_CLASSES = {"early": EarlyIndex, "intermediate": IntermediateIndex, "late": LateIndex}


def make_fused_index(
    method: str,
    modalities: Sequence[str],
    *,
    backend: str = "auto",
    settings: IndexSettings | None = None,
    normalize: bool = False,
) -> FusedIndex:
    """An unbuilt approximate searcher for ``method`` (``"early"|"intermediate"|"late"``)."""
    return _CLASSES[method](modalities=modalities, backend=backend, settings=settings,
                            normalize=normalize)


def load_fused_index(
    folder: Path,
    meta: dict,
    embeddings: Mapping[str, Embeddings],
    *,
    labels=None,
    settings: IndexSettings | None = None,
    normalize: bool = False,
    mmap: bool = True,
) -> FusedIndex:
    """Rebuild a searcher saved by :meth:`FusedIndex.save` (FAISS files memory-mapped)."""
    try:
        method, mods = meta["method"], tuple(meta["modalities"])
        obj = make_fused_index(method, mods, backend=meta.get("requested", "auto"),
                               settings=settings, normalize=normalize)
        if method == "late":
            return obj.build(embeddings, labels)
        obj._set_data(embeddings)
        obj.backend_ = meta["backend"]
        obj._load_pieces(Path(folder), meta, mmap)
    except KeyError as exc:
        raise ModelError(f"{folder}: index description lacks {exc}; rebuild the index.") from exc
    covered = sum(len(p) for p in obj.pieces_.values())
    if covered != int(obj.present.sum()):
        raise ModelError(
            f"{folder}: the saved {method} index covers {covered} products but the model has "
            f"{int(obj.present.sum())} with those modalities; it is stale. Rebuild the index."
        )
    return obj
