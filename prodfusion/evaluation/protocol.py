"""The honest held-out protocol: leave-last-out splits, slices of target and query, flags.

Why: when whole sessions are held out, products seen *only* in held-out sessions get no click
vector, so held-out targets lack clicks far more often than the catalog does (61–91 % against
17–20 % on the data of issue 10). A fusion that ranks products lacking a modality higher then
"wins" by recognising held-out products. Leave-last-out keeps the click model's coverage of
the targets what it is in production:

* **sessions** — the latest ``test_fraction`` of sessions (by the time of their first event;
  by a seeded hash without times) are test sessions; the *last transition* of each is the
  test case, and everything before it (the session minus its last click, when ≥ 2 clicks are
  left) stays in the training corpus, keyed ``"h:<session>"``;
* **pairs** (no time, e.g. co-purchases) — a seeded ``test_fraction`` of the products with at
  least two distinct partners are test queries; one of each query's pairs (chosen by a seeded
  hash) is held out, both directions, and every other pair stays in training.

Every metric is also reported by slice of the **query** and of the **target** (has training
clicks / has none; has an image / has none), and :func:`slice_flags` flags a configuration
whose gain over the best single modality or reference baseline comes from one slice only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from prodfusion.data.sessions import Sessions

__all__ = ["PROTOCOLS", "leave_last_out_sessions", "leave_one_out_pairs", "slice_masks",
           "slice_flags", "SLICE_PARTITIONS"]

PROTOCOLS: tuple[str, ...] = ("leave-last-out", "whole")

#: Pairs of complementary slices; a gain made in only one of a pair is flagged.
SLICE_PARTITIONS: tuple[tuple[str, str], ...] = (
    ("query: with training clicks", "query: no training clicks"),
    ("target: with training clicks", "target: no training clicks"),
    ("query: with image", "query: no image"),
    ("target: with image", "target: no image"),
)


def leave_last_out_sessions(te: Sessions, catalog: Any):
    """Test cases (last transition of each session) and the prefixes that stay in training.

    Returns ``(query_rows, target_rows, groups, prefixes, info)``; ``prefixes`` are Sessions
    (same keys) holding every click but the last, for sessions left with at least 2 clicks.
    """
    from prodfusion.data.sessions import Sessions

    f = te.frame
    lengths = te.lengths
    ends = np.cumsum(lengths) - 1
    keys = np.asarray(te.keys, dtype=object)
    pid = f["product_id"].to_numpy()
    a, b = pid[ends - 1], pid[ends]
    ok_len = lengths >= 2
    qa, oka = catalog.lookup(list(a))
    qb, okb = catalog.lookup(list(b))
    ok = ok_len & oka & okb & (a != b)
    keep_len = np.repeat(lengths - 1, lengths)
    pos = f["position"].to_numpy()
    in_prefix = (pos < keep_len) & (keep_len >= 2)
    prefixes = Sessions(f.filter(pl.Series(in_prefix)))
    info = {
        "n_test_cases": int(ok.sum()),
        "n_prefix_sessions_in_training": len(prefixes),
        "n_prefix_clicks_in_training": prefixes.n_clicks,
        "n_unknown_products": int((ok_len & ~(oka & okb)).sum()),
    }
    return qa[ok], qb[ok], np.asarray(["s:" + str(k) for k in keys[ok]], dtype=object), prefixes, info


def leave_one_out_pairs(pf: pl.DataFrame, test_fraction: float, seed: int, hash_unit):
    """Which pair rows are held out, and the held-out ``(a, b)`` per test query product.

    ``pf`` has columns ``session``, ``a``, ``b`` (one row per pair). Products with at least two
    distinct partners are eligible; a seeded ``test_fraction`` of them are test queries, and
    for each the pair with the smallest seeded hash of its unordered key is held out.
    Returns ``(is_test (rows), test_a, test_b, info)``.
    """
    a = pf["a"].to_list()
    b = pf["b"].to_list()
    keys = [x + "\x1f" + y if x < y else y + "\x1f" + x for x, y in zip(a, b, strict=True)]
    frame = pl.DataFrame({"a": a, "b": b, "key": keys,
                          "h": hash_unit(keys, seed + 1)}).unique(["a", "key"], keep="first",
                                                                    maintain_order=True)
    n_partners = frame.group_by("a").agg(pl.len().alias("n"))
    eligible = n_partners.filter(pl.col("n") >= 2)["a"].to_list()
    chosen = [p for p, u in zip(eligible, hash_unit(eligible, seed), strict=True)
              if u < test_fraction]
    picked = (frame.filter(pl.col("a").is_in(pl.Series(chosen, dtype=pl.Utf8).implode()))
              .sort(["a", "h"]).group_by("a", maintain_order=True).first())
    test_keys = set(picked["key"].to_list())
    is_test = np.fromiter((k in test_keys for k in keys), dtype=bool, count=len(keys))
    info = {"n_eligible_query_products": len(eligible), "n_test_query_products": len(chosen)}
    return is_test, np.asarray(picked["a"].to_list(), dtype=object), \
        np.asarray(picked["b"].to_list(), dtype=object), info


def slice_masks(rec: Any, ev: Any) -> dict[str, tuple[str, np.ndarray] | None]:
    """``slice name -> (side, mask over catalog rows)`` (``None`` for ``"all"``).

    ``side`` is ``"query"`` or ``"target"``. Click slices use the *retrained* click vectors
    (``ev``); without any, every product is "no training clicks" when the model has clicks.
    """
    n = len(rec.catalog)
    out: dict[str, tuple[str, np.ndarray] | None] = {"all": None}
    clicks = None
    if "clicks" in ev.embeddings_:
        clicks = np.asarray(ev.embeddings_["clicks"].mask, dtype=bool)
    elif "clicks" in rec.embeddings_:
        clicks = np.zeros(n, dtype=bool)
    image = np.asarray(ev.embeddings_["image"].mask, dtype=bool) if "image" in ev.embeddings_ \
        else None
    for side in ("query", "target"):
        if clicks is not None:
            out[f"{side}: with training clicks"] = (side, clicks)
            out[f"{side}: no training clicks"] = (side, ~clicks)
        if image is not None:
            out[f"{side}: with image"] = (side, image)
            out[f"{side}: no image"] = (side, ~image)
    return out


def _val(row: Mapping, metric: str) -> float:
    v = row[metric]["value"]
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def slice_flags(rows: Sequence[Mapping], *, metric: str = "hit_rate",
                references: Sequence[str] = ()) -> list[dict]:
    """Configurations whose overall gain over the best comparator comes from one slice.

    The comparator of a configuration is the best (overall ``metric``) of the single-modality
    configurations and the ``references`` (baselines), other than itself. Its gain ``G`` is
    decomposed over each pair of complementary slices (``SLICE_PARTITIONS``):
    ``G = Σ_s (n_s / n) · (m_s − m_ref,s)``. A flag is raised when ``G > 0`` and, in some pair,
    only one slice contributes a positive share (the other contributes ≤ 0).
    """
    flags = []
    for src in dict.fromkeys(r["source"] for r in rows):
        by = {(r["variant"], r["slice"]): r for r in rows if r["source"] == src}
        variants = list(dict.fromkeys(r["variant"] for r in rows if r["source"] == src))
        comparators = [v for v in variants
                       if v in references or len(by[(v, "all")].get("modalities") or ()) == 1]
        for v in variants:
            cands = [c for c in comparators if c != v]
            if not cands:
                continue
            ref = max(cands, key=lambda c: _val(by[(c, "all")], metric))
            n_all = by[(v, "all")]["n"]
            gain = _val(by[(v, "all")], metric) - _val(by[(ref, "all")], metric)
            if not n_all or gain <= 0:
                continue
            for pair in SLICE_PARTITIONS:
                if any((v, s) not in by or (ref, s) not in by or not by[(v, s)]["n"]
                       for s in pair):
                    continue  # an empty slice: the gain cannot come from "one of two" there
                contrib = {s: by[(v, s)]["n"] / n_all
                           * (_val(by[(v, s)], metric) - _val(by[(ref, s)], metric)) for s in pair}
                pos = [s for s in pair if contrib[s] > 1e-12]
                if len(pos) == 1:
                    other = next(s for s in pair if s != pos[0])
                    flags.append({
                        "source": src, "variant": v, "comparator": ref, "metric": metric,
                        "gain": gain, "slice": pos[0], "slice_contribution": contrib[pos[0]],
                        "other_slice": other, "other_contribution": contrib[other],
                    })
    return flags
