"""The report figures' labels in other scripts (category names, titles): drawn with an
installed font that has them, or named once in words when none has."""

from __future__ import annotations

import logging
import warnings

import pytest

from prodfusion.evaluation import figures


def _rows(names):
    return [{"source": "sessions", "slice": "all", "variant": v,
             "hit_rate": {"value": 0.1 * (i + 1), "ci_lo": 0.05, "ci_hi": 0.2}}
            for i, v in enumerate(names)]


def _named(message: str) -> str:
    return message.split("in no installed font (", 1)[1].split(")", 1)[0]


@pytest.fixture
def fonts(monkeypatch):
    """Set the fonts the figures may fall back on, for one test."""
    def use(names):
        monkeypatch.setattr(figures, "fallback_fonts", lambda: tuple(names))
    return use


def test_labels_no_installed_font_draws_are_said_once_naming_the_figure(tmp_path, fonts, caplog):
    fonts([])  # a machine with matplotlib's own fonts only
    with warnings.catch_warnings(record=True) as caught, \
            caplog.at_level(logging.WARNING, logger="prodfusion.evaluation"):
        warnings.simplefilter("always")
        figures._fig_retrieval(_rows(["ランニングシューズ", "時計", "bags"]), "sessions", 15,
                               tmp_path / "fig_ja.png")
    assert (tmp_path / "fig_ja.png").stat().st_size > 0
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(
        "fig_ja.png: 10 character(s) of its labels are in no installed font (")
    assert set(_named(said[0])) == set("ランニングシューズ時計")
    assert "apt install fonts-noto-cjk" in said[0]
    # matplotlib's own warning, once per glyph, is not passed on
    assert not [w for w in caught if "missing from font" in str(w.message)]


def test_labels_draw_with_an_installed_fallback_font(tmp_path, fonts, caplog):
    # STIXGeneral ships with matplotlib and has ℊ and ⌒, which DejaVu Sans lacks
    labels = ["script g ℊ", "arc ⌒"]
    fonts([])
    with caplog.at_level(logging.WARNING, logger="prodfusion.evaluation"):
        figures._fig_retrieval(_rows(labels), "sessions", 15, tmp_path / "a.png")
    assert "a.png: 2 character(s) of its labels are in no installed font" in caplog.text
    assert set(_named(caplog.text)) == {"ℊ", "⌒"}
    caplog.clear()
    fonts(["STIXGeneral"])
    with caplog.at_level(logging.WARNING, logger="prodfusion.evaluation"):
        figures._fig_retrieval(_rows(labels), "sessions", 15, tmp_path / "b.png")
    assert caplog.text == ""


def test_the_fallback_fonts_are_the_known_ones_installed_here():
    from matplotlib import font_manager

    found = figures.fallback_fonts()
    names = {f.name for f in font_manager.fontManager.ttflist}
    assert set(found) <= names and set(found) <= set(figures.FALLBACK_FONTS)
    assert list(found) == [n for n in figures.FALLBACK_FONTS if n in found]
