"""A decoder-only transformer in NumPy with a hand-written backward.

    x₀ = E[tokens]
    for each block l:
        a  = norm₁(x);   q, k, v = a W_qᵀ, a W_kᵀ, a W_vᵀ  (split into H heads, RoPE on q and k)
        x += attention(q, k, v) W_oᵀ
        b  = norm₂(x);   x += (silu(b W_gateᵀ) ⊙ b W_upᵀ) W_downᵀ        (mlp="swiglu")
                         x += gelu(b W_upᵀ) W_downᵀ                       (mlp="gelu")
    logits = norm_f(x) Eᵀ                (tie_embeddings; else a separate head W_head)

Parameters are a flat ``dict`` name → array (``embed``, ``blocks.{l}.{q,k,v,o,gate,up,down}``,
``blocks.{l}.norm1``, ..., ``final_norm``, ``head``). The linear weights of the blocks are the ones
made N:M sparse (:func:`linear_names`); the embedding and head stay dense, as in AST and CAST.

:func:`forward` takes an optional ``weights`` dict that replaces linear weights by *effective*
weights (``W⊙M``, ``W⊙M + SX``, ``β·W``...), and :func:`backward` returns the gradient with
respect to whatever weight the forward used — the sparse-training rule then maps it back (STE).
"""
from __future__ import annotations

import numpy as np

from ..activation import sparsify
from ..distill import cross_entropy
from . import layers as L
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: config imports the recipe registry, which imports this module
    from .config import ExperimentConfig

__all__ = ["param_shapes", "init_params", "linear_names", "forward", "backward", "loss_and_grads",
           "linear_inputs", "count_params"]


def _lin(cfg: ExperimentConfig) -> tuple:
    return ("q", "k", "v", "o", "gate", "up", "down") if cfg.mlp == "swiglu" else ("q", "k", "v", "o", "up", "down")


def param_shapes(cfg: ExperimentConfig, vocab: int) -> dict:
    d, f = cfg.d_model, cfg.d_ff
    out = {"embed": (vocab, d)}
    for l in range(cfg.n_layers):
        p = f"blocks.{l}."
        out[p + "norm1"] = (d,)
        if cfg.norm == "layernorm":
            out[p + "norm1_bias"] = (d,)
        for n in ("q", "k", "v", "o"):
            out[p + n] = (d, d)
        out[p + "norm2"] = (d,)
        if cfg.norm == "layernorm":
            out[p + "norm2_bias"] = (d,)
        if cfg.mlp == "swiglu":
            out[p + "gate"] = (f, d)
        out[p + "up"] = (f, d)
        out[p + "down"] = (d, f)
    out["final_norm"] = (d,)
    if cfg.norm == "layernorm":
        out["final_norm_bias"] = (d,)
    if not cfg.tie_embeddings:
        out["head"] = (vocab, d)
    return out


def linear_names(cfg: ExperimentConfig) -> list:
    """The block linear weights, in forward order: the ones an N:M recipe sparsifies."""
    return [f"blocks.{l}.{n}" for l in range(cfg.n_layers) for n in _lin(cfg)]


def init_params(cfg: ExperimentConfig, vocab: int, rng: np.random.Generator) -> dict:
    """Normal(0, init_std) weights; output projections (o, down) scaled by 1/√(2·n_layers)
    (GPT-2); norm gains 1, norm biases 0. Drawn in float64 in a fixed order, then cast."""
    dt = np.dtype(cfg.dtype)
    out = {}
    for name, shape in param_shapes(cfg, vocab).items():
        if name.endswith("_bias"):
            out[name] = np.zeros(shape, dtype=dt)
        elif "norm" in name:
            out[name] = np.ones(shape, dtype=dt)
        else:
            std = cfg.init_std / np.sqrt(2 * cfg.n_layers) if name.endswith((".o", ".down")) else cfg.init_std
            out[name] = (rng.standard_normal(shape) * std).astype(dt)
    return out


def count_params(params: dict) -> int:
    return int(sum(a.size for a in params.values()))


