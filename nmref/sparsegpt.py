"""SparseGPT (Frantar & Alistarh 2023) one-shot N:M pruning with OBS weight updates.

For a linear layer ``W[out, in]`` with calibration inputs ``X[tokens, in]``, ``H = 2XᵀX/n`` with
``n`` the number of **tokens** (:func:`hessian_from_inputs`; the caller may pass any symmetric PSD
``H``). The original code accumulates ``2/N·Σ xxᵀ`` over the tokens of ``N`` **sequences**, i.e.
``seq_len`` times nmref's ``H`` for sequences of equal length (tested). Scaling ``H`` by ``c > 0``
leaves the result unchanged (up to rounding) *only when no input is dead*: step 1 sets a dead
input's ``H_cc`` to the absolute value 1, which then enters the damping's ``mean(diag H)`` and the
inverse, so with dead inputs the scale of ``H`` changes the masks (tested). Steps:

1. dead inputs (``H_cc = 0``): ``H_cc ← 1`` and ``W[:, c] ← 0``;
2. damping: ``H ← H + δ·mean(diag H)·I`` (``δ = damp``, SparseGPT's 1%);
3. ``U = chol(H⁻¹)`` upper triangular (``H⁻¹ = UᵀU``); ``U_cc² = [(H_{F_c})⁻¹]_cc`` where ``F_c`` are
   the columns ``≥ c`` — the inverse Hessian of the columns not yet processed;
4. columns left to right, in blocks of ``blocksize`` (lazy updates; the result does not depend on
   the block size up to rounding): at the first column ``c`` of each group of ``m``, the mask keeps
   the ``n`` largest OBS saliencies ``w_j² / U_jj²`` of the group's *current* (already updated)
   weights, ties to the lower index (as :func:`nmref.nm_mask`); then for each column ``c`` the
   pruned entries are zeroed and the error ``e = (w_c − q_c)/U_cc`` is spread over the columns to
   its right: ``W[:, c:] −= e U[c, c:]``.

All arithmetic in float64; the result is cast back to ``w``'s dtype. Returns ``(w_pruned, mask)``.
With a diagonal ``H`` this is exactly magnitude pruning with no update (tested).
"""
from __future__ import annotations

import numpy as np

from ._checks import NMRefValueError, as_float_array, check_finite_scalar, check_int, check_nm, check_shape, tokens_2d
from .masks import nm_mask

__all__ = ["sparsegpt_prune", "hessian_from_inputs"]


def hessian_from_inputs(x: np.ndarray) -> np.ndarray:
    """``H = 2 XᵀX / n`` in float64 for inputs ``x[..., in]`` (flattened over the leading axes)."""
    x = as_float_array("x", x, allow_nan=False)
    x2 = tokens_2d(x).astype(np.float64)
    if x2.shape[0] == 0:
        raise NMRefValueError("x has no calibration tokens; expected at least one row")
    return 2.0 * (x2.T @ x2) / x2.shape[0]


def sparsegpt_prune(w: np.ndarray, h: np.ndarray, n: int, m: int, *, blocksize: int = 128,
                    damp: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """SparseGPT N:M pruning of ``w[out, in]`` (groups along ``in``) with Hessian ``h[in, in]``."""
    n, m = check_nm(n, m)
    w = as_float_array("w", w, allow_nan=False)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be a 2-D weight [out, in], got shape {w.shape}")
    h = as_float_array("h", h, allow_nan=False)
    check_shape("h", h, (w.shape[1], w.shape[1]))
    if w.shape[1] % m:
        raise NMRefValueError(f"w's input dimension {w.shape[1]} is not divisible by m={m}")
    blocksize = check_int("blocksize", blocksize, minimum=1)
    damp = check_finite_scalar("damp", damp, minimum=0.0)
    if blocksize % m:
        raise NMRefValueError(f"blocksize={blocksize} must be a multiple of m={m} (groups may not straddle blocks)")
    if not np.isfinite(w).all():
        raise NMRefValueError("w contains Inf; SparseGPT needs finite weights")
    W = w.astype(np.float64)
    H = h.astype(np.float64)
    cols = W.shape[1]
    if cols == 0 or W.shape[0] == 0:
        return w.copy(), np.ones(w.shape, dtype=bool)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * np.mean(np.diag(H)) * np.eye(cols)
    try:
        Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper U with H⁻¹ = UᵀU
    except np.linalg.LinAlgError:
        raise NMRefValueError("h + damping is not positive definite; increase damp") from None
    mask = np.ones(W.shape, dtype=bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].copy()
        Err = np.zeros_like(W1)
        U1 = Hinv[i1:i2, i1:i2]
        d1 = np.diag(U1)
        for i in range(i2 - i1):
            if i % m == 0:
                sal = W1[:, i:i + m] ** 2 / d1[i:i + m] ** 2
                mask[:, i1 + i:i1 + i + m] = nm_mask(sal, n, m)
            q = np.where(mask[:, i1 + i], W1[:, i], 0.0)
            err = (W1[:, i] - q) / d1[i]
            W1[:, i:] -= np.outer(err, U1[i, i:])
            W1[:, i] = q
            Err[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err @ Hinv[i1:i2, i2:]
    return np.where(mask, W, 0.0).astype(w.dtype), mask
