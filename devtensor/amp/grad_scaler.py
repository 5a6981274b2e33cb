"""torch.amp.GradScaler: loss scaling for float16 training. The loss is multiplied by a scale before
backward so small float16 gradients do not flush to zero; unscale_ divides the gradients back and
records whether any is inf/nan; step skips the optimizer step when one was; update lowers the scale
after such a step (backoff_factor) and raises it after growth_interval clean ones (growth_factor).

The scale lives on the device, so scale() multiplies without a sync, with a host copy beside it (the
growth tracker is a host int): the one host read per step is step()'s inf flag, which decides whether
the optimizer runs. Under dt.compile that read makes the step run eagerly, with compile's warning."""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import dtypes as _dt
from ..autograd.grad_mode import no_grad
from ..backends import get_backend
from ..graph.capture import host_value
from ..ops.creation import full, zeros
from ..tensor import Tensor

READY, UNSCALED, STEPPED = "ready", "unscaled", "stepped"


def _fresh_state():
    return {"stage": READY, "found_inf": None}


class GradScaler:
    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self._device = str(device)
        self._enabled = bool(enabled)
        if self._enabled and self._device.split(":")[0] == "cuda" and not get_backend("cuda").is_available()[0]:
            warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  Disabling.",
                          UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise ValueError("GradScaler: the growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise ValueError("GradScaler: the backoff factor must be < 1.0.")
            if not isinstance(growth_interval, int) or growth_interval <= 0:
                raise ValueError("GradScaler: growth_interval must be a positive int.")
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._value = float(np.float32(init_scale))  # the scale on the host (float32's value)
        self._tracker = 0            # clean steps since the scale last changed
        self._scale = None           # 0-d float32 tensor (the scaled tensor keeps its dtype), made on first use
        self._per_optimizer = {}     # id(optimizer) -> its stage in this iteration and inf flag

    # ---- scaling -----------------------------------------------------------------------------------
    def _lazy_init(self, dev):
        self._scale = full((), self._value, dtype=_dt.float32, device=dev)

    def _set(self, value):
        self._value = value
        self._scale.fill_(value)

    def scale(self, outputs):
        """outputs times the current scale: a tensor, or tensors nested in lists and tuples (same structure)."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init(outputs.device)
            return outputs * self._scale.to(outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("GradScaler.scale: outputs must be a Tensor or an iterable of Tensors")

    def _check_scale(self, fn):
        if self._scale is None:
            raise RuntimeError(f"GradScaler.{fn}: attempted {fn} but the scale is not initialised: no scale() "
                               "call has run this iteration (scale the loss before backward)")

    # ---- unscaling and stepping ------------------------------------------------------------------------
    def unscale_(self, optimizer):
        """Divide optimizer's gradients by the scale, in place, and record whether any is inf or nan.
        At most once per optimizer between update() calls (as PyTorch)."""
        if not self._enabled:
            return
        self._check_scale("unscale_")
        st = self._per_optimizer.setdefault(id(optimizer), _fresh_state())
        if st["stage"] is UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if st["stage"] is STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        with no_grad():
            inv = self._scale.double().reciprocal().float()
            found = zeros((), dtype=_dt.float32, device=self._scale.device)
            seen = 0
            for group in optimizer.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is None:
                        continue
                    if g.dtype is _dt.float16:
                        raise ValueError("Attempting to unscale FP16 gradients.")  # master weights belong in fp32
                    g.mul_(inv.to(g.device))
                    found = found + (~g.isfinite()).any().to(found.device).float()
                    seen += 1
        st["found_inf"] = found if seen else None
        st["stage"] = UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, **kwargs) unless the (unscaled) gradients hold an inf or nan: then the step
        is skipped and None returned. Unscales first if unscale_ was not called."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale("step")
        st = self._per_optimizer.setdefault(id(optimizer), _fresh_state())
        if st["stage"] is STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if st["stage"] is READY:
            self.unscale_(optimizer)
        if st["found_inf"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        ret = None
        st["inf"] = host_value(st["found_inf"], "GradScaler.step's inf check")  # the one host read per step
        if not st["inf"]:
            ret = optimizer.step(*args, **kwargs)
        st["stage"] = STEPPED
        return ret

    def update(self, new_scale=None):
        """The scale for the next iteration: new_scale when given (a float or a 1-element float32 tensor),
        else backoff after a step with infs, growth after growth_interval clean steps in a row."""
        if not self._enabled:
            return
        self._check_scale("update")
        with no_grad():
            if new_scale is not None:
                if isinstance(new_scale, Tensor):
                    if new_scale.numel() != 1 or new_scale.dtype is not _dt.float32 or new_scale.requires_grad:
                        raise ValueError("new_scale should be a float or a 1-element torch.FloatTensor with "
                                         "requires_grad=False.")
                    self._set(float(host_value(new_scale, "GradScaler.update's new_scale")))
                else:
                    self._set(float(np.float32(new_scale)))
            else:
                checked = [s for s in self._per_optimizer.values() if s["found_inf"] is not None]
                if not checked:
                    raise AssertionError("No inf checks were recorded prior to update.")
                # step() read its flag already; an optimizer only unscale_d (no step) is read here
                self._update_scale(any(s["inf"] if "inf" in s else host_value(s["found_inf"], "GradScaler.update's "
                                       "inf check") for s in checked))
        self._per_optimizer = {}

    def _update_scale(self, found_inf):
        """torch._amp_update_scale_'s rule, on the host copy, in float32 arithmetic as PyTorch's kernel."""
        if found_inf:
            self._set(float(np.float32(self._value) * np.float32(self._backoff_factor)))
            self._tracker = 0
            return
        self._tracker += 1
        if self._tracker == self._growth_interval:
            with np.errstate(over="ignore"):  # past float32's range the product is inf: the scale stays
                grown = float(np.float32(self._value) * np.float32(self._growth_factor))
            if math.isfinite(grown):
                self._set(grown)
            self._tracker = 0

    # ---- accessors and state -----------------------------------------------------------------------
    def get_scale(self):
        if not self._enabled:
            return 1.0
        return self._value

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self):
        if not self._enabled:
            return 0
        return self._tracker

    def is_enabled(self):
        return self._enabled

    def state_dict(self):
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._tracker = int(state_dict["_growth_tracker"])
        self._value = float(np.float32(state_dict["scale"]))
        if self._scale is not None:
            self._scale.fill_(self._value)
