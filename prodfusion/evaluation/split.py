"""Splitting interactions for an honest evaluation: held-out sessions and pairs, the leak
check, and the recommender whose click vectors are retrained on the training part only
(see :mod:`prodfusion.evaluation.retrieval` for the protocol).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prodfusion._checks import check_real
from prodfusion.data.offer import offer_cols_of, offer_times
from prodfusion.errors import DataError, ModelError, ParameterError, param_error
from prodfusion.evaluation.protocol import pair_key

if TYPE_CHECKING:
    from prodfusion.data.sessions import Sessions

@dataclass
class HeldOut:
    """Held-out test cases ``query → target`` (catalog rows) with their bootstrap groups
    and, where the interactions have times, each case's time (the target's click, seconds;
    ``None`` where they have none)."""

    source: str
    query_rows: np.ndarray
    target_rows: np.ndarray
    groups: np.ndarray
    info: dict = field(default_factory=dict)
    times: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.query_rows)

    def take(self, idx: np.ndarray) -> HeldOut:
        return HeldOut(
            self.source, self.query_rows[idx], self.target_rows[idx], self.groups[idx],
            dict(self.info), None if self.times is None else self.times[idx]
        )


@dataclass
class Split:
    """Training corpus for Prod2Vec and the held-out test cases, with what the split did."""

    train: Sessions | None
    heldout: dict[str, HeldOut]
    test_session_keys: list[str]
    info: dict


def _pairs_frame(sessions: Sessions) -> pl.DataFrame:
    """Consecutive ``(session, a, b)`` of every session (a ≠ b)."""
    f = sessions.frame
    nxt = f.with_columns(pl.col("product_id").shift(-1).over("session").alias("next"))
    return (
        nxt.filter(pl.col("next").is_not_null() & (pl.col("next") != pl.col("product_id")))
        .select(pl.col("session"), pl.col("product_id").alias("a"), pl.col("next").alias("b"))
    )


def consecutive_pairs(sessions: Sessions, catalog: Any, *, source: str = "sessions") -> HeldOut:
    """Every consecutive pair ``(a → b)`` of every session as a test case grouped by session.

    Products not in ``catalog`` are skipped (clean the sessions against the catalog first to
    avoid that).
    """
    pf = _pairs_frame(sessions)
    qa, oka = catalog.lookup(pf["a"].to_list())
    qb, okb = catalog.lookup(pf["b"].to_list())
    ok = oka & okb
    return HeldOut(
        source=source,
        query_rows=qa[ok],
        target_rows=qb[ok],
        groups=np.asarray(pf["session"].to_list(), dtype=object)[ok],
        info={"n_pairs_unknown_products": int((~ok).sum())},
    )


def _hash_unit(keys: Sequence[str], seed: int) -> np.ndarray:
    """A seeded, platform-independent uniform number in [0, 1) per key (SHA-256)."""
    salt = f"prodfusion-split\x00{int(seed)}\x00".encode()
    digests = b"".join(hashlib.sha256(salt + k.encode()).digest()[:8] for k in keys)
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64


def _seen_pairs(train: Sessions, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Bool per pair: do ``a[i]`` and ``b[i]`` occur together in some training session?"""
    if train is None or len(a) == 0:
        return np.zeros(len(a), dtype=bool)
    tf = train.frame.select("session", "product_id").unique()
    pairs = pl.DataFrame({"i": np.arange(len(a)), "a": list(a), "b": list(b)})
    sa = pairs.join(tf, left_on="a", right_on="product_id").select("i", "session")
    sb = pairs.join(tf, left_on="b", right_on="product_id").select("i", "session")
    hit = sa.join(sb, on=["i", "session"]).get_column("i").unique().to_numpy()
    out = np.zeros(len(a), dtype=bool)
    out[hit] = True
    return out


