"""SLoRB — Sparse Low-Rank Boosting (AST §4).

For ``W ∈ R^{N_out×d}``, mask ``M``, group size ``k`` (``d % k == 0``), rank ``r = d/k``:

* projection ``X ∈ {0,1}^{r×d}``, ``X_ij = 1`` iff ``i·k ≤ j < (i+1)·k``;
* init ``S_ij = (1/k) Σ_{p=jk}^{(j+1)k−1} W_ip·¬M_ip`` — the mean of the pruned weights of group j
  (kept entries count as zero), so each group's mean of ``W⊙M + SX`` equals that of ``W``;
* effective weight ``W_eff = W⊙M + S X``; forward ``y = x(W⊙M)ᵀ + (x Xᵀ) Sᵀ + b``;
* gradients, with ``G = ∂L/∂y`` flattened to ``[tokens, N_out]`` and ``x`` to ``[tokens, d]``:
  ``∂L/∂S = Gᵀ (x Xᵀ)``, ``∂L/∂x = G W_eff``, ``∂L/∂W = (Gᵀx) ⊙ M`` — or ``Gᵀx`` with ``ste=True``
  (the straight-through estimator passes the masked weight's gradient to every weight).

X is fixed (not trained). Extra parameters: ``N_out·d/k`` (``slorb_parameter_overhead``).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ._checks import (NMRefValueError, as_bool_array, as_float_array, check_bool, check_float_dtype, check_int, check_nm,
                      check_shape, tokens_2d)

__all__ = ["slorb_projection", "slorb_init", "slorb_effective_weight", "slorb_forward", "slorb_backward",
           "slorb_parameter_overhead"]


def _check_k(d: int, k) -> int:
    k = check_int("k", k, minimum=1)
    if d % k:
        raise NMRefValueError(f"the input dimension d = {d} is not divisible by the SLoRB group size k = {k}")
    return k


def _check_wm(w, mask):
    w = as_float_array("w", w)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be 2-D [N_out, d], got shape {w.shape}")
    mask = as_bool_array("mask", mask)
    check_shape("mask", mask, w.shape)
    return w, mask


def slorb_projection(d: int, k: int, dtype=np.float32) -> np.ndarray:
    """``X ∈ {0,1}^{(d/k)×d}`` with ones on the block diagonal of width k."""
    d = check_int("d", d, minimum=1)
    k = _check_k(d, k)
    dtype = check_float_dtype("dtype", dtype)
    return np.kron(np.eye(d // k, dtype=dtype), np.ones((1, k), dtype=dtype))


def slorb_init(w: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """``S ∈ R^{N_out×(d/k)}``: mean of the pruned weights of each group of k (sum in float64, cast to w's dtype)."""
    w, mask = _check_wm(w, mask)
    k = _check_k(w.shape[1], k)
    pruned = np.where(mask, 0.0, w.astype(np.float64))
    return (pruned.reshape(w.shape[0], -1, k).sum(axis=-1) / k).astype(w.dtype)


def _check_s(s, w, k):
    s = as_float_array("s", s)
    check_shape("s", s, (w.shape[0], w.shape[1] // k))
    return s


def slorb_effective_weight(w: np.ndarray, mask: np.ndarray, s: np.ndarray, k: int) -> np.ndarray:
    """``W⊙M + S X`` (``S X`` repeats each column of S k times)."""
    w, mask = _check_wm(w, mask)
    k = _check_k(w.shape[1], k)
    s = _check_s(s, w, k)
    return np.where(mask, w, np.zeros((), w.dtype)) + np.repeat(s, k, axis=1)


def _check_x(x, d):
    x = as_float_array("x", x)
    if x.ndim < 1 or x.shape[-1] != d:
        raise NMRefValueError(f"x must have shape [..., d] with d = {d}, got {x.shape}")
    return x


def slorb_forward(x, w, mask, s, k, b=None):
    """``y = x(W⊙M)ᵀ + (x Xᵀ) Sᵀ + b`` for ``x[..., d]`` → ``y[..., N_out]``."""
    w, mask = _check_wm(w, mask)
    k = _check_k(w.shape[1], k)
    s = _check_s(s, w, k)
    x = _check_x(x, w.shape[1])
    xs = x.reshape(x.shape[:-1] + (-1, k)).sum(axis=-1)  # x Xᵀ: the sum of each group of k inputs
    y = x @ np.where(mask, w, np.zeros((), w.dtype)).T + xs @ s.T
    if b is not None:
        b = as_float_array("b", b)
        check_shape("b", b, (w.shape[0],))
        y = y + b
    return y


def slorb_backward(x, w, mask, s, k, grad_y, *, ste: bool = True):
    """Return ``(grad_x, grad_w, grad_s)`` for :func:`slorb_forward` (see the module docstring)."""
    w, mask = _check_wm(w, mask)
    k = _check_k(w.shape[1], k)
    s = _check_s(s, w, k)
    x = _check_x(x, w.shape[1])
    ste = check_bool("ste", ste)
    grad_y = as_float_array("grad_y", grad_y)
    check_shape("grad_y", grad_y, x.shape[:-1] + (w.shape[0],))
    x2 = tokens_2d(x)
    g2 = tokens_2d(grad_y)
    grad_x = (g2 @ slorb_effective_weight(w, mask, s, k)).reshape(x.shape)
    grad_w = g2.T @ x2
    if not ste:
        grad_w = np.where(mask, grad_w, np.zeros((), grad_w.dtype))
    grad_s = g2.T @ x2.reshape(x2.shape[0], -1, k).sum(axis=-1)
    return grad_x, grad_w, grad_s


def slorb_parameter_overhead(n_out: int, d: int, k: int, n: int = 2, m: int = 4) -> dict:
    """Extra parameters of S: ``N_out·d/k``; relative to the dense weight ``1/k``; relative to the
    weights kept at n:m ``(m/n)/k`` (2/k at 2:4: 12.5% for k = 16)."""
    n, m = check_nm(n, m)
    if n == 0:
        raise NMRefValueError("n must be >= 1: the overhead is relative to the kept weights")
    n_out = check_int("n_out", n_out, minimum=1)
    d = check_int("d", d, minimum=1)
    k = _check_k(d, k)
    extra = n_out * d // k
    return {"extra_params": extra, "vs_dense": Fraction(extra, n_out * d), "vs_kept": Fraction(extra * m, n_out * d * n)}
