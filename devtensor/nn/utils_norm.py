"""nn.utils.weight_norm / spectral_norm: PyTorch's classic hook-based reparametrisations.

Each installs a forward pre-hook that recomputes the plain attribute `module.<name>` from the
registered parameters (and, for spectral_norm, buffers) before every forward, so the layer's own
forward reads an ordinary tensor and autograd reaches the new parameters through it.  Parameter and
buffer names, their order, and hence state_dict keys, are PyTorch's.
"""
from __future__ import annotations

from ..autograd.grad_mode import no_grad
from .parameter import Parameter

__all__ = ["WeightNorm", "weight_norm", "remove_weight_norm", "SpectralNorm", "spectral_norm", "remove_spectral_norm"]


def _norm_except_dim(v, dim):
    """The 2-norm over every dim but `dim`, kept broadcastable against v; dim=-1: the whole norm
    (PyTorch's norm_except_dim, whose -1 means "no dim", not the last one)."""
    if dim == -1:
        return v.norm(2)
    nd = v.dim()
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], but got {dim})")
    dim %= nd
    moved = v.movedim(dim, 0) if dim else v
    n = moved.reshape(v.shape[dim], -1).norm(2, dim=1)
    return n.reshape([v.shape[dim] if d == dim else 1 for d in range(nd)])


class WeightNorm:
    """The pre-hook of weight_norm: <name> = <name>_g * <name>_v / ||<name>_v|| (over all dims but dim)."""

    def __init__(self, name, dim):
        self.name = name
        self.dim = -1 if dim is None else dim

    def compute_weight(self, module):
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return v * (g / _norm_except_dim(v, self.dim))

    @staticmethod
    def apply(module, name, dim):
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
        fn = WeightNorm(name, dim)
        weight = getattr(module, name)
        g = _norm_except_dim(weight, fn.dim).detach()
        del module._parameters[name]
        module.register_parameter(name + "_g", Parameter(g))
        module.register_parameter(name + "_v", Parameter(weight.detach()))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module):
        weight = self.compute_weight(module)
        delattr(module, self.name)
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        setattr(module, self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name="weight", dim=0):
    """Replace `module.<name>` by <name>_g (its norm over all dims but `dim`; dim=None: one norm of
    the whole tensor) and <name>_v (its direction), recombined before every forward."""
    WeightNorm.apply(module, name, dim)
    return module


def _remove_hook(module, cls, name, what):
    for k, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, cls) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[k]
            return module
    raise ValueError(f"{what} of '{name}' not found in {module}")


def remove_weight_norm(module, name="weight"):
    """Fold weight_norm back into a plain Parameter `module.<name>`."""
    return _remove_hook(module, WeightNorm, name, "weight_norm")


def _normalize(x, eps):
    return x / x.norm(2).clamp(min=eps)


class SpectralNorm:
    """The pre-hook of spectral_norm: <name> = <name>_orig / sigma, sigma estimated by power
    iteration on the buffers <name>_u, <name>_v (updated in place, in training mode only)."""

    def __init__(self, name="weight", n_power_iterations=1, dim=0, eps=1e-12):
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.name, self.dim, self.n_power_iterations, self.eps = name, dim, n_power_iterations, eps

    def reshape_weight_to_matrix(self, weight):
        if self.dim != 0:
            weight = weight.movedim(self.dim, 0)
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        weight_mat = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with no_grad():
                w = weight_mat.detach()
                for _ in range(self.n_power_iterations):
                    v.copy_(_normalize(w.t().mv(u), self.eps))
                    u.copy_(_normalize(w.mv(v), self.eps))
                # the buffers change at the next iteration: sigma's graph must keep today's values
                u, v = u.clone(), v.clone()
        sigma = u.dot(weight_mat.mv(v))
        return weight / sigma

    def remove(self, module):
        with no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        delattr(module, self.name)
        delattr(module, self.name + "_u")
        delattr(module, self.name + "_v")
        delattr(module, self.name + "_orig")
        module.register_parameter(self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))

    @staticmethod
    def apply(module, name, n_power_iterations, dim, eps):
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
        fn = SpectralNorm(name, n_power_iterations, dim, eps)
        weight = module._parameters[name]
        from ..ops.creation import randn

        with no_grad():
            h, w = fn.reshape_weight_to_matrix(weight).shape
            u = _normalize(randn(h, device=weight.device, dtype=weight.dtype), eps)
            v = _normalize(randn(w, device=weight.device, dtype=weight.dtype), eps)
        delattr(module, name)
        module.register_parameter(name + "_orig", weight)
        # `module.<name>` stays an attribute (init code reads it) but not a parameter: its data
        setattr(module, name, weight.detach())
        module.register_buffer(name + "_u", u)
        module.register_buffer(name + "_v", v)
        module.register_forward_pre_hook(fn)
        return fn


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Divide `module.<name>` by its largest singular value (the weight viewed as a matrix with `dim`
    as rows; dim=None: 1 for ConvTranspose layers, else 0), estimated by power iteration."""
    if dim is None:
        from .modules.conv_extra import ConvTranspose1d, ConvTranspose2d

        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d)) else 0
    SpectralNorm.apply(module, name, n_power_iterations, dim, eps)
    return module


def remove_spectral_norm(module, name="weight"):
    """Fold spectral_norm back into a plain Parameter `module.<name>` (sigma from the current u, v)."""
    return _remove_hook(module, SpectralNorm, name, "spectral_norm")

