"""The public entry points of the cpu nn kernels, one import away.  They live by family in
conv.py, pooling.py, softmax_ce.py and optim_steps.py; this module only re-exports them for
code that still reads `nn_kernels.<name>` (importing it loads numba)."""
from __future__ import annotations

from .conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward  # noqa: F401
from .optim_steps import adam_step_, rmsprop_step_, sgd_step_  # noqa: F401
from .pooling import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward  # noqa: F401
from .softmax_ce import (cross_entropy_mean, cross_entropy_rows, cross_entropy_rows_backward,  # noqa: F401
                         log_softmax_rows, softmax_rows)
