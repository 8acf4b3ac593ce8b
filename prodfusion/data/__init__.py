"""Reading and validating catalogs and interaction logs; sessionizing; synthetic data."""

from prodfusion.data.catalog import Catalog

__all__ = ["Catalog"]
