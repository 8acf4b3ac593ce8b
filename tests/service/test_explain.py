"""``GET /v1/similar/{id}?explain=true``: each modality's share, summing to the score."""

from __future__ import annotations

import pytest


def test_explain_shares_sum_to_the_score_and_are_never_cached(client):
    plain = client.get("/v1/similar/0001?k=5&visitor=v1").json()
    assert all("explain" not in it for it in plain["items"])
    body = client.get("/v1/similar/0001?k=5&visitor=v1&explain=true").json()
    assert [it["product_id"] for it in body["items"]] == [it["product_id"] for it in plain["items"]]
    for it in body["items"]:
        ex = it["explain"]
        assert set(ex["modalities"]) == set(body["modalities"])
        total = ex["base"] + sum(v["share"] for v in ex["modalities"].values())
        assert total == pytest.approx(it["score"], abs=1e-4)
        for v in ex["modalities"].values():
            assert (v["raw"] is None) == (v["calibrated"] is None)
    # the cached plain answer is still plain
    again = client.get("/v1/similar/0001?k=5&visitor=v1").json()
    assert all("explain" not in it for it in again["items"])
