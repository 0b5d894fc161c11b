"""AdamS (CAST): Adam with an adaptive L1 decay on the pruned weights, ramped in.

**Documented interpretation** — the CAST paper's full text was not available; this follows
``shared/notes/methods.md`` §2 and keeps the choices that would change it as parameters.

With ``k = state.step`` (0 at the first update), the ramp ``α_k = min(k / T, 1)``, ``u`` the
momentum of the raw gradient and ``s = sign(W)`` (``sign(0) = 0``), on pruned entries (``¬m``):

* ``placement="after_momentum"`` (default; the L1 term enters like AST's variant 3, after the
  momentum): ``ũ = (1 − α)·u + α·λ·s``; kept entries ``ũ = u``; ``v ← β₂v + (1−β₂)q²``;
  ``W ← W − (γ/(1−β₁ᵗ)) ũ / (√v/√(1−β₂ᵗ) + ε)``; the stored momentum is ``u``. The second-moment
  signal ``q`` is ``second_moment="gradient"`` (default): ``q = (1 − α)·g + α·λ·s`` on pruned entries,
  ``g`` on kept ones — the L1 term is in the second moment, and AdamS is an Adam variant; or
  ``second_moment="update"``: ``q = ũ`` (exactly AST's eq. 22 form).
* ``placement="in_gradient"``: ``g̃ = (1 − α)·g + α·λ·s`` on pruned entries, then plain AdamW on ``g̃``
  (the literal reading of ``G̃_t = (1−α_t)G_t + α_t λ sign(W_{t−1})``).

The decay is *adaptive* because it is divided by ``√v`` like the gradient. ``s`` is taken from
``W_{t−1}`` after the decoupled weight decay (which never changes a sign). At ``k = 0`` (α = 0) and
when nothing is pruned, AdamS (with the default ``second_moment``) is AdamW to the last bit.
"""
from __future__ import annotations

import numpy as np

from .._checks import NMRefValueError, check_choice, check_int
from .adamw import scaled_term, apply_update, warn_if_beyond_bound, decoupled_decay, masked_add, pruned_bits, update_first_moment, update_second_moment
from .masked import _check_mask_lam, check_second_moment
from .state import AdamHyper, AdamState, check_step_inputs

__all__ = ["adams_step", "adams_alpha", "ADAMS_PLACEMENTS"]

ADAMS_PLACEMENTS = ("after_momentum", "in_gradient")


def adams_alpha(step: int, ramp_steps: int) -> float:
    """``α_k = min(k / T, 1)`` with ``k = step`` updates already applied and ``T = ramp_steps ≥ 1``."""
    step = check_int("step", step, minimum=0)
    ramp_steps = check_int("ramp_steps", ramp_steps, minimum=1)
    return min(step / ramp_steps, 1.0)


def adams_step(params, grads, state: AdamState, hyper: AdamHyper, *, mask, lam: float, ramp_steps: int,
               placement: str = "after_momentum", second_moment: str | None = None):
    """One AdamS step; returns new ``(params, state)``. ``second_moment`` (default ``"gradient"``) applies
    to ``placement="after_momentum"`` only; passing it with ``"in_gradient"`` is an error."""
    params, grads = check_step_inputs(params, grads, state, hyper)
    mask, lam = _check_mask_lam(params, mask, lam)
    check_choice("placement", placement, ADAMS_PLACEMENTS)
    if placement == "in_gradient" and second_moment is not None:
        raise NMRefValueError(f"second_moment={second_moment!r} is not used with placement='in_gradient' (plain AdamW "
                              "on the decayed gradient); leave it out")
    second_moment = check_second_moment("gradient" if second_moment is None else second_moment)
    alpha = adams_alpha(state.step, ramp_steps)
    t = state.step + 1
    p = decoupled_decay(params, hyper)
    l1 = scaled_term(np.sign(p), alpha * lam)  # None when α·λ rounds to 0 (α = 0: the first update)
    pb = pruned_bits(mask, p.dtype)
    if placement == "in_gradient":
        g = masked_add(grads, pb, l1, 1 - alpha)
        u = update_first_moment(state.exp_avg, g, hyper)
        v = update_second_moment(state.exp_avg_sq, g, hyper)
        return apply_update(p, u, v, t, hyper), AdamState(t, u, v)
    u = update_first_moment(state.exp_avg, grads, hyper)
    signal = None if second_moment == "update" else masked_add(grads, pb, None if l1 is None else l1.copy(), 1 - alpha)
    u_tilde = masked_add(u, pb, l1, 1 - alpha)
    signal = u_tilde if signal is None else signal
    v = update_second_moment(state.exp_avg_sq, signal, hyper)
    new = apply_update(p, u_tilde, v, t, hyper)
    if second_moment == "gradient":  # ũ is not in v: its step has no bound (docs/optimizers.md)
        warn_if_beyond_bound("adams_step(second_moment='gradient')", p, new, t, hyper)
    return new, AdamState(t, u, v)
