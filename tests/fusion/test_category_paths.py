"""Category paths (``A > B > C``): the category modality scores the share of the levels two
products' paths share, over the deeper one's depth."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.fusion.category import CategoryMatch
from prodfusion.recommender import Recommender

PATHS = ["Apparel > Tops > Shirts", "Apparel > Tops > Shirts", "Apparel>Tops>Sweaters",
         "Apparel > Bottoms > Jeans", "Home > Kitchen > Pans", None, "Apparel > Tops",
         "Home", "Apparel > Tops > Shirts > Flannel"]


def _levels(v):
    return [] if v is None else [p.strip() for p in v.split(">")]


def _want(a, b):
    la, lb = _levels(a), _levels(b)
    if not la or not lb:
        return 0.0
    shared = 0
    for x, y in zip(la, lb, strict=False):
        if x != y:
            break
        shared += 1
    return shared / max(len(la), len(lb))


def _catalog(paths=PATHS):
    n = len(paths)
    return Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(n)],
                                 "title": [f"t{i}" for i in range(n)], "category": paths}))


def test_path_scores_stats_and_neighbours_against_a_brute_force_loop():
    c = CategoryMatch.from_catalog(_catalog())
    assert c.sep == ">" and len(c.levels) == 4
    n = len(PATHS)
    want = np.array([[_want(a, b) for b in PATHS] for a in PATHS], np.float32)
    np.testing.assert_allclose(c.scores(np.arange(n)), want, atol=1e-6)
    np.testing.assert_allclose(c.scores([2, 8], [0, 6, 7]), want[[2, 8]][:, [0, 6, 7]],
                               atol=1e-6)
    assert want[0, 2] == pytest.approx(2 / 3) and want[0, 8] == 0.75 and want[0, 4] == 0
    assert want[0, 1] == 1.0  # the same path, however spaced
    pres = [i for i in range(n) if PATHS[i] is not None]
    vals = [want[i, j] for i in pres for j in pres if i != j]
    mean, sd = c.stats()  # a seeded sample of ordered pairs
    assert mean == pytest.approx(np.mean(vals), abs=0.01)
    assert sd == pytest.approx(np.std(vals), abs=0.01)
    # neighbours: the same path first, then one level less in common, and so on
    for row in pres:
        got = c.neighbours(row).tolist()
        assert sorted(got) == [j for j in pres if j != row and want[row, j] > 0]
        shared = [round(want[row, j] * max(len(_levels(PATHS[row])), len(_levels(PATHS[j]))))
                  for j in got]
        assert shared == sorted(shared, reverse=True), (row, got)
    assert c.neighbours(0, 2).tolist() == c.neighbours(0).tolist()[:2]
    prior = np.arange(n, dtype=np.float64)  # the most "popular" first within each part
    assert c.neighbours(0, prior=prior).tolist() == [8, 1, 6, 2, 3]
    assert len(c.neighbours(5)) == 0  # no category
    sub = c.take(np.array([8, 2, 0]))
    np.testing.assert_allclose(sub.scores(np.arange(3)), want[[8, 2, 0]][:, [8, 2, 0]],
                               atol=1e-6)


def test_flat_values_and_old_folders_keep_the_flat_match(tmp_path):
    flat = CategoryMatch.from_catalog(_catalog(["a", "b", "a > x", "c"]))
    assert flat.levels is None and flat.sep is None  # under half the values are paths
    c = CategoryMatch.from_catalog(_catalog(), sep=None)
    assert c.levels is None and c.scores([0], [2]).tolist() == [[0.0]]
    rec = Recommender(text=None, image=None, clicks=None, category=True, category_paths=True,
                      fusion="intermediate")
    rec.build(_catalog(), Sessions.from_lists([["p0", "p2"], ["p3", "p4"]]))
    path = rec.save(tmp_path / "m")
    assert Recommender.load(path).category_.scores([0], [2]).tolist() == [
        [pytest.approx(2 / 3)]]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["files"]["category"]["sep"] == ">"
    del manifest["files"]["category"]["sep"]  # a folder written before category paths
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = Recommender.load(path)
    assert old.category_.levels is None and old.category_.scores([0], [2]).tolist() == [[0.0]]


def test_a_model_lists_the_sibling_category_before_another_branch():
    """Category alone: the same path first, then the sibling leaves under one parent, then
    the same first level; another branch never; the record says it reads paths. Not
    asked for (the default), each path is one label."""
    sessions = Sessions.from_lists([["p0", "p2"], ["p3", "p4"]])
    rec = Recommender(text=None, image=None, clicks=None, category=True, category_paths=True,
                      fusion="intermediate")
    rec.build(_catalog(), sessions)
    ids, scores = rec.similar("p0", k=8)
    assert list(ids[:5]) == ["p1", "p8", "p2", "p6", "p3"]
    np.testing.assert_allclose(scores[:5], [1, 0.75, 2 / 3, 2 / 3, 1 / 3], atol=1e-6)
    assert "paths of up to 4 levels ('>')" in rec.describe()
    flat = Recommender(text=None, image=None, clicks=None, category=True,
                       fusion="intermediate").build(_catalog(), sessions)
    assert flat.category_.levels is None and "paths of" not in flat.describe()
    ids, scores = flat.similar("p0", k=8)
    assert ids[0] == "p1" and scores[0] == 1 and (scores[1:] == 0).all()


def test_auto_builds_the_modality_where_sessions_stay_within_a_parent(capsys):
    """Visitors move between the leaves under one parent (Tops: Shirts, Sweaters): they stay
    in one whole path a third of the time, below the bar, but always in its first two
    levels — the modality is built and the line says at which level."""
    from types import SimpleNamespace

    from prodfusion.pipeline import auto_category

    rng = np.random.default_rng(0)
    leaves = [f"{a} > {b} > {c}" for a, bs in {"Apparel": {"Tops": "SHT", "Bottoms": "JKL"},
                                                "Home": {"Kitchen": "PQR", "Bath": "XYZ"}
                                                }.items() for b, cs in bs.items() for c in cs]
    paths = [leaves[int(x)] for x in rng.integers(len(leaves), size=240)]
    cat = _catalog(paths)
    parent = {}
    for i, p in enumerate(paths):
        parent.setdefault(p.rsplit(">", 1)[0], []).append(f"p{i}")
    keys = sorted(parent)
    lists = [list(rng.choice(parent[keys[int(rng.integers(len(keys)))]], 3, replace=False))
             for _ in range(300)]
    # auto: built where the steps stay within a level of the paths (asked to read them so);
    # on: built anyway. Either way, said where the option and the values disagree
    for mode, paths_too, asked in (("auto", True, True), ("auto", False, True),
                                   ("auto", True, False), ("on", True, False),
                                   ("on", False, True), ("on", True, True)):
        c = cat if paths_too else _catalog([p.replace(" > ", " / ") for p in paths])
        opts = SimpleNamespace(modalities=None, category_modality=mode, popularity="auto",
                               category_col="type", category_paths=asked)
        auto_category(opts, c, Sessions.from_lists(lists))
        said = " ".join(capsys.readouterr().err.split())
        if mode == "auto":
            assert opts.category_modality is (paths_too and asked), said
            assert ("stay in one within their paths' first 2 levels ('>'; " in said) \
                is (paths_too and asked)
        assert ("the values look like paths ('>'), each read as one label; --category-paths"
                in said) is (paths_too and not asked)
        assert ("--category-paths, but most values hold no '>': each is read as one label"
                in said) is (asked and not paths_too)
