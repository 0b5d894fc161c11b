"""Small PyTorch implementations that the conformance-kit tests check as *foreign* implementations.

``correct`` is a namespace of correct ones (each written from the definition, with PyTorch doing the
arithmetic); the ``wrong_*`` functions each differ from nmref in one documented way. NumPy in, NumPy
out, as the adapter contract says; bfloat16 crosses as its bit patterns.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import nmref
from nmref.testing.adapters import from_torch as to_numpy, to_torch  # the kit's bit-exact conversions


# ------------------------------------------------------------------ N:M mask
def _mask(w, n, m, axis, scores, higher_index_on_ties=False):
    s = np.abs(w.astype(np.float64)) if scores is None else scores.astype(np.float64)
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(s, axis, -1)))
    g = t.reshape(*t.shape[:-1], t.shape[-1] // m, m)
    if higher_index_on_ties:  # sort the reversed group: equal scores then come highest index first
        order = (m - 1) - torch.sort(-g.flip(-1), dim=-1, stable=True).indices
    else:
        order = torch.sort(-g, dim=-1, stable=True).indices  # descending, equal scores keep index order
    keep = torch.zeros(g.shape, dtype=torch.bool).scatter_(-1, order[..., :n], True)
    return np.moveaxis(keep.reshape(t.shape).numpy(), -1, axis)


def wrong_topk_mask(w, n, m, *, axis=-1, scores=None):
    """Keeps the *higher* index on ties (like a topk whose tie order runs the other way)."""
    return _mask(w, n, m, axis, scores, higher_index_on_ties=True)


# ------------------------------------------------------------------ CUTLASS 2:4 compressor
def _cutlass(w, mask):
    from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass
    if mask is None:
        values, meta = sparse_semi_structured_from_dense_cutlass(to_torch(w))
        return to_numpy(values), meta.numpy()
    # the pattern comes from the mask: PyTorch reads it from the nonzeros of a marker matrix
    _, meta = sparse_semi_structured_from_dense_cutlass(torch.from_numpy(mask.astype(np.float16)))
    return w[mask].reshape(w.shape[0], w.shape[1] // 2), meta.numpy()


def wrong_cutlass_not_interleaved(w, *, mask=None):
    """Right values, metadata words in plain row-major order (no CUTLASS interleave/reordering)."""
    values, meta = _cutlass(w, mask)
    rows, mcols = meta.shape
    plain = meta.view(np.uint16).reshape(-1)[nmref.meta_reorder_offsets(rows, mcols)].reshape(rows, mcols)
    return values, plain.view(np.int16)


# ------------------------------------------------------------------ AdamW
def _adamw(params, grads, state, hyper):
    p = torch.nn.Parameter(to_torch(params))
    opt = torch.optim.AdamW([p], lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"],
                            weight_decay=hyper["weight_decay"], foreach=False)
    p.grad = to_torch(grads)
    opt.state[p] = {"step": torch.tensor(float(state["step"])), "exp_avg": to_torch(state["exp_avg"]),
                    "exp_avg_sq": to_torch(state["exp_avg_sq"])}
    opt.step()
    s = opt.state[p]
    return to_numpy(p), {"step": int(s["step"].item()), "exp_avg": to_numpy(s["exp_avg"]),
                         "exp_avg_sq": to_numpy(s["exp_avg_sq"])}


def wrong_adamw_bias_correction(params, grads, state, hyper):
    """AdamW with the two bias corrections swapped (1 − β₂ᵗ on the momentum, 1 − β₁ᵗ on √v)."""
    b1, b2, lr, t = hyper["beta1"], hyper["beta2"], hyper["lr"], state["step"] + 1
    p, g = to_torch(params), to_torch(grads)
    u, v = to_torch(state["exp_avg"]), to_torch(state["exp_avg_sq"])
    p = p * (1 - lr * hyper["weight_decay"])
    u = u.lerp(g, 1 - b1)
    v = v * b2 + (1 - b2) * g * g
    p = p - (lr / (1 - b2 ** t)) * u / (v.sqrt() / math.sqrt(1 - b1 ** t) + hyper["eps"])
    return to_numpy(p), {"step": t, "exp_avg": to_numpy(u), "exp_avg_sq": to_numpy(v)}


# ------------------------------------------------------------------ KL distillation
def _kl(teacher_logits, student_logits, temperature, power):
    zs = to_torch(student_logits).requires_grad_(True)
    zt = to_torch(teacher_logits)
    n = zs.numel() // zs.shape[-1]
    kl = F.kl_div(F.log_softmax(zs / temperature, -1), F.log_softmax(zt / temperature, -1), log_target=True,
                  reduction="sum")
    loss = kl * temperature ** power / n
    loss.backward()
    return float(loss.detach()), to_numpy(zs.grad)


def wrong_kl_scaled_by_t(teacher_logits, student_logits, *, temperature=1.0):
    """Forward KL scaled by T instead of T²."""
    return _kl(teacher_logits, student_logits, temperature, 1)


# ------------------------------------------------------------------ TEAL threshold
def _threshold(x, p, rounding):
    a = torch.sort(torch.from_numpy(np.abs(x.astype(np.float64)).ravel())).values
    d = rounding(p * a.numel())
    return float("-inf") if d == 0 else float(a[d - 1])


def wrong_threshold_floor(x, p):
    """The drop count floored (⌊p·N⌋) where nmref rounds to nearest."""
    return _threshold(x, p, math.floor)


class correct:
    """Correct PyTorch implementations (a namespace: one attribute per operation)."""

    @staticmethod
    def nm_mask(w, n, m, *, axis=-1, scores=None):
        return _mask(w, n, m, axis, scores)

    @staticmethod
    def compress_24_cutlass(w, *, mask=None):
        return _cutlass(w, mask)

    adamw_step = staticmethod(_adamw)

    @staticmethod
    def kl_forward(teacher_logits, student_logits, *, temperature=1.0):
        return _kl(teacher_logits, student_logits, temperature, 2)

    @staticmethod
    def exact_threshold(x, p):
        return _threshold(x, p, round)  # round half to even, as Python's round


class wrong:
    """The deliberately different implementations, as a namespace."""
    nm_mask = staticmethod(wrong_topk_mask)
    compress_24_cutlass = staticmethod(wrong_cutlass_not_interleaved)
    adamw_step = staticmethod(wrong_adamw_bias_correction)
    kl_forward = staticmethod(wrong_kl_scaled_by_t)
    exact_threshold = staticmethod(wrong_threshold_floor)
