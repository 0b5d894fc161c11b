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

* ``imp`` — iterative magnitude pruning towards n:m with fine-tuning between rounds (no rewinding):
  ``imp_rounds`` rounds spread over the first ``gmp_end_fraction`` of the steps; round ``r`` (from 0)
  starts at ``t_r = round(r·T_g/R)`` and prunes, by magnitude among the weights still kept, to the
  fraction ``s·(r+1)/R`` (the same n:m-compatible choice as GMP, :func:`gmp_mask`); between rounds
  the masked weights are fine-tuned with AdamW, so the token budget equals the other recipes'.
* ``fixed_mask_kd``, ``gmp_kd``, ``imp_kd`` — the same three baselines trained with AST's loss
  (distillation from the dense model, ``kd_alpha``, ``kd_temperature``) instead of cross-entropy,
  so that a comparison with AST/CAST isolates the method from the loss.

Each recipe is one :class:`Recipe` object in :data:`REGISTRY` (a new recipe is one subclass and one
registry line); the training loop (:mod:`nmref.tiny.train`) only calls its methods. Parameters
outside the block linears (embedding, norms) train with plain AdamW in every recipe.
"""
from __future__ import annotations

import numpy as np

from ..masks import nm_mask, wanda_scores
from ..optim import adams_step, adamw_step, ast_adamw_step, init_adam_state
from ..slorb import slorb_effective_weight, slorb_init, slorb_projection
from ..sparsegpt import hessian_from_inputs, sparsegpt_prune
from ..ste import annealing_lambda, mask_refresh_due, masked_weight, refresh_mask
from ..weight_scaling import weight_scale
from . import model as M

__all__ = ["Recipe", "REGISTRY", "RECIPES", "ONE_SHOT", "get_recipe", "gmp_fraction", "gmp_mask", "imp_fraction",
           "one_shot_prune"]


def gmp_fraction(t: int, steps: int, end_fraction: float, n: int, m: int) -> float:
    """``s_t = s·(1 − (1 − min(t/T_g, 1))³)`` with ``s = 1 − n/m``, ``T_g = max(1, round(end_fraction·steps))``."""
    tg = max(1, round(end_fraction * steps))
    r = min(t / tg, 1.0)
    return (1 - n / m) * (1 - (1 - r) ** 3)


def imp_fraction(t: int, steps: int, end_fraction: float, rounds: int, n: int, m: int) -> float:
    """IMP's staircase: ``s·(r+1)/R`` from the start ``t_r = round(r·T_g/R)`` of round ``r``
    (``T_g = max(1, round(end_fraction·steps))``, ``s = 1 − n/m``)."""
    tg = max(1, round(end_fraction * steps))
    r = max(k for k in range(rounds) if round(k * tg / rounds) <= t)
    return (1 - n / m) * (r + 1) / rounds


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


# ------------------------------------------------------------------------------------ the recipes
class Recipe:
    """One way to obtain the model. The training loop calls, per stage: :meth:`start` once, then per
    step :meth:`refresh` (masks), :meth:`forward_weights`, the loss (distillation if :attr:`distils`),
    :meth:`update_linear` for every block linear; :meth:`export` gives the weights the finished model
    computes with, :meth:`sparse_part` its n:m part. ``one_shot`` recipes are not trained."""

    name = ""
    distils = False
    one_shot = False

    def __init__(self, name: str | None = None, *, distils: bool | None = None):
        self.name = name or self.name
        if distils is not None:
            self.distils = distils

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, distils={self.distils})"

    def start(self, st, cfg) -> None:
        """Fill a fresh state (parameters copied from the dense model or the init) for step 0."""

    def refresh(self, st, cfg, t: int, steps: int, teacher):
        """Update the masks at the start of step ``t``; returns ``(new, old)`` mask pairs or None."""
        return None

    def forward_weights(self, st, cfg) -> dict:
        return {nm: masked_weight(st.params[nm], st.masks[nm]) for nm in M.linear_names(cfg)}

    def update_linear(self, st, nm: str, g: np.ndarray, hyper, cfg, t: int, steps: int) -> None:
        raise NotImplementedError

    def export(self, st, cfg, teacher) -> dict:
        return {nm: masked_weight(st.params[nm], st.masks[nm]) for nm in M.linear_names(cfg)}

    def sparse_part(self, st, nm: str, exported: np.ndarray) -> np.ndarray:
        """The n:m part of an exported weight (what must be exactly n:m)."""
        return exported


class Dense(Recipe):
    name = "dense"

    def forward_weights(self, st, cfg) -> dict:
        return {}

    def update_linear(self, st, nm, g, hyper, cfg, t, steps):
        st.params[nm], st.opt[nm] = adamw_step(st.params[nm], g, st.opt[nm], hyper)

    def export(self, st, cfg, teacher) -> dict:
        return {}


class OneShot(Recipe):
    """``magnitude``, ``wanda``, ``sparsegpt``: :func:`one_shot_prune`, no training."""
    one_shot = True

    def export(self, st, cfg, teacher) -> dict:
        return {nm: st.params[nm] for nm in M.linear_names(cfg)}


class FixedMask(Recipe):
    """The dense model's magnitude mask, never changed; pruned weights zero and without gradient."""
    name = "fixed_mask"

    def start(self, st, cfg):
        for nm in M.linear_names(cfg):
            st.masks[nm] = nm_mask(st.params[nm], cfg.n, cfg.m)
            st.mask0[nm] = st.masks[nm].copy()
            st.params[nm] = masked_weight(st.params[nm], st.masks[nm])

    def update_linear(self, st, nm, g, hyper, cfg, t, steps):
        g = masked_weight(g, st.masks[nm])  # pruned weights get no gradient and stay zero
        st.params[nm], st.opt[nm] = adamw_step(st.params[nm], g, st.opt[nm], hyper)


