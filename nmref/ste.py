"""Straight-through estimators for N:M training: STE, SR-STE, Annealing SR-STE, mask refresh.

Forward uses the masked weight ``W̃ = m(W) ⊙ W``; the gradient ``g = ∂L/∂W̃`` is passed to every
weight (STE). SR-STE adds a decay on the pruned weights: ``g + λ_W (¬m ⊙ W)``.
"""
from __future__ import annotations

import numpy as np

from ._checks import (NMRefValueError, as_bool_array, as_float_array, check_finite_scalar, check_int, check_shape)
from .masks import nm_mask

__all__ = ["masked_weight", "sr_ste_grad", "annealing_lambda", "mask_refresh_due", "refresh_mask"]


def masked_weight(w: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``W̃ = m ⊙ W`` (pruned entries become +0.0; kept entries keep their bits)."""
    w = as_float_array("w", w)
    mask = as_bool_array("mask", mask)
    check_shape("mask", mask, w.shape)
    return np.where(mask, w, np.zeros((), w.dtype))


def sr_ste_grad(grad: np.ndarray, w: np.ndarray, mask: np.ndarray, lam: float) -> np.ndarray:
    """SR-STE gradient (Zhou et al. 2021): ``g̃ = g + λ (¬m ⊙ W)``; kept entries are ``g`` bit for bit.

    ``lam = 0`` gives plain STE. ``grad`` is ∂L/∂W̃ (the gradient w.r.t. the masked weight).
    """
    grad = as_float_array("grad", grad)
    w = as_float_array("w", w)
    check_shape("w", w, grad.shape)
    mask = as_bool_array("mask", mask)
    check_shape("mask", mask, grad.shape)
    lam = check_finite_scalar("lam", lam, minimum=0.0)
    return np.where(mask, grad, grad + w.dtype.type(lam) * w)  # lam rounded to w's dtype (bfloat16 stays bfloat16)


def annealing_lambda(t: int, alpha: float, t0: int) -> float:
    """Annealing SR-STE (AST eqs. 2–3): ``λ(t) = α·t/T0`` for ``t ≤ T0``, then ``α``.

    ``t ≥ 0`` is the iteration, ``T0 ≥ 1`` the ramp length (AST uses T0 = T1/4), ``α ≥ 0``.
    **Choice:** the AST paper writes ``λ(t) = α·t`` for ``t ≤ T0`` (so the plateau would be ``α·T0``);
    its public code, and nmref, divide by ``T0``, so that ``α`` is the plateau value itself.
    """
    t = check_int("t", t, minimum=0)
    t0 = check_int("t0", t0, minimum=1)
    alpha = check_finite_scalar("alpha", alpha, minimum=0.0)
    return alpha * t / t0 if t <= t0 else alpha


def mask_refresh_due(t: int, interval: int) -> bool:
    """True when the mask is recomputed at iteration ``t``: every ``interval`` (Δt) iterations, t = 0 included."""
    t = check_int("t", t, minimum=0)
    interval = check_int("interval", interval, minimum=1)
    return t % interval == 0


def refresh_mask(w: np.ndarray, mask_old: np.ndarray, n: int, m: int, *, axis: int = -1) -> tuple[np.ndarray, int]:
    """Recompute the magnitude N:M mask of ``w``; return ``(mask_new, flips)``, ``flips = ‖m_new − m_old‖₁``."""
    mask_new = nm_mask(w, n, m, axis=axis)
    mask_old = as_bool_array("mask_old", mask_old)
    check_shape("mask_old", mask_old, mask_new.shape)
    return mask_new, int(np.count_nonzero(mask_new != mask_old))
