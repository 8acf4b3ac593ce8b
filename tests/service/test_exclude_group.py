"""``exclude_group`` over HTTP: a product's variations (same group) never come back."""

from __future__ import annotations

import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.recommender import Recommender

from .conftest import ab_settings
from .helpers import make_catalog, planted_embeddings

pytest.importorskip("fastapi")


@pytest.fixture
def grouped_client(tmp_path):
    from fastapi.testclient import TestClient

    from prodfusion.service.app import create_app

    base = make_catalog(tmp_path, 40, images=False)
    # Groups inside the planted categories (i % 4): product i is in group i % 8, so the
    # query 0000's variations 0008, 0016, 0024, 0032 are among its nearest neighbours.
    frame = base.frame.with_columns(pl.Series("group", [f"g{i % 8}" for i in range(40)]))
    cat = Catalog(frame, source="<test>")
    rec = Recommender.from_embeddings(cat, planted_embeddings(40, cat.codes("category"), 0),
                                      fusion="intermediate")
    folder = rec.save(tmp_path / "model")
    with TestClient(create_app(ab_settings(folder, tmp_path / "ev.sqlite3"))) as c:
        yield c


def test_exclude_group_over_http(grouped_client):
    same_group = {"0008", "0016", "0024", "0032"}
    same_category = {f"{i:04d}" for i in range(4, 40, 4)}
    plain = grouped_client.get("/v1/similar/0000?k=9&visitor=v1").json()
    got = [it["product_id"] for it in plain["items"]]
    assert set(got) == same_category  # the planted answer, variations included
    assert same_group <= set(got)
    excl = grouped_client.get("/v1/similar/0000?k=9&visitor=v1&exclude_group=true").json()
    got = [it["product_id"] for it in excl["items"]]
    assert not same_group & set(got)  # no variation of the query
    assert set(got[:5]) == same_category - same_group  # the rest of its category first
    assert excl["variant"] == plain["variant"]
    # and the answer is not a cached copy of the unfiltered list
    again = grouped_client.get("/v1/similar/0000?k=9&visitor=v1").json()
    assert [it["product_id"] for it in again["items"]] == \
        [it["product_id"] for it in plain["items"]]
