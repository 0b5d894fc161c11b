"""The tiny transformer written independently with PyTorch autograd (a peer for tests and the benchmark)."""
import math

import torch


def rope(x, t, dh, base):
    inv = base ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    h = dh // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], -1)
    return x * cos + rot * sin


def norm(cfg, p, name, x):
    if cfg.norm == "rmsnorm":
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * p[name]
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), p[name], p[name + "_bias"], eps=1e-5)


def forward(p, tokens, cfg):
    b, t = tokens.shape
    h, dh = cfg.n_heads, cfg.d_model // cfg.n_heads
    x = p["embed"][tokens]
    causal = torch.ones(t, t, dtype=torch.bool).triu(1)
    for l in range(cfg.n_layers):
        q_ = f"blocks.{l}."
        a = norm(cfg, p, q_ + "norm1", x)
        q = rope((a @ p[q_ + "q"].T).view(b, t, h, dh).transpose(1, 2), t, dh, cfg.rope_base)
        k = rope((a @ p[q_ + "k"].T).view(b, t, h, dh).transpose(1, 2), t, dh, cfg.rope_base)
        v = (a @ p[q_ + "v"].T).view(b, t, h, dh).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        o = torch.softmax(s.masked_fill(causal, float("-inf")), -1) @ v
        x = x + o.transpose(1, 2).reshape(b, t, h * dh) @ p[q_ + "o"].T
        bn = norm(cfg, p, q_ + "norm2", x)
        if cfg.mlp == "swiglu":
            z = torch.nn.functional.silu(bn @ p[q_ + "gate"].T) * (bn @ p[q_ + "up"].T)
        else:
            z = torch.nn.functional.gelu(bn @ p[q_ + "up"].T, approximate="tanh")
        x = x + z @ p[q_ + "down"].T
    xf = norm(cfg, p, "final_norm", x)
    return xf @ (p["embed"] if cfg.tie_embeddings else p["head"]).T


def loss(p, tokens, targets, cfg):
    logits = forward(p, tokens, cfg)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
