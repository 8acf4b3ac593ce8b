"""One exception hierarchy for prodfusion.

Every error says what was wrong, where, and what to do. Catch
:class:`ProdfusionError` to handle anything raised on purpose by the library.
"""

from __future__ import annotations

__all__ = [
    "ProdfusionError",
    "DataError",
    "ModelError",
    "NotBuiltError",
    "UnknownProductError",
    "ParameterError",
    "FormatVersionError",
]


class ProdfusionError(Exception):
    """Base class of every error raised on purpose by prodfusion."""


class DataError(ProdfusionError, ValueError):
    """Bad input data: a catalog or interaction file that cannot be used as given.

    The message names the file, the row (1-based, header excluded) and the
    column where possible.
    """


class ModelError(ProdfusionError):
    """A model folder or an encoder that cannot be loaded or used."""


class FormatVersionError(ModelError):
    """A model folder written by a newer, incompatible prodfusion."""


class NotBuiltError(ProdfusionError, RuntimeError):
    """A method that needs a built/fitted object was called before ``build``/``fit``."""


class UnknownProductError(ProdfusionError, KeyError):
    """A product id that is not in the model."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class ParameterError(ProdfusionError, ValueError):
    """A bad parameter value.

    Use :func:`param_error` for the house template.
    """


def param_error(name: str, where: str, expected: str, got: object) -> ParameterError:
    """Build a :class:`ParameterError` in the house template.

    >>> str(param_error("k", "similar()", "an int in [1, 1000]", 0))
    "The 'k' parameter of similar() must be an int in [1, 1000]. Got 0 instead."
    """
    return ParameterError(
        f"The {name!r} parameter of {where} must be {expected}. Got {got!r} instead."
    )
