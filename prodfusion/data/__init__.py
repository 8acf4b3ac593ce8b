"""Reading and validating catalogs and interaction logs; sessionizing; synthetic data."""

from prodfusion.data.catalog import Catalog
from prodfusion.data.interactions import clean_sessions, read_interactions, read_pairs
from prodfusion.data.io import read_catalog
from prodfusion.data.sessions import SessionReport, Sessions
from prodfusion.data.stats import dataset_stats, format_stats
from prodfusion.data.synthetic import SyntheticPaths, make_synthetic
from prodfusion.data.tables import read_table

__all__ = [
    "Catalog",
    "read_catalog",
    "read_table",
    "read_interactions",
    "read_pairs",
    "clean_sessions",
    "Sessions",
    "SessionReport",
    "dataset_stats",
    "format_stats",
    "make_synthetic",
    "SyntheticPaths",
]
