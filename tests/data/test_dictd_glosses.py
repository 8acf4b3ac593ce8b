"""Word glosses of a FreeDict-style dictionary (tiny dictionary written in the test)."""

from __future__ import annotations

from prodfusion.data.dictd import dictd_glosses
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
