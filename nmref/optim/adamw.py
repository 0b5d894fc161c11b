"""Plain AdamW, exactly as PyTorch's single-tensor ``torch.optim.AdamW`` computes it, and the
update core that every masked variant shares (so that a variant whose extra term is zero is
AdamW to the last bit).

One step, ``t = state.step + 1``, all arithmetic in the parameter's dtype:

    W ← W · (1 − γω)                                  (decoupled weight decay, first)
    u ← lerp(u, g, 1 − β₁)                            (β₁u + (1−β₁)g in PyTorch's lerp form:
                                                       u + w(g − u) for w < ½, else g − (g − u)(1 − w))
    v ← v·β₂ + ((1 − β₂)·g)·g
    W ← W + ((−γ / (1 − β₁ᵗ)) · u) / (√v / √(1 − β₂ᵗ) + ε)
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .._checks import NMRefStepWarning
from .state import AdamHyper, AdamState, check_step_inputs

__all__ = ["adamw_step"]


def scalar(value: float, dtype) -> np.generic:
    """``value`` rounded to ``dtype``: every scalar of the update meets the arrays in their own dtype.

    This is what NumPy's promotion (NEP 50) does for a Python float against float16/32/64 arrays;
    bfloat16 (ml_dtypes) would otherwise promote the product to float32."""
    return np.dtype(dtype).type(value)


def decoupled_decay(params: np.ndarray, hyper: AdamHyper) -> np.ndarray:
    return params * scalar(1 - hyper.lr * hyper.weight_decay, params.dtype)


def update_first_moment(exp_avg: np.ndarray, grads: np.ndarray, hyper: AdamHyper) -> np.ndarray:
    """PyTorch's ``lerp(u, g, w)`` with ``w = 1 − β₁``: ``u + w·(g − u)`` for ``w < 0.5``, else
    ``g − (g − u)·(1 − w)`` — exact at both ends (``β₁ = 0`` gives ``g`` even when ``|g| ≪ |u|``)."""
    out = np.subtract(grads, exp_avg)  # one allocation, then in place: large temporaries cost page faults
    w = scalar(1 - hyper.beta1, out.dtype)
    if w < 0.5:
        out *= w
        out += exp_avg
    else:
        out *= scalar(1 - float(w), out.dtype)  # 1 − w is exact for w in [0.5, 1]
        np.subtract(grads, out, out=out)
    return out


def update_second_moment(exp_avg_sq: np.ndarray, signal: np.ndarray, hyper: AdamHyper) -> np.ndarray:
    out = np.multiply(signal, scalar(1 - hyper.beta2, signal.dtype))
    out *= signal
    out += exp_avg_sq * scalar(hyper.beta2, signal.dtype)
    return out


def apply_update(params: np.ndarray, numer: np.ndarray, exp_avg_sq: np.ndarray, t: int, hyper: AdamHyper) -> np.ndarray:
    """``W + ((−γ/(1−β₁ᵗ))·numer) / (√v/√(1−β₂ᵗ) + ε)`` (PyTorch's ``addcdiv`` order)."""
    dt = params.dtype
    step_size = hyper.lr / (1 - hyper.beta1 ** t)
    denom = np.sqrt(exp_avg_sq)
    denom /= scalar(math.sqrt(1 - hyper.beta2 ** t), dt)
    denom += scalar(hyper.eps, dt)
    upd = scalar(-step_size, dt) * numer
    upd /= denom
    upd += params
    return upd


def adam_step_bound(t: int, hyper: AdamHyper) -> float:
    """``B_t = γ·√(1−β₂ᵗ) / ((1−β₁ᵗ)·√(1−β₂))``: the largest adaptive step (after the decoupled weight
    decay) of a step whose numerator ``n`` is itself in the second moment, ``v_t = β₂v_{t−1} + (1−β₂)n²``
    — then ``v_t ≥ (1−β₂)n²`` and ``|n̂|/√v̂ ≤ √(1−β₂ᵗ)/((1−β₁ᵗ)√(1−β₂))`` (ε only shrinks the step).
    AST's ``second_moment="update"`` is such a step. AdamW's own steps (momentum of g, v of g²) stay
    below it whenever ``β₁ ≤ 2β₂/(1+β₂)`` (Cauchy–Schwarz over the two moving averages), which holds
    for every usual setting (β₁ = 0.9, β₂ ≥ 0.9)."""
    return hyper.lr * math.sqrt(1 - hyper.beta2 ** t) / ((1 - hyper.beta1 ** t) * math.sqrt(1 - hyper.beta2))


#: a step beyond this multiple of :func:`adam_step_bound` is reported (see :func:`warn_if_beyond_bound`)
UNSAFE_STEP_FACTOR = 10.0


def warn_if_beyond_bound(name: str, before: np.ndarray, after: np.ndarray, t: int, hyper: AdamHyper) -> None:
    """Warn (:class:`NMRefStepWarning`) if a step that puts a term into its numerator but a different
    signal into its second moment moved any weight by more than ``UNSAFE_STEP_FACTOR ×``
    :func:`adam_step_bound`. Such a step has no bound: the gradient and the decay can cancel in the
    second moment (``v ≈ 0``) while the numerator keeps the decay, and the step approaches
    ``γ·|numerator|/ε``. On ordinary data its steps reach about 2× the bound, so only an order of
    magnitude beyond any Adam step is reported."""
    if after.size == 0:
        return
    limit = UNSAFE_STEP_FACTOR * adam_step_bound(t, hyper)
    moved = np.abs(after.astype(np.float64) - before.astype(np.float64))
    worst = float(np.nanmax(moved, initial=0.0))
    if worst > limit:
        n = int(np.count_nonzero(moved > limit))
        warnings.warn(f"{name}: {n} weight(s) moved by up to {worst:.3g}, more than {UNSAFE_STEP_FACTOR:g}× the Adam "
                      f"step bound lr·√(1−β₂ᵗ)/((1−β₁ᵗ)√(1−β₂)) = {limit / UNSAFE_STEP_FACTOR:.3g} at t = {t}: the "
                      "gradient cancelled the decay in the second moment (v ≈ 0) while the numerator kept it; "
                      "second_moment='update' cannot do this (docs/optimizers.md)", NMRefStepWarning, stacklevel=3)


_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def pruned_bits(mask: np.ndarray, dtype) -> np.ndarray:
    """All-ones words where ``mask`` is False (pruned), zero where True, one word per element of
    ``dtype``'s width: the operand of the branch-free select in :func:`masked_add`."""
    bits = mask.view(np.uint8).astype(_UINT[np.dtype(dtype).itemsize])
    bits -= 1  # True → 0, False → 0 − 1 = all ones
    return bits


def scaled_term(params: np.ndarray, coefficient: float) -> np.ndarray | None:
    """``coefficient · params`` in the parameter's dtype, or ``None`` (no term) when the coefficient
    rounds to zero there: adding a zero term is not the identity on −0.0 (``−0.0 + 0.0 = +0.0``), and
    ``λ = 0`` must leave every variant AdamW to the last bit."""
    c = scalar(coefficient, params.dtype)
    return None if c == 0 else np.multiply(params, c)


def masked_add(base: np.ndarray, pbits: np.ndarray, term: np.ndarray | None, scale: float = 1.0) -> np.ndarray:
    """``where(mask, base, scale·base + term)``, computed in ``term``'s buffer (overwritten); ``term=None``
    is no term (``scale·base`` on pruned entries, ``base`` itself when ``scale`` is 1).

    Kept entries are ``base`` bit for bit. The select is ``base ^ ((base ^ alt) & pruned)`` on the
    raw bits: NumPy's ``where`` branches per element and runs ~3× slower on an unpredictable mask.
    """
    if term is None:
        if scale == 1.0:
            return base.copy()
        out = np.multiply(base, scalar(scale, base.dtype))
    elif scale != 1.0:
        out = term
        out += scalar(scale, base.dtype) * base
    else:
        out = term
        out += base
    ui = _UINT[out.dtype.itemsize]
    x, b = out.view(ui), base.view(ui)
    x ^= b
    x &= pbits
    x ^= b
    return out


def adamw_step(params: np.ndarray, grads: np.ndarray, state: AdamState, hyper: AdamHyper) -> tuple[np.ndarray, AdamState]:
    """One AdamW step (PyTorch definition). Returns new ``(params, state)``; inputs are not modified."""
    params, grads = check_step_inputs(params, grads, state, hyper)
    t = state.step + 1
    p = decoupled_decay(params, hyper)
    u = update_first_moment(state.exp_avg, grads, hyper)
    v = update_second_moment(state.exp_avg_sq, grads, hyper)
    return apply_update(p, u, v, t, hyper), AdamState(t, u, v)
