"""Weight scaling (CAST) — **documented interpretation**, see ``docs/optimizers.md``.

CAST describes a scale that restores the magnitude a sparse weight loses while keeping its
pattern. nmref defines it, following S-STE (Hu et al. 2024), as the least-squares factor that best
fits a *reference* weight with the scaled sparse one:

    β = ⟨W_ref, S⟩ / ⟨S, S⟩        (per tensor, or per output row with ``axis=-1``)

``S`` is the sparse weight (``W ⊙ m``, or the soft-thresholded weight of :func:`soft_threshold_nm`)
and ``W_ref`` the weight whose magnitude should be kept (the dense weight before pruning/decay, or
the teacher's). Note ``W_ref = W`` with ``S = W ⊙ m`` gives β = 1 exactly: the hard mask loses no
magnitude on the kept weights, so the reference must be chosen explicitly.
"""
from __future__ import annotations

import numpy as np

from ._checks import NMRefValueError, as_float_array, check_axis, check_divisible, check_nm, check_shape, grouped, ungrouped

__all__ = ["soft_threshold_nm", "weight_scale"]


def soft_threshold_nm(w: np.ndarray, n: int, m: int, *, axis: int = -1) -> np.ndarray:
    """S-STE's continuous N:M pruning: per group, ``S(w)_i = sign(w_i)·max(|w_i| − τ, 0)``, with
    ``τ`` the (n+1)-th largest ``|w|`` of the group (``τ = 0`` when ``n = m``).

    At most n entries survive (fewer on ties at τ); the map is continuous in ``w``. NaN raises.
    """
    n, m = check_nm(n, m)
    w = as_float_array("w", w, allow_nan=False)
    axis = check_axis(axis, w.ndim)
    check_divisible("w", w.shape, axis, m)
    g = grouped(w, axis, m)
    a = np.abs(g)
    if n == m or w.size == 0:
        tau = np.zeros(a.shape[:-1] + (1,), dtype=w.dtype)
    else:
        tau = -np.partition(-a, n, axis=-1)[..., n:n + 1]  # (n+1)-th largest magnitude
    out = np.sign(g) * np.maximum(a - tau, 0)
    return ungrouped(out.astype(w.dtype), axis)


def weight_scale(w_ref: np.ndarray, sparse: np.ndarray, *, axis: int | None = None) -> np.ndarray | float:
    """``β = ⟨W_ref, S⟩ / ⟨S, S⟩`` in float64: a float (``axis=None``) or one factor per slice along
    the other axes when ``axis`` names the reduced axis (``axis=-1``: one β per output row).
    A slice with ``⟨S, S⟩ = 0`` raises (no scale fits an all-zero weight)."""
    w_ref = as_float_array("w_ref", w_ref, allow_nan=False)
    sparse = as_float_array("sparse", sparse, allow_nan=False)
    check_shape("sparse", sparse, w_ref.shape)
    r, s = w_ref.astype(np.float64), sparse.astype(np.float64)
    if axis is None:
        num, den = float(np.sum(r * s)), float(np.sum(s * s))
        if den == 0:
            raise NMRefValueError("sparse is all zero: ⟨S, S⟩ = 0, no scale is defined")
        return num / den
    axis = check_axis(axis, w_ref.ndim)
    num, den = np.sum(r * s, axis=axis), np.sum(s * s, axis=axis)
    if (den == 0).any():
        raise NMRefValueError(f"sparse has an all-zero slice along axis {axis}: ⟨S, S⟩ = 0 there, no scale is defined")
    return num / den
