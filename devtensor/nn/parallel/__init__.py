"""devtensor.nn.parallel: DistributedDataParallel (PyTorch's name and semantics) over
devtensor.distributed, and the helper that loads a DDP checkpoint ("module."-prefixed keys) into the
bare model."""
from .distributed import DistributedDataParallel, consume_prefix_in_state_dict_if_present

__all__ = ["DistributedDataParallel", "consume_prefix_in_state_dict_if_present"]
