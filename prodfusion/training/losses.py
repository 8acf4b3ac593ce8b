"""Contrastive losses for adapting a title encoder: SimCSE (text only) and ConVIRT (title + photo).

One home for each formula:

* :func:`info_nce` — the in-batch InfoNCE term both methods are built from;
* :func:`convirt_loss` / :class:`ConVIRTLoss` — the bidirectional, weighted cross-modal loss;
* :func:`simcse_loss` — SimCSE as sentence-transformers expresses it
  (``MultipleNegativesRankingLoss`` with anchor = positive = the title, ``scale = 1/τ``);
  its value on given embeddings equals :func:`info_nce` (``tests/test_training_losses.py``).

Importing this module imports torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prodfusion._checks import check_real

__all__ = ["info_nce", "convirt_loss", "ConVIRTLoss", "ProjectionHead", "simcse_loss"]

#: The paper's ConVIRT settings (Chen & Chou, after Zhang et al.): τ, α, projection size.
CONVIRT_TEMPERATURE = 0.1
CONVIRT_ALPHA = 0.75
CONVIRT_PROJECTION_DIM = 768
#: SimCSE's temperature (Gao et al. 2021): τ = 0.05, i.e. sentence-transformers' scale 20.
SIMCSE_TEMPERATURE = 0.05


def _check_temperature(temperature: float, where: str) -> float:
    return check_real(temperature, "temperature", where, low=0, low_open=True)


def info_nce(queries: Tensor, keys: Tensor, temperature: float) -> Tensor:
    r"""Mean in-batch InfoNCE of matching row ``i`` of ``queries`` with row ``i`` of ``keys``.

    With cosine similarities :math:`s_{ij} = \frac{q_i \cdot k_j}{\|q_i\| \|k_j\|}`:

    .. math::

        \mathcal{L} = -\frac{1}{N} \sum_{i=1}^{N}
            \log \frac{\exp(s_{ii} / \tau)}{\sum_{j=1}^{N} \exp(s_{ij} / \tau)}

    Every other row of ``keys`` is a negative for query ``i``.

    Parameters
    ----------
    queries, keys : Tensor of shape (N, d)
    temperature : float
        :math:`\tau > 0`.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(info_nce(q, q, 1.0)), 4)   # -log(e / (e + 1))
    0.3133
    """
    tau = _check_temperature(temperature, "info_nce()")
    if queries.ndim != 2 or queries.shape != keys.shape:
        raise ValueError(
            f"info_nce() needs two (N, d) tensors of one shape; got {tuple(queries.shape)} "
            f"and {tuple(keys.shape)}."
        )
    logits = F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T / tau
    target = torch.arange(len(queries), device=queries.device)
    return F.cross_entropy(logits, target)


def convirt_loss(text: Tensor, image: Tensor, *, temperature: float = CONVIRT_TEMPERATURE,
                 alpha: float = CONVIRT_ALPHA) -> Tensor:
    r"""ConVIRT's bidirectional contrastive loss between projected titles and photos.

    With :math:`u_i` the projected title and :math:`v_i` the projected photo of product
    :math:`i` in a batch of :math:`N`, and :math:`s_{ij} = \cos(u_i, v_j)`:

    .. math::

        \ell_i^{(t \to v)} &= -\log \frac{\exp(s_{ii}/\tau)}{\sum_{k} \exp(s_{ik}/\tau)} \qquad
        \ell_i^{(v \to t)} = -\log \frac{\exp(s_{ii}/\tau)}{\sum_{k} \exp(s_{ki}/\tau)}

        \mathcal{L} &= \frac{1}{N} \sum_{i} \left[ \alpha\, \ell_i^{(t \to v)}
                        + (1 - \alpha)\, \ell_i^{(v \to t)} \right]

    :math:`\alpha = 1` is the text-to-image InfoNCE alone, :math:`\alpha = 0` the
    image-to-text one. Defaults are the paper's: :math:`\tau = 0.1`, :math:`\alpha = 0.75`.

    Parameters
    ----------
    text, image : Tensor of shape (N, d)
        Row ``i`` of both belongs to the same product.
    temperature : float
    alpha : float in [0, 1]
    """
    tau = _check_temperature(temperature, "convirt_loss()")
    check_real(alpha, "alpha", "convirt_loss()", low=0, high=1)
    t2v = info_nce(text, image, tau) if alpha > 0 else text.new_zeros(())
    v2t = info_nce(image, text, tau) if alpha < 1 else text.new_zeros(())
    return alpha * t2v + (1.0 - alpha) * v2t


class ConVIRTLoss(nn.Module):
    """:func:`convirt_loss` as a module with its two projection heads.

    Parameters
    ----------
    text_dim, image_dim : int
        Sizes of the pooled title embedding and of the image features.
    projection_dim : int
        Size of the shared space (the paper: 768).
    temperature, alpha : float
        See :func:`convirt_loss`.

    ``forward(text_embeddings, image_features)`` projects both through their
    :class:`ProjectionHead` and returns the scalar loss.
    """

    def __init__(self, text_dim: int, image_dim: int, *, projection_dim: int = CONVIRT_PROJECTION_DIM,
                 temperature: float = CONVIRT_TEMPERATURE, alpha: float = CONVIRT_ALPHA) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature, "ConVIRTLoss()")
        check_real(alpha, "alpha", "ConVIRTLoss()", low=0, high=1)
        self.alpha = float(alpha)
        self.text_projection = ProjectionHead(text_dim, projection_dim)
        self.image_projection = ProjectionHead(image_dim, projection_dim)

    def forward(self, text_embeddings: Tensor, image_features: Tensor) -> Tensor:
        return convirt_loss(
            self.text_projection(text_embeddings), self.image_projection(image_features),
            temperature=self.temperature, alpha=self.alpha,
        )


class ProjectionHead(nn.Module):
    """ConVIRT's projection: ``Linear(d_in, d) → ReLU → Linear(d, d)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def simcse_loss(model, temperature: float = SIMCSE_TEMPERATURE):
    r"""Unsupervised SimCSE as a sentence-transformers loss.

    Each title is passed twice (anchor = positive = the title); dropout makes the two
    embeddings :math:`h_i, h_i^+` differ, and the other titles of the batch are negatives:

    .. math::

        \mathcal{L} = -\frac{1}{N} \sum_i
            \log \frac{\exp(\cos(h_i, h_i^+)/\tau)}{\sum_j \exp(\cos(h_i, h_j^+)/\tau)}

    which is :func:`info_nce` of the two passes. sentence-transformers calls this
    ``MultipleNegativesRankingLoss`` with ``scale = 1/τ``; train it with the
    ``NO_DUPLICATES`` batch sampler so that a title is never its own negative.

    Parameters
    ----------
    model : SentenceTransformer
    temperature : float
        :math:`\tau` (default 0.05, SimCSE's).
    """
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    tau = _check_temperature(temperature, "simcse_loss()")
    return MultipleNegativesRankingLoss(model, scale=1.0 / tau)
