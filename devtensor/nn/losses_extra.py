"""More of torch.nn.functional's losses, written in Tensor ops (so every device and double backward come
from the ops' rules): huber_loss, kl_div, cosine_embedding_loss, margin_ranking_loss, hinge_embedding_loss,
soft_margin_loss, multilabel_soft_margin_loss, multi_margin_loss, multilabel_margin_loss,
triplet_margin_loss, triplet_margin_with_distance_loss, poisson_nll_loss, gaussian_nll_loss, ctc_loss,
and the distances they use, cosine_similarity and pairwise_distance. Each is a composite (numpy reference
and samples beside it), so tests/test_composites.py checks it forward, with gradcheck and gradgradcheck.

PyTorch's formulas are followed term by term (ATen's loss.cpp and torch/nn/functional.py), including its
legacy size_average / reduce flags and its choices at the edges: the 1e-12 in cosine_embedding_loss, the
eps inside pairwise_distance, variances clamped to eps with the gradient passed through, kl_div's
'batchmean' and its warning for 'mean'.

They live by family over the shared helpers of losses_base.py: losses_regression.py (huber, kl_div, the
likelihoods), losses_margin.py (the distances, pair / ranking / margin / triplet losses) and
losses_ctc.py; this module gathers them."""
from __future__ import annotations

from .losses_base import _legacy  # noqa: F401 - nn.modules.loss_extra
from .losses_ctc import ctc_loss
from .losses_margin import (cosine_embedding_loss, cosine_similarity, hinge_embedding_loss, margin_ranking_loss,
                            multi_margin_loss, multilabel_margin_loss, multilabel_soft_margin_loss, pairwise_distance,
                            soft_margin_loss, triplet_margin_loss, triplet_margin_with_distance_loss)
from .losses_regression import gaussian_nll_loss, huber_loss, kl_div, poisson_nll_loss

__all__ = ["huber_loss", "kl_div", "cosine_similarity", "pairwise_distance", "cosine_embedding_loss",
           "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
           "multi_margin_loss", "multilabel_margin_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
           "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss"]
