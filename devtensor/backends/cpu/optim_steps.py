"""The fused optimizer steps on the cpu backend (numba loops): one pass over (param, grad, state)
instead of ~10 numpy passes.  optim_kernels.py registers them: Adam/AdamW, SGD and RMSprop through
their own wrappers below, Adagrad ... ASGD through `run_step` with the scalars of
backends/optim_portable.py.

In place on C-contiguous arrays of one float dtype; PyTorch's single-tensor (foreach=False) math.
Every element is updated on its own, so the parallel=True twins for very large arrays give the
same bits as the serial loops.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Elements from which the steps use their parallel=True twins (their idle OpenMP workers spin and
# slow the BLAS calls that follow, so only where the split clearly pays).
_PAR_MIN_OPTIM = 1 << 24

# Every scalar is passed in the arrays' dtype (float32 math for float32 params, as PyTorch does,
# and SIMD-friendly); the kernels contain no float literals in arithmetic.

_OPT_CHUNKS = 16  # work items of the parallel twins (a few per thread, for balance)


@njit(cache=True, error_model="numpy")
def _adam_range(lo, hi, p_, g_, m_, v_, vmax_, sc, decoupled, amsgrad, maximize):
    """Elements lo..hi; sc: _adam_scalars (1 - beta1, beta2, 1 - beta2, eps, wd, 1 - lr*wd,
    -lr / bias_correction1, sqrt(bias_correction2)) in the arrays' dtype."""
    omb1, beta2, omb2, eps, wd, decay, neg_step, bc2_sqrt = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5], sc[6], sc[7]
    p = p_[lo:hi]
    g = g_[lo:hi]
    m = m_[lo:hi]
    v = v_[lo:hi]
    vmax = vmax_[lo:hi] if amsgrad else vmax_[0:0]
    use_wd = wd != 0
    for i in range(p.size):
        gi = -g[i] if maximize else g[i]
        pi = p[i]
        if use_wd:
            if decoupled:
                pi = pi * decay
            else:
                gi = gi + wd * pi
        mi = m[i] + omb1 * (gi - m[i])  # exp_avg.lerp_(grad, 1 - beta1)
        vi = v[i] * beta2 + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            if vi > vm or vi != vi:
                vm = vi
            vmax[i] = vm
            vi = vm
        p[i] = pi + neg_step * (mi / (np.sqrt(vi) / bc2_sqrt + eps))


@njit(cache=True, error_model="numpy")
def _adam(p, g, m, v, vmax, sc, decoupled, amsgrad, maximize):
    _adam_range(0, p.size, p, g, m, v, vmax, sc, decoupled, amsgrad, maximize)


@njit(cache=True, parallel=True, error_model="numpy")
def _adam_par(p, g, m, v, vmax, sc, decoupled, amsgrad, maximize):
    n = p.size
    for c in prange(_OPT_CHUNKS):
        _adam_range(c * n // _OPT_CHUNKS, (c + 1) * n // _OPT_CHUNKS, p, g, m, v, vmax, sc, decoupled, amsgrad,
                    maximize)


def _adam_scalars(lr, beta1, beta2, eps, wd, step):
    """_adam's scalar arguments as Python floats (one place for adam_step_ and adam_steps_); the
    callers make an array of the parameters' dtype of them."""
    return (1.0 - beta1, beta2, 1.0 - beta2, eps, wd, 1.0 - lr * wd, -lr / (1.0 - beta1 ** step),
            math.sqrt(1.0 - beta2 ** step))


def adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
               weight_decay, decoupled, step, amsgrad, maximize):
    """One Adam (decoupled=False) / AdamW (decoupled=True) step, in place.  `step` counts
    this step (1 on the first).  All arrays C-contiguous, same shape and float dtype (they are
    updated through .reshape(-1) views); max_exp_avg_sq is needed iff amsgrad."""
    p = param.reshape(-1)
    if p.size == 0:
        return None
    amsgrad = bool(amsgrad) and max_exp_avg_sq is not None
    vmax = max_exp_avg_sq.reshape(-1) if amsgrad else p
    fn = _adam_par if p.size >= _PAR_MIN_OPTIM else _adam
    sc = np.array(_adam_scalars(float(lr), float(beta1), float(beta2), float(eps), float(weight_decay), int(step)),
                  dtype=p.dtype)
    fn(p, grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1), vmax, sc, bool(decoupled), amsgrad,
       bool(maximize))
    return None