class GradualMagnitude(FixedMask):
    """GMP: all weights kept at first; pruned by the cubic schedule at every mask refresh."""
    name = "gmp"

    def start(self, st, cfg):
        for nm in M.linear_names(cfg):
            st.masks[nm] = np.ones(st.params[nm].shape, dtype=bool)
            st.mask0[nm] = st.masks[nm].copy()

    def target(self, cfg, t, steps) -> float:
        return gmp_fraction(t, steps, cfg.gmp_end_fraction, cfg.n, cfg.m)

    def due(self, cfg, t, steps) -> bool:
        return mask_refresh_due(t, cfg.mask_interval)

    def refresh(self, st, cfg, t, steps, teacher):
        if not self.due(cfg, t, steps):
            return None
        pairs = []
        frac = self.target(cfg, t, steps)
        for nm in M.linear_names(cfg):
            old = st.masks[nm]
            new = gmp_mask(st.params[nm], frac, cfg.n, cfg.m) & old  # pruned weights stay pruned (they are zero)
            st.params[nm] = masked_weight(st.params[nm], new)
            st.masks[nm] = new
            pairs.append((new, old, st.mask0[nm]))
        return pairs

    def export(self, st, cfg, teacher) -> dict:
        # mid-schedule the mask is denser than n:m: evaluate its n:m projection
        return {nm: masked_weight(st.params[nm], nm_mask(st.params[nm], cfg.n, cfg.m) & st.masks[nm])
                for nm in M.linear_names(cfg)}


class IterativeMagnitude(GradualMagnitude):
    """IMP: ``imp_rounds`` pruning rounds (a staircase of the sparsity), fine-tuning between them."""
    name = "imp"

    def target(self, cfg, t, steps) -> float:
        return imp_fraction(t, steps, cfg.gmp_end_fraction, cfg.imp_rounds, cfg.n, cfg.m)

    def due(self, cfg, t, steps) -> bool:  # the first step of every round
        return t == 0 or self.target(cfg, t, steps) != self.target(cfg, t - 1, steps)


class AST(Recipe):
    """AST-Naive: masks recomputed every ``mask_interval`` steps, STE gradient to every weight, AST's
    AdamW with the annealed SR-STE decay, distillation."""
    name = "ast_naive"
    distils = True

    def start(self, st, cfg):
        for nm in M.linear_names(cfg):
            st.masks[nm] = nm_mask(st.params[nm], cfg.n, cfg.m)
            st.mask0[nm] = st.masks[nm].copy()

    def refresh(self, st, cfg, t, steps, teacher):
        if not mask_refresh_due(t, cfg.mask_interval):
            return None
        pairs = []
        for nm in M.linear_names(cfg):
            old = st.masks[nm]
            st.masks[nm], _ = refresh_mask(st.params[nm], old, cfg.n, cfg.m)
            pairs.append((st.masks[nm], old, st.mask0[nm]))
        return pairs

    def update_linear(self, st, nm, g, hyper, cfg, t, steps):
        lam = annealing_lambda(t, cfg.ast_alpha, max(1, round(cfg.ast_t0_fraction * steps)))
        st.params[nm], st.opt[nm] = ast_adamw_step(st.params[nm], g, st.opt[nm], hyper, mask=st.masks[nm], lam=lam,
                                                   second_moment=cfg.ast_second_moment)


