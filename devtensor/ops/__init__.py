"""The op table's declarations, one module per family. Importing this package declares every op
and attaches the Tensor methods; FUNCTIONS is what devtensor exports at top level."""
from . import creation, elementwise, index, inplace, linalg, nn, reduce, shape  # noqa: F401
from . import optim_steps  # noqa: F401  (fused optimizer steps; devtensor.optim calls them)
from . import rnn  # noqa: F401  (recurrent cell and sequence ops; nn.LSTM / GRU / RNN call them)
from . import functional  # noqa: F401  (the nn primitives' torch.f / Tensor.f / F.f forms)
from . import cumulative, index_extra, linalg_decomp, linalg_ops, sorting, special  # noqa: F401  (issue 18's ops)
from . import complex_ops, fft_ops  # noqa: F401  (complex parts and FFTs; complex_ops marks the ops above that take complex)
from . import random  # noqa: F401  (Generator, sampling ops, in-place random fills)
from ._api import FUNCTIONS

__all__ = ["FUNCTIONS"]