def check_sources_left(sessions, pairs, prefix: str = "", purpose: str = "to evaluate on"
                       ) -> None:
    """A :class:`DataError` naming the source (and its option) of which cleaning left nothing:
    every session of one click, every product unknown, … — with the cleaning's counts."""
    for name, src, opt in (("sessions", sessions, "--interactions"), ("pairs", pairs, "--pairs")):
        if src is not None and hasattr(src, "n_clicks") and len(src) == 0:
            rep = getattr(src, "report", None)
            why = (f" (of {rep.n_rows_in:,} rows: {rep.n_unknown_rows:,} name products not in "
                   f"the catalog, {rep.n_short_dropped:,} sessions had fewer than two "
                   "products)" if rep is not None else "")
            raise DataError(
                f"{prefix}no {name} left {purpose} after cleaning ({opt}){why}; there is no "
                "pair of consecutive products to hold out. Check the session key "
                "(--session-cols), the product column (--item-col, --pair-cols) and "
                "--min-session-length.")


def split_interactions(
    catalog: Any,
    sessions: Sessions | None = None,
    pairs: Sessions | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    protocol: str = "leave-last-out",
    window: int = 0,
    clicked: np.ndarray | None = None,
) -> Split:
    """Split sessions by time and pairs by hash; see the module docstring.

    ``protocol="leave-last-out"`` (default) holds out the last transition of each test
    session and one pair of each test query product, and trains on everything else
    (:mod:`prodfusion.evaluation.protocol`), less the cases whose target has no training
    interaction where the catalog looks made of the log's own products
    (:func:`~prodfusion.evaluation.protocol.log_catalog_cases`; ``info["log_catalog"]``);
    ``"leave-last-out-all-cases"`` keeps them (the rule until the forty-fourth session),
    ``"leave-last-out-log-catalog"`` drops them whatever the shares; ``"whole"`` holds out
    whole sessions and whole unordered pairs (the earlier protocol, in which held-out targets
    lack click vectors far more often than the catalog does).

    Parameters
    ----------
    catalog : Catalog
    sessions : Sessions, optional
        Cleaned sessions (views, baskets) with times where available.
    pairs : Sessions, optional
        Co-interaction pairs as two-click sessions (``read_pairs`` + ``clean_sessions``).
    test_fraction : float
        Share of sessions (latest) and of unordered pairs held out.
    seed : int
        Seed of the pair hash (and of the session hash when sessions have no time).
    window : int
        Which block of sessions is held out: 0 the latest, ``w`` the one ``w`` blocks
        earlier (``Sessions.split_by_time``; ``prodfusion tune``'s repeated validation).
    clicked : bool array, optional
        Per catalog row, clicked in the log the model was built from (:func:`model_clicked`):
        :func:`~prodfusion.evaluation.protocol.log_catalog_cases` leaves the products it
        clicks only after these interactions out of the catalog's share.

    Returns
    -------
    Split
        ``train`` (session keys prefixed ``"s:"`` and ``"p:"``), ``heldout`` with
        ``"sessions"`` and/or ``"pairs"``, and counts in ``info``.
    """
    from prodfusion.data.sessions import Sessions, as_sessions, concat_sessions

    where = "split_interactions()"
    sessions = as_sessions(sessions, "sessions", where)
    pairs = as_sessions(pairs, "pairs", where)
    if sessions is None and pairs is None:
        raise ParameterError(
            f"{where} needs sessions and/or pairs: the held-out test cases come from them. "
            "Pass them (CLI: --interactions and/or --pairs)."
        )
    check_sources_left(sessions, pairs)
    check_real(test_fraction, "test_fraction", where, low=0, high=1, low_open=True,
               high_open=True, expected="a float in (0, 1)")
    from prodfusion.evaluation.protocol import (
        PROTOCOLS,
        leave_last_out_sessions,
        leave_one_out_pairs,
    )

    if protocol not in PROTOCOLS:
        raise param_error("protocol", where, f"one of {list(PROTOCOLS)}", protocol)
    lolo = protocol.startswith("leave-last-out")
    v24 = protocol == "leave-last-out-v24"  # the rule before the twenty-fifth session
    info: dict = {"test_fraction": test_fraction, "seed": seed, "protocol": protocol}
    heldout: dict[str, HeldOut] = {}
    train_parts: dict[str, Sessions] = {}
    test_keys: list[str] = []
    if sessions is not None:
        tr, te = sessions.split_by_time(test_fraction, seed=seed, window=window)
        train_parts["s"] = tr
        test_keys = ["s:" + k for k in te.keys]
        has_time = sessions.frame["ts"].null_count() == 0
        how = "by time of the first event" if has_time else "by seeded hash of the session key"
        info["sessions"] = {
            "split": (f"last transition of each held-out session (sessions {how}); the rest "
                      "of those sessions trains" + ("" if v24 else ", without the held-out "
                                                    "target")) if lolo else how,
            "n_train_sessions": len(tr),
            "n_test_sessions": len(te),
            "n_train_clicks": tr.n_clicks,
            "n_test_clicks": te.n_clicks,
        }
        if has_time and len(tr) and len(te):
            info["sessions"]["train_last_start"] = float(
                tr.frame.group_by("session").agg(pl.col("ts").min())["ts"].max()
            )
            info["sessions"]["test_first_start"] = float(
                te.frame.group_by("session").agg(pl.col("ts").min())["ts"].min()
            )
        if lolo:
            qa, qb, groups, prefixes, linfo = leave_last_out_sessions(
                te, catalog, revisits="keep" if v24 else "drop-target")
            train_parts["h"] = prefixes
            ho = HeldOut("sessions", qa, qb, groups, {})
            if has_time:  # each case's time: its session's last click (the target's)
                ends = np.cumsum(te.lengths) - 1
                last = dict(zip(("s:" + str(k) for k in te.keys),
                                te.frame["ts"].to_numpy()[ends].tolist(), strict=True))
                ho.times = np.array([last[g] for g in groups], np.float64)
            info["sessions"].update(linfo)
            info["sessions"]["expected_prefix_clicks"] = prefixes.n_clicks
        else:
            ho = consecutive_pairs(te, catalog)
            ho.groups = np.asarray(["s:" + str(g) for g in ho.groups], dtype=object)
        heldout["sessions"] = ho
        info["sessions"]["n_test_pairs"] = len(ho)
    pair_test = None
    if pairs is not None:
        pf = _pairs_frame(pairs)
        a, b = pf["a"].to_list(), pf["b"].to_list()
        if lolo:
            is_test, ta, tb, pinfo = leave_one_out_pairs(pf, test_fraction, seed, _hash_unit,
                                                         undirected=not v24)
            pair_test = (ta, tb)
        else:
            keys = [pair_key(x, y) for x, y in zip(a, b, strict=True)]
            is_test = _hash_unit(keys, seed) < test_fraction
            pair_test = (np.asarray(a, dtype=object)[is_test], np.asarray(b, dtype=object)[is_test])
            pinfo = {}
        trains = ~is_test
        n_cross = 0
        if "sessions" in heldout and not v24:
            # a pair equal to a held-out session transition (either direction) is that
            # transition's answer: an untimed pairs file may hold the test period's
            # co-purchases (on H&M, 32 % of the held-out baskets' transitions)
            ho = heldout["sessions"]
            ids = catalog.ids
            held = {pair_key(x, y) for x, y in zip(ids[ho.query_rows], ids[ho.target_rows],
                                               strict=True)}
            cross = np.fromiter((pair_key(x, y) in held for x, y in zip(a, b, strict=True)),
                                dtype=bool, count=len(a))
            n_cross = int((cross & trains).sum())
            trains &= ~cross
        train_sessions = pf["session"].filter(pl.Series(trains)).unique()
        train_parts["p"] = Sessions(
            pairs.frame.filter(pl.col("session").is_in(train_sessions.implode()))
        )
        info["pairs"] = {
            "split": ("one pair of each held-out query product (seeded hash; products with at "
                      "least 2 partners), both directions; every other pair trains"
                      + ("" if v24 else ", but none equal to a held-out session transition"))
            if lolo else "by seeded hash of the unordered pair",
            "n_train_pairs": int(trains.sum()),
            "n_train_pairs_dropped_as_held_out_session_transitions": n_cross,
            "n_test_pairs_before_filter": len(pair_test[0]),
            **pinfo,
        }
    train = concat_sessions(train_parts)
    if pair_test is not None:
        ta, tb = pair_test
        seen = _seen_pairs(train, ta, tb)
        ta, tb = ta[~seen], tb[~seen]
        qa, oka = catalog.lookup(list(ta))
        qb, okb = catalog.lookup(list(tb))
        ok = oka & okb
        heldout["pairs"] = HeldOut(
            source="pairs",
            query_rows=qa[ok],
            target_rows=qb[ok],
            groups=np.asarray(list(ta[ok]), dtype=object),
            info={"n_pairs_unknown_products": int((~ok).sum())},
        )
        info["pairs"]["n_test_pairs_seen_in_training_dropped"] = int(seen.sum())
        info["pairs"]["n_test_pairs"] = int(ok.sum())
    if lolo and not v24:  # a catalog made of the log's own products (protocol docstring)
        from prodfusion.evaluation.protocol import log_catalog_cases

        mode = {"leave-last-out-all-cases": "keep", "leave-last-out-log-catalog": "drop"}.get(
            protocol, "auto")
        heldout, info["log_catalog"] = log_catalog_cases(heldout, train, catalog, mode=mode,
                                                         clicked=clicked)
        for name, n_dropped in info["log_catalog"]["n_cases_dropped"].items():
            if name in info:
                info[name]["n_test_cases_target_only_held_out_dropped"] = n_dropped
                info[name]["n_test_pairs"] = len(heldout[name]) if name in heldout else 0
    info["n_train_sessions_total"] = len(train) if train is not None else 0
    return Split(train=train, heldout=heldout, test_session_keys=test_keys, info=info)


