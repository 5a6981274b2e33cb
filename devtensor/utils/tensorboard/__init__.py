"""devtensor.utils.tensorboard: PyTorch's `torch.utils.tensorboard.SummaryWriter`, for devtensor tensors
on any device. The event files are written by tensorboardX (numpy + protobuf; `pip install
devtensor[tensorboard]`) and read by TensorBoard as usual: `tensorboard --logdir runs`.

    from devtensor.utils.tensorboard import SummaryWriter
    with SummaryWriter("runs/exp1") as writer:
        writer.add_scalar("loss/train", loss, step)        # a 0-d Tensor (cpu or cuda) or a number
"""
from .writer import SummaryWriter

__all__ = ["SummaryWriter"]
