"""Distillation with a tiny teacher and a tiny static student: loss, geometry, files, loading."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prodfusion.errors import DataError, ModelError
from prodfusion.training import DistillConfig, distill, read_parallel
from prodfusion.training.distill_models import load_teacher, make_student
from tests.training.conftest import DIM


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _config(teacher_dir, student_tokenizer, **kw):
    base = dict(teacher=f"st:{teacher_dir}", student=f"static:{student_tokenizer}",
                static_dim=DIM, epochs=15, batch_size=8, learning_rate=1.0, warmup_ratio=0.0,
                dev_size=12, seed=0)
    return DistillConfig(**{**base, **kw})


def test_distillation_lowers_the_loss_and_pulls_translations_to_their_source(
        tmp_path, teacher_dir, student_tokenizer, parallel_file):
    data = read_parallel(parallel_file)
    cfg = _config(teacher_dir, student_tokenizer)
    out = tmp_path / "student"
    rep = distill(data, out, cfg, cache=tmp_path / "cache", progress=False)

    losses = [r["train_loss"] for r in rep["loss_per_epoch"]]
    assert len(losses) == 15 and losses[-1] < 0.2 * losses[0]
    before, after = rep["evaluation"]["before"], rep["evaluation"]["after"]
    assert after["mse_translation"] < 0.2 * before["mse_translation"]
    assert after["translation_src2trg"] > before["translation_src2trg"]
    assert after["translation_src2trg"] >= 0.9

    # A held-out translation: the German side moves towards the teacher's English vector.
    teacher = load_teacher(cfg.teacher)
    untrained = make_student(cfg.student, DIM, static_dim=DIM, seed=0)
    from prodfusion.encoders import make_encoder

    trained = make_encoder(f"st:{out}", progress=False)
    src, tgt = "big red lamp", "gross rot lampe"
    t = teacher.encode([src])[0]
    assert _cos(trained.encode_texts([tgt])[0], t) > 0.9 > _cos(untrained.encode([tgt])[0], t)

    # The output folder: a model + distillation.json; no partial folder left behind.
    assert (out / "modules.json").exists()
    saved = json.loads((out / "distillation.json").read_text())
    assert saved["teacher"]["modules"] == ["StaticEmbedding"]  # Normalize stripped
    assert saved["student"]["modules"] == ["StaticEmbedding"]
    assert saved["data"]["files"][0]["sha256"] == data.files[0]["sha256"]
    assert saved["data"]["train_pairs"] + saved["data"]["dev_pairs"] == 60
    assert saved["hyperparameters"]["learning_rate"] == 1.0
    assert saved["hyperparameters"]["optimizer"] == "adagrad"  # sparse token gradients
    assert not (tmp_path / ".student.partial").exists()

    # A second run reads the teacher's vectors from the cache, and refuses to clobber.
    with pytest.raises(DataError, match="the output folder exists"):
        distill(data, out, cfg, cache=tmp_path / "cache", progress=False)
    # overwrite=True replaces an earlier student only, never a folder of other files
    from prodfusion.errors import ParameterError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ParameterError, match="holds files prodfusion did not write \\(no "
                                             "distillation.json\\)"):
        distill(data, mine, cfg, cache=tmp_path / "cache", progress=False, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    distill(data, out, _config(teacher_dir, student_tokenizer, epochs=1),
            cache=tmp_path / "cache", progress=False, overwrite=True)  # an earlier student
    assert json.loads((out / "distillation.json").read_text())["hyperparameters"]["epochs"] == 1
    rep2 = distill(data, tmp_path / "again", _config(teacher_dir, student_tokenizer, epochs=1),
                   cache=tmp_path / "cache", progress=False)
    assert rep2["data"]["teacher_vectors_from_cache"] == rep2["data"]["distinct_sources"] == 60


def test_a_static_students_dense_layer_learns_at_its_own_rate(
        tmp_path, monkeypatch, capsys, teacher_dir, student_tokenizer, parallel_file):
    # Adagrad's first steps move every parameter by about the learning rate: the Dense
    # layer's least-squares start gets dense_lr_ratio of it, the token table all of it
    import torch

    seen = []

    class Spy(torch.optim.Adagrad):
        def __init__(self, params, **kw):
            super().__init__(params, **kw)
            seen.append([(g["lr"], [tuple(p.shape) for p in g["params"]])
                         for g in self.param_groups])

    monkeypatch.setattr(torch.optim, "Adagrad", Spy)
    data = read_parallel(parallel_file)
    cfg = _config(teacher_dir, student_tokenizer, static_dim=4, epochs=1, learning_rate=0.5)
    rep = distill(data, tmp_path / "s", cfg, cache=tmp_path / "cache", progress=False)
    (table_lr, table), (dense_lr, dense) = seen[-1]
    assert table_lr == 0.5 and len(table) == 1 and table[0][1] == 4  # the token table
    assert dense_lr == pytest.approx(0.05) and (DIM, 4) in dense  # Dense 4 -> DIM
    assert rep["hyperparameters"]["dense_lr_ratio"] == 0.1
    # saved with the Dense layer folded into the token table (fold_dense, below)
    assert rep["student"]["trained_modules"] == ["StaticEmbedding", "Dense"]
    assert rep["student"]["modules"] == ["StaticEmbedding"] and rep["student"]["dense_folded"]
    assert rep["student"]["dim"] == DIM
    assert "distill: epoch" not in capsys.readouterr().err  # progress=False: no lines either
    rep1 = distill(data, tmp_path / "s1", _config(
        teacher_dir, student_tokenizer, static_dim=4, epochs=1, learning_rate=0.5,
        dense_lr_ratio=1.0, fold_dense=False), cache=tmp_path / "cache")
    assert [lr for lr, _ in seen[-1]] == [0.5, 0.5]
    assert rep1["student"]["modules"] == ["StaticEmbedding", "Dense"]
    assert not rep1["student"]["dense_folded"]
    assert "distill: epoch 1.00/1 step" in capsys.readouterr().err  # plain lines: not a terminal
    from prodfusion.errors import ParameterError

    for bad in (0, -0.1, True, 11, "0.1"):
        with pytest.raises(ParameterError, match="'dense_lr_ratio' parameter"):
            DistillConfig(dense_lr_ratio=bad).check()
    with pytest.raises(ParameterError, match="'fold_dense' parameter"):
        DistillConfig(fold_dense="yes").check()


def test_folding_the_dense_layer_into_the_token_table_keeps_the_vectors(student_tokenizer):
    import torch

    from prodfusion.training.distill_models import fold_dense

    student = make_student(f"static:{student_tokenizer}", DIM, static_dim=4, seed=0)
    with torch.no_grad():  # a Dense layer far from the identity, with a bias
        student[1].linear.weight.normal_()
        student[1].linear.bias.normal_()
    folded = fold_dense(student)
    assert [type(m).__name__ for m in folded] == ["StaticEmbedding"]
    assert folded[0].embedding.weight.shape == (student[0].embedding.weight.shape[0], DIM)
    texts = ["big red lamp", "gross rot lampe", "red", "lampe lampe lampe blau"]
    np.testing.assert_allclose(folded.encode(texts), student.encode(texts), atol=1e-5)
    # what cannot be folded is left alone: no Dense, a non-linear one
    assert fold_dense(make_student(f"static:{student_tokenizer}", DIM, static_dim=DIM,
                                   dense=False)) is None
    student[1].activation_function = torch.nn.Tanh()
    assert fold_dense(student) is None


def test_mse_loss_matches_a_hand_computation(teacher_dir, student_tokenizer):
    import torch

    from prodfusion.training.distill_models import st_submodule

    losses = st_submodule("losses")

    student = make_student(f"static:{student_tokenizer}", 4, static_dim=6, dense=True, seed=3)
    src, tgt = ["red dress", "old bike"], ["rot kleid", "alt rad"]
    label = torch.tensor(np.random.default_rng(0).normal(size=(2, 4)), dtype=torch.float32)
    loss = losses.MSELoss(student)
    tok = getattr(student, "preprocess", None) or student.tokenize
    value = float(loss([tok(src), tok(tgt)], label).detach())
    s = student.encode(src, convert_to_numpy=True)
    t = student.encode(tgt, convert_to_numpy=True)
    y = label.numpy()
    hand = (((s - y) ** 2).mean() + ((t - y) ** 2).mean()) / 2
    assert value == pytest.approx(hand, rel=1e-5)


def test_teacher_normalize_refused_when_asked(tmp_path, teacher_dir, student_tokenizer, parallel_file):
    cfg = _config(teacher_dir, student_tokenizer, teacher_normalize="refuse", epochs=1)
    with pytest.raises(ModelError, match="ends in a Normalize module: distillation needs unnormalised"):
        distill(read_parallel(parallel_file), tmp_path / "s", cfg, progress=False)


def test_student_specs_are_checked(teacher_dir, student_tokenizer):
    from prodfusion.errors import ParameterError

    with pytest.raises(ParameterError, match="'static:<tokenizer>'"):
        DistillConfig(student="lstm:foo").check()
    with pytest.raises(ModelError, match="does not exist"):
        make_student("static:/no/such/tokenizer.json", 8)
    with pytest.raises(ParameterError, match="'dense' parameter"):
        make_student(f"static:{student_tokenizer}", 8, static_dim=4, dense=False)
    m = make_student(f"static:{student_tokenizer}", 8, static_dim=4)
    assert [type(x).__name__ for x in m] == ["StaticEmbedding", "Dense"]
    assert m.encode(["red dress"]).shape == (1, 8)


def test_a_hub_tokenizer_name_offline_fails_at_once(monkeypatch):
    """Offline, the name is refused before the Hub client's five retries (~23 s here): the
    message is the probe's, not the download's ("nor a Hub tokenizer available here")."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match=r"static:some-org/no-such-tokenizer: .* nor in the "
                                         r"Hugging Face cache, and it cannot be downloaded: "
                                         r"Hugging Face offline mode is on"):
        make_student("static:some-org/no-such-tokenizer", 8)