def model_clicked(rec: Any) -> np.ndarray | None:
    """Which of ``rec``'s products the log it was built from clicked (its click counts > 0),
    or None where it keeps no counts: ``split_interactions(clicked=...)``."""
    counts = getattr(rec, "click_counts_", None)
    if counts is None or len(counts) != len(rec.catalog):
        return None
    return np.asarray(counts) > 0


def check_no_leak(split: Split, catalog: Any) -> dict:
    """Refuse a split in which held-out data reached the training corpus.

    Checks that no held-out session is in training, and that no held-out pair ``(a, b)`` from
    the pair source co-occurs in any training session.

    Raises
    ------
    ModelError
        Naming how many held-out sessions or pairs leaked.

    Returns
    -------
    dict
        What was checked (counts), for the report.
    """
    train = split.train
    train_keys = set(train.keys) if train is not None else set()
    leaked = sorted(set(split.test_session_keys) & train_keys)
    if leaked:
        raise ModelError(
            f"Leak: {len(leaked)} held-out session(s) are in the training corpus "
            f"(first: {leaked[0]!r}). The evaluation would score what the model has seen."
        )
    expected = split.info.get("sessions", {}).get("expected_prefix_clicks")
    if expected is not None and train is not None:
        got = int(train.frame.filter(pl.col("session").str.starts_with("h:")).height)
        if got != expected:
            raise ModelError(
                f"Leak: the training corpus holds {got} clicks of held-out sessions, "
                f"{expected} expected (each held-out session without its last click)."
            )
    checked = {"test_sessions_checked": len(split.test_session_keys), "test_pairs_checked": 0}
    ho = split.heldout.get("pairs")
    if ho is not None and train is not None and len(ho):
        ids = catalog.ids
        a, b = ids[ho.query_rows], ids[ho.target_rows]
        seen = _seen_pairs(train, list(a), list(b))
        if seen.any():
            i = int(np.flatnonzero(seen)[0])
            raise ModelError(
                f"Leak: {int(seen.sum())} held-out pair(s) co-occur in a training session "
                f"(first: {a[i]!r} and {b[i]!r}). The evaluation would score what the model "
                "has seen."
            )
        checked["test_pairs_checked"] = len(a)
    hs = split.heldout.get("sessions")
    if hs is not None and train is not None and len(hs) \
            and split.info.get("protocol") != "leave-last-out-v24":
        _check_session_cases(hs, train, catalog)
        checked["test_session_cases_checked"] = len(hs)
    return checked


