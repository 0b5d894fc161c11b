"""Experiment configuration: one flat, frozen dataclass, validated before any work is done.

A config file (JSON, or TOML with a ``.toml`` suffix) is an object whose keys are field names of
:class:`ExperimentConfig`; it overrides the chosen preset. Unknown keys, wrong types and
impossible shapes raise :class:`~nmref.NMRefValueError`/`NMRefTypeError` naming the key.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .._checks import NMRefTypeError, NMRefValueError

__all__ = ["ExperimentConfig", "PRESETS", "RECIPES", "load_config"]

#: every recipe the pipeline knows, in the order they run and are tabulated
from .recipes import RECIPES  # noqa: E402 - the names live with the recipe objects (nmref/tiny/recipes.py)


@dataclass(frozen=True)
class ExperimentConfig:
    # model
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 128
    seq_len: int = 64
    norm: str = "rmsnorm"            # "rmsnorm" | "layernorm"
    mlp: str = "swiglu"              # "swiglu" (gate/up/down) | "gelu" (up/down)
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    init_std: float = 0.02
    dtype: str = "float32"           # "float32" | "float64"
    # data
    text: str | None = None          # UTF-8 file; None = the built-in Markov corpus
    corpus_words: int = 120_000      # length of the built-in corpus
    corpus_vocab: int = 160          # distinct words of the built-in source
    corpus_branching: int = 6        # successors per word of the built-in source
    tokenizer: str = "bpe"           # "bpe" | "byte"
    vocab_size: int = 384            # BPE target size (ignored for "byte")
    val_fraction: float = 0.1
    # training (dense, then every retraining recipe at the same token budget)
    seed: int = 0
    batch_size: int = 16
    dense_steps: int = 1000
    retrain_steps: int = 300
    lr: float = 3e-3
    retrain_lr: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    eval_batches: int = 8
    eval_every: int = 50
    checkpoint_every: int = 50
    # sparsity
    n: int = 2
    m: int = 4
    mask_interval: int = 10          # Δt: masks recomputed every Δt steps (AST, CAST)
    ast_alpha: float = 3e-3          # SR-STE decay λ_W after the ramp (AST eq. 3)
    ast_t0_fraction: float = 0.25    # T0 = fraction × retrain_steps (AST: T1/4)
    ast_second_moment: str = "update"  # nmref.ast_adamw_step's second_moment: "update" (paper eq. 22) | "gradient"
    kd_alpha: float = 0.67           # α of α·KL + (1−α)·CE (AST's GPT-2 value)
    kd_temperature: float = 2.0
    slorb_k: int = 16
    adams_lambda: float = 1.0        # CAST's L1 strength on pruned weights
    adams_ramp_fraction: float = 0.5 # T = fraction × retrain_steps
    gmp_end_fraction: float = 0.75   # GMP (and IMP's last round) reach n:m by this fraction of the budget
    imp_rounds: int = 4              # IMP: pruning rounds, s·r/R each
    calib_batches: int = 4           # one-shot calibration (Wanda, SparseGPT)
    sparsegpt_blocksize: int = 128
    sparsegpt_damp: float = 0.01
    recipes: tuple = RECIPES

    def __post_init__(self):
        _validate(self)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["recipes"] = list(self.recipes)
        return d


PRESETS = {
    # The default: every recipe in a few minutes on 2 CPU cores.
    "tiny": {},
    # The run documented in docs/experiments.md.
    "small": dict(d_model=128, n_layers=4, d_ff=256, seq_len=128, batch_size=16, corpus_words=400_000,
                  corpus_vocab=400, vocab_size=768, dense_steps=2000, retrain_steps=600, eval_every=100,
                  checkpoint_every=100, eval_batches=16, calib_batches=8),
    # Capacity-limited and near-converged, chosen by the pilot runs of docs/experiments.md: one-shot
    # 2:4 magnitude pruning multiplies the dense perplexity by ~1500, the dense model gains < 1.3% over
    # its last 500 of 10000 steps, retraining is 10% of the dense budget. About 15 min per seed on 2
    # cores with every recipe; run it with --seeds 3.
    "paper": dict(d_model=32, corpus_vocab=2000, corpus_branching=16, dense_steps=10000, retrain_steps=1000,
                  eval_every=500, checkpoint_every=500, ast_alpha=0.03),
    # For the tests: seconds.
    "test": dict(d_model=32, n_heads=2, n_layers=1, d_ff=64, seq_len=32, batch_size=4, corpus_words=6000,
                 corpus_vocab=40, vocab_size=160, dense_steps=30, retrain_steps=20, warmup_steps=5, eval_batches=2,
                 eval_every=10, checkpoint_every=10, calib_batches=2, mask_interval=5),
}

_CHOICES = {"norm": ("rmsnorm", "layernorm"), "mlp": ("swiglu", "gelu"), "tokenizer": ("bpe", "byte"),
            "dtype": ("float32", "float64"), "ast_second_moment": ("update", "gradient")}


def _validate(c: ExperimentConfig) -> None:
    for f in dataclasses.fields(c):
        v = getattr(c, f.name)
        want = f.type
        if f.name == "text":
            if v is not None and not isinstance(v, str):
                raise NMRefTypeError(f"config key 'text' must be a path string or null, got {v!r}")
        elif f.name == "recipes":
            if isinstance(v, list):
                object.__setattr__(c, "recipes", tuple(v))
                v = c.recipes
            if not isinstance(v, tuple) or not v:
                raise NMRefTypeError(f"config key 'recipes' must be a non-empty list, got {v!r}")
            bad = [r for r in v if r not in RECIPES]
            if bad:
                raise NMRefValueError(f"config key 'recipes' has unknown recipe(s) {bad}; expected some of {RECIPES}")
            if "dense" not in v:
                raise NMRefValueError("config key 'recipes' must include 'dense' (every other recipe starts from it)")
        elif want == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise NMRefTypeError(f"config key {f.name!r} must be an integer, got {v!r}")
        elif want == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise NMRefTypeError(f"config key {f.name!r} must be a number, got {v!r}")
        elif want == "bool":
            if not isinstance(v, bool):
                raise NMRefTypeError(f"config key {f.name!r} must be true or false, got {v!r}")
        elif want == "str":
            if v not in _CHOICES[f.name]:
                raise NMRefValueError(f"config key {f.name!r} must be one of {_CHOICES[f.name]}, got {v!r}")
    positive = ("d_model", "n_heads", "n_layers", "d_ff", "seq_len", "batch_size", "corpus_words", "corpus_vocab",
                "corpus_branching", "dense_steps", "warmup_steps", "eval_batches", "eval_every", "checkpoint_every",
                "m", "mask_interval", "slorb_k", "calib_batches", "sparsegpt_blocksize", "vocab_size", "imp_rounds")
    for k in positive:
        if getattr(c, k) < (0 if k == "warmup_steps" else 1):
            raise NMRefValueError(f"config key {k!r} must be ≥ {0 if k == 'warmup_steps' else 1}, got {getattr(c, k)}")
    if c.retrain_steps < 0:
        raise NMRefValueError(f"config key 'retrain_steps' must be ≥ 0, got {c.retrain_steps}")
    if not 0 <= c.n <= c.m:
        raise NMRefValueError(f"config keys n, m must satisfy 0 ≤ n ≤ m, got n={c.n}, m={c.m}")
    if c.d_model % c.n_heads:
        raise NMRefValueError(f"d_model={c.d_model} is not divisible by n_heads={c.n_heads}")
    if c.d_head % 2:
        raise NMRefValueError(f"the head size d_model/n_heads={c.d_head} must be even for RoPE")
    for k in ("d_model", "d_ff"):
        if getattr(c, k) % c.m:
            raise NMRefValueError(f"{k}={getattr(c, k)} is not divisible by m={c.m}: the N:M groups of every "
                                  f"linear layer's input dimension must be whole")
        if "ast_boosted" in c.recipes and getattr(c, k) % c.slorb_k:
            raise NMRefValueError(f"{k}={getattr(c, k)} is not divisible by slorb_k={c.slorb_k} (SLoRB groups)")
    for k in ("lr", "retrain_lr", "ast_alpha", "adams_lambda", "kd_temperature", "sparsegpt_damp", "rope_base",
              "init_std", "weight_decay"):
        v = getattr(c, k)
        if not (v >= 0 and v < float("inf")) or (k in ("kd_temperature", "rope_base", "init_std") and v == 0):
            raise NMRefValueError(f"config key {k!r} must be a finite number > 0 (≥ 0 for rates), got {v}")
    for k in ("val_fraction", "kd_alpha", "beta1", "beta2", "ast_t0_fraction", "adams_ramp_fraction",
              "gmp_end_fraction"):
        v = getattr(c, k)
        hi_open = k in ("val_fraction", "beta1", "beta2")
        if not (0 <= v <= 1) or (hi_open and v == 1) or (k == "val_fraction" and v == 0):
            raise NMRefValueError(f"config key {k!r} must lie in {'(0, 1)' if k == 'val_fraction' else '[0, 1]'}, "
                                  f"got {v}")
    if c.corpus_branching > c.corpus_vocab:
        raise NMRefValueError(f"corpus_branching={c.corpus_branching} exceeds corpus_vocab={c.corpus_vocab}")
    if c.tokenizer == "bpe" and c.vocab_size < 64:
        raise NMRefValueError(f"vocab_size={c.vocab_size} is too small for BPE (need ≥ 64)")


def load_config(preset: str = "tiny", path=None, overrides: dict | None = None) -> ExperimentConfig:
    """The preset's values, then the file's (if any), then ``overrides``; validated as a whole."""
    if preset not in PRESETS:
        raise NMRefValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    values = dict(PRESETS[preset])
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise NMRefValueError(f"config file {str(p)!r} does not exist")
        raw = p.read_bytes()
        try:
            if p.suffix == ".toml":
                import tomllib

                data = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw.decode("utf-8"))
        except Exception as e:  # noqa: BLE001 - any parse failure is the user's file
            raise NMRefValueError(f"config file {str(p)!r} cannot be parsed: {e}") from None
        if not isinstance(data, dict):
            raise NMRefValueError(f"config file {str(p)!r} must hold an object of keys, got {type(data).__name__}")
        values.update(data)
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise NMRefValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
    return ExperimentConfig(**values)
