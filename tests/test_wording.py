"""Messages name what their reader typed: ``--tune off`` on the command line, ``tune="off"``
from Python (:mod:`prodfusion._wording`)."""

from __future__ import annotations

import pytest

from prodfusion import Recommender, make_synthetic
from prodfusion._wording import called_from, reworded, worded
from prodfusion.cli import main
from prodfusion.errors import DataError, ParameterError


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    paths = make_synthetic(tmp_path_factory.mktemp("shop"), n_products=120, n_sessions=300,
                           seed=0)
    catalog = paths.read_catalog()
    rec = Recommender(text=None, image=None).build(catalog, paths.read_sessions(catalog))
    rec.save(paths.catalog.parent / "model")
    return paths, rec


def test_recommender_tune_names_its_parameters_and_the_command_its_options(shop, capsys):
    paths, rec = shop
    sessions = paths.read_sessions(rec.catalog)
    with pytest.raises(ParameterError) as e:
        rec.tune()
    assert str(e.value) == (
        "tune() needs interactions to learn from: pass sessions= (cleaned sessions) and/or "
        "pairs= (co-interaction pairs as two-click sessions).")
    with pytest.raises(ParameterError, match=r"^tune\(\): validate_on='pairs' needs that "
                                             r"source; pass pairs\.$"):
        rec.tune(sessions, validate_on="pairs")
    # the command line's tune calls the same method, and keeps its options' names
    assert main(["tune", str(paths.catalog.parent / "model"), "--interactions",
                 str(paths.interactions), "--validate-on", "pairs"]) == 2
    assert ("error: tune(): validate_on='pairs' needs that source; pass --pairs."
            in capsys.readouterr().err)


def test_the_outermost_caller_decides_and_errors_leave_reworded():
    said = "drop --tune on, or `prodfusion tune MODEL_DIR --interactions ...`"
    assert worded(said) == said  # no caller: as written
    with called_from("python", ["tune"]):
        assert worded(said) == 'drop tune="on", or `rec.tune(sessions)`'
        with called_from("cli"):  # a command run from inside Python code: still Python's
            assert worded(said).startswith('drop tune="on"')
    with called_from("cli"), called_from("python", ["tune"]):
        assert worded(said) == said
    with pytest.raises(DataError) as e, called_from("python", ["tune"]), reworded():
        raise DataError(f"clicks.csv row 3: {said}")
    assert str(e.value) == 'clicks.csv row 3: drop tune="on", or `rec.tune(sessions)`'
    assert isinstance(e.value, ValueError)  # its type kept
    with pytest.raises(KeyError), called_from("python", ["tune"]), reworded():
        raise KeyError("--tune on")  # not the library's: untouched
