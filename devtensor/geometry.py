"""Shape arithmetic shared by the ops' meta rules, the public functions and the kernels.

Every output size of a convolution, a pooling window or a broadcast is computed here and
nowhere else, so cpu, cuda, meta and graph capture agree by construction. The functions take
plain ints and tuples, raise ValueError / RuntimeError / IndexError with a message that names
the offending value (dispatch prefixes the op's name), and import nothing above numpy.
"""
from __future__ import annotations

import numbers


def pair(v, name):
    """An int or a 1- or 2-sequence of ints -> (a, b), as PyTorch's _pair."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v), int(v))
    try:
        t = tuple(v)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    if not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in t):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if len(t) == 1:
        return (int(t[0]), int(t[0]))
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return (int(t[0]), int(t[1]))


def check_positive(name, v):
    if v[0] <= 0 or v[1] <= 0:
        raise RuntimeError(f"{name} must be greater than zero, got {tuple(v)}")


def check_non_negative(name, v):
    if v[0] < 0 or v[1] < 0:
        raise RuntimeError(f"{name} must be non-negative, got {tuple(v)}")


def conv_out(size, kernel, stride, padding, dilation):
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_out_hw(hw, khw, stride, padding, dilation):
    return (conv_out(hw[0], khw[0], stride[0], padding[0], dilation[0]),
            conv_out(hw[1], khw[1], stride[1], padding[1], dilation[1]))


def pool_out(size, kernel, stride, padding, dilation, ceil_mode):
    """Output length of a pooling window along one axis. With ceil_mode the last window may hang
    over the padded end, but must start inside the input or its left padding (PyTorch's rule)."""
    num = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        o = -(-num // stride) + 1
        if (o - 1) * stride >= size + padding:
            o -= 1
    else:
        o = num // stride + 1
    return o


def pool2d_out_hw(hw, kernel, stride, padding, dilation, ceil_mode):
    return (pool_out(hw[0], kernel[0], stride[0], padding[0], dilation[0], ceil_mode),
            pool_out(hw[1], kernel[1], stride[1], padding[1], dilation[1], ceil_mode))


def check_pool2d(kernel, stride, padding, dilation):
    """The attribute checks every pooling op shares (PyTorch's messages)."""
    check_positive("kernel_size", kernel)
    check_positive("stride", stride)
    check_non_negative("padding", padding)
    check_positive("dilation", dilation)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got padding={tuple(padding)} "
                         f"and kernel_size={tuple(kernel)}")


def broadcast_shapes(*shapes):
    """numpy / PyTorch broadcasting of several shapes; RuntimeError naming them on a mismatch."""
    n = max((len(s) for s in shapes), default=0)
    out = [1] * n
    for s in shapes:
        off = n - len(s)
        for i, d in enumerate(s):
            o = out[off + i]
            if o == 1:
                out[off + i] = d
            elif d != 1 and d != o:
                raise RuntimeError(f"the size of tensor a ({o}) must match the size of tensor b ({d}) at "
                                   f"non-singleton dimension {off + i} (shapes "
                                   + ", ".join(str(list(x)) for x in shapes) + " cannot be broadcast together)")
    return tuple(out)


def reduced_shape(shape, dims, keepdim):
    """Shape after reducing `dims` (a sorted tuple of axes, or None for all)."""
    if dims is None:
        return (1,) * len(shape) if keepdim else ()
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def norm_dim(dim, ndim, op="dim"):
    """One dim index -> non-negative, checked (a 0-d tensor accepts -1 and 0)."""
    n = max(ndim, 1)
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return int(dim) % n


def slice_len(size, s):
    """Length of x[s] along an axis of `size` (steps > 0; the public functions reject others)."""
    start, stop, step = s.indices(size)
    return max(0, -(-(stop - start) // step))


def index_shape(shape, key):
    """Shape of x[key] under numpy's rules for a key already normalised by ops/index.py: ints,
    slices, None, Ellipsis and integer index arrays (anything with .shape). Boolean masks make
    the shape depend on the data: the caller must not pass them here."""
    n_used = sum(1 for k in key if k is not None and k is not Ellipsis)
    key = list(key)
    ell = [i for i, k in enumerate(key) if k is Ellipsis]
    if ell:
        i = ell[0]
        key[i:i + 1] = [slice(None)] * (len(shape) - n_used)
    else:
        key += [slice(None)] * (len(shape) - n_used)
    out, adv_shapes, adv_pos, axis = [], [], [], 0
    for k in key:
        if k is None:
            out.append(1)
        elif isinstance(k, slice):
            out.append(slice_len(shape[axis], k))
            axis += 1
        elif hasattr(k, "shape"):
            adv_shapes.append(tuple(k.shape))
            adv_pos.append(len(out))
            out.append(None)  # placeholder: where the advanced dims go if the advanced indices are adjacent
            axis += 1
        else:  # an int
            i = int(k)
            if not -shape[axis] <= i < shape[axis]:
                raise IndexError(f"index {i} is out of bounds for dimension {axis} with size {shape[axis]}")
            adv_pos.append(len(out))
            out.append(None)
            adv_shapes.append(())
            axis += 1
    if not any(hasattr(k, "shape") for k in key):  # basic indexing: ints drop their axis
        return tuple(d for d in out if d is not None)
    # advanced indexing (ints count as 0-d index arrays): the broadcast index shape goes where the
    # first advanced index stood when all are adjacent, else in front (numpy's rule)
    b = broadcast_shapes(*adv_shapes)
    adjacent = adv_pos == list(range(adv_pos[0], adv_pos[0] + len(adv_pos)))
    rest = [d for d in out if d is not None]
    if adjacent:
        first = adv_pos[0]
        return tuple(d for d in out[:first] if d is not None) + b + tuple(d for d in out[first:] if d is not None)
    return b + tuple(rest)
