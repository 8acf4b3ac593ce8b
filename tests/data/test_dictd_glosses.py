"""Word glosses of a FreeDict-style dictionary (tiny dictionary written in the test)."""

from __future__ import annotations

from prodfusion.data.dictd import dictd_glosses, dictd_translations
from tests.data.test_dictd import _write


def test_first_gloss_of_the_first_sense(tmp_path):
    prefix = _write(tmp_path, [
        ("00-database-info", "about\n1. not a word\n"),
        ("angel", "angel /x/\n1. melek\n2. ruh\n"),
        ("anew", "anew /y/\n1. (k.dili.) yeniden, tekrar.\n"),
        ("long", "long\n1. çok çok çok çok çok uzun bir şey\n"),
        ("none", "none\nno numbered sense here\n"),
    ])
    assert dictd_glosses(prefix) == [("angel", "melek"), ("anew", "yeniden")]


def test_translations_of_both_entry_layouts(tmp_path):
    prefix = _write(tmp_path, [
        ("00-database-url", "url\nhttp://example\n"),
        # FreeDict eng-deu / deu-tur layout: one comma-separated line, tags, indented extras.
        ("heeled shoe", "heeled shoe /x/\nAbsatzschuh <masc>, Stöckelschuh [ugs.]\n"
                        '      "high-heeled shoes"  - Absatzschuhe\n   Synonym: {pump}\n\n'),
        ("fasern", "Fasern /y/ <pl>\ntel; lif\n"),
        # eng-tur layout: numbered senses, labels, examples after the first ". ".
        ("violent", "violent /z/\n1. sert, (mec.) şiddetli, çok çok çok uzun bir anlam\n"
                    "2. göz alan. violent death kaza sonucu ölüm\n3. zorla\n4. fena\n"),
        ("empty", "empty /e/\n1. (bak.) void.\n"),  # a cross reference: no translation
    ])
    got = dict(dictd_translations(prefix))
    assert got == {
        "heeled shoe": ["Absatzschuh", "Stöckelschuh"],
        "Fasern": ["tel", "lif"],  # the headword as printed, not the index's lower case
        "violent": ["sert", "şiddetli", "göz alan", "zorla"],  # 3 senses; 5-word item dropped
    }
    assert dict(dictd_translations(prefix, max_senses=1, max_words=1))["violent"] == ["sert", "şiddetli"]