def _check_session_cases(hs: HeldOut, train: Sessions, catalog: Any) -> None:
    """No held-out session transition ``(q, t)`` in training through its own session's
    prefix (``"h:<key>"`` holding ``t``) or as a co-interaction pair (``"p:"``)."""
    ids = catalog.ids
    q, t = ids[hs.query_rows], ids[hs.target_rows]
    f = train.frame
    own = f.filter(pl.col("session").str.starts_with("h:")).select(
        (pl.lit("s:") + pl.col("session").str.slice(2)).alias("group"), "product_id")
    cases = pl.DataFrame({"group": list(hs.groups), "product_id": list(t)})
    back = cases.join(own, on=["group", "product_id"], how="semi")
    if back.height:
        raise ModelError(
            f"Leak: {back.height} held-out session target(s) are in the training prefix of "
            f"their own session (first: {back['product_id'][0]!r} in {back['group'][0]!r}). "
            "The evaluation would score what the model has seen.")
    pairs = f.filter(pl.col("session").str.starts_with("p:"))
    if pairs.height:
        held = {pair_key(x, y) for x, y in zip(q, t, strict=True)}
        rows = pairs.group_by("session", maintain_order=True).agg(pl.col("product_id"))
        bad = [r for r in rows["product_id"].to_list()
               if len(r) == 2 and pair_key(r[0], r[1]) in held]
        if bad:
            raise ModelError(
                f"Leak: {len(bad)} training pair(s) equal a held-out session transition "
                f"(first: {bad[0][0]!r} and {bad[0][1]!r}). The evaluation would score what "
                "the model has seen.")