class ASTBoosted(AST):
    """AST-Boosted: AST plus SLoRB, ``W_eff = W⊙M + SX`` with ``S`` trained by AdamW."""
    name = "ast_boosted"

    def start(self, st, cfg):
        super().start(st, cfg)
        for nm in M.linear_names(cfg):
            st.slorb[nm] = slorb_init(st.params[nm], st.masks[nm], cfg.slorb_k)
            st.slorb_opt[nm] = init_adam_state(st.slorb[nm])

    def forward_weights(self, st, cfg) -> dict:
        return {nm: slorb_effective_weight(st.params[nm], st.masks[nm], st.slorb[nm], cfg.slorb_k)
                for nm in M.linear_names(cfg)}

    def export(self, st, cfg, teacher) -> dict:
        return self.forward_weights(st, cfg)

    def update_linear(self, st, nm, g, hyper, cfg, t, steps):
        gs = g @ slorb_projection(st.params[nm].shape[1], cfg.slorb_k, dtype=g.dtype).T
        st.slorb[nm], st.slorb_opt[nm] = adamw_step(st.slorb[nm], gs, st.slorb_opt[nm], hyper)
        super().update_linear(st, nm, g, hyper, cfg, t, steps)

    def sparse_part(self, st, nm, exported):
        return masked_weight(st.params[nm], st.masks[nm])  # S adds N_out·d/k dense parameters on top


class CAST(AST):
    """CAST: AdamS on the dense, decaying weight, forward with per-row weight scaling ``β ⊙ W``."""
    name = "cast"

    def start(self, st, cfg):
        super().start(st, cfg)
        for nm in M.linear_names(cfg):
            st.scales[nm] = np.ones(st.params[nm].shape[0], dtype=st.params[nm].dtype)

    def refresh(self, st, cfg, t, steps, teacher):
        pairs = super().refresh(st, cfg, t, steps, teacher)
        if pairs is not None:
            for nm in M.linear_names(cfg):
                st.scales[nm] = np.asarray(weight_scale(teacher[nm], st.params[nm], axis=-1), dtype=st.params[nm].dtype)
        return pairs

    def forward_weights(self, st, cfg) -> dict:
        return {nm: st.params[nm] * st.scales[nm][:, None] for nm in M.linear_names(cfg)}

    def update_linear(self, st, nm, g, hyper, cfg, t, steps):
        g = g * st.scales[nm][:, None]  # ∂L/∂W = β ⊙ ∂L/∂W_eff
        st.params[nm], st.opt[nm] = adams_step(st.params[nm], g, st.opt[nm], hyper, mask=st.masks[nm],
                                               lam=cfg.adams_lambda,
                                               ramp_steps=max(1, round(cfg.adams_ramp_fraction * steps)))

    def export(self, st, cfg, teacher) -> dict:
        out = {}
        for nm in M.linear_names(cfg):  # the forward kept W dense: project now, then rescale
            w = st.params[nm]
            sw = masked_weight(w, nm_mask(w, cfg.n, cfg.m))
            out[nm] = sw * weight_scale(teacher[nm], sw, axis=-1).astype(w.dtype)[:, None]
        return out


#: every recipe by name, in the order runs and tables list them
REGISTRY = {r.name: r for r in (
    Dense(), OneShot("magnitude"), OneShot("wanda"), OneShot("sparsegpt"),
    FixedMask(), GradualMagnitude(), IterativeMagnitude(),
    FixedMask("fixed_mask_kd", distils=True), GradualMagnitude("gmp_kd", distils=True),
    IterativeMagnitude("imp_kd", distils=True),
    AST(), ASTBoosted(), CAST(),
)}
RECIPES = tuple(REGISTRY)
ONE_SHOT = tuple(n for n, r in REGISTRY.items() if r.one_shot)


def get_recipe(name: str) -> Recipe:
    return REGISTRY[name]


def one_shot_prune(kind: str, params: dict, cfg, calib_tokens: list) -> tuple[dict, dict]:
    """Pruned copy of ``params`` and the masks, for ``kind`` in :data:`ONE_SHOT`."""
    names = M.linear_names(cfg)
    out = dict(params)
    masks = {}
    if kind == "magnitude":
        for nm in names:
            masks[nm] = nm_mask(params[nm], cfg.n, cfg.m)
            out[nm] = np.where(masks[nm], params[nm], np.zeros((), params[nm].dtype))
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
                out[nm] = np.where(masks[nm], params[nm], np.zeros((), params[nm].dtype))
            else:
                out[nm], masks[nm] = sparsegpt_prune(params[nm], hessian_from_inputs(x), cfg.n, cfg.m,
                                                     blocksize=cfg.sparsegpt_blocksize, damp=cfg.sparsegpt_damp)
    return out, masks
