"""An st: student: a tiny randomly initialised BERT (built in the test) gets a mean-pooling
head and a Dense layer, and trains with AdamW."""

from __future__ import annotations

from prodfusion.training import DistillConfig, distill, read_parallel
from prodfusion.training.distill_models import make_student
from tests.training.conftest import DE, DIM, EN


def _tiny_bert(path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *EN, *DE]
    (path / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=24, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    BertModel(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def test_transformer_student_gets_mean_pooling_and_trains(tmp_path, teacher_dir, parallel_file):
    bert = _tiny_bert(tmp_path / "bert")
    student = make_student(f"st:{bert}", DIM)
    names = [type(m).__name__ for m in student]
    assert names == ["Transformer", "Pooling", "Dense"]
    cfg = student[1].get_config_dict()
    assert cfg.get("pooling_mode") == "mean" or cfg.get("pooling_mode_mean_tokens")
    assert student.encode(["red dress"]).shape == (1, DIM)

    cfg = DistillConfig(teacher=f"st:{teacher_dir}", student=f"st:{bert}", epochs=2,
                        batch_size=8, learning_rate=1e-3, dev_size=10)
    rep = distill(read_parallel(parallel_file), tmp_path / "out", cfg, progress=False)
    assert rep["hyperparameters"]["optimizer"] == "adamw"
    assert rep["student"]["modules"][-1] == "Dense"
    losses = [r["train_loss"] for r in rep["loss_per_epoch"]]
    assert losses[1] < losses[0]
