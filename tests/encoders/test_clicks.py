"""Prod2Vec on planted sessions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from prodfusion.encoders import Encoder, Prod2Vec
from prodfusion.errors import DataError, NotBuiltError, ParameterError
from tests.encoders.conftest import make_catalog

GROUP_A = [f"0{i}" for i in range(8)]  # leading zeros on purpose
GROUP_B = [f"b{i}" for i in range(8)]


class Reiterable:
    """Like prodfusion.data.Sessions: iterating starts over every time."""

    def __init__(self, sessions):
        self.sessions = sessions
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        return iter(self.sessions)


def planted_sessions(seed: int, n: int = 150) -> list[list[str]]:
    """Two disjoint groups; products are co-clicked only within their group."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        group = GROUP_A if k % 2 == 0 else GROUP_B
        out.append([str(p) for p in rng.choice(group, size=5, replace=False)])
    out.append(["lonely"])  # a one-product session: no co-click signal
    out.append(["dup", "dup"])  # the same product twice: no co-click signal either
    return out


def small(**kw) -> Prod2Vec:
    params = dict(vector_size=16, window=3, epochs=10, workers=1, seed=3, progress=False)
    params.update(kw)
    return Prod2Vec(**params)


def test_defaults_follow_the_brief():
    p = Prod2Vec()
    assert (p.vector_size, p.window, p.negative, p.min_count, p.epochs, p.sg, p.seed, p.workers) == (
        512, 5, 5, 1, 20, 1, 0, None,
    )
    # one home for the defaults: the Recommender's settings and the CLI read the same ones
    from prodfusion.cli import build_parser
    from prodfusion.recommender import Prod2VecParams

    assert Prod2VecParams().epochs == p.epochs
    args = build_parser().parse_args(["build", "--catalog", "c.csv", "--out", "m"])
    assert args.p2v_epochs == p.epochs
    assert p.sample == 0.0  # no down-sampling: see the Prod2Vec docstring
    assert isinstance(p, Encoder) and p.modality == "clicks"


def test_planted_groups_are_nearest_neighbours_of_each_other():
    sessions = Reiterable(planted_sessions(0))
    p2v = small().fit(sessions)
    assert sessions.passes >= 2  # vocabulary + training epochs: hence re-iterable
    for group in (GROUP_A, GROUP_B):
        for pid in group:
            neighbours = [k for k, _ in p2v.wv_.most_similar(pid, topn=len(group) - 1)]
            assert set(neighbours) == set(group) - {pid}, pid


def test_encode_aligns_to_catalog_and_marks_unclicked_absent():
    p2v = small().fit(planted_sessions(0))
    catalog = make_catalog(["t"] * 5, ids=["b3", "never", "00", "lonely", "dup"])
    emb = p2v.encode(catalog)
    assert emb.vectors.shape == (5, 16) and emb.vectors.dtype == np.float32
    assert emb.mask.tolist() == [True, False, True, False, False]
    np.testing.assert_array_equal(emb.vectors[0], p2v.wv_["b3"])
    np.testing.assert_array_equal(emb.vectors[2], p2v.wv_["00"])
    assert not emb.vectors[1].any()
    assert emb.info["n_in_catalog"] == 2 and emb.info["n_unknown_clicked"] == 14
    assert emb.info["n_sessions"] == 150


def test_single_worker_fits_are_identical():
    a = small().fit(planted_sessions(1)).wv_
    b = small().fit(planted_sessions(1)).wv_
    assert a.index_to_key == b.index_to_key
    np.testing.assert_array_equal(a.vectors, b.vectors)
    c = small(seed=4).fit(planted_sessions(1)).wv_
    assert not np.allclose(a.vectors, c.vectors)


def test_generator_and_iterator_are_refused():
    msg = (
        "The 'sessions' parameter of Prod2Vec.fit() must be re-iterable: Word2Vec reads the "
        "sessions once per epoch plus once for the vocabulary. Got a one-shot generator instead"
    )
    with pytest.raises(ParameterError, match=re.escape(msg)):
        small().fit(s for s in planted_sessions(0))
    with pytest.raises(ParameterError, match="Got a one-shot list_iterator instead"):
        small().fit(iter(planted_sessions(0)))


def test_sessions_must_be_lists_of_string_ids():
    with pytest.raises(DataError, match="session 0 is a str, not a list of product ids"):
        small().fit(["abc", "def"])
    with pytest.raises(DataError, match="session 1 holds product id 7 of type int; ids must be strings"):
        small().fit([[], [7, 8]])
    with pytest.raises(DataError, match="no session has two or more distinct products"):
        small().fit([["a"], ["b", "b"]])
    with pytest.raises(DataError, match="no product is clicked at least min_count=5 times"):
        small(min_count=5).fit([["a", "b"]])


@pytest.mark.parametrize(
    "kw,expected",
    [
        ({"vector_size": 0}, "The 'vector_size' parameter of Prod2Vec() must be an int >= 1. Got 0 instead."),
        ({"window": 1.5}, "The 'window' parameter of Prod2Vec() must be an int >= 1. Got 1.5 instead."),
        ({"sg": 2}, "The 'sg' parameter of Prod2Vec() must be 1 (skip-gram) or 0 (CBOW). Got 2 instead."),
        ({"workers": 0}, "The 'workers' parameter of Prod2Vec() must be an int >= 1. Got 0 instead."),
        ({"sample": 1.0}, "The 'sample' parameter of Prod2Vec() must be a float in [0, 1). Got 1.0 instead."),
    ],
)
def test_bad_hyperparameters_are_refused_at_fit(kw, expected):
    p = small(**kw)  # the constructor only stores
    with pytest.raises(ParameterError, match=re.escape(expected)):
        p.fit(planted_sessions(0))


def test_encode_before_fit_and_encode_with_sessions():
    catalog = make_catalog(["t", "t"], ids=["00", "b1"])
    with pytest.raises(NotBuiltError, match=re.escape("call fit(sessions) or encode(catalog, sessions)")):
        small().encode(catalog)
    emb = small().encode(catalog, planted_sessions(0))
    assert emb.mask.all() and emb.spec == "prod2vec"


@pytest.mark.slow
def test_single_worker_fit_does_not_depend_on_pythonhashseed(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    script = (
        "import hashlib\n"
        "from prodfusion.encoders import Prod2Vec\n"
        "from tests.encoders.test_clicks import planted_sessions\n"
        "wv = Prod2Vec(vector_size=8, epochs=2, workers=1, seed=3, progress=False)"
        ".fit(planted_sessions(0)).wv_\n"
        "print(hashlib.sha256(wv.vectors.tobytes()).hexdigest(), wv.index_to_key)\n"
    )
    outs = []
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(repo)}
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=repo, capture_output=True, text=True, check=True
        )
        outs.append(proc.stdout)
    assert outs[0] == outs[1] and outs[0].strip()
