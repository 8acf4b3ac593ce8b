"""The Ray executor: actors that hold per-worker state (a loaded model, an encoder) and tasks.

``pip install "prodfusion[ray]"`` installs Ray (``ray[data]``). Nothing here is imported unless
:func:`prodfusion.engine.make_executor` is asked for ``"ray"``.

A trap seen on a 2-core machine (issue 14): Ray Data actors that each reserve a whole CPU can
hold every CPU while a task they wait for needs one (a deadlock). ``map_with_state`` needs no
other task while its actors run, so one actor per reserved CPU is safe there; the encoding on
Ray Data (:mod:`prodfusion.engine.ray_encode`) reserves a fraction of a CPU per actor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prodfusion._checks import check_int, check_real
from prodfusion.errors import ParameterError

__all__ = ["RayExecutor", "require_ray"]

log = logging.getLogger(__name__)


def require_ray():
    """``import ray`` or a clear error saying how to install it."""
    try:
        import ray
    except ModuleNotFoundError as exc:
        raise ParameterError(
            "The Ray engine needs Ray: pip install 'prodfusion[ray]' (or 'ray[data]')."
        ) from exc
    return ray


class _StateActor:
    """Holds ``make_state()`` (made once, in the actor) and applies functions to items."""

    def __init__(self, make_state: Callable[[], Any]) -> None:
        self.state = make_state()

    def call(self, fn: Callable[[Any, Any], Any], item):
        return item, fn(self.state, item)

    def node(self) -> str:
        """The Ray node this actor runs on (for the log: how far a pool spread)."""
        import ray

        return ray.get_runtime_context().get_node_id()


def _task(fn, item):
    return fn(item)


class RayExecutor:
    """Work items on Ray actors (``map_with_state``) or tasks (``run``).

    Parameters
    ----------
    address : str, optional
        ``"auto"`` (a running cluster), ``"host:port"`` (a cluster's head node, as ``ray
        start --address`` takes it), ``"ray://host:10001"`` (Ray Client), or None: start a
        local Ray on this machine (unless one is already initialised in this process).
    workers : int, optional
        Actors for ``map_with_state`` (default: the cluster's CPUs / ``num_cpus_per_worker``,
        at least 1, never more than the items).
    num_cpus_per_worker, num_gpus_per_worker : float
        Resources each actor/task reserves. Fractions let several share a CPU or GPU
        (``num_gpus_per_worker=0.25``: four actors per GPU).
    init_options : dict, optional
        Extra ``ray.init`` arguments when this executor starts Ray (e.g. ``num_cpus``,
        ``object_store_memory``).
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int | None = None,
                 num_cpus_per_worker: float = 1.0, num_gpus_per_worker: float = 0.0,
                 init_options: dict | None = None) -> None:
        for name, v in (("num_cpus_per_worker", num_cpus_per_worker),
                        ("num_gpus_per_worker", num_gpus_per_worker)):
            check_real(v, name, "RayExecutor()", low=0)
        check_int(workers, "workers", "RayExecutor()", low=1, none=True, expected="an int >= 1")
        ray = require_ray()
        self.address = address
        self.workers = workers
        self.num_cpus = float(num_cpus_per_worker)
        self.num_gpus = float(num_gpus_per_worker)
        self._owns = False
        if not ray.is_initialized():
            opts = {"include_dashboard": False, "log_to_driver": True,
                    "ignore_reinit_error": True, **(init_options or {})}
            if address:
                opts["address"] = address
            try:
                ray.init(**opts)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
                # no cluster at the address, Ray Client not installed, a malformed address
                where = f"Ray address {address!r} (--address)" if address else "a local Ray"
                raise ParameterError(
                    f"{where}: cannot start or join Ray "
                    f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}). "
                    "Leave --address out for a local Ray, 'auto' joins a cluster running on "
                    "this machine, 'HOST:PORT' a cluster's head node, 'ray://HOST:10001' "
                    "connects through Ray Client (pip install 'ray[client]'). A cluster "
                    "with token authentication also needs its token (RAY_AUTH_TOKEN or "
                    "~/.ray/auth_token).") from exc
            self._owns = True
        self._ray = ray

    def describe(self) -> str:
        res = self._ray.cluster_resources()
        nodes = sum(1 for n in self._ray.nodes() if n.get("Alive"))
        return (f"ray ({self.address or 'local'}: {nodes} node{'s' * (nodes != 1)}, "
                f"{res.get('CPU', 0):g} CPUs, "
                f"{res.get('GPU', 0):g} GPUs; {self.num_cpus:g} CPU / {self.num_gpus:g} GPU "
                "per worker)")

    def n_workers(self, n_items: int) -> int:
        if self.workers:
            return max(1, min(self.workers, n_items))
        cpus = self._ray.cluster_resources().get("CPU", 1.0)
        per = self.num_cpus if self.num_cpus > 0 else 1.0
        return max(1, min(int(cpus // per) or 1, n_items))

    def map_with_state(self, make_state, fn, items: Iterable):
        items = list(items)
        if not items:
            return
        ray = self._ray
        actor_cls = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(_StateActor)
        actors = [actor_cls.remote(make_state) for _ in range(self.n_workers(len(items)))]
        # waits for the actors to start, which the first items would wait for anyway
        nodes = len(set(ray.get([a.node.remote() for a in actors])))
        log.info("ray: %d actors on %d node%s for %d items", len(actors), nodes,
                 "s" * (nodes != 1), len(items))
        try:
            # Two items in flight per actor keep them busy while results travel back.
            pending: dict = {}
            queue = list(reversed(items))
            for a in actors:
                for _ in range(2):
                    if queue:
                        pending[a.call.remote(fn, queue.pop())] = a
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                actor = pending.pop(done[0])
                if queue:
                    pending[actor.call.remote(fn, queue.pop())] = actor
                yield ray.get(done[0])
        finally:
            for a in actors:
                ray.kill(a)

    def run(self, fn, items: Iterable):
        ray = self._ray
        remote = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(_task)
        # The items stay here (only results travel back: an item may be a block of vectors).
        pending = {remote.remote(fn, it): it for it in items}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), ray.get(done[0])

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


def local_ray_options(num_cpus: int | None = None, object_store_mb: int = 256) -> dict:
    """``ray.init`` options for a small local Ray (tests, one machine): no dashboard, a small
    object store, workers that do not inherit a big OpenMP pool."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    return {"num_cpus": num_cpus or os.cpu_count() or 1,
            "object_store_memory": object_store_mb * 2**20,
            "include_dashboard": False}
