"""The executor interface and its in-process implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

__all__ = ["Executor", "LocalExecutor"]


class Executor(Protocol):
    """Runs independent work items, each with per-worker state made once.

    ``map_with_state(make_state, fn, items)`` calls ``make_state()`` once per worker (a loaded
    model, an encoder) and ``fn(state, item)`` for every item, yielding ``(item, result)`` as
    results arrive (any order). ``make_state`` and ``fn`` must be picklable for remote
    executors (module-level functions or ``functools.partial`` of them).
    ``run(fn, items)`` is the stateless form (one task per item).
    """

    name: str

    def map_with_state(self, make_state: Callable[[], Any], fn: Callable[[Any, Any], Any],
                       items: Iterable) -> Iterator[tuple[Any, Any]]: ...

    def run(self, fn: Callable[[Any], Any], items: Iterable) -> Iterator[tuple[Any, Any]]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Everything in this process, in order (today's code path)."""

    name = "local"

    def map_with_state(self, make_state, fn, items):
        items = list(items)
        if not items:
            return
        state = make_state()
        for item in items:
            yield item, fn(state, item)

    def run(self, fn, items):
        for item in items:
            yield item, fn(item)

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "local (this process)"
