"""`prodfusion demo` end to end on a small shop: the learned weights are printed and the
category shares compare each modality alone with the tuned fusion on the same queries."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_demo_prints_weights_and_like_for_like_category_shares(tmp_path, capsys):
    from prodfusion.demo import run_demo
    from prodfusion.recommender import Recommender

    assert run_demo(tmp_path, n_products=240) == 0
    out = capsys.readouterr().out
    assert re.search(r"similar products: text, image, clicks tuned on held-out next clicks .*: "
                     r"weights text=[0-9.]+, image=[0-9.]+, clicks=[0-9.]+, calibration \w+", out)
    # what visitors click next: a profile over every modality, with click confidence
    # its sessions stay in the planted categories: the category and popularity too, as
    # `prodfusion build` adds them (--category-modality auto)
    assert re.search(r"^  [89][0-9]% of the sessions' [0-9,]+ steps stay in one category "
                     r"\(against [0-9]+% by chance\): the category and popularity modalities "
                     r"too", out, flags=re.M), out
    assert re.search(r"what visitors click next: .* profile 'next_clicks' .*: weights "
                     r"text=[0-9.]+, image=[0-9.]+, clicks=[0-9.]+, lexical=[0-9.]+, "
                     r"cooc=[0-9.]+, category=[0-9.]+, popularity=[0-9.]+, calibration \w+, "
                     r"n0 [\w:.]+; validation", out), out
    rows = dict(re.findall(r"^  (\w+) alone +([0-9.]+ on [0-9,]+ queries   tuned fusion on "
                           r"them [0-9.]+)$", out, flags=re.M))
    assert set(rows) == {"text", "image", "clicks"}
    rec = Recommender.load(tmp_path / "model")
    cats = np.asarray(rec.catalog.categories)
    r, _ = rec.fuser("intermediate").topk(np.arange(len(cats)), 15)
    for m, line in rows.items():
        share, served, tuned = re.match(r"([0-9.]+) on ([0-9,]+) queries .* ([0-9.]+)$",
                                        line).groups()
        mask = rec.embeddings_[m].mask
        assert int(served.replace(",", "")) == int(mask.sum())  # served: the products with it
        sub = r[mask]
        valid = sub >= 0
        expect = (cats[np.where(valid, sub, 0)] == cats[mask][:, None])[valid].mean()
        assert float(tuned) == pytest.approx(expect, abs=6e-5)
        assert 0 < float(share) <= 1
    assert re.search(r"^  tuned intermediate +[0-9.]+ on 240 queries$", out, flags=re.M)
    # the profile's category share: its own lists, every product a query
    assert set(rec.profiles) == {"next_clicks"}
    share = float(re.search(r"^  profile next_clicks +([0-9.]+) on 240 queries$", out,
                            flags=re.M).group(1))
    pr, _ = rec.searcher("intermediate", rec.available_modalities,
                         rec.profile_weighting("next_clicks")).topk(np.arange(len(cats)), 15)
    ok = pr >= 0
    assert share == pytest.approx((cats[np.where(ok, pr, 0)] == cats[:, None])[ok].mean(),
                                  abs=6e-5)
    # the held-out next clicks: the tuned fusion beside each modality and the references
    scores = {name.removesuffix(" (reference)"): (float(h), float(n)) for name, h, n in re.findall(
        r"^  ((?:tuned fusion|profile next_clicks|\w+ alone|[\w+]+ \(reference\))) +([0-9.]+) / "
        r"([0-9.]+)$", out, flags=re.M)}
    refs = ("popular", "tfidf", "cooc", "cooc+category", "popular+category")
    assert set(scores) == {"tuned fusion", "profile next_clicks", "text alone", "image alone",
                           "clicks alone", *refs}
    assert all(0 <= n <= h <= 1 for h, n in scores.values())
    for name in ("tuned fusion", "profile next_clicks"):
        best = re.search(rf"^  {name} minus ([\w+]+) \(the best reference\): nDCG@15 [-+][0-9.]+ "
                         r"\[[-+][0-9.]+, [-+][0-9.]+\], (above|below|equal|inside the noise)$",
                         out, flags=re.M)
        assert best, out
        assert scores[best.group(1)][1] == max(scores[r][1] for r in refs)
    # the shop's own odds: what no list can expect to beat, above the simple lists here
    odds = re.search(r"^  the shop's own odds +([0-9.]+) / ([0-9.]+)  \(the probability the "
                     r"generator gave each product of being clicked next", out, flags=re.M)
    assert odds, out
    assert float(odds.group(2)) > max(scores[r][1] for r in refs)
    assert int(rec.embeddings_["image"].mask.sum()) < 240  # a like-for-like case to check
    # the way to both lists on one page, with the model's profile: what `serve` checks
    serve = re.search(r"^  or both on one web page: prodfusion serve (\S+) --page-profile "
                      r"(\S+)$", out, flags=re.M)
    assert serve and serve.group(1) == str(tmp_path / "model"), out
    assert serve.group(2) in rec.profiles
    # the folder records its data, read as the demo read it: `prodfusion evaluate|tune MODEL`
    # need no options, and find the weights tuned on the very sessions they read
    from prodfusion.cli.evaluate_steps import _check_tuning_split, load_interactions
    from prodfusion.cli.main import build_parser
    from prodfusion.cli.options import fill_interactions_from_record

    data = rec.manifest_["data"]["interactions"]
    assert data["path"] == str((tmp_path / "data" / "sessions.csv").resolve())
    args = build_parser().parse_args(["tune", str(tmp_path / "model")])
    fill_interactions_from_record(args, rec)
    sessions, pairs = load_interactions(args, rec.catalog)
    assert sessions.fingerprint() == rec.manifest_["tuning"]["fingerprints"]["sessions"]
    capsys.readouterr()
    _check_tuning_split(args, rec, sessions, pairs)
    assert "another split" not in capsys.readouterr().err
