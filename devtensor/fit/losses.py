"""What a loss given to compile() means: a callable is used as is, a name is looked up here.

The cross-entropy names take logits (raw scores), as PyTorch's functions do: a devtensor net ends in
a Linear layer, not a softmax."""
from __future__ import annotations

from ..nn import functional as F
from ..nn.modules.loss import BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss

LOSSES = {
    "cross_entropy": F.cross_entropy,
    "sparse_categorical_crossentropy": F.cross_entropy,
    "nll": F.nll_loss,
    "nll_loss": F.nll_loss,
    "mse": F.mse_loss,
    "mean_squared_error": F.mse_loss,
    "mae": F.l1_loss,
    "l1": F.l1_loss,
    "mean_absolute_error": F.l1_loss,
    "bce": F.binary_cross_entropy,
    "binary_crossentropy": F.binary_cross_entropy,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
}


def resolve_loss(loss):
    """The loss callable `(pred, target) -> Tensor` for a name or a callable; clear errors otherwise."""
    if isinstance(loss, str):
        fn = LOSSES.get(loss.lower())
        if fn is None:
            raise ValueError(f"compile: unknown loss {loss!r}; valid names are {', '.join(sorted(LOSSES))} "
                             f"(or pass a callable such as nn.CrossEntropyLoss())")
        return fn
    if callable(loss):
        return loss
    raise TypeError(f"compile: loss must be a name or a callable (pred, target) -> Tensor, "
                    f"got {type(loss).__name__}")


def loss_kind(loss_fn):
    """How the loss reads the net's output, so "accuracy" can read it the same way (as Keras picks
    its accuracy from the loss): "classes" (class scores vs labels), "logits" (one binary logit per
    target) or "probs" (anything else: binary probabilities, regression)."""
    if loss_fn in (F.cross_entropy, F.nll_loss) or isinstance(loss_fn, (CrossEntropyLoss, NLLLoss)):
        return "classes"
    if loss_fn is F.binary_cross_entropy_with_logits or isinstance(loss_fn, BCEWithLogitsLoss):
        return "logits"
    return "probs"
