"""The sparsification recipes, each built only from nmref's reference operations.

One-shot (from the dense model, no training; calibration on training batches):

* ``magnitude`` — :func:`nmref.nm_mask` of ``|W|``.
* ``wanda`` — :func:`nmref.nm_mask` of :func:`nmref.wanda_scores` ``|W_ij|·‖X_j‖₂``.
* ``sparsegpt`` — :func:`nmref.sparsegpt_prune` with ``H = 2XᵀX/n``.

  Wanda and SparseGPT go block by block: the calibration inputs of block ``l`` come from the model
  whose blocks ``< l`` are already pruned (as both public implementations do).

Retraining (from the dense model, ``retrain_steps`` steps each, the same batches, so an equal
token budget; masks on every block linear, along the input dimension):

* ``fixed_mask`` — the magnitude mask of the dense weights, never changed; pruned weights are
  zeroed and receive no gradient; AdamW; cross-entropy.
* ``gmp`` — gradual magnitude pruning towards n:m: the fraction ``s_t = s·(1 − (1 − t/T_g)³)`` of
  each layer's weights is pruned (``s = 1 − n/m``, ``T_g = gmp_end_fraction·steps``; Zhu & Gupta's
  cubic schedule), choosing the smallest ``|W|`` among the entries the n:m magnitude mask would
  prune, so that at ``s_t = s`` the mask is exactly n:m; refreshed every ``mask_interval`` steps;
  pruned weights zeroed, no gradient; AdamW; cross-entropy.
* ``ast_naive`` (AST) — masks recomputed every ``mask_interval`` steps (:func:`nmref.refresh_mask`),
  forward with ``W⊙M``, the straight-through gradient to every weight, AST's AdamW
  (:func:`nmref.ast_adamw_step`) with the annealed SR-STE decay
  ``λ(t) = annealing_lambda(t, ast_alpha, T0)``, distillation from the dense model
  (:func:`nmref.distill_loss`, ``kd_alpha``, ``kd_temperature``).
* ``ast_boosted`` — ``ast_naive`` plus SLoRB: ``W_eff = W⊙M + SX`` (:func:`nmref.slorb_effective_weight`),
  ``S`` initialised once from the first mask (:func:`nmref.slorb_init`), trained by AdamW with
  ``∂L/∂S = (∂L/∂W_eff) Xᵀ``.
* ``cast`` (CAST, documented interpretation) — masks recomputed every ``mask_interval`` steps,
  AdamS (:func:`nmref.adams_step`, L1 strength ``adams_lambda`` ramped over ``adams_ramp_fraction``
  of the steps), forward with the *dense, decaying* weight scaled per output row,
  ``W_eff = β ⊙ W`` with ``β = weight_scale(W_teacher, W, axis=-1)`` refreshed with the mask
  (weight scaling restores the magnitude the L1 decay removes); distillation as AST. The exported
  model is ``β' ⊙ (W⊙M)`` with ``β' = weight_scale(W_teacher, W⊙M, axis=-1)``: exactly n:m.

Parameters outside the block linears (embedding, norms) train with plain AdamW in every recipe.
"""
from __future__ import annotations

import numpy as np

from ..masks import nm_mask, wanda_scores
from ..sparsegpt import hessian_from_inputs, sparsegpt_prune
from . import model as M

__all__ = ["ONE_SHOT", "RETRAIN", "gmp_fraction", "gmp_mask", "one_shot_prune"]

ONE_SHOT = ("magnitude", "wanda", "sparsegpt")
RETRAIN = ("fixed_mask", "gmp", "ast_naive", "ast_boosted", "cast")
USES_KD = ("ast_naive", "ast_boosted", "cast")


def gmp_fraction(t: int, steps: int, end_fraction: float, n: int, m: int) -> float:
    """``s_t = s·(1 − (1 − min(t/T_g, 1))³)`` with ``s = 1 − n/m``, ``T_g = max(1, round(end_fraction·steps))``."""
    tg = max(1, round(end_fraction * steps))
    r = min(t / tg, 1.0)
    return (1 - n / m) * (1 - (1 - r) ** 3)


def gmp_mask(w: np.ndarray, frac: float, n: int, m: int) -> np.ndarray:
    """Keep the n:m magnitude mask plus the largest of the other entries, so that
    ``round(frac·size)`` entries are pruned (at most the ``(m − n)/m`` share the n:m mask prunes).
    Ties: lower flat index kept first (a stable sort on (−|w|, index))."""
    keep = nm_mask(w, n, m)
    cand = np.flatnonzero(~keep)
    k = min(int(round(frac * w.size)), cand.size)
    mag = np.abs(w.reshape(-1)[cand]).astype(np.float64)
    order = np.lexsort((cand, -mag))         # largest magnitude first, lower index first on ties
    out = keep.reshape(-1).copy()
    out[cand[order[: cand.size - k]]] = True  # the candidates that survive
    return out.reshape(w.shape)


def one_shot_prune(kind: str, params: dict, cfg, calib_tokens: list) -> tuple[dict, dict]:
    """Pruned copy of ``params`` and the masks, for ``kind`` in :data:`ONE_SHOT`."""
    names = M.linear_names(cfg)
    out = dict(params)
    masks = {}
    if kind == "magnitude":
        for nm in names:
            masks[nm] = nm_mask(params[nm], cfg.n, cfg.m)
            out[nm] = np.where(masks[nm], params[nm], 0).astype(params[nm].dtype)
        return out, masks
    for l in range(cfg.n_layers):
        block = [nm for nm in names if nm.startswith(f"blocks.{l}.")]
        xs = {nm: [] for nm in block}
        for tok in calib_tokens:
            _, cache = M.forward(out, tok, cfg)
            inp = M.linear_inputs(cache, cfg)
            for nm in block:
                xs[nm].append(inp[nm].reshape(-1, inp[nm].shape[-1]))
        for nm in block:
            x = np.concatenate(xs[nm], axis=0)
            if kind == "wanda":
                masks[nm] = nm_mask(params[nm], cfg.n, cfg.m, scores=wanda_scores(params[nm], x))
                out[nm] = np.where(masks[nm], params[nm], 0).astype(params[nm].dtype)
            else:
                out[nm], masks[nm] = sparsegpt_prune(params[nm], hessian_from_inputs(x), cfg.n, cfg.m,
                                                     blocksize=cfg.sparsegpt_blocksize, damp=cfg.sparsegpt_damp)
    return out, masks