def _norm_fwd(cfg, params, name, x):
    if cfg.norm == "rmsnorm":
        return L.rmsnorm_forward(x, params[name])
    return L.layernorm_forward(x, params[name], params[name + "_bias"])


def _norm_bwd(cfg, name, cache, gy, grads):
    if cfg.norm == "rmsnorm":
        gx, gg = L.rmsnorm_backward(cache, gy)
    else:
        gx, gg, gb = L.layernorm_backward(cache, gy)
        grads[name + "_bias"] = gb
    grads[name] = gg
    return gx


def _act(x: np.ndarray, thresholds: dict | None, name: str) -> np.ndarray:
    """TEAL: the input of linear ``name`` sparsified at its threshold (``nmref.sparsify``), if it has one."""
    t = None if thresholds is None else thresholds.get(name)
    return x if t is None else sparsify(x, t)


def forward(params: dict, tokens: np.ndarray, cfg: ExperimentConfig, weights: dict | None = None,
            thresholds: dict | None = None, hidden_after: int | None = None):
    """``logits[B, T, V]`` for ``tokens[B, T]``, and the cache :func:`backward` needs.

    Evaluation options (the cache then does not describe a differentiable forward): ``thresholds``
    maps block-linear names (``blocks.l.q`` …) to TEAL thresholds, each linear's input sparsified
    at its own; ``hidden_after = l`` returns the residual stream after block ``l`` instead."""
    w = dict(params)
    if weights:
        w.update(weights)
    b_, t = tokens.shape
    h_, dh = cfg.n_heads, cfg.d_head
    cos, sin = L.rope_tables(t, dh, cfg.rope_base, dtype=np.dtype(cfg.dtype))
    x, _ = L.embedding_forward(w["embed"], tokens)
    caches = []
    for l in range(cfg.n_layers):
        p = f"blocks.{l}."
        c = {}
        a, c["norm1"] = _norm_fwd(cfg, w, p + "norm1", x)
        c["a"] = a

        # q, k, v in one matmul: y = a [W_q; W_k; W_v]ᵀ, then [B, T, 3, H, dh] → [3, B, H, T, dh]
        wqkv = np.concatenate([w[p + "q"], w[p + "k"], w[p + "v"]])
        c["wqkv"] = wqkv
        if thresholds:  # each projection its own sparsified input
            y = np.concatenate([_act(a, thresholds, p + n) @ w[p + n].T for n in ("q", "k", "v")], axis=-1)
        else:
            y = a @ wqkv.T
        qkv = y.reshape(b_, t, 3, h_, dh).transpose(2, 0, 3, 1, 4)
        q = L.rope_forward(qkv[0], cos, sin)
        k = L.rope_forward(qkv[1], cos, sin)
        v = qkv[2]
        o, c["attn"] = L.attention_forward(q, k, v)
        o = o.transpose(0, 2, 1, 3).reshape(b_, t, h_ * dh)
        c["o_in"] = o
        x = x + _act(o, thresholds, p + "o") @ w[p + "o"].T
        bn, c["norm2"] = _norm_fwd(cfg, w, p + "norm2", x)
        c["b"] = bn
        if cfg.mlp == "swiglu":
            wgu = np.concatenate([w[p + "gate"], w[p + "up"]])     # gate and up in one matmul
            c["wgu"] = wgu
            gu = (np.concatenate([_act(bn, thresholds, p + n) @ w[p + n].T for n in ("gate", "up")], axis=-1)
                  if thresholds else bn @ wgu.T)
            g, u = gu[..., :cfg.d_ff], gu[..., cfg.d_ff:]
            s, c["act"] = L.silu_forward(g)
            c["u"], c["s"] = u, s
            z = s * u
        else:
            u = _act(bn, thresholds, p + "up") @ w[p + "up"].T
            z, c["act"] = L.gelu_forward(u)
        c["z"] = z
        x = x + _act(z, thresholds, p + "down") @ w[p + "down"].T
        caches.append(c)
        if hidden_after == l:
            return x, None
    xf, cf = _norm_fwd(cfg, w, "final_norm", x)
    head = w["embed"] if cfg.tie_embeddings else w["head"]
    logits = xf @ head.T
    return logits, {"w": w, "tokens": tokens, "blocks": caches, "final": cf, "xf": xf, "cos": cos, "sin": sin}


