"""The layers of the tiny transformer: each a forward that returns ``(y, cache)`` and a backward
that maps ``(cache, ∂L/∂y)`` to the input and parameter gradients. Pure NumPy, dtype-preserving
(float32 for experiments, float64 for the finite-difference checks in ``tests/test_tiny_layers.py``).

Shapes: activations ``x[B, T, D]`` (batch, time, features); a linear weight is ``W[out, in]`` and
computes ``y = x Wᵀ`` (the convention every nmref operation uses).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

__all__ = [
    "linear_forward", "linear_backward",
    "rmsnorm_forward", "rmsnorm_backward", "layernorm_forward", "layernorm_backward",
    "rope_tables", "rope_forward", "rope_backward",
    "attention_forward", "attention_backward",
    "silu_forward", "silu_backward", "gelu_forward", "gelu_backward",
    "embedding_forward", "embedding_backward",
]


# -- linear ------------------------------------------------------------------------------------
def linear_forward(x, w):
    """``y = x Wᵀ``; ``x[..., in]``, ``W[out, in]`` → ``y[..., out]``."""
    return x @ w.T, x


def linear_backward(x, w, gy):
    """``∂L/∂x = G W``, ``∂L/∂W = Gᵀ x`` (G, x flattened over the leading axes)."""
    gx = gy @ w
    gw = gy.reshape(-1, gy.shape[-1]).T @ x.reshape(-1, x.shape[-1])
    return gx, gw


# -- normalisation -----------------------------------------------------------------------------
def rmsnorm_forward(x, g, eps=1e-6):
    """``y = x / √(mean(x²) + ε) ⊙ g`` over the last axis."""
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + x.dtype.type(eps))
    xhat = x * r
    return xhat * g, (xhat, r, g)


def rmsnorm_backward(cache, gy):
    """With ``x̂ = x·r``: ``∂L/∂g = Σ gy ⊙ x̂``, ``∂L/∂x = r (ĝ − x̂ mean(ĝ ⊙ x̂))``, ``ĝ = gy ⊙ g``."""
    xhat, r, g = cache
    gg = np.sum((gy * xhat).reshape(-1, g.shape[0]), axis=0)
    gh = gy * g
    gx = r * (gh - xhat * np.mean(gh * xhat, axis=-1, keepdims=True))
    return gx, gg


def layernorm_forward(x, g, b, eps=1e-5):
    """``y = (x − μ) / √(σ² + ε) ⊙ g + b`` over the last axis (biased variance)."""
    mu = np.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    r = 1.0 / np.sqrt(np.mean(xc * xc, axis=-1, keepdims=True) + x.dtype.type(eps))
    xhat = xc * r
    return xhat * g + b, (xhat, r, g)


def layernorm_backward(cache, gy):
    """``∂L/∂x = r (ĝ − mean(ĝ) − x̂ mean(ĝ ⊙ x̂))``, ``∂L/∂g = Σ gy ⊙ x̂``, ``∂L/∂b = Σ gy``."""
    xhat, r, g = cache
    d = g.shape[0]
    gg = np.sum((gy * xhat).reshape(-1, d), axis=0)
    gb = np.sum(gy.reshape(-1, d), axis=0)
    gh = gy * g
    gx = r * (gh - np.mean(gh, axis=-1, keepdims=True) - xhat * np.mean(gh * xhat, axis=-1, keepdims=True))
    return gx, gg, gb


# -- rotary position embedding -----------------------------------------------------------------
def rope_tables(t: int, dh: int, base: float = 10000.0, dtype=np.float32):
    """``cos, sin[T, dh]`` for the half-split ("rotate_half", LLaMA/HF) form: frequency
    ``θ_i = base^(−2i/dh)`` for ``i < dh/2``, repeated for both halves. Computed in float64."""
    inv = base ** (-np.arange(0, dh, 2, dtype=np.float64) / dh)
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]
    ang = np.concatenate([ang, ang], axis=-1)
    return np.cos(ang).astype(dtype), np.sin(ang).astype(dtype)


def _rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _rotate_half_t(x):  # the transpose of _rotate_half (it is a rotation by −90°)
    h = x.shape[-1] // 2
    return np.concatenate([x[..., h:], -x[..., :h]], axis=-1)


def rope_forward(x, cos, sin):
    """``y = x ⊙ cos + rotate_half(x) ⊙ sin``, ``x[..., T, dh]``."""
    return x * cos + _rotate_half(x) * sin


def rope_backward(gy, cos, sin):
    """``∂L/∂x = gy ⊙ cos + rotate_halfᵀ(gy ⊙ sin)`` (the rotation is orthogonal)."""
    return gy * cos + _rotate_half_t(gy * sin)


# -- causal self-attention ---------------------------------------------------------------------
_CAUSAL: dict = {}


def _causal_bias(t: int, dtype) -> np.ndarray:
    """``[T, T]`` additive mask: 0 on and below the diagonal, −∞ above (cached; adding it is ~20×
    faster than boolean-index assignment)."""
    key = (t, np.dtype(dtype))
    if key not in _CAUSAL:
        _CAUSAL[key] = np.where(np.triu(np.ones((t, t), dtype=bool), 1), -np.inf, 0.0).astype(dtype)
    return _CAUSAL[key]


def attention_forward(q, k, v):
    """Causal softmax attention per head: ``q, k, v[B, H, T, dh]``;
    ``S = q kᵀ/√dh`` with ``S_ij = −∞`` for ``j > i``, ``P = softmax(S)``, ``o = P v``."""
    t, dh = q.shape[-2], q.shape[-1]
    s = (q * q.dtype.type(1.0 / math.sqrt(dh))) @ np.swapaxes(k, -1, -2)  # scale the T×dh side, not T×T
    s += _causal_bias(t, s.dtype)
    s -= np.max(s, axis=-1, keepdims=True)
    p = np.exp(s, out=s)
    p *= 1.0 / np.sum(p, axis=-1, keepdims=True)
    return p @ v, (q, k, v, p)


def attention_backward(cache, go):
    """``∂v = Pᵀ go``, ``∂P = go vᵀ``, ``∂S = P ⊙ (∂P − rowsum(∂P ⊙ P))``,
    ``∂q = ∂S k/√dh``, ``∂k = ∂Sᵀ q/√dh`` (masked entries have P = 0, so they carry no gradient)."""
    q, k, v, p = cache
    scale = q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    gv = np.swapaxes(p, -1, -2) @ go
    gs = go @ np.swapaxes(v, -1, -2)
    rowsum = np.einsum("...ij,...ij->...i", gs, p)[..., None]
    gs -= rowsum
    gs *= p
    return (gs @ k) * scale, np.swapaxes(gs, -1, -2) @ (q * scale), gv


# -- activations -------------------------------------------------------------------------------
def silu_forward(a):
    """``silu(a) = a σ(a)``."""
    sig = expit(a)  # σ(a) = 1/(1 + e^(−a)) in one pass
    return a * sig, (a, sig)


def silu_backward(cache, gy):
    """``silu'(a) = σ(a)(1 + a(1 − σ(a)))``."""
    a, sig = cache
    return gy * sig * (1.0 + a * (1.0 - sig))


_GELU_C = math.sqrt(2.0 / math.pi)


def gelu_forward(a):
    """GELU, tanh form (GPT-2): ``½ a (1 + tanh(c(a + 0.044715 a³)))``, ``c = √(2/π)``."""
    u = _GELU_C * (a + 0.044715 * a * a * a)
    th = np.tanh(u)
    return 0.5 * a * (1.0 + th), (a, th)


def gelu_backward(cache, gy):
    a, th = cache
    du = _GELU_C * (1.0 + 3 * 0.044715 * a * a)
    return gy * (0.5 * (1.0 + th) + 0.5 * a * (1.0 - th * th) * du)


# -- embedding ---------------------------------------------------------------------------------
def embedding_forward(e, tokens):
    """``x[b, t] = E[tokens[b, t]]``."""
    return e[tokens], tokens


def embedding_backward(tokens, gx, vocab: int):
    """``∂L/∂E[i] = Σ_{(b,t): tokens=i} gx[b, t]`` (scatter-add, exact order: by token position)."""
    ge = np.zeros((vocab, gx.shape[-1]), dtype=gx.dtype)
    np.add.at(ge, tokens.reshape(-1), gx.reshape(-1, gx.shape[-1]))
    return ge
