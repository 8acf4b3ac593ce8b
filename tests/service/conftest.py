"""Fixtures of the service tests: a planted model, a two-variant experiment, a test client."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodfusion.service.experiments import ExperimentConfig, VariantConfig
from prodfusion.service.settings import ServiceSettings

from .helpers import make_model


@pytest.fixture(scope="session")
def planted_model(tmp_path_factory) -> Path:
    """40 products in 4 categories (i % 4), images, neighbours = same category."""
    return make_model(tmp_path_factory.mktemp("planted"))


def ab_settings(model: Path, events: Path, **kw) -> ServiceSettings:
    exp = ExperimentConfig(
        "fusion-test", salt="test-salt",
        variants=(
            VariantConfig("baseline", 50, model, fusion="intermediate", modalities=("clicks", "text")),
            VariantConfig("fusion", 50, model, fusion="intermediate",
                          modalities=("text", "image", "clicks")),
        ),
    )
    kw.setdefault("reload_interval_s", 0)
    return ServiceSettings(experiment=exp, events=str(events), **kw)


@pytest.fixture
def settings(planted_model, tmp_path) -> ServiceSettings:
    return ab_settings(planted_model, tmp_path / "events.sqlite3")


@pytest.fixture
def client(settings):
    from fastapi.testclient import TestClient

    from prodfusion.service.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c
