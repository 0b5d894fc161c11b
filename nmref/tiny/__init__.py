"""The tiny NumPy transformer and the CPU experiment pipeline (``nmref experiment``).

* :mod:`nmref.tiny.layers` — each layer's forward and hand-written backward;
* :mod:`nmref.tiny.model` — the decoder-only transformer (RMSNorm/LayerNorm, RoPE attention, SwiGLU/GELU);
* :mod:`nmref.tiny.data` — the built-in Markov corpus with its exact entropy rate, tokenisation, batches;
* :mod:`nmref.tiny.recipes` — one-shot pruning and the retraining recipes (definitions);
* :mod:`nmref.tiny.train` — the training loop, checkpoints, resume;
* :mod:`nmref.tiny.experiment` — the pipeline, the results table and the plots.
"""
from .config import PRESETS, RECIPES, ExperimentConfig, load_config
from .experiment import run_experiment
from .train import CheckpointError, TrainingDivergedError

__all__ = ["ExperimentConfig", "PRESETS", "RECIPES", "load_config", "run_experiment", "CheckpointError",
           "TrainingDivergedError"]
