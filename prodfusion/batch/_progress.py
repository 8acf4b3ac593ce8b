"""Progress of long batch jobs: lives in :mod:`prodfusion.progress` (shared by every long step)."""

from __future__ import annotations

from prodfusion.progress import Progress

__all__ = ["Progress"]
