"""TEAL on the trained tiny model: validation perplexity against activation sparsity, for uniform
thresholds and for TEAL's greedy block-wise allocation, on the dense model and on a 2:4 model.

Procedure (``nmref teal-study RUN_DIR``; the run must have finished its dense stage):

1. **Calibration** on ``calib_batches`` batches of the *training* split (batch stream ``stage 3``, so
   disjoint from the validation text and from the batches any recipe trained on): the input
   activations of every block linear of the model studied (dense, or the 2:4 model's own).
2. **Uniform**: every projection at sparsity ``p``; its threshold ``exact_threshold(calib inputs, p)``
   (``nmref.exact_threshold``: the ``round(p·N)``-th smallest magnitude, ties dropped).
3. **Greedy** (TEAL §4): per block, ``nmref.greedy_block_allocation`` over the block's 7 (SwiGLU) or 6
   projections with their parameter counts, the block's error measured on the residual stream after
   that block (``forward(..., hidden_after=l)``) for the calibration batches, with the other blocks
   dense; at each target ``p`` every block takes ``nmref.sparsities_at(path, p)`` (the first point of
   its path whose parameter-weighted mean reaches ``p``), and each projection its threshold as above.
4. **Evaluation**: validation loss over the run's fixed validation windows with every linear's input
   sparsified at its threshold (``nmref.sparsify``, inside ``model.forward(..., thresholds=)``). The
   achieved sparsity on validation is reported too (parameter-weighted mean over the linears of the
   fraction of input entries dropped).

The 2:4 model is the run's best exactly-2:4 trained recipe without extra parameters (its final
checkpoint), else magnitude pruning of the dense model. Results: ``RUN_DIR/teal/teal.md``,
``teal.json`` and ``teal.png`` (with matplotlib).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .._checks import NMRefValueError
from .plots import plot_teal
from ..activation import exact_threshold, greedy_block_allocation, sparsities_at
from ..io import atomic_write_json, atomic_write_text
from . import model as M

__all__ = ["run_teal_study", "LEVELS"]

LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
_STAGE_TEAL_CALIB = 3


def _load_run(run: Path):
    from .config import ExperimentConfig
    from .experiment import _load_data, best_exact_nm_recipe
    from .recipes import one_shot_prune
    from .train import export_weights, load_checkpoint, start_stage

    cp = run / "config.json"
    if not cp.is_file() or not (run / "checkpoints" / "dense.safetensors").is_file():
        raise NMRefValueError(f"{str(run)!r} is not a run directory with a finished dense stage "
                              "(run nmref experiment first)")
    cfg = ExperimentConfig(**json.loads(cp.read_text(encoding="utf-8")))
    train_tokens, val_tokens, info = _load_data(run)
    init = M.init_params(cfg, info["vocab_size"], np.random.default_rng([cfg.seed, 11]))
    dense_st, done = load_checkpoint(run / "checkpoints" / "dense.safetensors", cfg, "dense", start_stage("dense", init, cfg))
    if not done:
        raise NMRefValueError(f"the dense stage of {str(run)!r} did not finish; resume the run first")
    dense = dense_st.params
    sparse_name, sparse_w = "magnitude", None
    res_path = run / "results.json"
    if res_path.is_file():
        best = best_exact_nm_recipe(json.loads(res_path.read_text())["recipes"])
        if best is not None and (run / "checkpoints" / f"{best}.safetensors").is_file():
            sparse_name = best
            st, _ = load_checkpoint(run / "checkpoints" / f"{sparse_name}.safetensors", cfg, sparse_name,
                                    start_stage(sparse_name, dense, cfg))
            sparse_w = (st.params, export_weights(st, cfg, dense))
    if sparse_w is None:
        pruned, _ = one_shot_prune("magnitude", dense, cfg, [])
        sparse_w = (pruned, {nm: pruned[nm] for nm in M.linear_names(cfg)})
    return cfg, train_tokens, val_tokens, dense, (sparse_name, sparse_w)


def _calibration(params, weights, tokens, cfg) -> tuple[dict, list]:
    from .data import train_batch

    batches = [train_batch(tokens, cfg.seq_len, cfg.batch_size, cfg.seed, _STAGE_TEAL_CALIB, i)[0]
               for i in range(cfg.calib_batches)]
    acts = {nm: [] for nm in M.linear_names(cfg)}
    for b in batches:
        _, cache = M.forward(params, b, cfg, weights)
        for nm, a in M.linear_inputs(cache, cfg).items():
            acts[nm].append(a.reshape(-1, a.shape[-1]))
    return {nm: np.concatenate(v) for nm, v in acts.items()}, batches


def _evaluate(params, weights, thresholds, val_tokens, cfg) -> tuple[float, float]:
    """(validation loss, achieved parameter-weighted input sparsity) with TEAL thresholds."""
    from ..distill import cross_entropy
    from .data import eval_windows

    xs, ys = eval_windows(val_tokens, cfg.seq_len, cfg.eval_batches * cfg.batch_size)
    total, count = 0.0, 0
    dropped = {nm: [0, 0] for nm in M.linear_names(cfg)}
    w_all = dict(params, **weights)
    for i in range(0, len(xs), cfg.batch_size):
        logits, cache = M.forward(params, xs[i:i + cfg.batch_size], cfg, weights, thresholds or None)
        loss, _ = cross_entropy(logits, ys[i:i + cfg.batch_size])
        n = ys[i:i + cfg.batch_size].size
        total, count = total + loss * n, count + n
        for nm, a in M.linear_inputs(cache, cfg).items():
            t = thresholds.get(nm) if thresholds else None
            dropped[nm][0] += 0 if t is None else int(np.count_nonzero(np.abs(a) <= t))
            dropped[nm][1] += a.size
    sizes = {nm: w_all[nm].size for nm in dropped}
    frac = sum(sizes[nm] * d / c for nm, (d, c) in dropped.items()) / sum(sizes.values())
    return total / count, frac


def _thresholds(calib: dict, sparsities: dict) -> dict:
    return {nm: exact_threshold(calib[nm], s) for nm, s in sparsities.items() if s > 0}


def _greedy_paths(params, weights, calib, batches, cfg, step: float) -> dict:
    w_all = dict(params, **weights)
    paths = {}
    for layer in range(cfg.n_layers):
        names = [nm for nm in M.linear_names(cfg) if nm.startswith(f"blocks.{layer}.")]

        def block_fn(_x, sparsities, names=names, layer=layer):
            th = _thresholds(calib, {nm: sparsities[nm] for nm in names})
            return np.concatenate([M.forward(params, b, cfg, weights, th or None, hidden_after=layer)[0]
                                   for b in batches])
        paths[layer] = greedy_block_allocation(block_fn, None, {nm: w_all[nm].size for nm in names}, step=step,
                                               max_total=max(LEVELS))
    return paths


def run_teal_study(run_dir, *, levels=LEVELS, step: float = 0.05, say=print) -> dict:
    run = Path(run_dir)
    cfg, train_tokens, val_tokens, dense, (sparse_name, (sp_params, sp_w)) = _load_run(run)
    models = {"dense": (dense, {}), f"2:4 ({sparse_name})": (sp_params, sp_w)}
    rows = []
    for label, (params, weights) in models.items():
        calib, batches = _calibration(params, weights, train_tokens, cfg)
        paths = _greedy_paths(params, weights, calib, batches, cfg, step)
        for p in levels:
            uni = _thresholds(calib, {nm: p for nm in M.linear_names(cfg)})
            greedy_s = {}
            for path in paths.values():
                greedy_s.update(sparsities_at(path, p))
            for method, th in (("uniform", uni), ("greedy", _thresholds(calib, greedy_s))):
                vl, achieved = _evaluate(params, weights, th, val_tokens, cfg)
                rows.append({"model": label, "method": method, "target": p, "achieved": achieved,
                             "val_loss": vl, "val_ppl": math.exp(vl)})
                say(f"{label:>24} {method:>7} p = {p:.2f}: ppl {math.exp(vl):.3f} (achieved {achieved:.3f})")
    out = run / "teal"
    out.mkdir(exist_ok=True)
    result = {"levels": list(levels), "step": step, "calibration": f"{cfg.calib_batches} training batches (stream 3)",
              "rows": rows}
    atomic_write_json(out / "teal.json", result)
    atomic_write_text(out / "teal.md", teal_table(result) + "\n")
    plot_teal(out / "teal.png", result)
    say(teal_table(result))
    return result


def teal_table(result: dict) -> str:
    models = list(dict.fromkeys(r["model"] for r in result["rows"]))
    head = "| target sparsity | " + " | ".join(f"{m} uniform | {m} greedy" for m in models) + " |"
    lines = ["Validation perplexity (achieved sparsity on validation) against the target activation sparsity; "
             f"thresholds from {result['calibration']}.", "", head, "|---|" + "---|---|" * len(models)]
    for p in result["levels"]:
        cells = []
        for m in models:
            for method in ("uniform", "greedy"):
                r = next(r for r in result["rows"] if r["model"] == m and r["method"] == method and r["target"] == p)
                cells.append(f"{r['val_ppl']:.3f} ({r['achieved']:.2f})")
        lines.append(f"| {p:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


