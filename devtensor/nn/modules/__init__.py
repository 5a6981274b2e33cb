"""The nn layers, one file per family, re-exported as devtensor.nn.<Name>."""
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .normalization import LayerNorm
from .pooling import AvgPool2d, MaxPool2d
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from .activation_extra import (CELU, ELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh, LogSigmoid, Mish,
                               PReLU, ReLU6, RReLU, Softmax2d, Softmin, Softplus, Softshrink, Softsign, Tanhshrink,
                               Threshold)
from .conv_extra import Conv1d, ConvTranspose1d, ConvTranspose2d
from .dropout_extra import AlphaDropout, Dropout1d, Dropout2d, Dropout3d
from .misc_extra import Bilinear, EmbeddingBag
from .normalization_extra import GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LocalResponseNorm
from .pooling_extra import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d,
                            MaxPool1d)
from .resample import (CircularPad1d, CircularPad2d, ConstantPad1d, ConstantPad2d, Fold, PixelShuffle, PixelUnshuffle,
                       ReflectionPad1d, ReflectionPad2d, ReplicationPad1d, ReplicationPad2d, Unfold, Upsample,
                       UpsamplingBilinear2d, UpsamplingNearest2d, ZeroPad1d, ZeroPad2d)
from .sparse import Embedding
from .transformer import (MultiheadAttention, Transformer, TransformerDecoder, TransformerDecoderLayer,  # noqa: E501
                          TransformerEncoder, TransformerEncoderLayer)

__all__ = ["Module", "Linear", "Identity", "Conv2d", "MaxPool2d", "AvgPool2d", "Dropout", "ReLU", "GELU",
           "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "LeakyReLU", "SiLU", "Flatten", "Unflatten", "Sequential",
           "ModuleList", "ModuleDict", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding", "MSELoss", "L1Loss",
           "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "ParameterList", "ParameterDict"]
__all__ += ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
__all__ += ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
            "TransformerDecoder", "Transformer"]
from . import conv_extra, pooling_extra, resample  # noqa: E402
__all__ += [*conv_extra.__all__, *pooling_extra.__all__, *resample.__all__]
from . import activation_extra, dropout_extra, misc_extra, normalization_extra  # noqa: E402
__all__ += [*activation_extra.__all__, *dropout_extra.__all__, *misc_extra.__all__, *normalization_extra.__all__]
