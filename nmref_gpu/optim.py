"""Fused optimizer steps on flat or shaped float32 CuPy buffers (kernels: optim.cu), mirroring
:func:`nmref.ast_adamw_step` and :func:`nmref.adams_step` to the last bit, subnormals included (every
operation is a correctly rounded IEEE PTX instruction without flush-to-zero; every scalar is rounded to
float32 exactly as NumPy does)."""
from __future__ import annotations

import math

import numpy as np

from nmref._checks import NMRefTypeError, NMRefValueError, check_choice, check_finite_scalar, check_shape
from nmref.optim.adams import ADAMS_PLACEMENTS, adams_alpha
from nmref.optim.masked import check_second_moment
from nmref.optim.state import AdamHyper, AdamState
from ._module import as_device, blocks, cupy, module

_SCAL = np.dtype([("wd_factor", "<f4"), ("omb1", "<f4"), ("omb2", "<f4"), ("beta2", "<f4"), ("neg_step", "<f4"),
                  ("sqrt_bc2", "<f4"), ("eps", "<f4"), ("beta1_w", "<f4")])


def _mod():
    # the arithmetic is explicit IEEE PTX in optim.cu; these flags say the same for whatever the compiler adds
    return module("optim", ("--fmad=false",))


def _scalars(hyper: AdamHyper, t: int):
    s = np.zeros((), dtype=_SCAL)
    s["wd_factor"] = 1 - hyper.lr * hyper.weight_decay
    s["omb1"] = 1 - hyper.beta1
    s["omb2"] = 1 - hyper.beta2
    s["beta2"] = hyper.beta2
    s["neg_step"] = -(hyper.lr / (1 - hyper.beta1 ** t))
    s["sqrt_bc2"] = math.sqrt(1 - hyper.beta2 ** t)
    s["eps"] = hyper.eps
    s["beta1_w"] = 1 - float(s["omb1"])  # exact in float32 when it is used (omb1 >= 0.5)
    return s


def _check(params, grads, state, hyper, mask, lam):
    if not isinstance(state, AdamState):
        raise NMRefTypeError(f"state must be an AdamState, got {type(state).__name__}")
    if not isinstance(hyper, AdamHyper):
        raise NMRefTypeError(f"hyper must be an AdamHyper, got {type(hyper).__name__}")
    arrs = [as_device(n, a, dtypes={"float32"}) for n, a in
            (("params", params), ("grads", grads), ("state.exp_avg", state.exp_avg), ("state.exp_avg_sq", state.exp_avg_sq))]
    for n, a in zip(("grads", "state.exp_avg", "state.exp_avg_sq"), arrs[1:]):
        check_shape(n, a, params.shape)
    mask = as_device("mask", mask, dtypes={"bool"})
    check_shape("mask", mask, params.shape)
    lam = check_finite_scalar("lam", lam, minimum=0.0)
    return arrs, mask, lam


def _launch(name, arrs, mask, state, hyper, extra):
    cp = cupy()
    p_out, u_out, v_out = (cp.empty_like(arrs[0]) for _ in range(3))
    n = arrs[0].size
    t = state.step + 1
    if n:
        _mod().get_function(name)((blocks(n, 256),), (256,), (*arrs, mask, p_out, u_out, v_out, np.int64(n),
                                                               _scalars(hyper, t), *extra))
    return p_out, AdamState(t, u_out, v_out)


def ast_adamw_step(params, grads, state: AdamState, hyper: AdamHyper, *, mask, lam: float, second_moment: str = "update"):
    """As :func:`nmref.ast_adamw_step`; inputs untouched, new buffers returned."""
    arrs, mask, lam = _check(params, grads, state, hyper, mask, lam)
    mode = 0 if check_second_moment(second_moment) == "update" else 1
    return _launch("ast_adamw_kernel", arrs, mask, state, hyper, (np.float32(lam), np.int32(mode)))


def adams_step(params, grads, state: AdamState, hyper: AdamHyper, *, mask, lam: float, ramp_steps: int,
               placement: str = "after_momentum", second_moment: str | None = None):
    """As :func:`nmref.adams_step`."""
    arrs, mask, lam = _check(params, grads, state, hyper, mask, lam)
    check_choice("placement", placement, ADAMS_PLACEMENTS)
    if placement == "in_gradient" and second_moment is not None:
        raise NMRefValueError(f"second_moment={second_moment!r} is not used with placement='in_gradient'; leave it out")
    mode = 0 if check_second_moment("gradient" if second_moment is None else second_moment) == "update" else 1
    alpha = adams_alpha(state.step, ramp_steps)
    extra = (np.float32(alpha * lam), np.float32(1 - alpha), np.int32(ADAMS_PLACEMENTS.index(placement)), np.int32(mode))
    return _launch("adams_kernel", arrs, mask, state, hyper, extra)
