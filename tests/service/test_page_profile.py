"""The web page's second row (``page_profile``): configured, checked at start-up, announced to
the page; the page itself is driven in tests/service/test_browser.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from prodfusion.errors import ModelError, ParameterError
from prodfusion.service.app import create_app
from prodfusion.service.experiments import ExperimentConfig, VariantConfig
from prodfusion.service.models import preflight
from prodfusion.service.settings import ServiceSettings

from .helpers import make_model


def _settings(tmp_path, *arms, **kw) -> ServiceSettings:
    return ServiceSettings(experiment=ExperimentConfig("page", variants=list(arms)),
                           events=str(tmp_path / "e.sqlite3"), reload_interval_s=0, **kw)


def test_the_page_is_told_its_second_rows_profile_and_every_arm_must_serve_it(tmp_path):
    model = make_model(tmp_path / "a", profile="next_clicks")
    bare = make_model(tmp_path / "b")
    arm = VariantConfig("fusion", 1, model)
    with TestClient(create_app(_settings(tmp_path, arm, page_profile="next_clicks"))) as c:
        page = c.get("/").text
        assert '<body data-page-profile="next_clicks">' in page
        q = {"visitor": "v", "k": 5}
        own = c.get("/v1/similar/0001", params=q).json()
        row = c.get("/v1/similar/0001", params={**q, "profile": "next_clicks"}).json()
        assert row["profile"] == "next_clicks" and own["profile"] is None
        assert row["request_id"] != own["request_id"]  # each row's events count apart
    with TestClient(create_app(_settings(tmp_path, arm))) as c:
        assert "data-page-profile" not in c.get("/").text  # one row
    preflight(ExperimentConfig("page", variants=[arm]), "next_clicks")  # serves it
    with pytest.raises(ModelError, match=r"variant 'b': page_profile 'next_clicks' is not in "
                                         r"the model .* \(it has none\)"):
        preflight(ExperimentConfig("page", variants=[arm, VariantConfig("b", 1, bare)]),
                  "next_clicks")
    paper = VariantConfig("baseline", 1, model, modalities=("clicks",), fallback=("text",),
                          paper=True)
    with pytest.raises(ModelError, match=r"variant 'baseline' ranks by the paper's formulas, "
                                         r"so the web page's second row"):
        preflight(ExperimentConfig("page", variants=[arm, paper]), "next_clicks")
    with pytest.raises(ParameterError, match=r"'page_profile' parameter of "
                                             r"ServiceSettings\(\) must be a name"):
        _settings(tmp_path, arm, page_profile="<b>")


def test_page_profile_from_a_configuration_file_and_the_command_line(tmp_path):
    from prodfusion.cli.main import build_parser
    from prodfusion.cli.serve import _settings_overrides
    from prodfusion.service.settings import load_settings

    model = make_model(tmp_path, profile="next_clicks")
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[service]\npage_profile = "next_clicks"\n[experiment]\nname = "p"\n'
                   f'[[experiment.variants]]\nname = "a"\nmodel = "{model}"\n')
    assert load_settings(cfg).page_profile == "next_clicks"
    args = build_parser().parse_args(["serve", str(model), "--page-profile", "next_clicks"])
    assert load_settings(args.config, **_settings_overrides(args)).page_profile == "next_clicks"
    assert load_settings(model).page_profile is None  # one row unless asked
