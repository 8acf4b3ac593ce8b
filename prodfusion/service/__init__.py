"""HTTP service: app factory, A/B assignment, event store, reports and the web page.

Nothing here starts anything: build an app with :func:`create_app` and run it with uvicorn, or
use ``prodfusion serve``. FastAPI, uvicorn and prometheus_client (the ``serve`` extra) are
imported only when an app is built.
"""

from __future__ import annotations

from prodfusion.service.app import create_app
from prodfusion.service.events import open_event_store
from prodfusion.service.experiments import Allocation, ExperimentConfig, VariantConfig, bucket_of
from prodfusion.service.models import publish_model
from prodfusion.service.report import experiment_report, format_report
from prodfusion.service.settings import ServiceSettings, load_settings

__all__ = [
    "create_app",
    "load_settings",
    "ServiceSettings",
    "ExperimentConfig",
    "VariantConfig",
    "Allocation",
    "bucket_of",
    "open_event_store",
    "publish_model",
    "experiment_report",
    "format_report",
]
