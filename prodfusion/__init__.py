"""prodfusion: similar-product recommendations fusing titles, photos and anonymous clicks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