def test_saved_student_is_a_text_encoder_for_build(tmp_path, teacher_dir, student_tokenizer,
                                                    parallel_file):
    from prodfusion.cli import main

    out = tmp_path / "student"
    distill(read_parallel(parallel_file), out, _config(teacher_dir, student_tokenizer, epochs=2),
            progress=False)
    cat = tmp_path / "catalog.csv"
    cat.write_text("product_id,title,category\n001,red dress,a\n002,rot kleid,a\n003,old bike,b\n",
                   encoding="utf-8")
    model = tmp_path / "model"
    rc = main(["build", "--catalog", str(cat), "--text", f"st:{out}", "--image", "none",
               "--no-clicks", "--cache-dir", "none", "--out", str(model)])
    assert rc == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert f"st:{out}" in json.dumps(manifest)
    assert np.load(model / "emb_text.npy").shape == (3, DIM)


def test_an_interrupted_run_resumes_from_its_last_epoch_checkpoint(
        tmp_path, monkeypatch, teacher_dir, student_tokenizer, parallel_file):
    import importlib

    from transformers import TrainerCallback

    mod = importlib.import_module("prodfusion.training.distill")  # the module, not the function

    class Stop(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kw):
            if state.epoch >= 2:  # epoch 1's checkpoint is on disk, epoch 2's is not
                raise KeyboardInterrupt

    original = mod.plain_progress
    monkeypatch.setattr(mod, "plain_progress", lambda label, n: [*original(label, n), Stop()])
    data = read_parallel(parallel_file)
    cfg = _config(teacher_dir, student_tokenizer, epochs=3)
    out = tmp_path / "student"
    with pytest.raises(KeyboardInterrupt):  # progress on: the callbacks carry the stop
        distill(data, out, cfg)
    assert not out.exists()  # nothing half-written where the model goes
    assert list((tmp_path / ".student.partial" / "checkpoints").glob("checkpoint-*"))

    monkeypatch.setattr(mod, "plain_progress", original)
    rep = distill(data, out, cfg, progress=False)
    steps_per_epoch = rep["hyperparameters"]["steps_per_epoch"]
    assert rep["resumed_from"].endswith(f"checkpoint-{steps_per_epoch}")
    assert [r["epoch"] for r in rep["loss_per_epoch"]] == [1, 2, 3]
    assert all(r["train_loss"] is not None for r in rep["loss_per_epoch"])
    assert (out / "distillation.json").exists() and not (tmp_path / ".student.partial").exists()
