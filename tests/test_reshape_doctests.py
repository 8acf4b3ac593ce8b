"""The examples in the docstrings of the modules made by the reshaping run as shown."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["prodfusion._checks", "prodfusion.variants", "prodfusion.index.topk",
           "prodfusion.data.catalog", "prodfusion.evaluation.metrics", "prodfusion.data.interactions",
           "prodfusion.data.sessions", "prodfusion.evaluation.documents",
           "prodfusion.service.events", "prodfusion.encoders.corpus", "prodfusion.encoders.clicks",
           "prodfusion.data.synthetic", "prodfusion.evaluation.clustering",
           "prodfusion.evaluation.clustering_inputs", "prodfusion.encoders.cache",
           "prodfusion.fusion.weights", "prodfusion.fusion.weighting", "prodfusion.cli.tune",
           "prodfusion.cli.build", "prodfusion.fusion.learned", "prodfusion._outputs",
           "prodfusion.cli.similar", "prodfusion.pipeline", "prodfusion.data.io",
           "prodfusion.data.tables", "prodfusion.batch.lists", "prodfusion.recommender",
           "prodfusion.data.photos", "prodfusion.data.feeds", "prodfusion.data.stats"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("value", [True, False, 1.0, "3", None])
def test_check_int_refuses_non_ints(value):
    from prodfusion._checks import check_int
    from prodfusion.errors import ParameterError

    with pytest.raises(ParameterError, match="The 'n' parameter of f\\(\\) must be an int >= 1"):
        check_int(value, "n", "f()", low=1)


def test_checks_agree_on_numpy_scalars_and_refuse_nan():
    import math

    import numpy as np

    from prodfusion._checks import check_choice, check_int, check_k, check_real
    from prodfusion.errors import ParameterError

    assert check_int(np.int32(4), "n", "f()", low=1) == 4
    assert type(check_int(np.int64(4), "n", "f()")) is int
    assert check_k(np.int64(1000), "f()") == 1000
    with pytest.raises(ParameterError, match=r"an int in \[1, 1000\]. Got 1001"):
        check_k(1001, "f()")
    assert check_real(np.float32(0.5), "a", "f()", low=0, high=1) == 0.5
    for bad in (math.nan, math.inf, np.bool_(True), True):
        with pytest.raises(ParameterError, match="'a' parameter of f()"):
            check_real(bad, "a", "f()")
    with pytest.raises(ParameterError, match=r"must be a number in \(0, 1\)"):
        check_real(1.0, "a", "f()", low=0, high=1, low_open=True, high_open=True)
    with pytest.raises(ParameterError, match=r"one of \['early', 'intermediate', 'late'\]"):
        check_choice("mid", "fusion", "f()", ("early", "intermediate", "late"))
    assert check_int(None, "n", "f()", low=1, none=True) is None
