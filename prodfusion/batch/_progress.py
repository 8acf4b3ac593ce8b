"""Progress of long batch jobs: a tqdm bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Counts work done out of ``total``.

    On a terminal (stderr) it draws a tqdm bar; otherwise (a log file, a CI job, a Ray driver
    under nohup) it prints one plain line every ``every_s`` seconds and at the end:
    ``export: 120,000/1,000,000 products (12.0%), 812/s, ETA 18m04s``. ``enabled=False`` is
    silent; ``None`` means "on".
    """

    def __init__(self, total: int, desc: str, unit: str = "it", *, enabled: bool | None = None,
                 every_s: float = 30.0, initial: int = 0, stream=None) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.done = self._start_done = int(initial)
        self.enabled = enabled is not False
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self._t0 = self._last = time.monotonic()
        self._bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=self.done, desc=desc, unit=unit,
                             file=self.stream, smoothing=0.05)

    def line(self) -> str:
        el = time.monotonic() - self._t0
        rate = (self.done - self._start_done) / el if el > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = f"{int(left // 60)}m{int(left % 60):02d}s" if left == left else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.desc}: {self.done:,}/{self.total:,} {self.unit} ({pct:.1f}%), "
                f"{rate:,.0f}/s, elapsed {el:.0f}s, ETA {eta}")

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
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            print(self.line(), file=self.stream, flush=True)
