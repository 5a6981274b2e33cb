"""devtensor.distributions: PyTorch's torch.distributions for the common cases (VAEs, policy
gradients, GAN noise): Normal, Uniform, Bernoulli, Categorical, kl_divergence.

Same constructor arguments, properties (mean, mode, variance, stddev, probs/logits, batch_shape,
event_shape), methods (sample, rsample where reparameterizable, log_prob, cdf/icdf, entropy) and
argument validation (validate_args, on by default as in PyTorch) with PyTorch's messages; written in
Tensor ops, so log_prob, entropy, rsample and kl_divergence differentiate on every backend.
Samples come from devtensor's random stream (devtensor.manual_seed), not PyTorch's.
"""
from __future__ import annotations

from . import constraints  # noqa: F401
from .discrete import Bernoulli, Categorical
from .distribution import Distribution
from .kl import kl_divergence, register_kl
from .normal import Normal, Uniform

__all__ = ["Distribution", "Normal", "Uniform", "Bernoulli", "Categorical", "kl_divergence", "register_kl",
           "constraints"]
