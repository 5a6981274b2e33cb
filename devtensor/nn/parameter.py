"""nn.Parameter: a leaf Tensor that requires grad and that a Module registers when assigned.

Tensor has __slots__ and no public constructor (devtensor.tensor._wrap builds them), so a
Parameter is made with object.__new__ and the tensor's fields copied over; the subclass adds no
fields, so every op, the dispatch fast path and autograd treat it as a plain Tensor.
"""
from __future__ import annotations

from .. import dispatch as _dispatch
from ..tensor import Tensor


class Parameter(Tensor):
    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            from ..ops.creation import empty

            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: data must be a Tensor, got {type(data).__name__}")
        p = object.__new__(cls)
        p._data = data._data
        p._device = data._device
        p._vc = data._shared_vc()  # shares storage with `data`, so it shares its version counter too
        p._edge = None             # a parameter is always a leaf, even when made from a non-leaf
        p._base = None
        p._rg = False
        if requires_grad:
            p.requires_grad_(True)  # raises a clear error for integer data, as PyTorch does
        return p

    def __init__(self, data=None, requires_grad=True):  # Tensor.__init__ refuses direct construction
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        from ..autograd.grad_mode import no_grad

        with no_grad():
            p = Parameter(self.clone(), self._rg)
        g = self._grad_or_none()
        if g is not None:
            with no_grad():
                p._grad = g.clone()
        memo[id(self)] = p
        return p

    def __reduce_ex__(self, proto):
        # pickling copies to host and rebuilds a Parameter (DataLoader workers, deepcopy of modules)
        return (_rebuild_parameter, (self._host().copy(), str(self._device), self._rg))


def _rebuild_parameter(array, dev, rg):
    from ..ops.creation import tensor

    return Parameter(tensor(array, device=dev), rg)


class Buffer:
    """nn.Buffer(tensor, persistent=True): marks a tensor to be registered as a buffer on assignment."""

    def __init__(self, data, *, persistent=True):
        if not isinstance(data, Tensor):
            raise TypeError(f"Buffer: data must be a Tensor, got {type(data).__name__}")
        self.data = data
        self.persistent = persistent


_dispatch.TENSOR_CLASSES.add(Parameter)  # Parameters take the dispatch fast path like plain Tensors
