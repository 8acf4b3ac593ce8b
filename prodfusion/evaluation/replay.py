"""Offline A/B replay (the paper's Table IV, before going online).

Held-out sessions are replayed against two configurations. Every consecutive pair ``a → b``
of a held-out session is a *view* of ``a``'s recommendation block; it is a *click* for a
variant when ``b`` — the product the visitor really went to next — is among the ``k`` (15)
products the variant shows for ``a``. Held-out co-interaction pairs, when given, are replayed
the same way as one-step sessions and reported as their own source.

Designs:

* ``"paired"`` (default): both variants are shown every view. The difference of the two
  simulated CTRs comes with the two-proportion z-test and its 95 % interval (which treat the
  two samples as independent, and so are conservative here) and McNemar's exact test on the
  views where only one variant was clicked (the paired test).
* ``"split"``: as online, each held-out session goes to A or B by a seeded hash (50/50); the
  two-proportion test is then the right one, and a sample-ratio-mismatch check is added.

Click vectors are retrained on the earlier part of the interactions only, as in
:mod:`prodfusion.evaluation.retrieval`.

Examples
--------
>>> res = replay("baseline", "intermediate:text+image+clicks", model="model_dir",
...              sessions=sessions)                                    # doctest: +SKIP
>>> res["sources"]["sessions"]["total"]["ctr_b"]                       # doctest: +SKIP
0.061
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from prodfusion._checks import check_k
from prodfusion.data.offer import offer_cols_of
from prodfusion.errors import ParameterError, param_error
from prodfusion.evaluation.protocol import log_catalog_line
from prodfusion.evaluation.retrieval import (
    Variant,
    _Progress,
    _subsample,
    check_no_leak,
    heldout_recommender,
    lists_on_offer,
    one_per_group_lists,
    other_groups,
    parse_variant,
    product_of,
    rank_of_target,
    split_interactions,
)
from prodfusion.evaluation.split import model_clicked, on_offer_rule, on_offer_windows
from prodfusion.evaluation.stats import proportion_ci, srm_check, two_proportion_test
from prodfusion.model_updates import retired_count

__all__ = ["replay", "ctr_table", "Design"]

Design = Literal["paired", "split"]


def _load(model: Any) -> Any:
    from prodfusion.recommender import Recommender

    if isinstance(model, (str, Path)):
        return Recommender.load(model)
    return model


def ctr_table(
    clicks_a: np.ndarray,
    clicks_b: np.ndarray,
    shown_a: np.ndarray,
    shown_b: np.ndarray,
    categories: np.ndarray,
    *,
    alpha: float = 0.05,
) -> dict:
    """Totals and per-category simulated CTR of two variants from per-view outcomes.

    Parameters
    ----------
    clicks_a, clicks_b : bool arrays (n_views,)
        Whether the variant's block got the click on that view.
    shown_a, shown_b : bool arrays (n_views,)
        Whether the view was shown to the variant (both True in the paired design).
    categories : array (n_views,)
        Category of the viewed (query) product; None for none.

    Returns
    -------
    dict
        ``total`` and ``categories`` (list, most viewed first), each with ``views_a``,
        ``clicks_a``, ``ctr_a`` (+ Wilson ``ctr_a_ci``), the same for b, and the
        :func:`~prodfusion.evaluation.stats.two_proportion_test` fields; ``total`` adds
        McNemar's exact test when views were shown to both.

    Examples
    --------
    >>> t = ctr_table(np.array([1, 0, 0, 1], bool), np.array([1, 1, 0, 1], bool),
    ...               np.ones(4, bool), np.ones(4, bool), np.array(["x", "x", "y", "y"]))
    >>> t["total"]["ctr_a"], t["total"]["ctr_b"], t["categories"][0]["ctr_b"]
    (0.5, 0.75, 1.0)
    """
    from scipy.stats import binomtest

    def block(sel: np.ndarray) -> dict:
        na, nb = int((shown_a & sel).sum()), int((shown_b & sel).sum())
        xa, xb = int((clicks_a & shown_a & sel).sum()), int((clicks_b & shown_b & sel).sum())
        out = {
            "views_a": na,
            "clicks_a": xa,
            "ctr_a": xa / na if na else math.nan,
            "ctr_a_ci": list(proportion_ci(xa, na, alpha)),
            "views_b": nb,
            "clicks_b": xb,
            "ctr_b": xb / nb if nb else math.nan,
            "ctr_b_ci": list(proportion_ci(xb, nb, alpha)),
        }
        out.update(two_proportion_test(xa, na, xb, nb, alpha))
        both = shown_a & shown_b & sel
        if both.any():
            only_a = int((clicks_a & ~clicks_b & both).sum())
            only_b = int((clicks_b & ~clicks_a & both).sum())
            out["only_a"], out["only_b"] = only_a, only_b
            out["mcnemar_p"] = (
                float(binomtest(only_b, only_a + only_b, 0.5).pvalue) if only_a + only_b else math.nan
            )
        return out

    cats = np.asarray([c if c is not None else "(none)" for c in categories], dtype=object)
    total = block(np.ones(len(cats), dtype=bool))
    names, counts = np.unique(cats.astype(str), return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    per_cat = []
    for i in order:
        row = block(cats.astype(str) == names[i])
        row["category"] = str(names[i])
        per_cat.append(row)
    return {"total": total, "categories": per_cat}


def _assign_split(groups: np.ndarray, seed: int) -> np.ndarray:
    """True → variant B, by a seeded SHA-256 hash of the group (session) key."""
    salt = f"prodfusion-ab\x00{int(seed)}\x00".encode()
    keys = [str(g) for g in groups]
    first = np.frombuffer(
        b"".join(hashlib.sha256(salt + k.encode()).digest()[:8] for k in keys), dtype=">u8"
    )
    return (first % 2).astype(bool)


def replay(
    config_a: str | Mapping | Variant,
    config_b: str | Mapping | Variant,
    *,
    model: Any = None,
    sessions: Any = None,
    pairs: Any = None,
    test_fraction: float = 0.2,
    k: int = 15,
    design: Design = "paired",
    seed: int = 0,
    alpha: float = 0.05,
    max_pairs: int | None = None,
    prod2vec: Any = None,
    progress: bool | Callable = True,
    protocol: str = "leave-last-out",
) -> dict:
    """Replay held-out sessions against two configurations and compare their simulated CTR.

    Parameters
    ----------
    config_a, config_b : str, dict or Variant
        ``"baseline"``, ``"FUSION:MOD+MOD"``, a config file or dict (see
        :func:`~prodfusion.evaluation.retrieval.parse_variant`). A config may name its own
        ``model`` folder; otherwise ``model`` is used.
    model : Recommender or path, optional
        The default model (required unless both configs name one).
    sessions, pairs : Sessions, optional
        Interactions to split; the held-out part is replayed (at least one).
    test_fraction, k, seed, alpha, max_pairs, prod2vec
        As in :func:`~prodfusion.evaluation.retrieval.evaluate_retrieval`.
    design : {"paired", "split"}
        See the module docstring.
    protocol : str
        One of :data:`~prodfusion.evaluation.protocol.PROTOCOLS` ("leave-last-out", the
        default; "leave-last-out-all-cases", "leave-last-out-log-catalog", "whole", …).
        How views are held out (:func:`~prodfusion.evaluation.retrieval.split_interactions`).
        A config may also be a reference baseline: ``cooc``, ``tfidf``, ``popular``,
        ``cooc+tfidf``.

    Each arm's lists are its model's as served: one product per group where the model
    says ``one_per_group`` (``build --one-per-group``). Where either arm's model does, a
    view is clicked when a product of the next product's group is shown (the visitor
    reaches that product, by whichever of its offers), for both arms, and views whose next
    product is in the viewed product's own group are left out (``n_views_same_group_left_out``).

    Where a model knows when its products were on offer (retired products, ``build
    --on-offer-cols``; :func:`~prodfusion.evaluation.split.on_offer_windows`) and the views
    have times, each view shows its arm's list as it would have been then: the
    configuration's list read deep enough to hold ``k`` products on offer at the view's
    time (:func:`~prodfusion.evaluation.retrieval.lists_on_offer`; one product per group
    where the arm's model serves so), as
    ``config.catalog.on_offer`` says.

    Returns
    -------
    dict
        ``config`` (both variants, every parameter), ``split`` and ``sources``: per source
        (``"sessions"``, ``"pairs"``) a :func:`ctr_table` (plus ``srm`` for the split design).
    """
    where = "replay()"
    if design not in ("paired", "split"):
        raise param_error("design", where, "'paired' or 'split'", design)
    k = check_k(k, where)
    t0 = time.perf_counter()
    default = model if isinstance(model, (str, Path)) else None
    va = parse_variant(config_a, default_model=default)
    vb = parse_variant(config_b, default_model=default)
    loaded: dict[str, Any] = {}

    def model_of(v: Variant) -> Any:
        key = v.model if v.model is not None else "<default>"
        if key not in loaded:
            if v.model is None:
                if model is None:
                    raise ParameterError(
                        f"{where}: variant {v.label!r} names no model and no default model was "
                        "given. Pass model= (MODEL_DIR) or put 'model: DIR' in the config."
                    )
                loaded[key] = _load(model)
            else:
                loaded[key] = _load(v.model)
        return loaded[key]

    rec_a, rec_b = model_of(va), model_of(vb)
    catalog = rec_a.catalog
    split = split_interactions(catalog, sessions, pairs, test_fraction=test_fraction, seed=seed,
                               protocol=protocol, clicked=model_clicked(rec_a))
    leak = check_no_leak(split, catalog)
    log = _Progress(progress)
    if (line := log_catalog_line(split.info.get("log_catalog"))):
        log(line)
    evs: dict[int, Any] = {}
    two = rec_a is not rec_b
    for rec in (rec_a, rec_b):
        if id(rec) not in evs:  # which model, when the arms are two (its catalog is shared)
            log("retraining Prod2Vec on the training part"
                + (f" (model {getattr(rec, 'path_', None) or '?'})" if two else ""))
            evs[id(rec)] = heldout_recommender(rec, split.train, prod2vec=prod2vec,
                                               progress=bool(progress is True))
    ev_a, ev_b = evs[id(rec_a)], evs[id(rec_b)]
    once = (bool(getattr(rec_a, "one_per_group", False)),
            bool(getattr(rec_b, "one_per_group", False)))
    codes = (rec_a.catalog.codes("group"), rec_b.catalog.codes("group"))
    by_product = any(once)
    if by_product and any(c is None for c in codes):
        raise ParameterError(f"{where}: one arm's model lists one product per group, the "
                             "other's catalog has no group column to count its clicks by "
                             "product; replay two models with the same --group-col.")
    # each view's lists made of the products on offer at its time, where the model tells
    # (retired products or build --on-offer-cols, and a timed log)
    off_a = on_offer_windows(rec_a, sessions)
    offers = (off_a, on_offer_windows(rec_b, sessions) if two else off_a)
    for arm, r, off in (("A", rec_a, offers[0]), ("B", rec_b, offers[1])):
        if off is not None and (arm == "A" or two):
            log(f"{'arm ' + arm + ': ' if two else ''}{on_offer_rule(r)}: each view shows the "
                "lists made of them")
    cats = catalog.categories
    sources = {}
    for name, ho in split.heldout.items():
        ho = _subsample(ho, max_pairs, seed)
        if by_product:  # no list of one product per group shows the viewed product's own
            ho = other_groups(ho, codes[0])
        ids = catalog.ids
        q_ids, t_ids = ids[ho.query_rows], ids[ho.target_rows]
        # Views both models know (identical catalogs: all of them).
        qb, okq = ev_b.catalog.lookup(list(q_ids))
        tb, okt = ev_b.catalog.lookup(list(t_ids))
        ok = okq & okt
        n_dropped = int((~ok).sum())
        qa, ta, qb, tb = ho.query_rows[ok], ho.target_rows[ok], qb[ok], tb[ok]
        groups = ho.groups[ok]
        times = None if ho.times is None else np.asarray(ho.times, np.float64)[ok]
        log(f"replaying {len(qa):,} {name} views: {va.label} vs {vb.label}")
        clicks = []
        for v, ev, q, t, one, c, off in ((va, ev_a, qa, ta, once[0], codes[0], offers[0]),
                                         (vb, ev_b, qb, tb, once[1], codes[1], offers[1])):
            uq, inv = np.unique(q, return_inverse=True)
            if not len(uq):
                ranked = np.zeros((0, k), dtype=np.int64)
            elif off is not None and times is not None:  # one per group too, if served so
                ranked = lists_on_offer(v, ev, uq, inv, times, off, k,
                                        diff_code=c if one else None,
                                        one_per_code=c if one else None)
            elif one:  # as that arm's model serves its lists
                ranked = one_per_group_lists(v, ev, uq, k, c)[inv]
            else:
                ranked = v.recommend(ev, uq, k)[inv]
            clicks.append(rank_of_target(product_of(ranked, c), product_of(t, c), k) > 0
                          if by_product else rank_of_target(ranked, t, k) > 0)
        if design == "paired":
            shown_b = np.ones(len(qa), dtype=bool)
        else:
            shown_b = _assign_split(groups, seed)
        shown_a = ~shown_b if design == "split" else np.ones(len(qa), dtype=bool)
        qcats = np.asarray([cats[r] for r in qa] if cats is not None else [None] * len(qa),
                           dtype=object)
        table = ctr_table(clicks[0], clicks[1], shown_a, shown_b, qcats, alpha=alpha)
        table["n_views"] = int(len(qa))
        table["n_sessions"] = int(len(np.unique(groups.astype(str)))) if len(groups) else 0
        table["n_views_dropped_not_in_both_catalogs"] = n_dropped
        if by_product:
            table["n_views_same_group_left_out"] = int(ho.info.get("same_group_left_out", 0))
        if design == "split":
            table["srm"] = srm_check([int(shown_a.sum()), int(shown_b.sum())], [1.0, 1.0])
        sources[name] = table
    log.close()
    return {
        "kind": "replay",
        "config": {
            "a": va.as_dict(),
            "b": vb.as_dict(),
            "k": k,
            "design": design,
            "protocol": protocol,
            "test_fraction": test_fraction,
            "seed": seed,
            "alpha": alpha,
            "max_pairs": max_pairs,
            "catalog": {"source": catalog.source, "n_products": len(catalog),
                        # build --recommend-rows, add --retire-missing: shown while on offer
                        # (the rule, where the log has times) or as any other product
                        "n_retired": max(retired_count(rec_a), retired_count(rec_b)),
                        **({"on_offer": on_offer_rule(rec_b)} if offers[1] is not None
                           and any(h.times is not None for h in split.heldout.values())
                           else {}),
                        **({"on_offer_cols": list(offer_cols_of(rec_b))}
                           if offer_cols_of(rec_b) else {})},
            "modalities": {
                m: {"spec": e.spec, "n_present": e.n_present} for m, e in ev_a.embeddings_.items()
            },
            "click": (f"a product of the next product's group is among the {k} shown"
                      if by_product else
                      f"the next product of the session is among the {k} shown"),
            "one_per_group": {"a": once[0], "b": once[1]},
        },
        "split": {**split.info, "leak_check": leak},
        "sources": sources,
        "seconds": time.perf_counter() - t0,
    }

