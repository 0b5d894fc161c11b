"""Training stages (dense, and every retraining recipe) over explicit state, with atomic
checkpoints that make a resumed run bit-identical to an uninterrupted one.

Determinism: a step's batch depends only on ``(seed, stage, step)`` (:func:`~nmref.tiny.data.train_batch`),
the learning rate only on the step, and every other input of a step is in :class:`StageState` —
which the checkpoint stores completely (parameters, Adam moments and step counts, masks, the first
mask, SLoRB factors, weight scales). Restoring it and running the remaining steps performs the
same floating-point operations in the same order as the uninterrupted run.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import NMRefValueError
from ..distill import cross_entropy, distill_loss
from ..io import atomic_write, safetensors_bytes
from ..optim import AdamHyper, AdamState, adamw_step, init_adam_state
from . import model as M
from .data import eval_windows, train_batch
from .recipes import get_recipe

__all__ = ["StageState", "TrainingDivergedError", "CheckpointError", "lr_at", "start_stage", "run_stage",
           "export_weights", "evaluate", "save_checkpoint", "load_checkpoint", "config_digest"]

CKPT_FORMAT = "nmref-tiny-checkpoint/1"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/Inf; the message names the recipe, the step and the checkpoint kept."""


class CheckpointError(NMRefValueError):
    """A checkpoint does not belong to this run (format, config, recipe or shapes differ)."""


@dataclass
class StageState:
    recipe: str
    step: int                       # optimizer steps done in this stage
    params: dict
    opt: dict                       # name → AdamState
    masks: dict = field(default_factory=dict)
    mask0: dict = field(default_factory=dict)
    slorb: dict = field(default_factory=dict)
    slorb_opt: dict = field(default_factory=dict)
    scales: dict = field(default_factory=dict)   # CAST's per-row β


