"""devtensor.nn.functional, continued: the functional forms of the vision / NLP / speech layers
(issue 19): attention, 1-D and transposed convolutions, adaptive and 1-D pooling, resampling
(interpolate, pixel shuffle, padding modes, unfold / fold), group / instance normalisation, channel
dropout, the remaining activations and distances. PyTorch's names, arguments and defaults; each is
written in declared ops (conv2d and its backward ops, pooling, matmul, softmax, indexing, elementwise),
so autograd differentiates it and every backend runs it. nn/functional.py re-exports everything here.

One module per family (functional_attention, functional_conv (1-D / transposed convolution, 1-D and
adaptive pooling), functional_resample, functional_norm (with channel dropout), functional_activation,
functional_embedding (bilinear, embedding_bag)) over the shared primitives of functional_base; this
module gathers them, and the layers in nn/modules import it as FX."""
from __future__ import annotations

from . import (functional_activation, functional_attention, functional_conv, functional_embedding, functional_norm,
               functional_resample)
from .functional_activation import *  # noqa: F401,F403
from .functional_attention import *  # noqa: F401,F403
from .functional_attention import _canonical_mask  # noqa: F401 - nn.modules.transformer
from .functional_base import _ntuple, _softmax  # noqa: F401 - the layers' argument checks, nn.modules.transformer
from .functional_conv import *  # noqa: F401,F403
from .functional_conv import _same_pads  # noqa: F401 - nn.modules.conv
from .functional_embedding import *  # noqa: F401,F403
from .functional_norm import *  # noqa: F401,F403
from .functional_resample import *  # noqa: F401,F403

__all__ = sorted({*functional_activation.__all__, *functional_attention.__all__, *functional_conv.__all__,
                  *functional_embedding.__all__, *functional_norm.__all__, *functional_resample.__all__})
