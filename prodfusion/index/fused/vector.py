"""Early and intermediate fusion's shared machinery: vector-index pieces, candidates, re-scoring.

A fused index over vectors is a set of *pieces*, each a vector index (exact, HNSW, IVF-PQ or
sharded) over some catalog rows. A query gathers candidates from every relevant piece by
their index estimate, then re-scores them exactly (:meth:`FusedIndex.pair_scores`) and applies
the filters. Candidates are over-fetched in proportion to how much the filters remove; if too
few survive, the fetch grows, and beyond ``IndexSettings.max_candidates`` (or when the
allowed rows are few) the search is exact over the allowed rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ModelError
from prodfusion.index.exact import ExactIndex, topk_rows
from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex
from prodfusion.index.fused.base import _BUILD_CHUNK, _QUERY_BLOCK, FusedIndex
from prodfusion.index.fused.filtering import _Filter

_BACKENDS = {"exact": ExactIndex, "hnsw": HNSWIndex, "ivfpq": IVFPQIndex}
#: A query whose filters leave at most this many rows per candidate it would fetch (most of
#: the catalog retired, say) scores those rows exactly instead of walking the index.
_EXACT_PER_FETCH = 8


class _Piece:
    """One vector index over some catalog rows, all sharing the same present modalities.

    A *mixed* piece (intermediate fusion) gathers the rows of every presence pattern too
    small for its own index: it is searched exactly, dividing each inner product by the
    number of modalities that row shares with the query.
    """

    def __init__(self, name: str, modalities: tuple[str, ...], rows: np.ndarray, index,
                 mixed: bool = False) -> None:
        self.name = name
        self.modalities = modalities
        self.rows = rows
        self.index = index
        self.mixed = mixed
        self.masks: np.ndarray | None = None  # (M, len) presence, cached for mixed pieces

    def __len__(self) -> int:
        return len(self.rows)


class _VectorFusedIndex(FusedIndex):
    """Shared machinery of early and intermediate fusion: pieces, candidates, re-scoring."""

    #: Whether a piece over several modalities is searched with only the modalities the
    #: query shares with it (the others zero). Such pieces keep IVF-PQ's inner-product
    #: codes: the equal-norm L2 codes' estimates carry every block's coding error, and
    #: their choice on the sample measures whole rows as queries (on the scale benchmark's
    #: 100,000 synthetic products, intermediate recall@15 fell from 0.949 to 0.887 with
    #: them; ``benchmarks/ivfpq_scale.sh``, docs/benchmarks/scale.md).
    partial_queries = False

    def _pieces_plan(self, rows: np.ndarray | None = None) -> dict:  # pragma: no cover
        """``name -> (modalities, rows, mixed)`` for all rows, or for appended ``rows``."""
        raise NotImplementedError

    def _estimate(self, ip: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """A piece's inner products ``ip`` ``(q, kk)`` as estimates of the fused score, for
        queries sharing the modalities ``shared`` (bool ``(q, M)``) with the piece. Early
        fusion: the inner product itself (intermediate divides by the shared weight)."""
        return ip

    def _mixed_mean(self, piece: _Piece, qv: np.ndarray, qmask: np.ndarray,
                    cols: np.ndarray | None = None) -> np.ndarray:  # pragma: no cover
        """Estimates over a mixed piece (intermediate fusion only)."""
        raise NotImplementedError

    def _vectors_chunked(self, rows: np.ndarray, mods: tuple[str, ...]):
        """Index-space vectors of ``rows``, a chunk at a time (bounded memory)."""
        for lo in range(0, len(rows), _BUILD_CHUNK):
            yield self._query_blocks(rows[lo : lo + _BUILD_CHUNK], mods)

    def _make_piece(self, name: str, mods: tuple[str, ...], rows: np.ndarray,
                    mixed: bool = False) -> _Piece:
        backend = self._resolved_backend(self.n)
        dim = int(sum(self.embeddings_[m].dim for m in mods))
        if mixed and backend != "exact":  # small patterns: brute force on projected vectors
            index = ExactIndex(dim, reduce_dim=self.settings.reduce_dim)
            index.train(np.concatenate(list(self._vectors_chunked(
                self._sample(rows), mods))))
        elif backend == "exact" or mixed or len(rows) < self.settings.exact_below:
            index = ExactIndex(dim)
        else:
            kw = {}
            if backend == "ivfpq" and self.partial_queries and len(mods) > 1:
                kw["equal_norms"] = False  # IVFPQIndex's choice measures whole rows as queries
            index = _BACKENDS[backend](dim, self.settings, n_expected=len(rows), **kw)
            index.train(np.concatenate(list(self._vectors_chunked(self._sample(rows), mods))))
        n_shards = 1 if mixed else min(self.settings.shards,
                                        len(rows) // max(1, self.settings.exact_below))
        if n_shards > 1:  # shards of the trained index, filled by the executor's tasks
            from prodfusion.index.sharded import build_shards

            index = build_shards(index, self._vectors_chunked(rows, mods), len(rows), n_shards,
                                 executor=getattr(self, "executor", None),
                                 what=f"{self.method} index, piece {name}")
        else:
            for v in self._vectors_chunked(rows, mods):
                index.add(v)
        return _Piece(name, mods, rows.astype(np.int64), index, mixed)

    def _sample(self, rows: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.settings.seed)
        ns = min(len(rows), self.settings.train_sample)
        return np.sort(rng.choice(rows, size=ns, replace=False))

    def build(self, embeddings: Mapping[str, Embeddings], labels=None) -> _VectorFusedIndex:
        """Compute the fused vectors in chunks and index every piece."""
        self._set_data(embeddings)
        self.backend_ = self._resolved_backend(self.n)
        self.pieces_: dict[str, _Piece] = {}
        for name, (mods, rows, mixed) in self._pieces_plan().items():
            self.pieces_[name] = self._make_piece(name, mods, rows, mixed)
        self._locate()
        return self

    # ----------------------------------------------------------------- search
    def _fetch_factor(self) -> int:
        """Multiplier of ``min_candidates`` when the index estimates are looser (subclasses)."""
        return 1

    def _index_min_fetch(self) -> int:
        """The most candidates any piece's index asks for (``IVFPQIndex.min_fetch``: large
        IVF-PQ pieces; 0 for HNSW and exact pieces; a mixed piece or a ``VectorIndex`` of
        another library without the method asks for none)."""
        return max((int(getattr(p.index, "min_fetch", lambda: 0)())
                    for p in getattr(self, "pieces_", {}).values()), default=0)

    def _n_fetch(self, q: int, k: int, flt: _Filter) -> int | None:
        """Candidates per piece for the first pass; ``None``: go exact over the allowed rows.

        The fetch is ``k · over_fetch`` plus the few rows the filters remove by name (banned
        ids, the query's group); when most rows are banned it is divided by the fraction
        left, and where the rows left number at most ``_EXACT_PER_FETCH`` times that fetch
        they are scored exactly (a catalog mostly retired: walking the graph for a fetch
        that large costs more). A ``same_code`` filter (category) is not over-fetched: the index search itself
        is restricted to the category's rows (small categories are scanned exactly). It is
        at least ``min_candidates`` and what a piece's index asks for (:meth:`_index_min_fetch`:
        IVF-PQ pieces of about 430,000 rows or more with the default cells).
        """
        s = self.settings
        n_present = max(1, self.n_present_)
        universe = flt.universe(q)
        if universe is not None and len(universe) <= s.exact_below:
            return None
        frac = 1.0
        removed = flt.n_removed(q)
        extra = removed
        if removed >= n_present / 2 or removed > s.max_candidates // 2:
            # most rows are banned, or more than a fetch could hold (e.g. retired products):
            # a selective filter, over-fetched by the fraction left (a short answer retries)
            frac *= max(1.0 - removed / n_present, 1e-9)
            extra = 0
        kp = max(s.min_candidates * self._fetch_factor(),
                 math.ceil(k * s.over_fetch / frac) + extra, self._index_min_fetch())
        kp = -(-kp // 32) * 32  # multiples of 32 let queries share a search call
        if kp > s.max_candidates:
            return None
        if 2 * removed >= n_present and n_present - removed <= max(s.exact_below,
                                                                   _EXACT_PER_FETCH * kp):
            # few rows left (most retired): scoring them all costs less than walking an
            # index for kp of them (docs/benchmarks/retired_search.md)
            return None
        return kp

    def _locate(self) -> None:
        """``piece_of_[row]`` (-1: none) and ``pos_[row]``: where each row sits in the pieces."""
        self.piece_of_ = np.full(self.n, -1, dtype=np.int16)
        self.pos_ = np.full(self.n, -1, dtype=np.int64)
        for j, piece in enumerate(self.pieces_.values()):
            self.piece_of_[piece.rows] = j
            self.pos_[piece.rows] = np.arange(len(piece), dtype=np.int64)

    def _candidates(self, q_rows: np.ndarray, kp: int, universes=None
                    ) -> tuple[list[np.ndarray], np.ndarray]:
        """The ``kp`` best candidates per query over every relevant piece, by index estimate.

        Intermediate estimates are the piece's inner product divided by the number of
        modalities the query shares with the piece (the mean over shared modalities).
        With ``universes`` (one array of allowed rows per query), each query searches only
        those rows. Also returns whether that was exhaustive (every relevant row returned).
        """
        if universes is not None:  # restricted searches go one query at a time
            out, exh = [], np.ones(len(q_rows), dtype=bool)
            for i, (q, u) in enumerate(zip(q_rows, universes, strict=True)):
                c, e = self._candidates_one(int(q), kp, u)
                out.append(c)
                exh[i] = e
            return out, exh
        rows: list[list[np.ndarray]] = [[] for _ in q_rows]
        est: list[list[np.ndarray]] = [[] for _ in q_rows]
        exhaustive = np.ones(len(q_rows), dtype=bool)
        qmask = self._query_masks(q_rows)
        jobs = []
        for piece in self.pieces_.values():
            if not len(piece):
                continue
            pm = np.array([m in piece.modalities for m in self.modalities])
            shared = (qmask & pm).sum(axis=1)
            sel = np.flatnonzero(shared > 0)
            if not len(sel):
                continue
            kk = min(kp, len(piece))
            if kk < len(piece):
                exhaustive[sel] = False
            jobs.append((piece, sel, pm, kk))

        def run(job):
            piece, sel, pm, kk = job
            qv = self._query_blocks(q_rows[sel], piece.modalities, qmask[sel])
            if piece.mixed:
                return topk_rows(self._mixed_mean(piece, qv, qmask[sel]), kk)
            labels, scores = piece.index.search(qv, kk)
            return labels, self._estimate(scores, qmask[sel] & pm)

        # FAISS and BLAS release the GIL: the pieces of one query can be searched at once.
        pool = self._pool() if len(jobs) > 1 else None
        results = pool.map(run, jobs) if pool is not None else map(run, jobs)
        for (piece, sel, _, _), (labels, scores) in zip(jobs, results, strict=True):
            for j, i in enumerate(sel):
                ok = labels[j] >= 0
                rows[i].append(piece.rows[labels[j][ok]])
                est[i].append(scores[j][ok])
        out = []
        for i in range(len(q_rows)):
            if not rows[i]:
                out.append(np.zeros(0, np.int64))
                continue
            r, e = np.concatenate(rows[i]), np.concatenate(est[i])
            if len(r) > kp:
                r = r[np.argpartition(-e, kp - 1)[:kp]]
                exhaustive[i] = False
            out.append(r)
        return out, exhaustive

    def _candidates_one(self, q: int, kp: int, universe: np.ndarray) -> tuple[np.ndarray, bool]:
        """Candidates of one query among ``universe`` rows only (e.g. its category)."""
        if not hasattr(self, "pos_") or len(self.pos_) != self.n:
            self._locate()
        qmask = self._query_masks(np.array([q]))[0]
        where = self.piece_of_[universe]
        rows, est, exhaustive = [], [], True
        for j, piece in enumerate(self.pieces_.values()):
            pm = np.array([m in piece.modalities for m in self.modalities])
            shared = int((qmask & pm).sum())
            allowed = np.sort(self.pos_[universe[where == j]])
            if not shared or not len(allowed):
                continue
            kk = min(kp, len(allowed))
            qv = self._query_blocks(np.array([q]), piece.modalities, qmask[None, :])
            if piece.mixed:
                mean = self._mixed_mean(piece, qv, qmask[None, :], allowed)
                lab, sc = topk_rows(mean, kk, allowed[None, :])
            else:
                lab, sc = piece.index.search(qv, kk, allowed=allowed)
                sc = self._estimate(sc, (qmask & pm)[None, :])
            ok = lab[0] >= 0
            exhaustive &= bool(ok.sum() == len(allowed))  # every allowed row came back
            rows.append(piece.rows[lab[0][ok]])
            est.append(sc[0][ok])
        if not rows:
            return np.zeros(0, np.int64), True
        r, e = np.concatenate(rows), np.concatenate(est)
        if len(r) > kp:
            r = r[np.argpartition(-e, kp - 1)[:kp]]
            exhaustive = False
        return r, exhaustive

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
                universes = None
                if flt.same is not None:
                    universes = [flt.universe(int(rows[i])) for i in block]
                cands, exhaustive = self._candidates(rows[block], kp, universes)
                for j, i in enumerate(block):
                    q = int(rows[i])
                    c = cands[j]
                    c = c[flt.ok(q, c)]
                    s = self.pair_scores(q, c)
                    keep = np.isfinite(s)
                    if keep.sum() >= k or exhaustive[j]:
                        out_r[i], out_s[i] = topk_rows(s[keep][None, :], k, c[keep][None, :])
                    else:
                        nxt = kp * 4
                        plan.setdefault(nxt if nxt <= self.settings.max_candidates else None,
                                        []).append(i)

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
        for name, (mods, rows, mixed) in plan.items():
            if not len(rows):
                continue
            piece = self.pieces_.get(name)
            if piece is None:
                self.pieces_[name] = self._make_piece(name, mods, rows, mixed)
                report["created"].append(name)
                continue
            if isinstance(piece.index, ExactIndex) and not mixed and self.backend_ != "exact" and (
                len(piece) + len(rows) >= self.settings.exact_below
            ):  # the piece outgrew exact search
                self.pieces_[name] = self._make_piece(name, mods, np.concatenate([piece.rows, rows]))
                report["created"].append(name)
                continue
            for v in self._vectors_chunked(rows, mods):
                piece.index.add(v)
            piece.rows = np.concatenate([piece.rows, rows])
            piece.masks = None
            report["grown"].append(name)
        self._locate()
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
        for name, (mods, rows, mixed) in plan.items():
            piece = self.pieces_.get(name)
            if piece is not None and not (changed & set(mods)) and np.array_equal(piece.rows, rows):
                report["kept"].append(name)
                continue
            self.pieces_[name] = self._make_piece(name, mods, rows, mixed)
            report["rebuilt"].append(name)
        self._locate()
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
            meta["mixed"] = piece.mixed
            pieces[name] = meta
        return {**self.info(), "pieces": pieces}

    def _load_pieces(self, folder: Path, meta: dict, mmap: bool) -> None:
        from prodfusion.index.sharded import ShardedVectorIndex

        classes = {**_BACKENDS, "sharded": ShardedVectorIndex}
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
            self.pieces_[name] = _Piece(name, tuple(pm["modalities"]), rows, index,
                                        bool(pm.get("mixed", False)))
        self._locate()

    def info(self) -> dict:
        out = super().info()
        out["backend"] = getattr(self, "backend_", None)
        out["pieces_summary"] = {
            name: {"kind": p.index.kind, "size": len(p)} for name, p in getattr(self, "pieces_", {}).items()
        }
        return out

