"""AdamW with a decay on pruned weights: the three variants of the AST paper's appendix (eqs. 16–23).

``¬m`` are the pruned entries of the current N:M mask, ``λ ≥ 0`` the (annealed) decay factor. All
three start with PyTorch AdamW's decoupled weight decay ``W ← W(1 − γω)`` and use that decayed
``W`` in the masked-decay term (the order of AST's public code). Kept entries always follow plain
AdamW bit for bit; with ``λ = 0`` every variant *is* :func:`~nmref.optim.adamw_step` (a coefficient
that rounds to zero in the parameter's dtype adds no term, so this holds on −0.0 weights too).

* ``adamw_decay_on_weights_step`` (variant 1): ``W ← Adam(W, g) − γ λ (¬m ⊙ W)``.
* ``adamw_decay_in_grad_step`` (variant 2; Hu et al. 2024, AST's LLaMA path): AdamW on
  ``g̃ = g + λ(¬m ⊙ W)`` — the decay enters both moments.
* ``ast_adamw_step`` (variant 3, AST's own): ``u ← β₁u + (1−β₁)g`` (decay **not** in the momentum),
  ``ũ = u + λ(¬m ⊙ W)``, ``v ← β₂v + (1−β₂)s²``,
  ``W ← W − (γ/(1−β₁ᵗ)) ũ / (√v/√(1−β₂ᵗ) + ε)`` — bias correction also scales the decay and ε is
  added after bias-correcting √v, as in the public GPT-2 code. The second-moment signal ``s`` is
  ``second_moment="update"``: ``s = ũ`` (paper eq. 22 and the public code: the *squared momentum*
  plus decay, for every entry of a sparse layer, kept ones too — so this variant is **not** AdamW
  even at λ = 0), or ``second_moment="gradient"``: ``s = g + λ(¬m ⊙ W)`` (the decayed gradient; at
  λ = 0 this is AdamW to the last bit).

nmref uses a boolean mask and ``+λ`` on the pruned weights, as the paper writes. AST's public code
computes ``~mask`` on an int32 0/1 mask, which gives −1/−2: an anti-decay of every weight. See
``docs/optimizers.md``.
"""
from __future__ import annotations

from .._checks import as_bool_array, check_choice, check_finite_scalar, check_shape
from .adamw import (scaled_term, apply_update, decoupled_decay, masked_add, pruned_bits, update_first_moment,
                    update_second_moment, warn_if_beyond_bound)

from .state import AdamHyper, AdamState, check_step_inputs

__all__ = ["adamw_decay_on_weights_step", "adamw_decay_in_grad_step", "ast_adamw_step", "MASKED_ADAMW_VARIANTS",
           "SECOND_MOMENT_SOURCES"]


def _check_mask_lam(params, mask, lam):
    mask = as_bool_array("mask", mask)
    check_shape("mask", mask, params.shape)
    return mask, check_finite_scalar("lam", lam, minimum=0.0)


def adamw_decay_on_weights_step(params, grads, state: AdamState, hyper: AdamHyper, *, mask, lam: float):
    """Variant 1: ``W ← Adam(W, g) − γ λ (¬m ⊙ W)``."""
    params, grads = check_step_inputs(params, grads, state, hyper)
    mask, lam = _check_mask_lam(params, mask, lam)
    t = state.step + 1
    p = decoupled_decay(params, hyper)
    u = update_first_moment(state.exp_avg, grads, hyper)
    v = update_second_moment(state.exp_avg_sq, grads, hyper)
    new = apply_update(p, u, v, t, hyper)
    return masked_add(new, pruned_bits(mask, p.dtype), scaled_term(p, -(hyper.lr * lam))), AdamState(t, u, v)


def adamw_decay_in_grad_step(params, grads, state: AdamState, hyper: AdamHyper, *, mask, lam: float):
    """Variant 2: AdamW on ``g̃ = g + λ(¬m ⊙ W)``."""
    params, grads = check_step_inputs(params, grads, state, hyper)
    mask, lam = _check_mask_lam(params, mask, lam)
    t = state.step + 1
    p = decoupled_decay(params, hyper)
    g = masked_add(grads, pruned_bits(mask, p.dtype), scaled_term(p, lam))
    u = update_first_moment(state.exp_avg, g, hyper)
    v = update_second_moment(state.exp_avg_sq, g, hyper)
    return apply_update(p, u, v, t, hyper), AdamState(t, u, v)


SECOND_MOMENT_SOURCES = ("update", "gradient")


def check_second_moment(second_moment: str) -> str:
    return check_choice("second_moment", second_moment, SECOND_MOMENT_SOURCES)


def ast_adamw_step(params, grads, state: AdamState, hyper: AdamHyper, *, mask, lam: float,
                   second_moment: str = "update"):
    """Variant 3 (AST): decay added after the momentum and included in the second moment."""
    params, grads = check_step_inputs(params, grads, state, hyper)
    mask, lam = _check_mask_lam(params, mask, lam)
    check_second_moment(second_moment)
    t = state.step + 1
    p = decoupled_decay(params, hyper)
    u = update_first_moment(state.exp_avg, grads, hyper)
    decay = scaled_term(p, lam)
    pb = pruned_bits(mask, p.dtype)
    signal = None if second_moment == "update" else masked_add(grads, pb, None if decay is None else decay.copy())
    u_tilde = masked_add(u, pb, decay)
    signal = u_tilde if signal is None else signal
    v = update_second_moment(state.exp_avg_sq, signal, hyper)
    new = apply_update(p, u_tilde, v, t, hyper)
    if second_moment == "gradient":  # ũ is not in v: its step has no bound (docs/optimizers.md)
        warn_if_beyond_bound("ast_adamw_step(second_moment='gradient')", p, new, t, hyper)
    return new, AdamState(t, u, v)


MASKED_ADAMW_VARIANTS = {
    "decay_on_weights": adamw_decay_on_weights_step,
    "decay_in_grad": adamw_decay_in_grad_step,
    "ast": ast_adamw_step,
}