def retrain_params(params: Any, train: Sessions | None) -> Any:
    """The Prod2Vec settings a held-out retraining on ``train`` (``tune``'s validation
    splits, ``evaluate``'s training part) uses: one thread up to
    :data:`~prodfusion.encoders.clicks.REPRODUCIBLE_MAX_CLICKS` clicks where no thread count
    was given (:func:`~prodfusion.encoders.clicks.reproducible_params`, the rule every
    Prod2Vec fit of a build follows): gensim is not reproducible on several threads, and the
    weights tuned by two runs of the same build differed (H&M's ``pairs`` profile:
    docs/results/README.md, twenty-third session).

    >>> from prodfusion.encoders.clicks import Prod2VecParams
    >>> from prodfusion.data.sessions import Sessions
    >>> s = Sessions.from_lists([["a", "b", "c"], ["b", "c"]])
    >>> retrain_params(Prod2VecParams(), s).workers
    1
    >>> retrain_params(Prod2VecParams(workers=4), s).workers
    4
    """
    from prodfusion.encoders.clicks import reproducible_params

    if train is None or not len(train):
        return params
    return reproducible_params(params, train.n_clicks)


def heldout_recommender(
    rec: Any,
    train: Sessions | None,
    *,
    prod2vec: Any = None,
    progress: bool | None = None,
) -> Any:
    """A recommender with the model's text/image vectors and clicks retrained on ``train``.

    The model's own click vectors are never used (they were trained on every interaction,
    held-out ones included). With no training sessions the result has no click modality.

    Parameters
    ----------
    rec : Recommender
    train : Sessions or None
    prod2vec : Prod2VecParams, optional
        Default: the model's settings (``rec.prod2vec``).
    """
    from prodfusion.encoders import Prod2Vec
    from prodfusion.recommender import Recommender

    embs = {m: e for m, e in rec.embeddings_.items() if m != "clicks"}
    params = retrain_params(prod2vec if prod2vec is not None else getattr(rec, "prod2vec", None),
                            train)
    if train is not None and len(train):
        p = asdict(params) if params is not None else {}
        embs["clicks"] = Prod2Vec(**p, progress=bool(progress)).fit(train).encode(rec.catalog)
        if embs["clicks"].n_present == 0:
            del embs["clicks"]
    if not embs:
        raise ModelError(
            "Nothing to evaluate: the model has no text or image vectors and no training "
            "sessions were given to retrain the click vectors."
        )
    ev = Recommender.from_embeddings(  # searched as the model is (its index choice)
        rec.catalog,
        embs,
        fusion=rec.fusion,
        normalize=getattr(rec, "normalize", False),
        seed=getattr(rec, "seed", 0),
        index=getattr(rec, "index", "auto"),
        index_settings=getattr(rec, "index_settings", None),
    )
    ev.train_sessions_ = train  # what the reference baselines (cooc, popular) count
    ev.late_k_rule = getattr(rec, "late_k_rule", 2)  # an older folder's fixed cap of 128
    if train is not None and len(train):
        # the cooc modality, counted on the training part only (as the clicks are retrained)
        from prodfusion.fusion.cooc import Cooc

        decay = rec.cooc_.decay if getattr(rec, "cooc_", None) is not None else 0.0
        ev.cooc_ = Cooc.from_sessions(train, rec.catalog, decay=decay)
    if getattr(rec, "category_", None) is not None:  # from the catalog: nothing to retrain
        ev.category_ = rec.category_
    if getattr(rec, "ngrams_", None) is not None:  # from the titles: nothing to retrain
        ev.ngrams_ = rec.ngrams_
    # The model's fusion weights, calibration and click confidence; occurrences counted in
    # the training part (what the retrained click vectors saw).
    ev.weights = getattr(rec, "weights", None)
    ev.calibration = getattr(rec, "calibration", "none")
    ev.click_n0 = getattr(rec, "click_n0", None)
    ev.click_confidence = getattr(rec, "click_confidence", "ratio")
    ev.impute = getattr(rec, "impute", 0.0)
    ev.fallback_missing = getattr(rec, "fallback_missing", "drop")
    ev.zero_weight_fallback = getattr(rec, "zero_weight_fallback", False)
    ev.learned_ = getattr(rec, "learned_", None)  # the model's own trees, when it has them
    ev.backfill = getattr(rec, "backfill", None)  # from the training part's click counts
    ev.profiles_ = dict(getattr(rec, "profiles_", None) or {})  # named weightings, as served
    if train is not None and len(train):
        pc = train.product_counts()
        ev.click_counts_ = np.array([pc.get(p, 0) for p in rec.catalog.ids], dtype=np.int64)
        if getattr(rec, "popularity_", None) is not None:  # counted on the training part
            from prodfusion.model_state import refresh_popularity

            ev.popularity = True
            refresh_popularity(ev)
    # the pairwise modalities fused: those the model has (cooc is always counted, for the
    # reference baselines, but fused only where the model has it)
    from prodfusion.fusion.cooc import PAIRWISE_MODALITIES

    ev.modalities = tuple(m for m in ev.available_modalities
                          if m not in PAIRWISE_MODALITIES or m in rec.available_modalities)
    return ev


