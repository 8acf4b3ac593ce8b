"""Where the embarrassingly parallel stages run: in this process, or on a Ray cluster.

One small interface (:class:`Executor`) with two implementations:

``LocalExecutor``  today's single-process code path (the default; no new dependency).
``RayExecutor``    Ray tasks and actors (``pip install "prodfusion[ray]"``); Ray is imported
                   only when this executor is made.

Stages that use it: ``prodfusion export`` (every product's top-k list), encoding titles and
photos on Ray Data (:mod:`prodfusion.engine.ray_encode`), and index shards: the model's
fused indexes (``IndexSettings(shards=N)``, :mod:`prodfusion.index.sharded`,
``Recommender.build_index(executor=…)``) and the standalone :mod:`prodfusion.engine.shards`.

>>> ex = make_executor("local")
>>> [r for _, r in ex.map_with_state(lambda: 10, lambda s, x: s + x, [1, 2])]
[11, 12]
"""

from __future__ import annotations

from prodfusion.engine.local import Executor, LocalExecutor
from prodfusion.errors import param_error

__all__ = ["Executor", "LocalExecutor", "make_executor", "ENGINES"]

ENGINES = ("local", "ray")


def make_executor(engine: str = "local", **options) -> Executor:
    """An executor by name. ``options`` go to :class:`~prodfusion.engine.ray_engine.RayExecutor`
    (``address``, ``workers``, ``num_cpus_per_worker``, ``num_gpus_per_worker``, ...)."""
    if engine == "local":
        return LocalExecutor()
    if engine == "ray":
        from prodfusion.engine.ray_engine import RayExecutor

        return RayExecutor(**options)
    raise param_error("engine", "make_executor()", f"one of {list(ENGINES)}", engine)
