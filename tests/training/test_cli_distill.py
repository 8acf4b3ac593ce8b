"""`prodfusion distill` and `prodfusion evaluate text-encoder` end to end on tiny models."""

from __future__ import annotations

import json

from prodfusion.cli import main
from tests.training.conftest import DIM


def test_distill_then_evaluate_text_encoder(tmp_path, teacher_dir, student_tokenizer,
                                            parallel_file, capsys):
    out = tmp_path / "student"
    rc = main(["distill", "--parallel", str(parallel_file), "--teacher", f"st:{teacher_dir}",
               "--student", f"static:{student_tokenizer}", "--static-dim", str(DIM),
               "--epochs", "3", "--batch-size", "8", "--lr", "1.0", "--dev-size", "10",
               "--cache-dir", "none", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"student written to {out}" in text and "held-out 10 pairs after" in text
    assert json.loads((out / "distillation.json").read_text())["data"]["languages"] == {"en-de": 60}
    # a student with a Dense layer (4-d tokens -> the teacher's 16): folded unless --keep-dense
    for extra, modules in (([], ["StaticEmbedding"]), (["--keep-dense"], ["StaticEmbedding", "Dense"])):
        small = tmp_path / f"small{len(extra)}"
        assert main(["distill", "--parallel", str(parallel_file), "--teacher", f"st:{teacher_dir}",
                     "--student", f"static:{student_tokenizer}", "--static-dim", "4", "--epochs",
                     "1", "--dev-size", "10", "--cache-dir", "none", "--out", str(small),
                     *extra]) == 0
        said = capsys.readouterr().out
        assert json.loads((small / "distillation.json").read_text())["student"]["modules"] == modules
        assert ("the Dense layer folded into the token table" in said) == (not extra)

    rep = tmp_path / "report"
    rc = main(["evaluate", "text-encoder", f"st:{out}", f"static:{student_tokenizer}",
               "--teacher", f"st:{teacher_dir}", "--parallel", str(parallel_file),
               "--synthetic-sts", "20", "--synthetic-titles", "20", "--speed-titles", "0",
               "--label", f"st:{out}=distilled", "--out", str(rep)])
    assert rc == 0
    res = json.loads((rep / "results.json").read_text())
    rows = {r["label"]: r for r in res["encoders"]}
    assert set(rows) == {"distilled", f"static:{student_tokenizer}"}
    tr = rows["distilled"]["translation"]
    assert set(tr) == {"en-de", "en-tr titles (synthetic)"} and tr["en-de"]["n"] == 60
    untrained = rows[f"static:{student_tokenizer}"]
    assert untrained["mse_to_teacher"]["en-de"] is None  # 512-d: not the teacher's 16-d space
    assert isinstance(rows["distilled"]["mse_to_teacher"]["en-de"], float)
    assert tr["en-de"]["src2trg"] > untrained["translation"]["en-de"]["src2trg"]
    assert set(rows["distilled"]["sts"]) == {"synthetic/en-en", "synthetic/tr-tr", "synthetic/en-tr"} or \
        set(rows["distilled"]["sts"]) == {"en-en", "tr-tr", "en-tr"}
    assert "distilled" in (rep / "report.md").read_text()


def test_a_student_that_training_made_worse_is_not_recommended(tmp_path, parallel_file, capsys,
                                                               monkeypatch):
    """The held-out pairs say the student moved away from the teacher (a learning rate too
    high): a warning instead of "use it"."""
    import prodfusion.training as training

    def worse(data, out, config, **kw):
        ev = {"pairs": 10, "before": {"translation_src2trg": 1.0, "translation_trg2src": 1.0,
                                      "mse_translation": 0.037},
              "after": {"translation_src2trg": 0.78, "translation_trg2src": 0.8,
                        "mse_translation": 2.82}}
        return {"evaluation": ev, "seconds": 1.0, "student": {
                    "modules": ["StaticEmbedding"], "parameters": 10, "dense_folded": False,
                    "trained_modules": ["StaticEmbedding"]},
                "loss_per_epoch": [{"epoch": 1, "train_loss": 62.0}]}

    monkeypatch.setattr(training, "distill", worse)
    assert main(["distill", "--parallel", str(parallel_file), "--teacher", "st:t",
                 "--student", "static:s", "--cache-dir", "none",
                 "--out", str(tmp_path / "student")]) == 0
    cap = capsys.readouterr()
    assert ("warning: the student is further from the teacher on the held-out pairs after "
            "training than before (MSE 0.03700 → 2.82000)") in cap.err
    assert "use it:" not in cap.out and "held-out 10 pairs after" in cap.out