@njit(cache=True, error_model="numpy")
def _adam_many(ps, gs, ms, vs, xs, sc, decoupled, amsgrad, maximize):
    for k in range(len(ps)):
        _adam_range(0, ps[k].size, ps[k], gs[k], ms[k], vs[k], xs[k], sc[k], decoupled, amsgrad, maximize)


def adam_steps_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps,
                weight_decay, decoupled, steps, amsgrad, maximize):
    """adam_step_ for a list of parameters of one float dtype (one group's hyper-parameters, each
    its own step count) in one call: the same arithmetic, element by element, as one adam_step_
    per parameter (the compiled replay's optimizer step; a call per parameter costs more than the
    update of a small one).  Lists of C-contiguous arrays; max_exp_avg_sqs is None unless amsgrad."""
    big = [k for k, p in enumerate(params) if p.size >= _PAR_MIN_OPTIM]
    for k in big:
        adam_step_(params[k], grads[k], exp_avgs[k], exp_avg_sqs[k],
                   max_exp_avg_sqs[k] if amsgrad else None, lr, beta1, beta2, eps, weight_decay,
                   decoupled, steps[k], amsgrad, maximize)
    ks = [k for k in range(len(params)) if k not in big] if big else range(len(params))
    if not ks:
        return None
    first = _adam_scalars(lr, beta1, beta2, eps, weight_decay, steps[ks[0]])
    sc = np.array([first if steps[k] == steps[ks[0]] else
                   _adam_scalars(lr, beta1, beta2, eps, weight_decay, steps[k]) for k in ks],
                  dtype=params[ks[0]].dtype)
    ps = tuple(params[k].reshape(-1) for k in ks)
    xs = tuple(max_exp_avg_sqs[k].reshape(-1) for k in ks) if amsgrad else ps
    _adam_many(ps, tuple(grads[k].reshape(-1) for k in ks), tuple(exp_avgs[k].reshape(-1) for k in ks),
               tuple(exp_avg_sqs[k].reshape(-1) for k in ks), xs, sc, bool(decoupled), bool(amsgrad),
               bool(maximize))
    return None


@njit(cache=True, error_model="numpy")
def _sgd_range(lo, hi, p_, g_, buf_, neg_lr, momentum, omd, wd, nesterov, maximize, first):
    p = p_[lo:hi]
    g = g_[lo:hi]
    use_mom = momentum != 0
    use_wd = wd != 0
    buf = buf_[lo:hi] if use_mom else buf_[0:0]
    for i in range(p.size):
        d = -g[i] if maximize else g[i]
        if use_wd:
            d = d + wd * p[i]
        if use_mom:
            b = d if first else momentum * buf[i] + omd * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] = p[i] + neg_lr * d


@njit(cache=True, error_model="numpy")
def _sgd(p, g, buf, neg_lr, momentum, omd, wd, nesterov, maximize, first):
    _sgd_range(0, p.size, p, g, buf, neg_lr, momentum, omd, wd, nesterov, maximize, first)


@njit(cache=True, parallel=True, error_model="numpy")
def _sgd_par(p, g, buf, neg_lr, momentum, omd, wd, nesterov, maximize, first):
    n = p.size
    for c in prange(_OPT_CHUNKS):
        _sgd_range(c * n // _OPT_CHUNKS, (c + 1) * n // _OPT_CHUNKS, p, g, buf, neg_lr, momentum,
                   omd, wd, nesterov, maximize, first)


