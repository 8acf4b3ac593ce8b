"""Approximate late fusion from per-modality cluster inverted lists (no vectors indexed).

The candidates are the products sharing at least one cluster with the query; their count is
exact from the labels, and the intermediate tie-break is computed only for the count levels
that can reach the top ``k``. When fewer than ``k`` such products pass the filters, the search
falls back to exact (count-0 products are then ranked by the tie-break alone, as in the fuser).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.index.exact import topk_rows
from prodfusion.index.fused.base import FusedIndex
from prodfusion.index.fused.filtering import _Codes


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
            if self.weighting.is_default:
                cand, count = np.unique(np.concatenate(lists), return_counts=True)
            else:  # weighted counts Σ w_m over the lists a candidate is in
                wl = [self.weighting.w(m) for m in self.modalities
                      if len(self.lists_[m].rows(int(self.labels_[m][q])))]
                allr = np.concatenate(lists)
                cand, inv = np.unique(allr, return_inverse=True)
                count = np.bincount(inv, weights=np.repeat(wl, [len(x) for x in lists]),
                                    minlength=len(cand))
            keep = flt.ok(q, cand)
            cand, count = cand[keep], count[keep]
            if len(cand) < k:  # count-0 products enter the top k: rank them exactly
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            level = np.partition(count, len(count) - k)[len(count) - k]
            if level <= 0:  # weight-0 lists: products in no list tie with these; go exact
                out_r[i], out_s[i] = self._exact_over(q, k, flt)
                continue
            need = cand[count >= level]
            s = self.pair_scores(q, need)
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

