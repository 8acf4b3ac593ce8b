"""Parameter validation in one place: ints, reals, choices, ``k``; JSON-safe values.

Every public function that takes a count, a fraction or a name checks it here, so
the rules agree everywhere: a ``bool`` is never a number (``True`` is not ``1``
products), NumPy integers are ints, NumPy floats are reals, NaN and infinities are
never valid reals, and the error message follows the house template of
:func:`prodfusion.errors.param_error`.

>>> check_int(np.int64(3), "k", "similar()", low=1)
3
>>> check_k(0, "similar()")
Traceback (most recent call last):
...
prodfusion.errors.ParameterError: The 'k' parameter of similar() must be an int in [1, 1000]. Got 0 instead.
>>> check_choice("late", "fusion", "similar()", FUSION_METHODS)
'late'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from prodfusion.errors import param_error

__all__ = [
    "MAX_K",
    "FUSION_METHODS",
    "PROTOCOLS",
    "check_int",
    "check_real",
    "check_choice",
    "check_k",
    "is_int",
    "is_real",
    "to_jsonable",
    "OBJECT_SCHEMES",
    "is_object_uri",
]

#: URI schemes read through ``pyarrow.fs`` (S3, Google Cloud Storage, Azure, HDFS):
#: :mod:`prodfusion.data.storage` reads and writes them.
OBJECT_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")


def is_object_uri(value: object) -> bool:
    """Whether ``value`` names an object in a bucket (``s3://shop-data/feed.csv``).

    >>> is_object_uri(" s3://shop-data/a.jpg"), is_object_uri("https://cdn.example/a.jpg")
    (True, False)
    """
    if not isinstance(value, str):
        return False
    head, sep, _ = value.strip().partition("://")
    return bool(sep) and head.lower() in OBJECT_SCHEMES

#: The largest ``k`` any query accepts (library, CLI, export, evaluation; the service may
#: lower it through its settings).
MAX_K = 1000

#: The three fusion methods of the paper, in the paper's order.
FUSION_METHODS: tuple[str, ...] = ("early", "intermediate", "late")

#: The held-out protocols of ``evaluate retrieval`` and ``tune`` (their home and meaning:
#: :mod:`prodfusion.evaluation.protocol`; here so that the CLI lists them without loading it).
PROTOCOLS: tuple[str, ...] = ("leave-last-out", "whole", "leave-last-out-v24",
                              "leave-last-out-all-cases", "leave-last-out-log-catalog")


def is_int(value: Any) -> bool:
    """``True`` for Python and NumPy integers, ``False`` for ``bool`` and everything else."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _int_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an int in [{low}, {high}]"
    if low is not None:
        return f"an int >= {low}"
    if high is not None:
        return f"an int <= {high}"
    return "an int"


def check_int(value: Any, name: str, where: str, *, low: int | None = None,
              high: int | None = None, none: bool = False,
              expected: str | None = None) -> int | None:
    """``value`` as a Python ``int`` if it is an int (not a bool) in ``[low, high]``.

    Parameters
    ----------
    value
        What the caller passed.
    name, where
        The parameter's name and the function it was given to, for the message.
    low, high
        Inclusive bounds; ``None`` leaves that side open.
    none
        Accept ``None`` (returned as is).
    expected
        The message's description of a valid value, where the generated one
        ("an int >= 1", "an int in [1, 1000]") would say less.

    Raises
    ------
    ParameterError
        ``The 'k' parameter of similar() must be an int in [1, 1000]. Got 0 instead.``
    """
    if none and value is None:
        return None
    if not is_int(value) or (low is not None and value < low) or (
            high is not None and value > high):
        want = expected or _int_range(low, high)
        raise param_error(name, where, f"None or {want}" if none and expected is None else want,
                          value)
    return int(value)


def check_real(value: Any, name: str, where: str, *, low: float | None = None,
               high: float | None = None, low_open: bool = False, high_open: bool = False,
               none: bool = False, expected: str | None = None) -> float | None:
    """``value`` as a finite Python ``float`` within the bounds (``*_open``: bound excluded).

    Ints are reals; bools, NaN and infinities are not.
    """
    if none and value is None:
        return None
    ok = is_real(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if expected is None:
            if low is not None and high is not None:
                expected = (f"a number in {'(' if low_open else '['}{low:g}, "
                            f"{high:g}{')' if high_open else ']'}")
            elif low is not None:
                expected = f"a number {'>' if low_open else '>='} {low:g}"
            elif high is not None:
                expected = f"a number {'<' if high_open else '<='} {high:g}"
            else:
                expected = "a finite number"
        raise param_error(name, where, expected, value)
    return float(value)


def check_choice(value: Any, name: str, where: str, choices: Iterable[str], *,
                 none: bool = False) -> Any:
    """``value`` if it is one of ``choices`` (or ``None`` with ``none=True``)."""
    choices = tuple(choices)
    if none and value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        raise param_error(name, where, f"one of {list(choices)}", value)
    return value


def check_k(k: Any, where: str, *, max_k: int = MAX_K) -> int:
    """``k`` as an int in ``[1, max_k]``."""
    return check_int(k, "k", where, low=1, high=max_k)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types, the one sanitiser behind every file and answer prodfusion writes.

    NumPy scalars/arrays become Python values, tuples and sets lists, paths strings,
    mapping keys strings, NaN and infinities ``None`` (JSON has neither); anything
    else unknown its ``str``.

    >>> to_jsonable({"a": np.float32(0.5), 2: (1, float("nan"))})
    {'a': 0.5, '2': [1, None]}
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, PurePath):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)
