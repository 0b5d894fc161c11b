"""2:4 + 4-bit: the kept values of an exported 2:4 model quantized to int4, evaluated, and its bytes
counted against AST's compression formula.

For every block linear ``W`` (exactly n:m along the input dimension) the kept values, in input
order per output row (``[out, in·n/m]``), are quantized by :func:`nmref.quantize_groups` (4 bits,
symmetric, groups of 128 kept values along the input dimension, round to nearest, float32 scale per
group) and put back as ``q·s`` at their positions. The stored model is then

* the codes, two per byte (``uint8``): ``in·n/m·out / 2`` bytes;
* the positions: nmref's packed 2:4 metadata (:func:`nmref.compress_24_packed`: a 4-bit nibble
  ``i0 | i1 << 2`` per group of 4, i.e. the ``"index"`` coding); for other n:m, ``⌈log2 m⌉`` bits per
  kept value;
* the float32 scales: ``⌈(in·n/m)/128⌉·out · 4`` bytes,

and those arrays' ``nbytes`` are the measured bytes. The prediction is
:func:`nmref.compression_ratio` ``(n, m, 4, 32, coding)`` × the float32 bytes of the same weights,
for the coding stored (``"index"``) and for AST's table (``"enumerative"``: ``⌈log2 C(m, n)⌉`` bits
per group); the formula has no term for the scales, which is the gap the report shows.
"""
from __future__ import annotations

import math

import numpy as np

from ..compress import compress_24_packed, compression_ratio
from ..masks import nm_mask
from ..quant import dequantize_groups, quantize_groups
from . import model as M

__all__ = ["int4_model", "int4_report"]

GROUP = 128


def _kept_values(w: np.ndarray, n: int, m: int):
    """An n:m pattern covering every nonzero of the (exactly n:m) ``w``, and its values per row."""
    keep = nm_mask(w, n, m)
    return keep, w[keep].reshape(w.shape[0], -1)


def int4_model(weights: dict, cfg) -> tuple[dict, int]:
    """``(quantized weights, measured bytes)`` of the block linears in ``weights`` (each exactly n:m)."""
    out, total = {}, 0
    for nm in M.linear_names(cfg):
        w = np.asarray(weights[nm])
        keep, vals = _kept_values(w, cfg.n, cfg.m)
        q, s = quantize_groups(vals, 4, GROUP)
        wq = np.zeros_like(w)
        wq[keep] = dequantize_groups(q, s, GROUP).reshape(-1).astype(w.dtype)
        out[nm] = wq
        codes = (q.size + 1) // 2                                    # two 4-bit codes per byte
        if (cfg.n, cfg.m) == (2, 4) and w.shape[1] % 32 == 0:
            meta = compress_24_packed(w, mask=keep)[1].nbytes        # the packed nibbles, as stored
        else:
            meta = math.ceil(q.size * max(1, (cfg.m - 1).bit_length()) / 8)
        total += codes + meta + s.astype(np.float32).nbytes
    return out, total


def int4_report(name: str, weights: dict, params: dict, val_tokens, cfg, evaluate) -> dict:
    """Perplexity before/after int4 and measured vs predicted bytes for one exported model."""
    wq, measured = int4_model(weights, cfg)
    n_lin = sum(np.asarray(weights[nm]).size for nm in M.linear_names(cfg))
    fp32 = n_lin * 4
    pred = {c: float(compression_ratio(cfg.n, cfg.m, 4, 32, c)) for c in ("index", "enumerative")}
    vl, vq = evaluate(params, weights, val_tokens, cfg), evaluate(params, wq, val_tokens, cfg)
    return {"recipe": name, "val_ppl": math.exp(vl), "val_ppl_int4": math.exp(vq), "linear_fp32_bytes": fp32,
            "measured_bytes": measured, "measured_ratio": measured / fp32,
            "predicted_ratio_index": pred["index"], "predicted_ratio_enumerative": pred["enumerative"],
            "scale_bytes_share": (measured - pred["index"] * fp32) / measured}


def int4_table(rows: list) -> str:
    lines = ["2:4 + int4 (kept values, symmetric, groups of 128 along the input dimension, float32 scales; "
             "block linears only):", "",
             "| recipe | val ppl | int4 val ppl | int4 / fp | bytes measured (ratio to fp32) | predicted: index coding "
             "| predicted: AST (enumerative) | measured / predicted (index) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['val_ppl']:.3f} | {r['val_ppl_int4']:.3f} | {r['val_ppl_int4'] / r['val_ppl']:.3f}× "
                     f"| {r['measured_bytes']:,} ({r['measured_ratio']:.4f}) | {r['predicted_ratio_index']:.4f} "
                     f"| {r['predicted_ratio_enumerative']:.4f} | {r['measured_ratio'] / r['predicted_ratio_index']:.3f} |")
    return "\n".join(lines)
