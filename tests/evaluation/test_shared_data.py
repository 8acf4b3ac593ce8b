"""The held-out split on the real evaluation data (skipped when ../shared/data is absent)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import clean_sessions, read_interactions, read_pairs
from prodfusion.evaluation.retrieval import check_no_leak, split_interactions

pytestmark = pytest.mark.shared_data


def test_diginetica_time_split_is_leak_free(shared_data):
    views = read_interactions(
        shared_data / "diginetica" / "train-item-views.sample.csv", session_cols="session_id",
        item_col="item_id", time_col="eventdate,timeframe",
    )
    sessions = clean_sessions(views)
    ids = views["product_id"].unique().sort().to_list()
    catalog = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    split = split_interactions(catalog, sessions, test_fraction=0.2, protocol="whole")
    info = split.info["sessions"]
    assert info["n_test_sessions"] == round(len(sessions) * 0.2)
    assert info["train_last_start"] <= info["test_first_start"]
    assert check_no_leak(split, catalog)["test_sessions_checked"] == info["n_test_sessions"]
    assert len(split.heldout["sessions"]) == info["n_test_clicks"] - info["n_test_sessions"]
    # leave-last-out (the default): one held-out transition per test session, the sessions'
    # earlier clicks train, and still nothing held out reaches training
    llo = split_interactions(catalog, sessions, test_fraction=0.2,
                             protocol="leave-last-out-all-cases")
    li = llo.info["sessions"]
    assert li["n_test_sessions"] == info["n_test_sessions"]
    assert len(llo.heldout["sessions"]) == li["n_test_sessions"] == li["n_test_cases"]
    assert li["n_prefix_clicks_in_training"] == li["expected_prefix_clicks"] > 0
    assert check_no_leak(llo, catalog)["test_sessions_checked"] == li["n_test_sessions"]
    # this catalog is the log's viewed items: most held-out targets were viewed nowhere else
    # (62 % against 10 % of the catalog), so the default does not score them
    dflt = split_interactions(catalog, sessions, test_fraction=0.2)
    lc = dflt.info["log_catalog"]
    assert lc["applied"] and lc["targets_without_training_interactions"] > 0.5 > 0.15 > lc[
        "catalog_without_training_interactions"]
    kept = dflt.heldout["sessions"]
    assert len(kept) + lc["n_cases_dropped"]["sessions"] == li["n_test_cases"] > len(kept) > 0
    seen = set(dflt.train.frame["product_id"].to_list())
    assert all(catalog.ids[t] in seen for t in kept.target_rows)
    check_no_leak(dflt, catalog)


def test_hm_copurchase_pair_split_is_leak_free(shared_data):
    hm = shared_data / "hm"
    art = pl.read_csv(hm / "articles.csv", columns=["article_id", "prod_name"],
                      schema_overrides={"article_id": pl.Utf8})
    catalog = Catalog(art.rename({"article_id": "product_id", "prod_name": "title"}))
    pairs = clean_sessions(read_pairs(hm / "copurchase.csv", a_col="article_id",
                                      b_col="partner_article_id"), catalog)
    baskets = clean_sessions(read_interactions(
        hm / "transactions.csv", session_cols=("customer_id", "t_dat"), item_col="article_id",
        time_col="t_dat"), catalog)
    split = split_interactions(catalog, baskets, pairs, test_fraction=0.2, seed=0,
                               protocol="whole")
    checked = check_no_leak(split, catalog)
    p = split.info["pairs"]
    assert checked["test_pairs_checked"] == p["n_test_pairs"] > 5000
    share = p["n_test_pairs_before_filter"] / (p["n_test_pairs_before_filter"] + p["n_train_pairs"])
    assert share == pytest.approx(0.2, abs=0.01)
    # (a, b) and (b, a) are never on both sides
    ho = split.heldout["pairs"]
    test = {frozenset(x) for x in zip(catalog.ids[ho.query_rows], catalog.ids[ho.target_rows],
                                      strict=True)}
    train = {frozenset(s) for s in split.train if len(s) == 2}
    assert not test & train
    assert np.all(ho.query_rows != ho.target_rows)
    # leave-last-out (the default): one held-out pair per test query product, never in training
    llo = split_interactions(catalog, baskets, pairs, test_fraction=0.2, seed=0)
    lp = llo.info["pairs"]
    assert check_no_leak(llo, catalog)["test_pairs_checked"] == lp["n_test_pairs"] > 1000
    lho = llo.heldout["pairs"]
    assert len(set(lho.query_rows.tolist())) == lp["n_test_query_products"] - lp[
        "n_test_pairs_seen_in_training_dropped"]
    ltest = {frozenset(x) for x in zip(catalog.ids[lho.query_rows], catalog.ids[lho.target_rows],
                                       strict=True)}
    assert not ltest & {frozenset(s) for s in llo.train if len(s) == 2}
