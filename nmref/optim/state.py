"""Explicit optimizer state and hyper-parameters (small frozen dataclasses, no hidden globals)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import NMRefTypeError, NMRefValueError, as_float_array, check_finite_scalar, check_int, check_shape

__all__ = ["AdamHyper", "AdamState", "init_adam_state"]


@dataclass(frozen=True)
class AdamHyper:
    """AdamW hyper-parameters: learning rate γ, betas (β₁, β₂), ε, decoupled weight decay ω.

    Defaults are PyTorch's ``torch.optim.AdamW`` defaults. Validated on construction:
    ``lr ≥ 0``, ``0 ≤ β < 1``, ``eps ≥ 0``, ``weight_decay ≥ 0``, all finite.
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-2

    def __post_init__(self):
        check_finite_scalar("lr", self.lr, minimum=0.0)
        for name in ("beta1", "beta2"):
            v = check_finite_scalar(name, getattr(self, name), minimum=0.0)
            if v >= 1.0:
                raise NMRefValueError(f"{name} must be in [0, 1), got {v}")
        check_finite_scalar("eps", self.eps, minimum=0.0)
        check_finite_scalar("weight_decay", self.weight_decay, minimum=0.0)


@dataclass(frozen=True)
class AdamState:
    """``step``: number of updates already applied (the next update uses ``t = step + 1 ≥ 1``);
    ``exp_avg`` (first moment u), ``exp_avg_sq`` (second moment v): arrays of the parameter's shape/dtype."""

    step: int
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray

    def __post_init__(self):
        check_int("state.step", self.step, minimum=0)


def init_adam_state(params: np.ndarray) -> AdamState:
    """Zero moments and ``step = 0`` for a parameter array."""
    params = as_float_array("params", params)
    return AdamState(0, np.zeros_like(params), np.zeros_like(params))


def check_step_inputs(params, grads, state, hyper):
    """Shared validation of ``(params, grads, state, hyper)``; returns the arrays."""
    params = as_float_array("params", params)
    grads = as_float_array("grads", grads)
    check_shape("grads", grads, params.shape)
    if grads.dtype != params.dtype:
        raise NMRefTypeError(f"grads has dtype {grads.dtype}, expected params' dtype {params.dtype}")
    if not isinstance(state, AdamState):
        raise NMRefTypeError(f"state must be an AdamState, got {type(state).__name__}")
    if not isinstance(hyper, AdamHyper):
        raise NMRefTypeError(f"hyper must be an AdamHyper, got {type(hyper).__name__}")
    for name in ("exp_avg", "exp_avg_sq"):
        arr = as_float_array(f"state.{name}", getattr(state, name))
        check_shape(f"state.{name}", arr, params.shape)
        if arr.dtype != params.dtype:
            raise NMRefTypeError(f"state.{name} has dtype {arr.dtype}, expected params' dtype {params.dtype}")
    return params, grads