def _subsample(ho: HeldOut, max_pairs: int | None, seed: int) -> HeldOut:
    """At most ``max_pairs`` test cases, taking whole groups in a seeded random order."""
    if max_pairs is None or len(ho) <= max_pairs:
        return ho
    uniq, inv = np.unique(ho.groups.astype(str), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    sizes = np.bincount(inv)[order]
    n_take = int(np.searchsorted(np.cumsum(sizes), max_pairs, side="right"))
    chosen = np.zeros(len(uniq), dtype=bool)
    chosen[order[: max(1, n_take)]] = True
    out = ho.take(np.flatnonzero(chosen[inv]))
    out.info["subsampled_from"] = len(ho)
    return out


#: How a tuning (and ``evaluate retrieval``) whose model has retired products tells which
#: were on offer at a held-out case's time (:func:`on_offer_windows`), as its record says it.
ON_OFFER_RULE = ("each case ranked among the products on offer at its time: clicked at or "
                 "before it and, if retired since, clicked at or after it (never-clicked "
                 "products still recommended: always)")


def on_offer_rule(rec: Any) -> str:
    """The rule :func:`on_offer_windows` follows for ``rec``, in words (the tuning's and
    ``evaluate``'s logs and records)."""
    cols = offer_cols_of(rec)
    if not cols:
        return ON_OFFER_RULE
    frm, until = cols
    start = f"from its {frm!r} time (or first click, if earlier or not given)" if frm else \
        "from its first click (never-clicked products still recommended: always)"
    end = (f"until its {until!r} time (or last click, if later); without one, "
           if until else "") + ("for ever if still recommended, until its last click if "
                                "retired")
    return f"each case ranked among the products on offer at its time: {start}, {end}"


def on_offer_windows(rec: Any, sessions: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """When each product was on offer, as far as the log ``sessions`` and the catalog tell:
    per catalog row ``(first, last)`` times (seconds) such that a held-out case at time ``t``
    ranks the products with ``first <= t <= last`` only (the tuning's validation cases,
    :class:`~prodfusion.evaluation.tuning_scorer._Scorer`; ``evaluate retrieval``'s test
    cases where scored exactly).

    Where the model knows when its products were on offer (``build --on-offer-cols
    posted,sold_at``, :attr:`~prodfusion.Recommender.on_offer_cols`), a product is on offer
    from its start (or its first click, if earlier) until its end (or its last click, if
    later); one without an end, for ever if still recommended and until its last click if
    retired; one without a start or a click, always if still recommended.

    Otherwise the log's clicks stand for the site's own record of when each listing was
    online, and only where some products are retired (``build --recommend-rows``, ``add
    --retire-missing``): a model whose products are all recommended was made from a catalog
    of products on offer now, and nothing is known of when they were not: ``None`` (every
    case ranks every product). In an archive a case of last month ranking a listing
    posted since, or one sold weeks before, asks a question the site never asked: such a
    tuning favoured clicks over titles (the fifty-third session's classifieds site weighed
    titles 0.005 on its archive against 0.41 on its feed). A product is on offer from its
    first click to its last; one still recommended, from its first click on; one never
    clicked, always if still recommended and never if retired; a listing on offer before
    its first click or after its last is not ranked then. ``None`` too where the log lacks
    times.
    """
    retired = getattr(rec, "retired_", None)
    cols = offer_cols_of(rec)
    if not _timed(sessions):
        return None
    if not cols and (retired is None or not np.any(retired)):
        return None
    first, last = _click_span(rec, sessions)
    n = len(rec.catalog)
    live = np.ones(n, bool) if retired is None else ~np.asarray(retired, bool)
    if cols:
        frm, until = _dates(rec, cols)
        first = np.fmin(first, frm)  # NaN: not given
        last = np.where(np.isnan(until), np.where(live, np.inf, last), np.fmax(last, until))
    first[live & np.isinf(first) & (first > 0)] = -np.inf
    if not cols:
        last[live] = np.inf
    return first, last


def _timed(sessions: Any) -> bool:
    """Whether ``sessions`` has clicks, every one with a time."""
    return sessions is not None and sessions.frame.height > 0 \
        and sessions.frame["ts"].null_count() == 0


def _click_span(rec: Any, sessions: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per catalog row of ``rec``, its first and last click's time in ``sessions``
    (``inf`` / ``-inf`` for a product never clicked)."""
    f = sessions.frame.group_by("product_id").agg(pl.col("ts").min().alias("first"),
                                                  pl.col("ts").max().alias("last"))
    rows, ok = rec.catalog.lookup(f["product_id"].to_list())
    n = len(rec.catalog)
    first, last = np.full(n, np.inf), np.full(n, -np.inf)
    first[rows[ok]] = f["first"].to_numpy()[ok]
    last[rows[ok]] = f["last"].to_numpy()[ok]
    return first, last


def _dates(rec: Any, cols: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The model's catalog dates of ``cols`` (:func:`~prodfusion.data.offer.offer_times`)."""
    return offer_times(rec.catalog, cols, time_format=getattr(rec, "on_offer_time_format", None),
                       where="the model's catalog")


def on_offer_note(rec: Any, sessions: Any, offer: tuple | None) -> str | None:
    """What a tuning or ``evaluate`` says besides the rule where the model records
    ``on_offer_cols``: that they are not applied (a log without times), or that the
    catalog's times and the log's disagree — most clicked products clicked before their
    start or after their end, as a log in milliseconds, or another time zone by days,
    would make them. None: nothing to say."""
    cols = offer_cols_of(rec)
    if not cols:
        return None
    if not _timed(sessions):
        return ("note: --on-offer-cols is not applied: the interactions have no times, so "
                "each case ranks every product")
    if offer is None:
        return None
    frm, until = _dates(rec, cols)
    a, b = _click_span(rec, sessions)
    clicked = np.isfinite(a)
    day = 86400.0
    early = clicked & ~np.isnan(frm) & (a < frm - day)
    late = clicked & ~np.isnan(until) & (b > until + day)
    known = clicked & (~np.isnan(frm) | ~np.isnan(until))
    if not known.any() or (early | late).sum() <= known.sum() / 2:
        return None
    return (f"warning: {int((early | late).sum()):,} of the {int(known.sum()):,} clicked "
            "products with --on-offer-cols times were clicked over a day before their start "
            f"or after their end ({', '.join(c for c in cols if c)}): are the catalog's times "
            "and the log's in the same unit and time zone? Each product counts as on offer "
            "whenever it was clicked too.")


def retired_words(rec: Any) -> str:
    """``2,590 of the 3,001 products retired`` (``none of …``), beside the rule in logs."""
    from prodfusion.model_updates import retired_count

    k = retired_count(rec)
    return f"{f'{k:,}' if k else 'none'} of the {len(rec.catalog):,} products retired"
