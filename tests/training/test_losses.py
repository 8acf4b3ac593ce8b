"""The contrastive losses against values computed by hand on 2x2 tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from prodfusion.errors import ParameterError  # noqa: E402
from prodfusion.training.losses import ConVIRTLoss, convirt_loss, info_nce, simcse_loss  # noqa: E402

R = 1 / math.sqrt(2)
# text u = [(1, 0), (0, 1)], image v = [(1, 0), (1, 1)/sqrt 2]: cos s = [[1, R], [0, R]]
U = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
V = torch.tensor([[2.0, 0.0], [3.0, 3.0]])  # norms differ: cosine must ignore them


def nll(pos: float, others: list[float], tau: float) -> float:
    """-log(exp(pos/τ) / Σ exp(all/τ)), all = [pos] + others."""
    z = sum(math.exp(x / tau) for x in [pos, *others])
    return -math.log(math.exp(pos / tau) / z)


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_info_nce_matches_hand_values(tau):
    # row 0: positive s00 = 1 vs s01 = R; row 1: positive s11 = R vs s10 = 0
    want = (nll(1.0, [R], tau) + nll(R, [0.0], tau)) / 2
    assert float(info_nce(U, V, tau)) == pytest.approx(want, rel=1e-5)


def test_convirt_directions_and_weighting():
    tau = 0.1
    t2v = (nll(1.0, [R], tau) + nll(R, [0.0], tau)) / 2          # rows of s
    v2t = (nll(1.0, [0.0], tau) + nll(R, [R], tau)) / 2          # columns of s
    assert float(convirt_loss(U, V, temperature=tau, alpha=1.0)) == pytest.approx(t2v, rel=1e-5)
    assert float(convirt_loss(U, V, temperature=tau, alpha=0.0)) == pytest.approx(v2t, rel=1e-5)
    both = float(convirt_loss(U, V, temperature=tau, alpha=0.75))
    assert both == pytest.approx(0.75 * t2v + 0.25 * v2t, rel=1e-5)
    assert t2v != pytest.approx(v2t)  # the two directions really differ on this case


def test_convirt_module_projects_then_applies_the_loss():
    torch.manual_seed(0)
    loss = ConVIRTLoss(3, 5, projection_dim=4, temperature=0.1, alpha=0.75)
    t, v = torch.randn(6, 3), torch.randn(6, 5)
    want = convirt_loss(loss.text_projection(t), loss.image_projection(v), temperature=0.1, alpha=0.75)
    assert float(loss(t, v).detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    assert loss.text_projection(t).shape == (6, 4)


def test_simcse_is_multiple_negatives_ranking_with_scale_one_over_tau():
    st = pytest.importorskip("sentence_transformers")  # noqa: F841
    tau = 0.5  # large enough that float32 rounding stays far below the tolerance
    mnrl = simcse_loss(torch.nn.Identity(), tau)   # the model is not used on given embeddings
    assert mnrl.scale == pytest.approx(1 / tau)
    # two dropout "views" of two titles: h = U, h+ = V
    got = float(mnrl.compute_loss_from_embeddings([U, V], None))
    want = (nll(1.0, [R], tau) + nll(R, [0.0], tau)) / 2
    assert got == pytest.approx(want, rel=1e-4)
    assert got == pytest.approx(float(info_nce(U, V, tau)), rel=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0.0}, "'temperature' parameter of convirt_loss"),
    ({"alpha": 1.5}, "'alpha' parameter of convirt_loss"),
    ({"alpha": -0.1}, "'alpha' parameter of convirt_loss"),
])
def test_bad_loss_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        convirt_loss(U, V, **kwargs)
