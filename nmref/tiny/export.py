"""Exported models: the weights a recipe's model computes with, under Hugging Face–style names.

``RUN/exports/<recipe>.safetensors`` holds every parameter of the evaluated model — the block linears
as the recipe exports them (``W⊙M`` for an exactly n:m recipe, ``β'⊙(W⊙M)`` for CAST, ``W⊙M + SX``
for SLoRB, the dense weight for ``dense``), norms, embeddings and head as trained — named like a
LLaMA checkpoint in Hugging Face's layout, so ``nmref check-checkpoint`` and other tools recognise
them: ``model.embed_tokens.weight``, ``model.layers.{l}.self_attn.{q,k,v,o}_proj.weight``,
``model.layers.{l}.mlp.{gate,up,down}_proj.weight``, ``model.layers.{l}.input_layernorm.weight``
(``.bias`` for LayerNorm), ``model.layers.{l}.post_attention_layernorm.weight``, ``model.norm.weight``,
``lm_head.weight`` (absent with tied embeddings). The metadata records the recipe, the pattern, whether
the block linears are exactly n:m, and the nmref names' mapping.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..io import atomic_write, safetensors_bytes

__all__ = ["hf_name", "write_export", "EXPORT_FORMAT"]

EXPORT_FORMAT = "nmref-tiny-export/1"

_BLOCK = {"q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight", "v": "self_attn.v_proj.weight",
          "o": "self_attn.o_proj.weight", "gate": "mlp.gate_proj.weight", "up": "mlp.up_proj.weight",
          "down": "mlp.down_proj.weight", "norm1": "input_layernorm.weight", "norm1_bias": "input_layernorm.bias",
          "norm2": "post_attention_layernorm.weight", "norm2_bias": "post_attention_layernorm.bias"}
_TOP = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "final_norm_bias": "model.norm.bias",
        "head": "lm_head.weight"}


def hf_name(name: str) -> str:
    """The Hugging Face–style name of an nmref tiny-model parameter (``blocks.0.q`` →
    ``model.layers.0.self_attn.q_proj.weight``)."""
    if name in _TOP:
        return _TOP[name]
    m = re.fullmatch(r"blocks\.(\d+)\.(\w+)", name)
    if not m or m.group(2) not in _BLOCK:
        raise KeyError(f"no exported name for parameter {name!r}")
    return f"model.layers.{m.group(1)}.{_BLOCK[m.group(2)]}"


def write_export(path: Path, params: dict, linears: dict, *, recipe: str, pattern: str, nm_sparse) -> None:
    """Write the evaluated model: ``params`` with the block linears replaced by ``linears`` (atomic)."""
    arrays = {hf_name(k): np.ascontiguousarray(linears.get(k, v)) for k, v in params.items()}
    meta = {"format": EXPORT_FORMAT, "recipe": recipe, "pattern": pattern,
            "nm_sparse": "none" if nm_sparse is None else ("1" if nm_sparse else "0"),
            "names": json.dumps({hf_name(k): k for k in params}, sort_keys=True)}
    with atomic_write(path) as f:
        f.write(safetensors_bytes(arrays, meta))