def linear_inputs(cache: dict, cfg: ExperimentConfig) -> dict:
    """The input activation of every block linear (``[B, T, in]``), for Wanda/SparseGPT/TEAL."""
    out = {}
    for l, c in enumerate(cache["blocks"]):
        p = f"blocks.{l}."
        for n in ("q", "k", "v"):
            out[p + n] = c["a"]
        out[p + "o"] = c["o_in"]
        for n in (("gate", "up") if cfg.mlp == "swiglu" else ("up",)):
            out[p + n] = c["b"]
        out[p + "down"] = c["z"]
    return out


def backward(cache: dict, glogits: np.ndarray, cfg: ExperimentConfig) -> dict:
    """Gradients of every parameter (for replaced linear weights: w.r.t. the effective weight)."""
    w = cache["w"]
    grads: dict = {}
    b_, t = cache["tokens"].shape
    h_, dh = cfg.n_heads, cfg.d_head
    cos, sin = cache["cos"], cache["sin"]
    head_name = "embed" if cfg.tie_embeddings else "head"
    g_head = glogits.reshape(-1, glogits.shape[-1]).T @ cache["xf"].reshape(-1, cfg.d_model)
    gx = _norm_bwd(cfg, "final_norm", cache["final"], glogits @ w[head_name], grads)
    for l in reversed(range(cfg.n_layers)):
        p = f"blocks.{l}."
        c = cache["blocks"][l]
        gz, grads[p + "down"] = L.linear_backward(c["z"], w[p + "down"], gx)
        if cfg.mlp == "swiglu":
            ggu = np.concatenate([L.silu_backward(c["act"], gz * c["u"]), gz * c["s"]], axis=-1)
            gb, gwgu = L.linear_backward(c["b"], c["wgu"], ggu)
            grads[p + "gate"], grads[p + "up"] = gwgu[:cfg.d_ff], gwgu[cfg.d_ff:]
        else:
            gu = L.gelu_backward(c["act"], gz)
            gb, grads[p + "up"] = L.linear_backward(c["b"], w[p + "up"], gu)
        gx = gx + _norm_bwd(cfg, p + "norm2", c["norm2"], gb, grads)
        go, grads[p + "o"] = L.linear_backward(c["o_in"], w[p + "o"], gx)
        go = go.reshape(b_, t, h_, dh).transpose(0, 2, 1, 3)
        gq, gk, gv = L.attention_backward(c["attn"], go)

        gqkv = np.stack([L.rope_backward(gq, cos, sin), L.rope_backward(gk, cos, sin), gv])
        gqkv = gqkv.transpose(1, 3, 0, 2, 4).reshape(b_, t, 3 * h_ * dh)
        ga, gwqkv = L.linear_backward(c["a"], c["wqkv"], gqkv)
        d = cfg.d_model
        grads[p + "q"], grads[p + "k"], grads[p + "v"] = gwqkv[:d], gwqkv[d:2 * d], gwqkv[2 * d:]
        gx = gx + _norm_bwd(cfg, p + "norm1", c["norm1"], ga, grads)
    g_embed = L.embedding_backward(cache["tokens"], gx, w["embed"].shape[0])
    if cfg.tie_embeddings:
        grads["embed"] = g_embed + g_head
    else:
        grads["embed"], grads["head"] = g_embed, g_head
    return grads


def loss_and_grads(params, tokens, targets, cfg, weights=None, loss_fn=None):
    """Mean next-token cross-entropy (or ``loss_fn(logits) -> (loss, ∂loss/∂logits)``) and gradients."""
    logits, cache = forward(params, tokens, cfg, weights)
    loss, gl = cross_entropy(logits, targets) if loss_fn is None else loss_fn(logits)
    return loss, backward(cache, gl, cfg), logits
