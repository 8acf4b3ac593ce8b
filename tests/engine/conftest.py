"""A small local Ray for the engine tests: started once per module, torn down after it.

``num_cpus=2``, no dashboard, a 256 MB object store, and a hard time limit per test: a
deadlock (issue 14 saw one with whole-CPU actors on 2 cores) fails the test instead of
hanging CI.
"""

from __future__ import annotations

import faulthandler
import signal
import sys

import pytest

RAY_TEST_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed: pip install 'prodfusion[ray]' "
        "(scripts/test.sh installs it)")
    from prodfusion.engine.ray_engine import local_ray_options

    if ray.is_initialized():
        ray.shutdown()
    ray.init(**local_ray_options(num_cpus=2, object_store_mb=256), log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _hard_timeout(request):
    """SIGALRM fails a test that runs past the limit; faulthandler kills the run (with every
    thread's stack) if even that does not return."""
    if sys.platform == "win32":
        yield
        return

    def fail(signum, frame):
        raise TimeoutError(f"{request.node.name} ran over {RAY_TEST_TIMEOUT_S} s (deadlock?)")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(RAY_TEST_TIMEOUT_S)
    faulthandler.dump_traceback_later(RAY_TEST_TIMEOUT_S + 60, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)


# Tiny random encoders (a 2-layer BERT sentence-transformer, a 32-px CLIP) from the encoder tests.
from tests.encoders.conftest import tiny_clip_path, tiny_st_path  # noqa: E402, F401
