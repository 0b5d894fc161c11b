"""Distillation losses with their gradients w.r.t. the student (logits or features).

Logits ``z[..., V]``; every leading axis is a token, ``N`` = number of tokens; losses are means
over tokens. ``p = softmax(z / T)``, computed with a max-shifted log-sum-exp so that any finite
logits (also ±1e30, vocabularies of 10⁵+) give finite results. Each function returns
``(loss: float, grad)`` with ``grad = ∂loss/∂(student input)``, in the dtype of the inputs.

Arithmetic: float64 if a logits input is float64, else float32 (float16 and bfloat16 logits are
widened, never computed in half precision); ``T``, ``α`` and the token count enter rounded to that
dtype, and the gradient is rounded to the student's dtype once, at the end.

* forward KL (AST eq. 4, Hinton et al.): ``T² · mean_tokens Σ_v p_t (log p_t − log p_s)``;
  grad ``T (p_s − p_t) / N``.
* reverse KL (MiniLLM): ``T² · mean Σ p_s (log p_s − log p_t)``;
  grad ``T · p_s ⊙ (ℓ − Σ_v p_s ℓ) / N`` with ``ℓ = log p_s − log p_t``.
* cross-entropy: ``mean −log softmax(z)[target]``; grad ``(softmax(z) − onehot) / N``.
* ``distill_loss``: ``α·KL + (1 − α)·CE`` (AST: α = 0.67, T = 2 for GPT-2).
* SquareHead (Kurtic et al. 2023): ``MSE(f_t, f_s) / MSE(f_t, 0)`` per feature tensor.

Logits must be finite (NaN or ±Inf raise): a −inf logit makes KL undefined or infinite.
"""
from __future__ import annotations

import numpy as np

from ._checks import NMRefTypeError, NMRefValueError, as_float_array, check_choice, check_finite_scalar, check_shape

__all__ = ["log_softmax", "kl_forward", "kl_reverse", "cross_entropy", "distill_loss", "squarehead_loss", "DISTILL_KINDS"]

DISTILL_KINDS = ("forward", "reverse")


def _logits(name, z):
    z = as_float_array(name, z)
    if z.ndim < 1 or z.shape[-1] == 0:
        raise NMRefValueError(f"{name} must have shape [..., V] with V >= 1, got {z.shape}")
    if z.size and not np.isfinite(z).all():
        raise NMRefValueError(f"{name} contains NaN or Inf; expected finite logits")
    return z


def _tokens(z):
    n = z.size // z.shape[-1]
    if n == 0:
        raise NMRefValueError(f"logits have no tokens (shape {z.shape}); the mean over tokens is undefined")
    return n


def _acc(*zs):
    """The arithmetic dtype: float64 if an input is float64, else float32."""
    return np.dtype(np.float64) if any(z.dtype == np.float64 for z in zs) else np.dtype(np.float32)


def _temperature(temperature) -> float:
    t = check_finite_scalar("temperature", temperature)
    if t <= 0:
        raise NMRefValueError(f"temperature must be > 0, got {t}")
    return t


def _log_softmax(z: np.ndarray, t: float, acc) -> np.ndarray:
    zs = z.astype(acc) / acc.type(t)
    zs = zs - zs.max(axis=-1, keepdims=True)
    return zs - np.log(np.exp(zs).sum(axis=-1, keepdims=True))


def log_softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``log softmax(z / T)`` along the last axis, max-shifted (stable for any finite z); computed in
    float32 (float64 for float64 ``z``) and returned in ``z``'s dtype."""
    z = _logits("z", z)
    return _log_softmax(z, _temperature(temperature), _acc(z)).astype(z.dtype, copy=False)


def _kl(teacher_logits, student_logits, temperature, kind):
    """``(loss, grad in the arithmetic dtype, the student's dtype)`` of the forward or reverse KL."""
    zt = _logits("teacher_logits", teacher_logits)
    zs = _logits("student_logits", student_logits)
    check_shape("student_logits", zs, zt.shape)
    t, acc = _temperature(temperature), _acc(zt, zs)
    lt, ls, n = _log_softmax(zt, t, acc), _log_softmax(zs, t, acc), _tokens(zs)
    ps = np.exp(ls)
    if kind == "forward":
        pt = np.exp(lt)
        loss, grad = t * t * float(np.sum(pt * (lt - ls))) / n, acc.type(t) * (ps - pt) / acc.type(n)
    else:
        ell = ls - lt
        loss = t * t * float(np.sum(ps * ell)) / n
        grad = acc.type(t) * ps * (ell - np.sum(ps * ell, axis=-1, keepdims=True)) / acc.type(n)
    return loss, grad, zs.dtype


