"""Progress of long work: a tqdm bar on a terminal, plain periodic lines otherwise.

When stderr is not a terminal (a log file, CI, ``nohup``), tqdm bars are invisible, and a
healthy build looks hung. Everything long therefore reports through this module:

* :class:`Progress` — counted work (encoding, Prod2Vec epochs, exports): a tqdm bar on a
  terminal, else one line every ``every_s`` seconds and one at the end, e.g.
  ``encoding text (usem3): 4,096/11,800 titles (34.7%), 81/s, elapsed 50s, ETA 1m35s``;
* :func:`progress_bar` — the same behind tqdm's interface (``update``, ``set_postfix_str``,
  context manager), what the encoders use;
* :func:`heartbeat` — uncounted work (k-means, index building): a start line, a "still
  running" line every ``every_s`` seconds from a background thread, and an end line with
  the time taken.

The period is :data:`EVERY_S` (30 s); ``prodfusion --progress-every SECONDS`` sets it.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["Progress", "progress_bar", "heartbeat", "set_every", "EVERY_S"]

#: Seconds between plain progress lines (when stderr is not a terminal).
EVERY_S = 30.0


def set_every(seconds: float) -> None:
    """Set the period of plain progress lines (the CLI's ``--progress-every``)."""
    global EVERY_S
    if not seconds > 0:
        raise ValueError(f"progress period must be > 0 seconds, got {seconds!r}")
    EVERY_S = float(seconds)


def _isatty(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """Counts work done out of ``total``.

    On a terminal (stderr) it draws a tqdm bar; otherwise (a log file, a CI job, a Ray driver
    under nohup) it prints one plain line every ``every_s`` seconds and at the end:
    ``export: 120,000/1,000,000 products (12.0%), 812/s, ETA 18m04s``. ``enabled=False`` is
    silent; ``None`` means "on".
    """

    def __init__(self, total: int, desc: str, unit: str = "it", *, enabled: bool | None = None,
                 every_s: float | None = None, initial: int = 0, stream=None) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.done = self._start_done = int(initial)
        self.enabled = enabled is not False
        self.every_s = EVERY_S if every_s is None else every_s
        self.stream = stream or sys.stderr
        self._t0 = self._last = time.monotonic()
        self._shown = -1  # the count of the last plain line printed (close repeats no line)
        self._bar = None
        if self.enabled and _isatty(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=self.done, desc=desc, unit=unit,
                             file=self.stream, smoothing=0.05)

    def line(self) -> str:
        el = time.monotonic() - self._t0
        rate = (self.done - self._start_done) / el if el > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = f"{int(left // 60)}m{int(left % 60):02d}s" if left == left else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        speed = f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s"  # epochs: 0.5/s, not 0/s
        now = f" [{self._postfix}]" if getattr(self, "_postfix", "") else ""
        return (f"{self.desc}: {self.done:,}/{self.total:,} {self.unit} ({pct:.1f}%), "
                f"{speed}, elapsed {el:.0f}s, ETA {eta}{now}")

    def update(self, n: int) -> None:
        self.done += int(n)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._shown = self.done
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.total > 0 and self._shown != self.done:
            # nothing to do (e.g. all cached): nothing to report; the last line already
            # printed says where it ended (a periodic line on the last update): not twice
            self._shown = self.done
            print(self.line(), file=self.stream, flush=True)

    # tqdm's interface, for code written against a tqdm bar
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = s  # shown at the end of plain lines
        if self._bar is not None:
            self._bar.set_postfix_str(s, refresh=refresh)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str, enabled: bool | None) -> Progress:
    """A :class:`Progress` usable where a tqdm bar was: silent when ``enabled`` is False."""
    return Progress(total, desc, unit, enabled=enabled is not False)


@contextmanager
def heartbeat(desc: str, *, enabled: bool = True, every_s: float | None = None, stream=None):
    """Lines around a long step that cannot count its work::

        k-means++ (image, k=107, 11,800 vectors): started
        k-means++ (image, k=107, 11,800 vectors): still running, 30s
        k-means++ (image, k=107, 11,800 vectors): done in 41.2s
    """
    stream = stream or sys.stderr
    if not enabled:
        yield
        return
    period = EVERY_S if every_s is None else every_s
    t0 = time.monotonic()
    print(f"{desc}: started", file=stream, flush=True)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(period):
            print(f"{desc}: still running, {time.monotonic() - t0:.0f}s", file=stream, flush=True)

    th = threading.Thread(target=beat, name="prodfusion-heartbeat", daemon=True)
    th.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        th.join()
        took = time.monotonic() - t0
        print(f"{desc}: {'done' if ok else 'stopped'} in {took:.1f}s", file=stream, flush=True)
