"""``nmref experiment``: dense training, one-shot 2:4 pruning, retraining recipes, evaluation —
written to a run directory:

    config.json          the full validated config (a resumed run reads it back)
    data.safetensors     the token ids of both splits (+ tokenizer.json for BPE) and data.json
    metrics.jsonl        one JSON record per line: train loss per step, validation loss, flip rates, tokens/s
    checkpoints/<recipe>.safetensors   every stage's full state (atomic; ``--resume`` continues from them)
    exports/<recipe>.safetensors       the evaluated model of every recipe, Hugging Face–style names
                                       (``nmref.tiny.export``); exactly-n:m recipes pass ``nmref check-checkpoint``
    results.md / results.json          the table
    loss.png, flip_rate.png, perplexity.png   (when matplotlib is installed: ``pip install 'nmref[plot]'``)
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from .._checks import NMRefValueError
from ..io import atomic_write, atomic_write_json, atomic_write_text, safetensors_bytes
from ..masks import is_nm_sparse
from . import model as M
from .config import ExperimentConfig
from .data import generate_text, load_text, markov_source, split_text, tokenize, train_batch
from .int4 import int4_report, int4_table
from .export import write_export
from .plots import write_plots
from .recipes import ONE_SHOT, get_recipe, one_shot_prune
from .train import (StageState, check_checkpoint_meta, evaluate, export_weights, load_checkpoint,
                    run_stage, start_stage)

__all__ = ["run_experiment", "prepare_data", "RunDirError"]

# Retraining recipes share one batch stream (stage id 1): the same tokens in the same order.
_STAGE_DENSE, _STAGE_RETRAIN, _STAGE_CALIB = 0, 1, 2


class RunDirError(NMRefValueError):
    """The run directory cannot be used (exists when starting, or is not a run when resuming)."""


class _Log:
    """Buffers metric records; ``flush`` appends them to metrics.jsonl (done before each checkpoint)."""

    def __init__(self, path: Path):
        self.path, self.buf, self.records = path, [], []

    def __call__(self, rec: dict) -> None:
        self.buf.append(rec)
        self.records.append(rec)

    def flush(self) -> None:
        if self.buf:
            with open(self.path, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in self.buf)
            self.buf = []


def _truncate_metrics(path: Path, recipe: str, step: int) -> list:
    """On resume: keep the records of completed work only (drop ``recipe``'s records past ``step``
    and a torn last line), rewrite atomically, return them. (``tokens_per_s`` is logged only when
    a stage finishes, so a finished stage keeps its record.)"""
    keep = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("recipe") == recipe and r.get("step", 0) > step:
                continue
            keep.append(r)
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
    return keep


# -- data --------------------------------------------------------------------------------------
def prepare_data(cfg: ExperimentConfig) -> tuple:
    """(Tokenized, info dict). The built-in corpus comes with its exact entropy rate."""
    info: dict = {}
    if cfg.text is None:
        rng = np.random.default_rng([cfg.seed, 7])
        src = markov_source(cfg.corpus_vocab, cfg.corpus_branching, rng)
        text = generate_text(src, cfg.corpus_words, rng)
        info.update(source="built-in Markov corpus", entropy_bits_per_word=src.entropy_bits_per_word(),
                    entropy_bits_per_char=src.entropy_bits_per_char())
    else:
        text = load_text(cfg.text)
        info.update(source=str(cfg.text))
    train_text, val_text = split_text(text, cfg.val_fraction)
    tok = tokenize(train_text, val_text, cfg.tokenizer, cfg.vocab_size)
    info.update(train_chars=len(train_text), val_chars=len(val_text), train_tokens=int(tok.train.size),
                val_tokens=int(tok.val.size), vocab_size=tok.vocab_size)
    if tok.train.size < cfg.seq_len + 2:
        raise NMRefValueError(f"the training split has {tok.train.size} tokens; seq_len={cfg.seq_len} needs at least "
                              f"{cfg.seq_len + 2}: give a longer text")
    if tok.val.size < cfg.seq_len + 1:
        raise NMRefValueError(f"the validation split has {tok.val.size} tokens; seq_len={cfg.seq_len} needs at least "
                              f"{cfg.seq_len + 1}: give a longer text or a larger val_fraction")
    if "entropy_bits_per_char" in info:
        nats = math.log(2) * info["entropy_bits_per_char"] * len(val_text) / tok.val.size
        info.update(floor_nats_per_token=nats, floor_ppl=math.exp(nats))
    return tok, info


def _save_data(run: Path, tok, info) -> None:
    with atomic_write(run / "data.safetensors") as f:
        f.write(safetensors_bytes({"train": tok.train, "val": tok.val}))
    if tok.tokenizer_json is not None:
        atomic_write_text(run / "tokenizer.json", tok.tokenizer_json)
    atomic_write_json(run / "data.json", info)


def _load_data(run: Path):
    from safetensors.numpy import load_file

    arrays = load_file(str(run / "data.safetensors"))
    info = json.loads((run / "data.json").read_text(encoding="utf-8"))
    return arrays["train"], arrays["val"], info


# -- the pipeline ------------------------------------------------------------------------------
def _open_run(cfg: ExperimentConfig | None, run: Path, resume: bool) -> ExperimentConfig:
    if resume:
        cp = run / "config.json"
        if not cp.is_file():
            raise RunDirError(f"--resume: {str(run)!r} is not a run directory (no config.json)")
        data = json.loads(cp.read_text(encoding="utf-8"))
        return ExperimentConfig(**data)
    if run.exists() and any(run.iterdir()):
        raise RunDirError(f"run directory {str(run)!r} exists and is not empty; use --resume to continue it or "
                          f"choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", cfg.to_dict())
    return cfg


def _check_checkpoints(run: Path, cfg) -> None:
    """Before any work on resume: every checkpoint present must belong to this config."""
    for p in sorted((run / "checkpoints").glob("*.safetensors")):
        check_checkpoint_meta(p, cfg)


def run_experiment(cfg: ExperimentConfig | None, out_dir, *, resume: bool = False, progress: bool = True,
                   on_step=None, say=print, blas_threads: int | None = None) -> dict:
    """Run (or resume) every recipe of ``cfg``; return the results dict (also written to the run dir).
    ``blas_threads``: the BLAS thread count the caller set, recorded in ``RUN/blas.json`` (a resumed run
    is bit-identical only with the same count; ``nmref experiment --resume`` reads it back)."""
    run = Path(out_dir)
    if cfg is not None and cfg.text is not None:  # fail before anything is written
        load_text(cfg.text)
    cfg = _open_run(cfg, run, resume)
    if blas_threads is not None and not (run / "blas.json").is_file():
        atomic_write_json(run / "blas.json", {"threads": int(blas_threads)})
    if cfg.text is not None and not (run / "data.safetensors").is_file():
        load_text(cfg.text)
    ckdir = run / "checkpoints"
    if resume and (run / "data.safetensors").is_file() and (run / "data.json").is_file():
        train_tokens, val_tokens, info = _load_data(run)
        vocab = info["vocab_size"]
    else:
        t0 = time.perf_counter()
        tok, info = prepare_data(cfg)
        _save_data(run, tok, info)
        train_tokens, val_tokens, vocab = tok.train, tok.val, tok.vocab_size
        say(f"data: {info['source']}; {info['train_tokens']:,} train / {info['val_tokens']:,} validation tokens, "
            f"vocabulary {vocab} ({time.perf_counter() - t0:.1f} s)")
    if resume:
        _check_checkpoints(run, cfg)
    metrics_path = run / "metrics.jsonl"
    log = _Log(metrics_path)

    def stage_path(recipe):
        return ckdir / f"{recipe}.safetensors"

    def resume_state(recipe, fresh: StageState):
        p = stage_path(recipe)
        if resume and p.is_file():
            st, complete = load_checkpoint(p, cfg, recipe, fresh)
            log.records = _truncate_metrics(metrics_path, recipe, st.step)
            return st, complete
        return fresh, False

    results: dict = {"config": cfg.to_dict(), "data": info, "recipes": {}}
    init = M.init_params(cfg, vocab, np.random.default_rng([cfg.seed, 11]))
    n_lin = sum(init[nm].size for nm in M.linear_names(cfg))

    # 1. dense
    st, done = resume_state("dense", start_stage("dense", init, cfg))
    t0 = time.perf_counter()
    if not done:
        st = run_stage(st, cfg, train_tokens=train_tokens, val_tokens=val_tokens, teacher=None, steps=cfg.dense_steps,
                       stage_id=_STAGE_DENSE, ckpt_path=stage_path("dense"), log=log, progress=progress,
                       on_step=on_step)
    dense = st.params
    results["recipes"]["dense"] = _summary(st, cfg, dense, val_tokens, info, n_lin, time.perf_counter() - t0, log)
    pattern = f"{cfg.n}:{cfg.m}"
    write_export(run / "exports" / "dense.safetensors", dense, {}, recipe="dense", pattern=pattern, nm_sparse=None)

    # 2. one-shot and retraining recipes, all from the dense model
    calib = [train_batch(train_tokens, cfg.seq_len, cfg.batch_size, cfg.seed, _STAGE_CALIB, i)[0]
             for i in range(cfg.calib_batches)]
    exported = {}  # recipe -> (params, exported block linears), for the int4 report
    for recipe in cfg.recipes:
        if recipe == "dense":
            continue
        t0 = time.perf_counter()
        if recipe in ONE_SHOT:
            pruned, masks = one_shot_prune(recipe, dense, cfg, calib)
            st = StageState(recipe, 0, pruned, {}, masks=masks)
            res = _summary(st, cfg, dense, val_tokens, info, n_lin, time.perf_counter() - t0, log, one_shot=True)
        else:
            st, done = resume_state(recipe, start_stage(recipe, dense, cfg))
            if not done:
                st = run_stage(st, cfg, train_tokens=train_tokens, val_tokens=val_tokens, teacher=dense,
                               steps=cfg.retrain_steps, stage_id=_STAGE_RETRAIN, ckpt_path=stage_path(recipe),
                               log=log, progress=progress, on_step=on_step)
            res = _summary(st, cfg, dense, val_tokens, info, n_lin, time.perf_counter() - t0, log)
        results["recipes"][recipe] = res
        exported[recipe] = (st.params, {nm: st.params[nm] for nm in M.linear_names(cfg)} if recipe in ONE_SHOT
                            else export_weights(st, cfg, dense))
        write_export(run / "exports" / f"{recipe}.safetensors", *exported[recipe], recipe=recipe, pattern=pattern,
                     nm_sparse=res["nm_sparse"])
    log.flush()
    results["int4"] = [int4_report(r, exported[r][1], exported[r][0], val_tokens, cfg, evaluate)
                       for r in _int4_recipes(results)]
    table = results_table(results)
    atomic_write_text(run / "results.md", table + "\n")
    atomic_write_json(run / "results.json", results)
    plotted = write_plots(run, _read_metrics(metrics_path), results)
    say(table)
    say(f"\nrun directory: {run}" + ("" if plotted else "  (plots skipped: install matplotlib, pip install 'nmref[plot]')"))
    return results


def best_exact_nm_recipe(recipes: dict) -> str | None:
    """The trained recipe (of a results dict's ``recipes``) with the lowest validation loss among those
    whose export is exactly n:m with no extra parameters; None if none ran."""
    trained = [n for n, r in recipes.items() if n != "dense" and n not in ONE_SHOT and r["nm_sparse"]
               and not r["extra_params"]]
    return min(trained, key=lambda n: recipes[n]["val_loss"], default=None)


def _int4_recipes(results: dict) -> list:
    """Magnitude pruning and :func:`best_exact_nm_recipe`, if they ran."""
    rs = results["recipes"]
    return [n for n in ("magnitude", best_exact_nm_recipe(rs)) if n is not None and n in rs]


def _read_metrics(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def _summary(st: StageState, cfg, dense: dict, val_tokens, info, n_lin: int, seconds: float, log,
             one_shot: bool = False) -> dict:
    if st.recipe == "dense" or one_shot:
        weights = {} if st.recipe == "dense" else {nm: st.params[nm] for nm in M.linear_names(cfg)}
    else:
        weights = export_weights(st, cfg, dense)
    vl = evaluate(st.params, weights, val_tokens, cfg)
    sparse_ok = None
    nonzero = n_lin
    extra = 0
    if st.recipe != "dense":
        nonzero, sparse_ok = 0, True
        recipe = get_recipe(st.recipe)
        for nm in M.linear_names(cfg):
            part = recipe.sparse_part(st, nm, weights[nm])  # SLoRB: W⊙M; its S is counted as extra
            extra += st.slorb[nm].size if nm in st.slorb else 0
            sparse_ok = sparse_ok and bool(is_nm_sparse(part, cfg.n, cfg.m))
            nonzero += int(np.count_nonzero(part))
    flips = [r for r in log.records if r.get("recipe") == st.recipe and "flip_rate" in r]
    tps = [r["tokens_per_s"] for r in log.records if r.get("recipe") == st.recipe and "tokens_per_s" in r]
    out = {"val_loss": vl, "val_ppl": math.exp(vl), "nonzero_linear": nonzero, "linear_params": n_lin,
           "extra_params": extra, "nm_sparse": sparse_ok, "seconds": seconds,
           "final_flip_rate": flips[-1]["flip_rate"] if flips else None,
           "final_initial_flip_rate": flips[-1]["initial_flip_rate"] if flips else None,
           "tokens_per_s": tps[-1] if tps else None}
    if "floor_nats_per_token" in info:
        out["gap_to_floor_nats"] = vl - info["floor_nats_per_token"]
    return out


def results_table(results: dict) -> str:
    info = results["data"]
    rs = results["recipes"]
    dense = rs["dense"]["val_ppl"]
    floor = info.get("floor_ppl")
    lines = [
        "| recipe | val ppl | vs dense | gap to floor (nats/token) | n:m sparse | nonzero linear weights | extra params "
        "| last flip rate | initial flip rate | tokens/s | time (s) |",
        "|---|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rs.items():
        def f(v, fmt):
            return "—" if v is None else format(v, fmt)
        lines.append(
            f"| {name} | {r['val_ppl']:.3f} | {r['val_ppl'] / dense:.3f}× | {f(r.get('gap_to_floor_nats'), '.4f')} | "
            f"{'—' if r['nm_sparse'] is None else ('yes' if r['nm_sparse'] else 'NO')} | "
            f"{r['nonzero_linear']:,} / {r['linear_params']:,} | {r['extra_params']:,} | "
            f"{f(r['final_flip_rate'], '.4f')} | {f(r['final_initial_flip_rate'], '.4f')} | "
            f"{f(r['tokens_per_s'], ',.0f')} | {r['seconds']:.1f} |")
    head = f"Validation perplexity per token ({info['val_tokens']:,} tokens"
    head += f"; entropy floor {floor:.3f}, i.e. {info['entropy_bits_per_char']:.4f} bits/char)." if floor else ")."
    tail = "\n\n" + int4_table(results["int4"]) if results.get("int4") else ""
    return head + "\n\n" + "\n".join(lines) + tail