def _sgd_scalars(f, lr, momentum, dampening, wd):
    """_sgd's scalar arguments, in the arrays' dtype `f` (one place for sgd_step_ and sgd_steps_)."""
    return f(-float(lr)), f(momentum), f(1.0 - float(dampening)), f(wd)


def sgd_step_(param, grad, momentum_buf, lr, momentum, dampening, weight_decay, nesterov,
              maximize, first_step):
    """One SGD step, in place.  momentum_buf (needed iff momentum != 0) is overwritten with
    the gradient on the first step (first_step=True), as PyTorch's clone does.  Arrays
    C-contiguous, same shape and float dtype."""
    p = param.reshape(-1)
    if p.size == 0:
        return None
    momentum = float(momentum) if momentum_buf is not None else 0.0
    buf = momentum_buf.reshape(-1) if momentum != 0.0 else p
    fn = _sgd_par if p.size >= _PAR_MIN_OPTIM else _sgd
    fn(p, grad.reshape(-1), buf, *_sgd_scalars(p.dtype.type, lr, momentum, dampening, weight_decay),
       bool(nesterov), bool(maximize), bool(first_step))
    return None


@njit(cache=True, error_model="numpy")
def _sgd_many(ps, gs, bufs, neg_lr, momentum, omd, wd, nesterov, maximize):
    for k in range(len(ps)):
        _sgd_range(0, ps[k].size, ps[k], gs[k], bufs[k], neg_lr, momentum, omd, wd, nesterov,
                   maximize, False)


def sgd_steps_(params, grads, momentum_bufs, lr, momentum, dampening, weight_decay, nesterov,
               maximize):
    """sgd_step_ (not a first momentum step) for a list of parameters of one float dtype in one
    call, as adam_steps_; momentum_bufs is None iff momentum == 0."""
    momentum = float(momentum) if momentum_bufs is not None else 0.0
    big = [k for k, p in enumerate(params) if p.size >= _PAR_MIN_OPTIM]
    for k in big:
        sgd_step_(params[k], grads[k], momentum_bufs[k] if momentum else None, lr, momentum, dampening,
                  weight_decay, nesterov, maximize, False)
    ks = [k for k in range(len(params)) if k not in big] if big else range(len(params))
    if not ks:
        return None
    ps = tuple(params[k].reshape(-1) for k in ks)
    bufs = tuple(momentum_bufs[k].reshape(-1) for k in ks) if momentum != 0.0 else ps
    _sgd_many(ps, tuple(grads[k].reshape(-1) for k in ks), bufs,
              *_sgd_scalars(ps[0].dtype.type, lr, momentum, dampening, weight_decay), bool(nesterov),
              bool(maximize))
    return None


@njit(cache=True, error_model="numpy")
def _rmsprop_range(lo, hi, p_, g_, sq_, buf_, gavg_, neg_lr, alpha, oma, eps, wd, momentum,
                   centered):
    p = p_[lo:hi]
    g = g_[lo:hi]
    sq = sq_[lo:hi]
    use_mom = momentum > 0
    use_wd = wd != 0
    buf = buf_[lo:hi] if use_mom else buf_[0:0]
    gavg = gavg_[lo:hi] if centered else gavg_[0:0]
    for i in range(p.size):
        gi = g[i]
        if use_wd:
            gi = gi + wd * p[i]
        sa = sq[i] * alpha + oma * gi * gi
        sq[i] = sa
        if centered:
            ga = gavg[i] + oma * (gi - gavg[i])  # grad_avg.lerp_(grad, 1 - alpha)
            gavg[i] = ga
            avg = np.sqrt(sa - ga * ga) + eps
        else:
            avg = np.sqrt(sa) + eps
        if use_mom:
            b = buf[i] * momentum + gi / avg
            buf[i] = b
            p[i] = p[i] + neg_lr * b
        else:
            p[i] = p[i] + neg_lr * (gi / avg)


@njit(cache=True, error_model="numpy")
def _rmsprop(p, g, sq, buf, gavg, neg_lr, alpha, oma, eps, wd, momentum, centered):
    _rmsprop_range(0, p.size, p, g, sq, buf, gavg, neg_lr, alpha, oma, eps, wd, momentum,
                   centered)


