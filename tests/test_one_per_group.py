"""``one_per_group``: lists hold at most one product of each variation group (an EAN keying
one product's offers from several shops), none of the query's own — in ``similar``, the
batch forms, the CLI, ``export`` (and ``--update``), the service — and group codes that a
spreadsheet stripped of their leading zeros still name one group."""

from __future__ import annotations

import json
import logging

import numpy as np
import polars as pl
import pytest

from prodfusion.batch.export import export_lists, read_lists, update_lists
from prodfusion.batch.lists import read_lists_meta, stale_reasons
from prodfusion.cli.main import main
from prodfusion.data.catalog import Catalog
from prodfusion.data.io import read_catalog
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.index.topk import Filters, topk_exact, topk_one_per_code
from prodfusion.recommender import Recommender

N, OFFERS = 72, 3  # 24 products, each offered three times; the last 12 rows without a group


def _offers(rng, *, groups: bool = True, clicks_missing=()) -> tuple[Catalog, dict]:
    """Offers of 24 products in 3 categories: an offer's vectors are its product's plus a
    little noise, so a query's nearest rows are its own product's other offers, then its
    category's. Rows 60–71 have no group (a shop without EANs)."""
    prod = np.arange(N) // OFFERS
    cats = prod % 3
    frame = pl.DataFrame({
        "product_id": [f"o{i:03d}" for i in range(N)],
        "title": [f"offer {i}" for i in range(N)],
        "category": [f"c{c}" for c in cats],
        **({"group": [f"{p:013d}" if i < 60 else None for i, p in enumerate(prod)]}
           if groups else {}),
    })
    embs = {}
    for m, d in {"text": 12, "image": 16, "clicks": 8}.items():
        centers = rng.normal(size=(3, d)) * 3
        products = centers[prod % 3][::OFFERS] + rng.normal(size=(N // OFFERS, d))
        v = products[prod] + 0.05 * rng.normal(size=(N, d))
        mask = np.ones(N, bool)
        if m == "clicks":
            mask[list(clicks_missing)] = False
        embs[m] = Embeddings(v.astype(np.float32), mask, m)
    return Catalog(frame, source="<offers>"), embs


def _brute(rec, pid: str, k: int, **options) -> list[str]:
    """The model's whole ranking for ``pid``, the query's group left out, each other group's
    first product kept, cut to ``k``: what one_per_group must list."""
    ids, _ = rec.similar(pid, k=N - 1, one_per_group=False, **options)
    codes = rec.catalog.codes("group")
    own = codes[rec.catalog.row_of(pid)]
    seen, out = set(), []
    for i in ids:
        c = codes[rec.catalog.row_of(i)]
        if c >= 0 and (c == own or c in seen):
            continue
        seen.add(c)
        out.append(str(i))
    return out[:k]


@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
def test_one_per_group_lists_each_group_once_as_the_whole_ranking_collapsed(rng, fusion):
    catalog, embs = _offers(rng)
    rec = Recommender.from_embeddings(catalog, embs, fusion=fusion)
    codes = catalog.codes("group")
    for pid in ("o000", "o031", "o065"):  # grouped queries, and one without a group
        for mods in (None, ["text"], ["image", "clicks"]):
            got, scores = rec.similar(pid, k=10, one_per_group=True, modalities=mods)
            assert list(got) == _brute(rec, pid, 10, modalities=mods)
            assert np.all(np.diff(scores) <= 0)
            c = codes[catalog.rows_of(list(got))]
            assert len(set(c[c >= 0])) == (c >= 0).sum()  # no group twice
            assert codes[catalog.row_of(pid)] not in c[c >= 0] or codes[catalog.row_of(pid)] < 0
    # without it the query's own offers come first (the catalog is made so)
    plain, _ = rec.similar("o000", k=2)
    assert set(plain) == {"o001", "o002"}
    # the batch forms take it too
    ids, _ = rec.similar_batch(["o000", "o031"], k=10, one_per_group=True)
    assert [list(r) for r in ids] == [_brute(rec, "o000", 10), _brute(rec, "o031", 10)]


def test_topk_one_per_code_fetches_further_when_the_first_lists_repeat_groups():
    # 200 rows in 20 codes, each code's rows scored together: a top 4k of 12 holds 2 codes
    n = 200
    codes = np.arange(n) // 10
    scores = np.linspace(1, 0, n, dtype=np.float32)
    flt = Filters()
    asked = []

    def search(q, m):
        asked.append(m)
        return topk_exact(lambda rows: np.tile(scores, (len(rows), 1)), q, n, m, filters=flt)

    rows, s = topk_one_per_code(search, np.array([5]), 3, codes, n)
    assert rows[0].tolist() == [0, 10, 20]  # 0..9 share code 0: the first one only
    assert asked == [12, 48]  # fetched four times longer while short
    rows, _ = topk_one_per_code(search, np.array([5]), 25, codes, n)
    assert (rows[0] >= 0).sum() == 20 and rows[0][20:].tolist() == [-1] * 5  # only 20 codes


def test_the_model_setting_is_saved_overridden_per_query_and_old_folders_read_it_off(rng,
                                                                                     tmp_path):
    catalog, embs = _offers(rng)
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate", one_per_group=True)
    once = list(rec.similar("o000", k=10)[0])
    assert once == _brute(rec, "o000", 10)
    assert set(rec.similar("o000", k=2, one_per_group=False)[0]) == {"o001", "o002"}
    folder = rec.save(tmp_path / "m")
    back = Recommender.load(folder)
    assert back.one_per_group is True and list(back.similar("o000", k=10)[0]) == once
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["settings"]["one_per_group"] is True
    del manifest["settings"]["one_per_group"]  # a folder written before the setting
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert Recommender.load(folder).one_per_group is False


def test_one_per_group_without_a_group_column_is_refused_naming_the_option(rng):
    catalog, embs = _offers(rng, groups=False)
    with pytest.raises(ParameterError, match=r"one_per_group=True .*--group-col"):
        Recommender.from_embeddings(catalog, embs, one_per_group=True)
    rec = Recommender.from_embeddings(catalog, embs)
    with pytest.raises(ParameterError, match=r"similar\(\): one_per_group=True .*--group-col"):
        rec.similar("o000", one_per_group=True)
    with pytest.raises(ParameterError, match="--group-col"):
        Recommender(text=None, image=None, clicks=None, one_per_group=True).build(catalog)


def test_the_backfill_adds_no_second_offer_of_a_listed_product(rng):
    # queries without click vectors on a clicks-only model: the backfill fills their lists
    catalog, embs = _offers(rng, clicks_missing=range(0, 6))
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate",
                                      modalities=["clicks"], one_per_group=True)
    rec.backfill = "popular"
    rec.click_counts_ = np.arange(N, 0, -1)  # row 0 the most clicked, then 1, 2, …
    ids, scores = rec.similar("o000", k=8)
    assert np.isnan(scores).all()  # all backfilled
    codes = catalog.codes("group")
    # popular order 0, 1, 2, …: the query's own product (rows 0-2) left out, then one row
    # of each product
    assert list(ids) == ["o003", "o006", "o009", "o012", "o015", "o018", "o021", "o024"]
    c = codes[catalog.rows_of(list(ids))]
    assert len(set(c)) == len(c)


def test_similar_and_export_commands_take_one_per_group(rng, tmp_path, capsys):
    catalog, embs = _offers(rng)
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate")
    folder = rec.save(tmp_path / "m")
    assert main(["similar", str(folder), "o000", "-k", "5", "--json", "--one-per-group"]) == 0
    got = [r["product_id"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert got == _brute(rec, "o000", 5)
    assert main(["similar", str(folder), "o000", "-k", "5", "--json", "--exclude-group"]) == 0
    got = [r["product_id"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert not {"o001", "o002"} & set(got) and len(got) == 5
    out = tmp_path / "lists.parquet"
    assert main(["export", str(folder), "--out", str(out), "-k", "6", "--quiet",
                 "--one-per-group"]) == 0
    assert "(k=6, intermediate over text+image+clicks, one product per group)" in \
        capsys.readouterr().err
    meta, table = read_lists_meta(out), read_lists(out)
    assert meta["one_per_group"] is True
    first = dict(zip(table.column("product_id").to_pylist(), table.column("ids").to_pylist(),
                     strict=True))
    assert first["o000"] == _brute(rec, "o000", 6) and first["o031"] == _brute(rec, "o031", 6)
    # --update keeps the file's setting; asking for the other one is refused
    assert main(["export", str(folder), "--out", str(out), "--update", str(out),
                 "--one-per-group", "off"]) != 0
    assert "--one-per-group 'off' (the file: 'on') cannot apply" in capsys.readouterr().err
    rep = update_lists(folder, out, tmp_path / "again.parquet", progress=False)
    assert rep["meta"]["one_per_group"] is True
    # a file exported so from a model listing every offer by default is not stale: the
    # service answers from it the requests asking for one per group
    assert not stale_reasons(meta, {"settings": {"one_per_group": False}})
    plain = tmp_path / "plain.parquet"
    export_lists(folder, plain, k=6, progress=False)
    assert read_lists_meta(plain)["one_per_group"] is False


def test_service_answers_one_per_group_live_and_from_lists_exported_so(rng, tmp_path,
                                                                      capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from prodfusion.service.app import create_app
    from prodfusion.service.settings import ServiceSettings

    catalog, embs = _offers(rng)
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate", one_per_group=True)
    folder = rec.save(tmp_path / "m")
    lists = tmp_path / "lists.parquet"
    export_lists(folder, lists, k=10, progress=False)

    def ids(client, **params):
        r = client.get("/v1/similar/o000", params={"visitor": "v1", "k": 10, **params})
        assert r.status_code == 200, r.text
        return [it["product_id"] for it in r.json()["items"]]

    assert main(["similar", str(folder), "o000", "-k", "3"]) == 0  # the model's setting
    out, err = capsys.readouterr()
    assert "o001" not in out and "--one-per-group off lists every one" in err
    settings = ServiceSettings.for_model(folder, events=str(tmp_path / "ev.sqlite3"),
                                         reload_interval_s=0, lists=lists)
    with TestClient(create_app(settings)) as c:
        assert ids(c) == _brute(rec, "o000", 10)  # the model's setting, from the lists
        assert ids(c, one_per_group="false")[:2] in (["o001", "o002"], ["o002", "o001"])
        assert ids(c, one_per_group="true") == _brute(rec, "o000", 10)
        text = c.get("/metrics").text
        assert 'prodfusion_similar_answers_total{path="lists"} 2.0' in text
    plain = Recommender.from_embeddings(catalog, embs, fusion="intermediate").save(
        tmp_path / "plain")
    settings = ServiceSettings.for_model(plain, events=str(tmp_path / "ev2.sqlite3"),
                                         reload_interval_s=0)
    with TestClient(create_app(settings)) as c:
        assert ids(c, one_per_group="true") == _brute(rec, "o000", 10)
    grp_less, e2 = _offers(rng, groups=False)
    bare = Recommender.from_embeddings(grp_less, e2).save(tmp_path / "bare")
    settings = ServiceSettings.for_model(bare, events=str(tmp_path / "ev3.sqlite3"),
                                         reload_interval_s=0)
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/similar/o000", params={"visitor": "v1", "one_per_group": "true"})
        assert r.status_code == 422 and "--group-col" in r.json()["detail"]


def test_group_codes_written_without_their_leading_zeros_are_one_group(tmp_path, caplog):
    path = tmp_path / "offers.csv"
    path.write_text("id,title,ean\n"
                    "a,Phone,0885909950805\n"
                    "b,Phone case,885909950805\n"  # the same EAN through a spreadsheet
                    "c,Charger,4006381333931\n"
                    "d,Cable,\n")
    with caplog.at_level(logging.WARNING, logger="prodfusion.data"):
        cat = read_catalog(path, id_col="id", title_col="title", group_col="ean")
    codes = cat.codes("group")
    assert codes[0] == codes[1] != codes[2] and codes[3] == -1
    assert cat.groups[:2] == ["0885909950805", "885909950805"]  # the file's values kept
    text = caplog.text
    assert "1 of 4 products have no group (column 'ean')" in text
    assert "1 group(s) of column 'ean' are written both with and without leading zeros " \
           "(e.g. '0885909950805' and '885909950805')" in text


def test_a_catalog_read_without_a_group_column_names_an_ean_column_whose_values_repeat(
        tmp_path, caplog):
    path = tmp_path / "offers.csv"
    path.write_text("offer_id,title,shop,EAN\n"
                    "o1,Sony WH-1000XM5 Black,alpha,4548736132610\n"
                    "o2,SONY WH-1000XM5 (Black) - Headphones,beta,4548736132610\n"
                    "o3,Bose QC45,alpha,0017817832557\n"
                    "o4,Bose QC45 schwarz,gamma,\n")
    with caplog.at_level(logging.WARNING, logger="prodfusion.data"):
        read_catalog(path, id_col="offer_id", title_col="title")
    assert ("column 'EAN' holds the same value on several products (2 products share one "
            "with another; '4548736132610' on 2)") in caplog.text
    assert "--group-col EAN --one-per-group" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prodfusion.data"):  # every value once
        read_catalog(path, id_col="offer_id", title_col="title", group_col="EAN")
        unique = tmp_path / "unique.csv"
        unique.write_text("id,title,ean\na,x,1\nb,y,2\n")
        read_catalog(unique, id_col="id", title_col="title")
    assert "holds the same value" not in caplog.text


def test_evaluate_retrieval_and_replay_score_one_product_per_group_as_served(
        tmp_path, angled_titles):
    """p0's nearest by text: p4 (its own group A), p1 and p2 (group B), p3, p5 (no group).
    Held out: p0 → p2 (p1, listed for group B, is the same product: a hit at k=1) and
    p0 → p4 (inside the query's own group: left out)."""
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    rec, sessions = angled_titles(group=["A", "B", "B", "C", "A", None])
    kw = dict(sessions=sessions, test_fraction=0.4, k=1, variants=["intermediate:text"],
              n_boot=20, progress=False)
    plain = evaluate_retrieval(rec, **kw)
    row = next(r for r in plain["rows"] if r["slice"] == "all")
    assert row["n"] == 2 and row["hit_rate"]["value"] == 0.5  # p4 listed: p0 → p4 a hit
    once = evaluate_retrieval(rec, one_per_group=True, **kw)
    row = next(r for r in once["rows"] if r["slice"] == "all")
    assert once["heldout"]["sessions"]["same_group_left_out"] == 1
    assert once["config"]["one_per_group"] is True and row["ties"] == "as served"
    assert row["n"] == 1 and row["hit_rate"]["value"] == 1.0  # p1 listed, p2 the target
    from prodfusion.evaluation.report import write_report

    write_report(once, tmp_path / "r")
    text = (tmp_path / "r" / "report.md").read_text()
    assert "One product per group (`--one-per-group`)" in text
    assert "1 held-out case(s) whose target is in the query's own group" in text
    from prodfusion.evaluation.replay import replay

    rkw = dict(model=rec, sessions=sessions, test_fraction=0.4, k=1, progress=False)
    plain = replay("intermediate:text", "intermediate:text", **rkw)["sources"]["sessions"]
    assert plain["n_views"] == 2 and plain["total"]["ctr_a"] == 0.5
    rec.one_per_group = True  # the model's setting is the default
    assert evaluate_retrieval(rec, **kw)["config"]["one_per_group"] is True
    res = replay("intermediate:text", "intermediate:text", **rkw)
    once = res["sources"]["sessions"]
    assert once["n_views"] == 1 and once["n_views_same_group_left_out"] == 1
    assert once["total"]["ctr_a"] == once["total"]["ctr_b"] == 1.0  # p1 shown, p2 next
    assert res["config"]["one_per_group"] == {"a": True, "b": True}
    write_report(res, tmp_path / "replay")
    assert "1 view(s) whose b is in a's own group are left out" in \
        (tmp_path / "replay" / "report.md").read_text()
    with pytest.raises(ParameterError, match="one_per_group=True needs .*group"):
        bare = Recommender.from_embeddings(Catalog(rec.catalog.frame.drop("group")), rec.embeddings_)
        evaluate_retrieval(bare, one_per_group=True, **kw)


def test_an_offer_added_later_joins_its_products_group(rng, tmp_path):
    catalog, embs = _offers(rng)
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate", one_per_group=True)
    # a fourth shop's offer of product 0 (EAN written without its zeros), a twin of o000
    frame = catalog.frame[:1].with_columns(pl.lit("new-1").alias("product_id"),
                                            pl.lit("0").alias("group"))
    rec.add_products(Catalog(frame, source="feed"), {
        m: Embeddings(np.asarray(e.vectors[:1]) + 0.01, np.ones(1, bool), e.spec)
        for m, e in embs.items()})
    back = Recommender.load(rec.save(tmp_path / "m"))
    for model in (rec, back):
        assert model.one_per_group
        got = list(model.similar("o031", k=N - 4)[0])
        assert len({"o000", "o001", "o002", "new-1"} & set(got)) == 1
        assert "new-1" not in model.similar("o000", k=N - 4)[0]


def test_a_one_per_group_tuning_never_ranks_the_querys_own_group():
    """The tuning's scorer and its cooc-alone ranking, given the group codes of a model that
    lists one product per group, rank each validation target among every product but the
    query's group — checked against a brute-force tie-aware rank over the whole catalog."""
    import types

    from prodfusion.data.sessions import Sessions
    from prodfusion.evaluation.metrics import tie_aware_metric
    from prodfusion.evaluation.tuning_scorer import _cooc_alone, _Scorer
    from prodfusion.fusion.cooc import Cooc
    from prodfusion.fusion.weights import Weighting

    rng = np.random.default_rng(3)
    n = 600
    ids = [f"p{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    codes = np.where(np.arange(n) % 5 == 4, -1, np.arange(n) // 3)  # offers in threes
    lists = [[ids[g * 6 + j] for j in rng.choice(6, size=rng.integers(2, 5), replace=False)]
             for g in rng.integers(n // 6 - 10, size=900)]
    cooc = Cooc.from_sessions(Sessions.from_lists(lists), cat)
    ev = types.SimpleNamespace(modality_data=lambda: {"cooc": cooc}, catalog=cat)
    q = rng.choice(np.flatnonzero(cooc.mask & (codes >= 0)), size=120, replace=False)
    t = np.array([cooc.neighbours(int(x))[-1] if i % 2 else int((x + 6 * 37) % n)
                  for i, x in enumerate(q)])
    ok = (t != q) & ~((codes[q] >= 0) & (codes[q] == codes[t]))  # as the tuning leaves them
    q, t = q[ok], t[ok]
    dense = cooc.sim.toarray()

    def brute(metric):
        out = np.zeros(len(q))
        for i, (a, b) in enumerate(zip(q, t, strict=True)):
            if not (cooc.mask[a] and cooc.mask[b]):
                continue
            allowed = cooc.mask & (np.arange(n) != a) & (np.arange(n) != b)
            if codes[a] >= 0:
                allowed &= codes != codes[a]
            s = dense[a].astype(np.float32)
            out[i] = tie_aware_metric(np.array([(s[allowed] > s[b]).sum()]),
                                      np.array([(s[allowed] == s[b]).sum()]), 15, metric)[0]
        return out

    alone = Weighting.make({"cooc": 1.0}, "none", None, None)
    for metric in ("ndcg", "hitrate"):
        want = brute(metric)
        sc = _Scorer(ev, ("cooc",), q, t, np.full(len(q), "sessions"), None, metric, 15,
                     n_cand=n, n_outside=n, group_codes=codes)
        np.testing.assert_allclose(sc.values(alone), want, atol=1e-12)
        np.testing.assert_allclose(_cooc_alone(cooc, q, t, metric, 15, codes), want,
                                   atol=1e-12)
        assert not np.allclose(_cooc_alone(cooc, q, t, metric, 15), want)  # the group counts
        assert not any(codes[c] == codes[qq] for qq, row in zip(sc.uq, sc.cand, strict=True)
                       for c in row[row >= 0] if codes[qq] >= 0)


def test_a_one_per_group_model_is_tuned_on_what_its_lists_can_show():
    """Offers in threes; titles tell a product's offers apart from every other product's
    (and nothing more), photos tell which four products are related. Visitors go to another
    offer of the same product half the time, else to a related product's. Scored per offer
    the titles win (the same product's offers first); a model listing one product per group
    never shows those, and its tuning — the same-product cases left out, the query's group
    never ranked — weighs the photos alone."""
    from prodfusion.data.sessions import Sessions
    from prodfusion.encoders.clicks import Prod2VecParams
    from prodfusion.evaluation.tuning import tune_weights

    rng = np.random.default_rng(0)
    prod = np.repeat(np.arange(48), 3)
    n = len(prod)
    ids = [f"o{i:03d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids,
                                "group": [f"g{p}" for p in prod]}))
    text = rng.normal(size=(48, 16))[prod] + 0.05 * rng.normal(size=(n, 16))
    image = (rng.normal(size=(12, 16)) * 3)[prod // 4] + rng.normal(size=(n, 16))
    embs = {"text": Embeddings(text.astype(np.float32), np.ones(n, bool), "t"),
            "image": Embeddings(image.astype(np.float32), np.ones(n, bool), "i")}
    lists = []
    for _ in range(400):
        s = [int(rng.integers(n))]
        for _ in range(3):
            p = prod[s[-1]]
            same = rng.random() < 0.5
            cand = [x for x in np.flatnonzero(prod // 4 == p // 4)
                    if (prod[x] == p) == same and x not in s]
            if not cand:
                break
            s.append(int(rng.choice(cand)))
        lists.append([ids[i] for i in s])
    sessions = Sessions(pl.DataFrame({
        "session": [f"s{i:03d}" for i, s in enumerate(lists) for _ in s],
        "position": [j for s in lists for j in range(len(s))],
        "product_id": [p for s in lists for p in s],
        "ts": [float(t) for t, s in enumerate(lists) for _ in s]}))
    got = {}
    for once in (False, True):
        rec = Recommender.from_embeddings(cat, embs, fusion="intermediate", one_per_group=once)
        rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
        got[once] = tune_weights(rec, sessions=sessions, objective="ndcg@5", step=0.25,
                                 n0_grid=(None,), calibrations=("none",))
    plain, once = got[False], got[True]
    assert plain["reference_scores"]["text alone"] > plain["reference_scores"]["image alone"]
    assert plain["weights"]["text"] > 0
    assert once["reference_scores"]["text alone"] < 0.5 * once["reference_scores"]["image alone"]
    assert once["weights"] == {"text": 0.0, "image": 1.0}
