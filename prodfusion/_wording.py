"""Messages that name command-line options, worded for whoever called.

The build's and the tuning's messages name ``prodfusion build``'s options (``--tune off``),
what a command-line user types. Called from Python (:func:`prodfusion.build`,
:meth:`prodfusion.Recommender.tune`), the same messages name the parameters of the call
instead (``tune="off"``): the entry point says so with :func:`called_from`, and the
messages pass through :func:`worded`. The outermost caller decides: the command line's
``tune`` calls ``Recommender.tune`` and keeps its options' names.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator

__all__ = ["called_from", "worded", "reworded", "as_parameters"]

_CALLER: contextvars.ContextVar[tuple[str, frozenset[str]] | None] = contextvars.ContextVar(
    "prodfusion_caller", default=None)

#: Commands a message suggests, and what a Python user calls instead.
_COMMANDS = (
    (re.compile(r"`?prodfusion tune MODEL(?:_DIR)? --learner gbdt`?"),
     '`rec.tune(sessions, learner="gbdt")`'),
    (re.compile(r"`?prodfusion tune MODEL(?:_DIR)? --interactions \.\.\.`?"), "`rec.tune(sessions)`"),
    (re.compile(r"`prodfusion tune`"), "`rec.tune(...)`"),
)
#: Options that are a Python call's arguments rather than parameters with a value.
_ARGUMENTS = {"interactions": "sessions", "pairs": "pairs"}
#: The readers' options, named in the messages about what cleaning left (the parameters of
#: read_interactions(), read_pairs() and clean_sessions()).
_READERS = {"session-cols": "session_cols=", "item-col": "item_col=",
            "pair-cols": "a_col=, b_col=", "min-session-length": "min_length=",
            "max-session-length": "max_length=", "session-gap": "session_gap="}
_VALUE = (r"on|off|auto|gbdt|linear|none|all|sessions|pairs|min:\d+|ndcg@\d+|hitrate@\d+|"
          r"leave-last-out(?:-[a-z]+)*|\d+(?:\.\d+)?")
#: What a message says only of the command line: dropped for a Python caller.
_CLI_ONLY = re.compile(r"\s*\(CLI: [^)]*\)|;? on the command line [^.;)]*(?=[.;)])")
_OPTION = re.compile(rf"--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?: ({_VALUE}))?(?![\w@-]|[.:]\w)")


@contextlib.contextmanager
def called_from(caller: str, names: Iterable[str] = ()) -> Iterator[None]:
    """Within the block, messages are worded for ``caller``: ``"cli"`` (options as typed) or
    ``"python"`` (``names``: the parameters of the call, which options become). A caller
    inside another's block changes nothing."""
    if _CALLER.get() is not None:
        yield
        return
    token = _CALLER.set((caller, frozenset(names)))
    try:
        yield
    finally:
        _CALLER.reset(token)


def worded(message: str) -> str:
    """``message`` for the caller of the block it is made in (:func:`called_from`)."""
    caller = _CALLER.get()
    if caller is None or caller[0] != "python":
        return message
    return as_parameters(message, caller[1])


@contextlib.contextmanager
def reworded() -> Iterator[None]:
    """A library error leaving the block carries its message :func:`worded` for the caller
    (an error's type and arguments otherwise unchanged)."""
    from prodfusion.errors import ProdfusionError

    try:
        yield
    except ProdfusionError as e:
        if e.args and isinstance(e.args[0], str):
            e.args = (worded(e.args[0]), *e.args[1:])
        raise


def as_parameters(message: str, names: Iterable[str]) -> str:
    """A message's command-line options as the parameters ``names`` of a Python call (others
    left as they are), and the commands it suggests as the methods to call.

    >>> as_parameters("(--category-modality off: not); --tune auto needs 100 (--tune on "
    ...               "tunes anyway); give --interactions and/or --pairs; --p2v-epochs 50; "
    ...               "--protocol x", ["category_modality", "tune", "p2v_epochs"])
    '(category_modality="off": not); tune="auto" needs 100 (tune="on" tunes anyway); give sessions and/or pairs; p2v_epochs=50; --protocol x'
    >>> as_parameters("tune later with `prodfusion tune MODEL_DIR --interactions ...`, or "
    ...               "pass --tune off to skip; no --weights, --calibration or --click-n0",
    ...               ["tune", "weights", "calibration", "click_n0"])
    'tune later with `rec.tune(sessions)`, or pass tune="off" to skip; no weights=, calibration= or click_n0='
    >>> as_parameters("pass sessions=; on the command line --interactions.", [])
    'pass sessions=.'
    >>> as_parameters("Pass them (CLI: --interactions). (--protocol leave-last-out-all-cases "
    ...               "scores them); check --session-cols and --min-session-length", ["protocol"])
    'Pass them. (protocol="leave-last-out-all-cases" scores them); check session_cols= and min_length='
    """
    names = set(names)
    for pattern, call in _COMMANDS:
        message = pattern.sub(call, message)
    message = _CLI_ONLY.sub("", message)

    def parameter(m: re.Match) -> str:
        option, value = m.group(1), m.group(2)
        if option in _ARGUMENTS and value is None:
            return _ARGUMENTS[option]
        if option in _READERS and value is None:
            return _READERS[option]
        name = option.replace("-", "_")
        if name not in names:
            return m.group(0)
        if value is None:
            return f"{name}="
        return f"{name}={value}" if re.fullmatch(r"\d+(?:\.\d+)?", value) else f'{name}="{value}"'

    return _OPTION.sub(parameter, message)