@njit(cache=True, parallel=True, error_model="numpy")
def _rmsprop_par(p, g, sq, buf, gavg, neg_lr, alpha, oma, eps, wd, momentum, centered):
    n = p.size
    for c in prange(_OPT_CHUNKS):
        _rmsprop_range(c * n // _OPT_CHUNKS, (c + 1) * n // _OPT_CHUNKS, p, g, sq, buf, gavg,
                       neg_lr, alpha, oma, eps, wd, momentum, centered)


def rmsprop_step_(param, grad, square_avg, momentum_buf, grad_avg, lr, alpha, eps, weight_decay,
                  momentum, centered):
    """One RMSprop step, in place (PyTorch's math).  momentum_buf is needed iff momentum > 0,
    grad_avg iff centered.  Arrays C-contiguous, same shape and float dtype."""
    p = param.reshape(-1)
    if p.size == 0:
        return None
    f = p.dtype.type
    momentum = float(momentum) if momentum_buf is not None else 0.0
    centered = bool(centered) and grad_avg is not None
    buf = momentum_buf.reshape(-1) if momentum > 0.0 else p
    gavg = grad_avg.reshape(-1) if centered else p
    fn = _rmsprop_par if p.size >= _PAR_MIN_OPTIM else _rmsprop
    fn(p, grad.reshape(-1), square_avg.reshape(-1), buf, gavg, f(-float(lr)), f(alpha),
       f(1.0 - float(alpha)), f(eps), f(weight_decay), f(momentum), centered)
    return None


# ---- Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD -------------------------------------------
# The kernel scalars come from backends/optim_portable.py (STEPS[name].scalars, already in the arrays'
# dtype) and each loop transcribes that module's array-level step for one element; `run_step` calls
# a loop directly for [0, n) or its parallel=True twin. s1 is the second state array (or any array
# when the step keeps one). The loops index local slices from 0, as the Adam loop does: indexing the
# arguments from `lo` instead keeps LLVM from vectorizing them.

@njit(cache=True, error_model="numpy", inline="always")
def _grad(g, p, i, wd, maximize):
    """The gradient element i of a step uses: negated to maximize, plus L2 weight decay."""
    gi = -g[i] if maximize else g[i]
    return gi + wd * p[i] if wd != 0 else gi


@njit(cache=True, error_model="numpy")
def _adagrad_range(lo, hi, p_, g_, s_, s1_, neg_lr, eps, wd, maximize):
    p, g, s = p_[lo:hi], g_[lo:hi], s_[lo:hi]  # local views: the loop vectorizes
    for i in range(p.size):
        gi = _grad(g, p, i, wd, maximize)
        si = s[i] + gi * gi
        s[i] = si
        p[i] = p[i] + neg_lr * gi / (np.sqrt(si) + eps)


@njit(cache=True, error_model="numpy")
def _adadelta_range(lo, hi, p_, g_, sq_, acc_, neg_lr, rho, omr, eps, wd, maximize):
    p, g, sq, acc = p_[lo:hi], g_[lo:hi], sq_[lo:hi], acc_[lo:hi]
    for i in range(p.size):
        gi = _grad(g, p, i, wd, maximize)
        si = sq[i] * rho + omr * gi * gi
        sq[i] = si
        delta = np.sqrt(acc[i] + eps) / np.sqrt(si + eps) * gi
        acc[i] = acc[i] * rho + omr * delta * delta
        p[i] = p[i] + neg_lr * delta


@njit(cache=True, error_model="numpy", inline="always")
def _lerp(a, b, w, omw, small):
    return a + w * (b - a) if small else b - (b - a) * omw