def config_digest(cfg) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def lr_at(t: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up over ``min(warmup, total)`` steps, then cosine from ``peak`` to ``0.1·peak``."""
    w = min(warmup, total)
    if t < w:
        return peak * (t + 1) / w
    r = (t - w) / max(1, total - w)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(r, 1.0))))


# -- stage set-up ------------------------------------------------------------------------------
def start_stage(recipe: str, params: dict, cfg) -> StageState:
    """The state at step 0 of ``recipe``, starting from ``params`` (the init or the dense model)."""
    p = {k: v.copy() for k, v in params.items()}
    st = StageState(recipe, 0, p, {k: init_adam_state(v) for k, v in p.items()})
    get_recipe(recipe).start(st, cfg)
    return st


def export_weights(st: StageState, cfg, teacher: dict | None) -> dict:
    """The linear weights the finished model computes with (the recipe's :meth:`~Recipe.export`):
    ``W⊙M`` (exactly n:m), ``W⊙M + SX`` (SLoRB), ``β'⊙(W⊙M)`` (CAST), or none (dense)."""
    return get_recipe(st.recipe).export(st, cfg, teacher)


def _refresh(st: StageState, cfg, t: int, steps: int, teacher: dict | None):
    """The recipe's mask refresh at the start of step t; returns flip statistics or None."""
    pairs = get_recipe(st.recipe).refresh(st, cfg, t, steps, teacher)
    if pairs is None:
        return None
    total = sum(new.size for new, _, _ in pairs)
    flips = sum(int(np.count_nonzero(new != old)) for new, old, _ in pairs)
    flips0 = sum(int(np.count_nonzero(new != first)) for new, _, first in pairs)
    return {"flip_rate": flips / total, "initial_flip_rate": flips0 / total}


def _hyper(cfg, lr):
    return AdamHyper(lr=lr, beta1=cfg.beta1, beta2=cfg.beta2, eps=1e-8, weight_decay=cfg.weight_decay)


def _update(st: StageState, grads: dict, cfg, t: int, steps: int, lr: float) -> None:
    """Each block linear's gradient (of its effective weight) through the recipe's update; every
    other parameter with plain AdamW."""
    hyper = _hyper(cfg, lr)
    recipe = get_recipe(st.recipe)
    lin = set(M.linear_names(cfg))
    for nm, p in st.params.items():
        if nm in lin:
            recipe.update_linear(st, nm, grads[nm], hyper, cfg, t, steps)
        else:
            st.params[nm], st.opt[nm] = adamw_step(p, grads[nm], st.opt[nm], hyper)


def evaluate(params: dict, weights: dict, val_tokens: np.ndarray, cfg) -> float:
    """Mean next-token cross-entropy (nats) over the fixed validation windows."""
    xs, ys = eval_windows(val_tokens, cfg.seq_len, cfg.eval_batches * cfg.batch_size)
    total, count = 0.0, 0
    for i in range(0, len(xs), cfg.batch_size):
        logits, _ = M.forward(params, xs[i:i + cfg.batch_size], cfg, weights)
        loss, _ = cross_entropy(logits, ys[i:i + cfg.batch_size])
        n = ys[i:i + cfg.batch_size].size
        total += loss * n
        count += n
    return total / count


# -- the loop ----------------------------------------------------------------------------------
def run_stage(st: StageState, cfg, *, train_tokens, val_tokens, teacher: dict | None, steps: int, stage_id: int,
              ckpt_path: Path, log, progress: bool = True, on_step=None) -> StageState:
    """Run ``st`` to ``steps`` optimizer steps. ``log(record)`` receives metric records; ``flush()``
    on it is called before every checkpoint. ``on_step(total_steps_done)`` is a test hook."""
    peak = cfg.lr if st.recipe == "dense" else cfg.retrain_lr
    kd = get_recipe(st.recipe).distils
    bar = None
    if progress and steps > st.step:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=st.step, desc=f"{st.recipe:>11}", unit="step", mininterval=0.5,
                   dynamic_ncols=True, leave=True)
    tps_t0, tps_steps = time.perf_counter(), 0
    last_ckpt = st.step
    try:
        for t in range(st.step, steps):
            flip = _refresh(st, cfg, t, steps, teacher)
            if flip is not None and t > 0:
                log({"recipe": st.recipe, "step": t, **flip})
            lr = lr_at(t, steps, peak, cfg.warmup_steps)
            x, y = train_batch(train_tokens, cfg.seq_len, cfg.batch_size, cfg.seed, stage_id, t)
            logits, cache = M.forward(st.params, x, cfg, get_recipe(st.recipe).forward_weights(st, cfg))
            if not np.isfinite(logits).all():
                raise TrainingDivergedError(_diverged(st.recipe, t + 1, "logits contain NaN/Inf", ckpt_path, last_ckpt))
            if kd:
                t_logits, _ = M.forward(teacher, x, cfg)
                loss, gl = distill_loss(logits, t_logits, y, alpha=cfg.kd_alpha, temperature=cfg.kd_temperature)
            else:
                loss, gl = cross_entropy(logits, y)
            if not math.isfinite(loss):
                raise TrainingDivergedError(_diverged(st.recipe, t + 1, f"loss = {loss}", ckpt_path, last_ckpt))
            grads = M.backward(cache, gl, cfg)
            _update(st, grads, cfg, t, steps, lr)
            st.step = t + 1
            tps_steps += 1
            tps = tps_steps * cfg.tokens_per_step / max(time.perf_counter() - tps_t0, 1e-9)
            log({"recipe": st.recipe, "step": st.step, "train_loss": loss, "lr": lr})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
            if st.step % cfg.eval_every == 0 or st.step == steps:
                vl = evaluate(st.params, export_weights(st, cfg, teacher), val_tokens, cfg)
                log({"recipe": st.recipe, "step": st.step, "val_loss": vl, "val_ppl": math.exp(vl)})
            if st.step % cfg.checkpoint_every == 0 or st.step == steps:
                log.flush()
                save_checkpoint(ckpt_path, st, cfg, complete=st.step == steps)
                last_ckpt = st.step
            if on_step is not None:
                on_step(st.recipe, st.step)
    finally:
        if bar is not None:
            bar.close()
    if tps_steps:
        log({"recipe": st.recipe, "step": st.step, "tokens_per_s": tps_steps * cfg.tokens_per_step /
             max(time.perf_counter() - tps_t0, 1e-9)})
    log.flush()
    return st


def _diverged(recipe, step, what, ckpt_path, last_ckpt):
    kept = f"the last good checkpoint {str(ckpt_path)!r} (step {last_ckpt}) is kept" if last_ckpt else \
        "no checkpoint of this stage was written yet"
    return (f"training diverged in recipe {recipe!r} at step {step}: {what}. Stopped; {kept}. "
            f"Lower the learning rate (lr / retrain_lr) and rerun.")


# -- checkpoints -------------------------------------------------------------------------------
def _flatten(st: StageState) -> dict:
    arrays = {}
    for nm, a in st.params.items():
        arrays[f"param/{nm}"] = a
    for prefix, opt in (("opt", st.opt), ("slorb_opt", st.slorb_opt)):
        for nm, s in opt.items():
            arrays[f"{prefix}/{nm}/exp_avg"] = s.exp_avg
            arrays[f"{prefix}/{nm}/exp_avg_sq"] = s.exp_avg_sq
    for prefix, d in (("mask", st.masks), ("mask0", st.mask0)):
        for nm, a in d.items():
            arrays[f"{prefix}/{nm}"] = a.astype(np.uint8)
    for prefix, d in (("slorb", st.slorb), ("scale", st.scales)):
        for nm, a in d.items():
            arrays[f"{prefix}/{nm}"] = a
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def save_checkpoint(path: Path, st: StageState, cfg, *, complete: bool) -> None:
    """All of ``st`` in one safetensors file, written atomically (temp file + rename)."""
    steps = {f"opt/{nm}": s.step for nm, s in st.opt.items()}
    steps.update({f"slorb_opt/{nm}": s.step for nm, s in st.slorb_opt.items()})
    meta = {"format": CKPT_FORMAT, "recipe": st.recipe, "step": str(st.step), "complete": "1" if complete else "0",
            "config_digest": config_digest(cfg), "adam_steps": json.dumps(steps, sort_keys=True)}
    blob = safetensors_bytes(_flatten(st), meta)
    with atomic_write(path) as f:
        f.write(blob)


def read_checkpoint_meta(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read as safetensors: {e}") from None


def check_checkpoint_meta(path: Path, cfg) -> dict:
    """The checkpoint's metadata, after checking that it is an nmref-tiny checkpoint of ``cfg``."""
    meta = read_checkpoint_meta(path)
    if meta.get("format") != CKPT_FORMAT or meta.get("config_digest") != config_digest(cfg):
        raise CheckpointError(f"checkpoint {str(path)!r} does not belong to this run's config "
                              f"(format {meta.get('format')!r}, expected {CKPT_FORMAT!r}; config digest "
                              f"{meta.get('config_digest')!r}, expected {config_digest(cfg)!r})")
    return meta


def load_checkpoint(path: Path, cfg, recipe: str, expected: StageState) -> tuple[StageState, bool]:
    """Load and check a checkpoint against this run: its format, config digest, recipe and the
    shape/dtype of every array must match ``expected`` (a freshly started state). Raises
    :class:`CheckpointError` naming what differs."""
    from safetensors.numpy import load_file

    meta = check_checkpoint_meta(path, cfg)
    if meta.get("recipe") != recipe:
        raise CheckpointError(f"checkpoint {str(path)!r} holds recipe {meta.get('recipe')!r}, expected {recipe!r}")
    arrays = load_file(str(path))
    want = _flatten(expected)
    if set(arrays) != set(want):
        diff = sorted(set(arrays) ^ set(want))[:5]
        raise CheckpointError(f"checkpoint {str(path)!r} holds different tensors than recipe {recipe!r} needs: {diff}")
    for k, a in arrays.items():
        if a.shape != want[k].shape or a.dtype != want[k].dtype:
            raise CheckpointError(f"checkpoint {str(path)!r}: tensor {k!r} is {a.dtype}{list(a.shape)}, "
                                  f"expected {want[k].dtype}{list(want[k].shape)}")
    steps = json.loads(meta["adam_steps"])
    st = StageState(recipe, int(meta["step"]), {}, {})
    for nm in expected.params:
        st.params[nm] = arrays[f"param/{nm}"]
    for prefix, target in (("opt", st.opt), ("slorb_opt", st.slorb_opt)):
        src = expected.opt if prefix == "opt" else expected.slorb_opt
        for nm in src:
            target[nm] = AdamState(int(steps[f"{prefix}/{nm}"]), arrays[f"{prefix}/{nm}/exp_avg"],
                                   arrays[f"{prefix}/{nm}/exp_avg_sq"])
    for prefix, target in (("mask", st.masks), ("mask0", st.mask0)):
        for nm in (expected.masks if prefix == "mask" else expected.mask0):
            target[nm] = arrays[f"{prefix}/{nm}"].astype(bool)
    for prefix, target in (("slorb", st.slorb), ("scale", st.scales)):
        for nm in (expected.slorb if prefix == "slorb" else expected.scales):
            target[nm] = arrays[f"{prefix}/{nm}"]
    return st, meta.get("complete") == "1"
