"""The curated top-level API: every exported name resolves, lazily, with a docstring."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import prodfusion


@pytest.mark.parametrize("name", [n for n in prodfusion.__all__ if n != "__version__"])
def test_every_public_name_resolves_and_is_documented(name):
    obj = getattr(prodfusion, name)
    assert obj is not None
    if callable(obj):
        assert (obj.__doc__ or "").strip(), f"prodfusion.{name} has no docstring"
    assert name in dir(prodfusion)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Recomender'"):
        prodfusion.Recomender  # noqa: B018


def test_import_is_cheap():
    code = ("import sys, prodfusion; "
            "print(sorted(m for m in ('torch', 'polars', 'faiss', 'gensim') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_package_docstring_example_runs():
    """The example in ``prodfusion.__doc__`` runs as written and gives k ranked results."""
    block = re.search(r"::\n\n((?:    .*\n|\n)+)", prodfusion.__doc__).group(1)
    code = "\n".join(line[4:] for line in block.splitlines())
    ns: dict = {}
    exec(compile(code, "prodfusion.__doc__", "exec"), ns)  # noqa: S102
    ids, scores = ns["ids"], ns["scores"]
    assert len(ids) == 5 and len(scores) == 5
    assert list(scores) == sorted(scores, reverse=True)
    assert ns["catalog"].ids[0] not in list(ids)


def test_all_lists_exactly_the_lazy_exports():
    assert set(prodfusion.__all__) - {"__version__"} == set(prodfusion._EXPORTS)