@njit(cache=True, error_model="numpy")
def _adamax_range(lo, hi, p_, g_, m_, u_, neg_lr, w, omw, beta2, eps, wd, maximize, small):
    p, g, m, u = p_[lo:hi], g_[lo:hi], m_[lo:hi], u_[lo:hi]
    for i in range(p.size):
        gi = _grad(g, p, i, wd, maximize)
        mi = _lerp(m[i], gi, w, omw, small)
        m[i] = mi
        ui = u[i] * beta2
        ai = abs(gi) + eps
        if ai > ui or ai != ai:  # torch.maximum: the larger, and NaN wins
            ui = ai
        u[i] = ui
        p[i] = p[i] + neg_lr * mi / ui


@njit(cache=True, error_model="numpy", inline="always")
def _adam_moments(i, p, g, m, v, w, omw, beta2, omb2, wd, decay, maximize, small):
    """NAdam's and RAdam's shared start for element i: decay, L2 decay, Adam's two moments (stored);
    returns the decayed parameter, the gradient used and the new moments."""
    gi = -g[i] if maximize else g[i]
    pi = p[i] * decay if decay != 1 else p[i]
    if wd != 0:
        gi = gi + wd * pi
    mi = _lerp(m[i], gi, w, omw, small)
    vi = v[i] * beta2 + omb2 * gi * gi
    m[i] = mi
    v[i] = vi
    return pi, gi, mi, vi


@njit(cache=True, error_model="numpy")
def _nadam_range(lo, hi, p_, g_, m_, v_, w, omw, beta2, omb2, eps, wd, decay, bc2, gcoef, acoef, maximize,
                 small):
    p, g, m, v = p_[lo:hi], g_[lo:hi], m_[lo:hi], v_[lo:hi]
    for i in range(p.size):
        pi, gi, mi, vi = _adam_moments(i, p, g, m, v, w, omw, beta2, omb2, wd, decay, maximize, small)
        denom = np.sqrt(vi / bc2) + eps
        pi = pi + gcoef * gi / denom
        p[i] = pi + acoef * mi / denom


@njit(cache=True, error_model="numpy")
def _radam_range(lo, hi, p_, g_, m_, v_, w, omw, beta2, omb2, eps, wd, decay, bc1, lr, bc2_sqrt, rect, maximize,
                 small, rectified):
    p, g, m, v = p_[lo:hi], g_[lo:hi], m_[lo:hi], v_[lo:hi]
    for i in range(p.size):
        pi, gi, mi, vi = _adam_moments(i, p, g, m, v, w, omw, beta2, omb2, wd, decay, maximize, small)
        c = mi / bc1 * lr
        if rectified:
            p[i] = pi - c * (bc2_sqrt / (np.sqrt(vi) + eps)) * rect
        else:
            p[i] = pi - c


@njit(cache=True, error_model="numpy")
def _rprop_range(lo, hi, p_, g_, prev_, ss_, etaminus, etaplus, smin, smax, maximize):
    p, g, prev, ss = p_[lo:hi], g_[lo:hi], prev_[lo:hi], ss_[lo:hi]
    zero = smin - smin
    for i in range(p.size):
        gi = -g[i] if maximize else g[i]
        s = gi * prev[i]
        if s > 0:
            si = ss[i] * etaplus
        elif s < 0:
            si = ss[i] * etaminus
            gi = zero  # a sign change: no step now and no sign memory for the next
        elif s == 0:
            si = ss[i]
        else:  # NaN: the factor is NaN, as torch.sign(NaN) leaves it
            si = ss[i] * s
        if si < smin:  # clamp_(smin, smax); NaN stays
            si = smin
        if si > smax:
            si = smax
        ss[i] = si
        d = np.sign(gi)
        p[i] = p[i] - d * si
        prev[i] = gi


@njit(cache=True, error_model="numpy")
def _asgd_range(lo, hi, p_, g_, ax_, ax1_, neg_eta, decay, mu, wd, maximize, average):
    p, g, ax = p_[lo:hi], g_[lo:hi], ax_[lo:hi]
    for i in range(p.size):
        gi = _grad(g, p, i, wd, maximize)
        pi = p[i] * decay + neg_eta * gi
        p[i] = pi
        ax[i] = ax[i] + (pi - ax[i]) * mu if average else pi


