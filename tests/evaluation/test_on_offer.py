"""A tuning whose model has retired products ranks each validation case among the products
on offer at its time (``on_offer_windows``: the log's first to last click of a retired
product, from the first click on for one still recommended)."""

from __future__ import annotations

import types

import numpy as np
import polars as pl

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.evaluation.metrics import tie_aware_metric
from prodfusion.evaluation.split import ON_OFFER_RULE, on_offer_windows
from prodfusion.evaluation.tuning import tune_weights
from prodfusion.evaluation.tuning_scorer import _Scorer
from prodfusion.fusion.cooc import Cooc
from prodfusion.fusion.weighting import Weighting
from prodfusion.recommender import Prod2VecParams, Recommender


def _cooc_site(rng, n: int, n_sessions: int):
    """``n`` products in kinds of 6 and ``n_sessions`` sessions of 2–4 products of one kind:
    their co-occurrences and a stand-in for the tuning's held-out model (``ev``)."""
    ids = [f"p{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    lists = [[ids[g * 6 + j] for j in rng.choice(6, size=rng.integers(2, 5), replace=False)]
             for g in rng.integers(n // 6, size=n_sessions)]
    cooc = Cooc.from_sessions(Sessions.from_lists(lists), cat)
    return cooc, types.SimpleNamespace(modality_data=lambda: {"cooc": cooc}, catalog=cat)


def test_the_scorer_ranks_each_case_among_the_products_on_offer_then():
    """Against a brute-force count over every product: a case ranks only the products whose
    window holds its time (its target always), exactly with every product scored and within
    0.01 with the candidates' pool and a sample of the rest; an untimed case (NaN) ranks
    them all, as without windows."""
    rng = np.random.default_rng(3)
    n = 600
    cooc, ev = _cooc_site(rng, n, 1500)
    q = rng.choice(np.flatnonzero(cooc.mask), size=200, replace=False)
    t = np.array([cooc.neighbours(int(x))[i % 3] if i % 4 else int((x + 6 * 37) % n)
                  for i, x in enumerate(q)])
    times = rng.uniform(0, 100, len(q))
    times[::10] = np.nan  # untimed cases (pairs): every product
    first = rng.uniform(-20, 80, n)
    last = first + rng.uniform(0, 60, n)
    src = np.full(len(q), "sessions")
    alone = Weighting.make({"cooc": 1.0}, "none", None, None)

    dense = cooc.scores(q)
    want = np.zeros(len(q))
    for i, (x, y) in enumerate(zip(q, t, strict=True)):
        s = np.where(cooc.mask[x] & cooc.mask, dense[i], -np.inf)
        ok = ~((first > times[i]) | (last < times[i]))  # NaN: every product
        ok[x], ok[y] = False, True
        st = s[y]
        if np.isfinite(st):
            ahead = int(((s > st) & ok).sum())
            ties = int(((s == st) & ok).sum()) - 1
            want[i] = tie_aware_metric(np.array([ahead]), np.array([ties]), 15, "ndcg")[0]
    exact = _Scorer(ev, ("cooc",), q, t, src, None, "ndcg", 15, n_cand=n, n_outside=n,
                    times=times, on_offer=(first, last))
    np.testing.assert_allclose(exact.values(alone), want, atol=1e-12)
    every = _Scorer(ev, ("cooc",), q, t, src, None, "ndcg", 15, n_cand=n, n_outside=n)
    assert exact.objective(want) > every.objective(every.values(alone)) + 0.02
    np.testing.assert_allclose(exact.values(alone)[::10], every.values(alone)[::10])
    sampled = _Scorer(ev, ("cooc",), q, t, src, None, "ndcg", 15, n_cand=20,
                      times=times, on_offer=(first, last))
    assert abs(sampled.objective(sampled.values(alone)) - exact.objective(want)) < 0.01
    # a scorer of some queries only keeps their cases' windows
    keep = np.zeros(len(exact.uq), bool)
    keep[::3] = True
    np.testing.assert_allclose(exact.restricted(keep).values(alone),
                               exact.values(alone)[keep[exact.inv]])


def _archive(n_live: int = 60, seed: int = 0):
    """A site whose every live listing has a twin of the same title sold long ago: ``n_live``
    live listings (``L…``) in 6 kinds, ``n_live`` sold ones (``S…``, retired), photos pure
    noise. The sold ones were clicked in the first 100 time steps, the live ones after; a
    visitor goes from a listing to another of its kind on offer at the time."""
    rng = np.random.default_rng(seed)
    kinds = np.arange(n_live) % 6
    ids = [f"L{i:03d}" for i in range(n_live)] + [f"S{i:03d}" for i in range(n_live)]
    centres = rng.normal(size=(6, 16)) * 3
    text = np.concatenate([centres[kinds] + rng.normal(size=(n_live, 16))] * 2)
    text[n_live:] += rng.normal(size=(n_live, 16)) * 0.05  # the twin: the same title
    n = 2 * n_live
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    rec = Recommender.from_embeddings(cat, {
        "text": Embeddings(text.astype(np.float32), np.ones(n, bool), "planted-text"),
        "image": Embeddings(rng.normal(size=(n, 16)).astype(np.float32), np.ones(n, bool),
                            "noise-image"),
    }, fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
    rec.retired_ = np.arange(n) >= n_live
    u = text / np.linalg.norm(text, axis=1, keepdims=True)
    rows, times = [], []
    for step in range(400):
        sold = step < 100  # the sold listings' time, then the live ones'
        base = n_live if sold else 0
        a = int(rng.integers(n_live))
        same = np.flatnonzero(kinds == kinds[a])
        sim = u[base + same] @ u[base + a]
        order = same[np.argsort(-sim)][1:3]  # its kind's two nearest titles on offer then
        rows.append([ids[base + a], ids[base + int(rng.choice(order))]])
        times.append(float(step))
    sessions = Sessions(pl.DataFrame({
        "session": [f"s{i:03d}" for i, s in enumerate(rows) for _ in s],
        "position": [j for s in rows for j in range(len(s))],
        "product_id": [p for s in rows for p in s],
        "ts": [t for t, s in zip(times, rows, strict=True) for _ in s]}))
    return rec, sessions


KW = dict(objective="hitrate@5", step=0.25, n0_grid=(None,), max_queries=500, modalities=[
    "text", "image"])


def test_windows_from_the_log_where_products_are_retired():
    rec, sessions = _archive()
    first, last = on_offer_windows(rec, sessions)
    n = len(rec.catalog)
    sold = np.arange(n) >= n // 2
    clicked = np.isin(rec.catalog.ids, sessions.frame["product_id"].unique().to_list())
    assert (last[~sold] == np.inf).all() and np.isfinite(last[sold & clicked]).all()
    assert (last[sold & clicked] < 100).all() and (first[~sold & clicked] >= 100).all()
    # a sold listing nobody clicked was never on offer as far as the log tells; a live one,
    # always
    f = sessions.frame
    gone = f.filter(pl.col("product_id").is_in(["L059", "S059"]))["session"].implode()
    fewer = Sessions(f.filter(~pl.col("session").is_in(gone)))
    f2, l2 = on_offer_windows(rec, fewer)
    assert (f2[59], l2[59]) == (-np.inf, np.inf) and (f2[119], l2[119]) == (np.inf, -np.inf)
    assert np.isfinite(first[59]) and np.isfinite(last[119])
    # nothing retired, or no times: no windows (every case ranks every product)
    rec.retired_ = None
    assert on_offer_windows(rec, sessions) is None
    rec.retired_ = sold
    untimed = Sessions(sessions.frame.with_columns(pl.lit(None, pl.Float64).alias("ts")))
    assert on_offer_windows(rec, untimed) is None


def test_an_archive_tuning_does_not_rank_listings_sold_before_the_case(monkeypatch):
    """The validation cases are the latest, among live listings: ranking the sold twins
    too (whose titles equal the live ones') costs the titles the hits they make among the
    listings on offer; with the windows the titles score as lists of the listings on sale
    would, and the record says which rule ranked."""
    import prodfusion.evaluation.tuning_scorer as ts

    rec, sessions = _archive()
    kw = {**KW, "objective": "hitrate@2"}  # the target is one of its query's 2 nearest
    on = tune_weights(rec, sessions=sessions, **kw)
    assert on["split"]["on_offer"]["rule"] == ON_OFFER_RULE
    assert on["split"]["on_offer"]["candidates_not_on_offer"] > 0.2
    monkeypatch.setattr(ts, "on_offer_windows", lambda rec, sessions: None)
    off = tune_weights(rec, sessions=sessions, **kw)
    assert "on_offer" not in off["split"]
    a, b = on["reference_scores"]["text alone"], off["reference_scores"]["text alone"]
    assert a > b + 0.1, (a, b)


def test_the_windows_never_read_the_test_part():
    """Moving every test session's last click (the held-out target) to another product and
    to another time changes nothing a tuning with windows chooses or measures."""
    rec, sessions = _archive()
    f = sessions.frame
    last = np.cumsum(sessions.lengths) - 1
    n_test = round(len(sessions) * 0.2)
    pid = f["product_id"].to_numpy().copy()
    ts = f["ts"].to_numpy().copy()
    for r in last[-n_test:]:
        pid[r] = "S000"  # a sold listing: its window would reach the test period
        ts[r] += 0.5
    changed = Sessions(f.with_columns(pl.Series("product_id", pid), pl.Series("ts", ts)))
    a = tune_weights(rec, sessions=sessions, **KW)
    b = tune_weights(rec, sessions=changed, **KW)
    for key in ("weights", "calibration", "n0", "validation_score", "reference_scores",
                "split"):
        assert a[key] == b[key], key
    assert a["fingerprints"]["sessions"] != b["fingerprints"]["sessions"]


def test_evaluate_retrieval_ranks_each_case_among_the_products_on_offer_then(
        tmp_path, angled_titles, monkeypatch):
    """Held out: p0 → p2 at time 3 and p0 → p4 at time 4 (p0's nearest titles: p4, p1, p2).
    p4, retired, was clicked at time 4 only: at time 3 it was not on offer yet, so the case
    ranks p1, p2 and hits at k=2; as the target at time 4 it is on offer. Ranking every
    product, p0 → p2 misses; without the clicks' times every product is ranked, and the
    report says which rule it used."""
    import prodfusion.evaluation.retrieval as retrieval
    from prodfusion.evaluation.report import write_report

    rec, sessions = angled_titles()
    rec.retire(["p4"])
    kw = dict(test_fraction=0.4, k=2, variants=["intermediate:text"], n_boot=20,
              progress=False, keep_cases=True)

    def hits(res):
        (case,) = [c for (label, _), c in res["cases"].items() if "text" in label]
        return case["hit"].tolist()

    timed = retrieval.evaluate_retrieval(rec, sessions=sessions, **kw)
    with monkeypatch.context() as m:
        m.setattr(retrieval, "on_offer_windows", lambda rec, sessions: None)
        every = retrieval.evaluate_retrieval(rec, sessions=sessions, **kw)
    assert hits(timed) == [1.0, 1.0] and sorted(hits(every)) == [0.0, 1.0]
    # the lists as served (--ties row; a configuration searched approximately alike): each
    # case's list read deep enough to hold k products on offer then
    row = retrieval.evaluate_retrieval(rec, sessions=sessions, **{**kw, "ties": "row"})
    assert hits(row) == [1.0, 1.0] and row["config"]["catalog"]["on_offer"] == ON_OFFER_RULE
    served = [c for (label, _), c in timed["cases"].items() if "text" in label][0]["served"]
    assert served["hit"].tolist() == [1.0, 1.0]
    untimed = retrieval.evaluate_retrieval(rec, sessions=Sessions(sessions.frame.with_columns(
        pl.lit(None, pl.Float64).alias("ts"))), **kw)
    assert timed["config"]["catalog"]["on_offer"] == ON_OFFER_RULE
    assert "on_offer" not in untimed["config"]["catalog"]
    for name, res in (("timed", timed), ("untimed", untimed)):
        res.pop("cases")
        write_report(res, tmp_path / name)
    said = {name: " ".join((tmp_path / name / "report.md").read_text("utf-8").split())
            for name in ("timed", "untimed")}
    assert "so each case ranked among the products on offer at its time" in said["timed"]
    assert "the clicks have no times" in said["untimed"]
    assert "on offer at its time" not in said["untimed"]


def test_the_trees_learn_only_from_candidates_on_offer_at_a_case_of_their_query():
    """The trees' training rows (``tuning_learned._rows``): every positive, and as
    negatives the pool's candidates on offer at the time of one of the query's cases
    (counted against a brute-force loop); without windows, every candidate of the pool."""
    from prodfusion.evaluation.tuning_learned import _rows

    rng = np.random.default_rng(7)
    n = 300
    cooc, ev = _cooc_site(rng, n, 900)
    q = np.repeat(rng.choice(np.flatnonzero(cooc.mask), size=60, replace=False), 2)
    t = np.array([cooc.neighbours(int(x))[i % 2] for i, x in enumerate(q)])
    times = rng.uniform(0, 100, len(q))
    first = rng.uniform(-20, 80, n)
    last = first + rng.uniform(0, 60, n)
    src = np.full(len(q), "sessions")
    kw = dict(n_cand=40, learned_pool=10)
    timed = _Scorer(ev, ("cooc",), q, t, src, None, "ndcg", 15, times=times,
                    on_offer=(first, last), **kw)
    every = _Scorer(ev, ("cooc",), q, t, src, None, "ndcg", 15, **kw)
    keep = np.ones(len(timed.uq), bool)
    want_neg = 0
    for u, x in enumerate(timed.uq):
        cases = np.flatnonzero(q == x)
        rows = timed.safe[u]
        on = np.zeros(len(rows), bool)
        for c in cases:
            on |= (first[rows] <= times[c]) & (last[rows] >= times[c])
        target = np.isin(timed.cand[u], t[cases])
        want_neg += int((timed.natural[u] & ~target & on).sum())
    _, y, _ = _rows(timed, ("cooc",), keep, np.random.default_rng(0))
    _, y_all, _ = _rows(every, ("cooc",), keep, np.random.default_rng(0))
    assert int((y == 0).sum()) == want_neg
    assert int((y == 1).sum()) == int((y_all == 1).sum())
    assert int((y_all == 0).sum()) > want_neg + 50


def test_replay_shows_each_view_the_lists_of_the_products_on_offer_then(
        tmp_path, angled_titles, monkeypatch):
    """As in the retrieval test above: p4, retired, first clicked at time 4, is p0's nearest
    title. The view p0 → p2 at time 3 shows [p1, p2] (p4 not on offer yet): a click; the
    view p0 → p4 at time 4 shows [p4, p1]: a click. Without the windows the first view
    shows p4 and is missed; a deeper list than the first read is fetched where the first
    holds too few products on offer."""
    import importlib

    from prodfusion.evaluation.report import write_report

    rp = importlib.import_module("prodfusion.evaluation.replay")  # the module, not replay()
    rec, sessions = angled_titles()
    rec.retire(["p4"])
    kw = dict(model=rec, sessions=sessions, test_fraction=0.4, k=2, progress=False)
    timed = rp.replay("intermediate:text", "intermediate:text", **kw)
    assert timed["sources"]["sessions"]["total"]["ctr_b"] == 1.0
    assert timed["config"]["catalog"]["on_offer"] == ON_OFFER_RULE
    with monkeypatch.context() as m:
        retrieval = importlib.import_module("prodfusion.evaluation.retrieval")
        m.setattr(retrieval, "OFFER_DEPTH", 1)  # a first read of 2: p0's list [p4, p1] short
        m.setattr(retrieval, "OFFER_BLOCK", 1)  # and one view read at a time
        assert rp.replay("intermediate:text", "intermediate:text", **kw)[
            "sources"]["sessions"]["total"]["ctr_b"] == 1.0
    with monkeypatch.context() as m:
        m.setattr(rp, "on_offer_windows", lambda rec, sessions: None)
        every = rp.replay("intermediate:text", "intermediate:text", **kw)
    assert every["sources"]["sessions"]["total"]["ctr_b"] == 0.5
    assert "on_offer" not in every["config"]["catalog"]
    write_report(timed, tmp_path)
    said = " ".join((tmp_path / "report.md").read_text("utf-8").split())
    assert "so each case ranked among the products on offer at its time" in said
    assert "Each view shows the configuration's list read deep enough to hold 2 products" in said


def test_lists_of_one_product_per_group_are_of_the_products_on_offer_then(angled_titles,
                                                                          monkeypatch):
    """The same held-out views on a model listing one product per group (p2 and p3 one
    group): at time 3 the list is p1, then p2 for its group (p4 not on offer yet), a hit;
    without the windows p4 comes first and the view is missed — in `evaluate retrieval`
    and in `replay` alike."""
    import importlib

    retrieval = importlib.import_module("prodfusion.evaluation.retrieval")
    rp = importlib.import_module("prodfusion.evaluation.replay")
    rec, sessions = angled_titles(group=["a", "b", "c", "c", "e", "f"])
    rec.retire(["p4"])
    rec.one_per_group = True
    kw = dict(test_fraction=0.4, k=2, progress=False)

    def hits(res):
        (case,) = [c for (label, _), c in res["cases"].items() if "text" in label]
        return case["hit"].tolist()

    def run():
        ev = retrieval.evaluate_retrieval(rec, sessions=sessions, variants=["intermediate:text"],
                                          n_boot=20, keep_cases=True, **kw)
        ctr = rp.replay("intermediate:text", "intermediate:text", model=rec, sessions=sessions,
                        **kw)["sources"]["sessions"]["total"]["ctr_b"]
        return hits(ev), ctr, ev["config"]["catalog"]

    got, ctr, cfg = run()
    assert got == [1.0, 1.0] and ctr == 1.0 and cfg["on_offer"] == ON_OFFER_RULE
    monkeypatch.setattr(retrieval, "on_offer_windows", lambda rec, sessions: None)
    monkeypatch.setattr(rp, "on_offer_windows", lambda rec, sessions: None)
    got, ctr, cfg = run()
    assert sorted(got) == [0.0, 1.0] and ctr == 0.5 and "on_offer" not in cfg
