"""Model-shaped sets of linear layers (out × in) used by the CLI report and the benchmarks."""
from __future__ import annotations

from ._checks import NMRefValueError

#: name -> (d_model, d_ffn, n_layers); LLaMA-style blocks with q, k, v, o, gate, up, down.
MODEL_PRESETS = {
    "tiny": (256, 704, 4),
    "llama-7b": (4096, 11008, 32),
    "llama-13b": (5120, 13824, 40),
}


def linear_shapes(preset: str) -> list[tuple[str, tuple[int, int], int]]:
    """``[(projection, (out, in), count)]`` for every distinct projection of the preset."""
    if preset not in MODEL_PRESETS:
        raise NMRefValueError(f"preset must be one of {sorted(MODEL_PRESETS)}, got {preset!r}")
    d, f, layers = MODEL_PRESETS[preset]
    return [
        ("q_proj", (d, d), layers), ("k_proj", (d, d), layers), ("v_proj", (d, d), layers), ("o_proj", (d, d), layers),
        ("gate_proj", (f, d), layers), ("up_proj", (f, d), layers), ("down_proj", (d, f), layers),
    ]