@njit(cache=True, parallel=True, error_model="numpy")
def _adagrad_par(p, g, s0, s1, a, b, c, f0):
    n = p.size
    for k in prange(_OPT_CHUNKS):
        _adagrad_range(k * n // _OPT_CHUNKS, (k + 1) * n // _OPT_CHUNKS, p, g, s0, s1, a, b, c, f0)


@njit(cache=True, parallel=True, error_model="numpy")
def _adadelta_par(p, g, s0, s1, a, b, c, d, e, f0):
    n = p.size
    for k in prange(_OPT_CHUNKS):
        _adadelta_range(k * n // _OPT_CHUNKS, (k + 1) * n // _OPT_CHUNKS, p, g, s0, s1, a, b, c, d, e, f0)


@njit(cache=True, parallel=True, error_model="numpy")
def _adamax_par(p, g, s0, s1, a, b, c, d, e, h, f0, f1):
    n = p.size
    for k in prange(_OPT_CHUNKS):
        _adamax_range(k * n // _OPT_CHUNKS, (k + 1) * n // _OPT_CHUNKS, p, g, s0, s1, a, b, c, d, e, h, f0, f1)


@njit(cache=True, parallel=True, error_model="numpy")
def _nadam_par(p, g, s0, s1, a, b, c, d, e, h, i, j, l, m, f0, f1):
    n = p.size
    for k in prange(_OPT_CHUNKS):
        _nadam_range(k * n // _OPT_CHUNKS, (k + 1) * n // _OPT_CHUNKS, p, g, s0, s1, a, b, c, d, e, h, i, j, l, m,
                     f0, f1)


@njit(cache=True, parallel=True, error_model="numpy")
def _radam_par(p, g, s0, s1, a, b, c, d, e, h, i, j, l, m, o, f0, f1, f2):
    n = p.size
    for k in prange(_OPT_CHUNKS):
        _radam_range(k * n // _OPT_CHUNKS, (k + 1) * n // _OPT_CHUNKS, p, g, s0, s1, a, b, c, d, e, h, i, j, l, m,
                     o, f0, f1, f2)


@njit(cache=True, parallel=True, error_model="numpy")
def _rprop_par(p, g, s0, s1, a, b, c, d, f0):
    n = p.size
    for k in prange(_OPT_CHUNKS):
        _rprop_range(k * n // _OPT_CHUNKS, (k + 1) * n // _OPT_CHUNKS, p, g, s0, s1, a, b, c, d, f0)


@njit(cache=True, parallel=True, error_model="numpy")
def _asgd_par(p, g, s0, s1, a, b, c, d, f0, f1):
    n = p.size
    for k in prange(_OPT_CHUNKS):
        _asgd_range(k * n // _OPT_CHUNKS, (k + 1) * n // _OPT_CHUNKS, p, g, s0, s1, a, b, c, d, f0, f1)


LOOPS = {  # op name -> (loop over [lo, hi), its parallel=True twin)
    "adagrad_step_": (_adagrad_range, _adagrad_par), "adadelta_step_": (_adadelta_range, _adadelta_par),
    "adamax_step_": (_adamax_range, _adamax_par), "nadam_step_": (_nadam_range, _nadam_par),
    "radam_step_": (_radam_range, _radam_par), "rprop_step_": (_rprop_range, _rprop_par),
    "asgd_step_": (_asgd_range, _asgd_par),
}


def run_step(name, param, grad, state, scalars, flags):
    """One step of op `name` in place: param and the state arrays 1-D C-contiguous views of one
    float dtype, grad 1-D of that dtype, `scalars` in that dtype and `flags` (bools) as
    optim_portable.STEPS[name].scalars returns them."""
    n = param.size
    if n == 0:
        return
    s0 = state[0]
    s1 = state[1] if len(state) > 1 else s0
    serial, par = LOOPS[name]
    if n >= _PAR_MIN_OPTIM:
        par(param, grad, s0, s1, *scalars, *flags)
    else:
        serial(0, n, param, grad, s0, s1, *scalars, *flags)