def kl_forward(teacher_logits, student_logits, *, temperature: float = 1.0):
    """``T² · mean KL(p_t ‖ p_s)`` and its gradient w.r.t. the student logits."""
    loss, grad, dtype = _kl(teacher_logits, student_logits, temperature, "forward")
    return loss, grad.astype(dtype)


def kl_reverse(teacher_logits, student_logits, *, temperature: float = 1.0):
    """``T² · mean KL(p_s ‖ p_t)`` and its gradient w.r.t. the student logits."""
    loss, grad, dtype = _kl(teacher_logits, student_logits, temperature, "reverse")
    return loss, grad.astype(dtype)


def cross_entropy(logits, targets):
    """``mean −log softmax(z)[target]`` over tokens and its gradient; ``targets`` are integer ids."""
    loss, grad, dtype = _cross_entropy(logits, targets)
    return loss, grad.astype(dtype)


def _cross_entropy(logits, targets, acc=None):
    """``(loss, grad in the arithmetic dtype, the logits' dtype)``; ``acc`` overrides the arithmetic dtype."""
    z = _logits("logits", logits)
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise NMRefTypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    check_shape("targets", targets, z.shape[:-1])
    v = z.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= v):
        raise NMRefValueError(f"targets must lie in [0, V={v}), got range [{targets.min()}, {targets.max()}]")
    n = _tokens(z)
    acc = _acc(z) if acc is None else acc
    ls = _log_softmax(z, 1.0, acc)
    picked = np.take_along_axis(ls, targets[..., None], axis=-1)
    grad = np.exp(ls)
    np.put_along_axis(grad, targets[..., None], np.take_along_axis(grad, targets[..., None], axis=-1) - 1, axis=-1)
    return -float(picked.sum()) / n, grad / acc.type(n), z.dtype


def distill_loss(student_logits, teacher_logits, targets, *, alpha: float, temperature: float = 1.0,
                 kind: str = "forward"):
    """``α·KL + (1 − α)·CE`` (AST eq. 4) and its gradient w.r.t. the student logits; ``kind`` picks
    forward or reverse KL. ``α ∈ [0, 1]``."""
    alpha = check_finite_scalar("alpha", alpha, minimum=0.0, maximum=1.0)
    check_choice("kind", kind, DISTILL_KINDS)
    l_kl, g_kl, dtype = _kl(teacher_logits, student_logits, temperature, kind)
    l_ce, g_ce, _ = _cross_entropy(student_logits, targets, g_kl.dtype)
    a, b = g_kl.dtype.type(alpha), g_kl.dtype.type(1 - alpha)
    return alpha * l_kl + (1 - alpha) * l_ce, (a * g_kl + b * g_ce).astype(dtype)


def squarehead_loss(student_features, teacher_features):
    """``MSE(f_t, f_s) / MSE(f_t, 0)`` (means over all elements) and its gradient w.r.t. ``f_s``:
    ``2 (f_s − f_t) / (size · MSE(f_t, 0))``. An all-zero teacher feature raises (0 denominator)."""
    fs = as_float_array("student_features", student_features, allow_nan=False)
    ft = as_float_array("teacher_features", teacher_features, allow_nan=False)
    check_shape("student_features", fs, ft.shape)
    if ft.size == 0:
        raise NMRefValueError("features are empty; the mean squared error is undefined")
    den = float(np.mean(np.square(ft.astype(np.float64))))
    if den == 0:
        raise NMRefValueError("teacher_features are all zero: MSE(f_t, 0) = 0, SquareHead is undefined")
    diff = fs.astype(np.float64) - ft
    return float(np.mean(diff * diff)) / den, (2 * diff / (ft.size * den)).astype(fs.dtype)
