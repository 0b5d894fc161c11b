"""Symmetric per-group integer quantization of the values an N:M format keeps (AST's "N:M + 4-bit").

``quantize_groups(v, bits, group)`` splits the last axis of ``v`` into groups of ``group``
consecutive values (the last group may be shorter) and, per group ``G``:

    s_G = max_{i∈G} |v_i| / q_max,   q_i = clip(rint(v_i / s_G), −q_max, q_max),   q_max = 2^(bits−1) − 1

computed in float64 (``rint``: round half to even) and returned as ``(q int8, s float32)`` with
``s`` rounded to float32 *before* ``q`` is computed, so that :func:`dequantize_groups`
``v̂_i = q_i · s_G`` (float32) is exactly what a kernel holding the stored scale computes.
Symmetric: the code ``−2^(bits−1)`` is unused, zero maps to 0 exactly. An all-zero group has
``s = 0`` and ``q = 0``. For the kept values of a 2:4 weight (``compress_24_packed``'s ``values``,
``[out, in/2]``), groups run along the input dimension: 128 kept values = 256 dense columns.

Errors: NaN or ±Inf in ``v`` (no finite scale), a scale beyond float32's range, ``bits`` outside
2..8, ``group < 1``; ``q`` not int8 or ``scales`` of the wrong shape in :func:`dequantize_groups`.
"""
from __future__ import annotations

import numpy as np

from ._checks import NMRefTypeError, NMRefValueError, as_float_array, check_int

__all__ = ["quantize_groups", "dequantize_groups"]


def _groups(n: int, group: int) -> np.ndarray:
    return np.arange(0, n, group)


def quantize_groups(v: np.ndarray, bits: int = 4, group: int = 128):
    """``(q, scales)``: ``q`` int8 of ``v``'s shape, ``scales`` float32 ``[..., ceil(cols/group)]``."""
    v = as_float_array("v", v)
    bits = check_int("bits", bits, minimum=2)
    if bits > 8:
        raise NMRefValueError(f"bits must lie in 2..8 (codes held in int8), got {bits}")
    group = check_int("group", group, minimum=1)
    if v.ndim < 1:
        raise NMRefValueError(f"v must have at least one axis (the grouped one), got shape {v.shape}")
    a = v.astype(np.float64)
    if not np.isfinite(a).all():
        raise NMRefValueError("v contains NaN or ±Inf; a group scale must be finite")
    qmax = 2 ** (bits - 1) - 1
    starts = _groups(a.shape[-1], group)
    if a.shape[-1] == 0:
        return np.zeros(v.shape, np.int8), np.zeros(v.shape[:-1] + (0,), np.float32)
    amax = np.maximum.reduceat(np.abs(a), starts, axis=-1)
    if np.any(amax / qmax > np.finfo(np.float32).max):
        raise NMRefValueError(f"v has magnitudes up to {float(amax.max()):.3g}: a group scale max|v|/{qmax} does not fit "
                              "float32")
    scales = (amax / qmax).astype(np.float32)                        # the stored scale, float32
    s = np.repeat(scales.astype(np.float64), np.diff(np.append(starts, a.shape[-1])), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(s > 0, np.rint(a / np.where(s > 0, s, 1.0)), 0.0)
    return np.clip(q, -qmax, qmax).astype(np.int8), scales


def dequantize_groups(q: np.ndarray, scales: np.ndarray, group: int = 128) -> np.ndarray:
    """``v̂ = q · s`` (float32), the inverse map of :func:`quantize_groups`' grouping."""
    q = np.asarray(q)
    if q.dtype != np.int8:
        raise NMRefTypeError(f"q must be int8 (from quantize_groups), got {q.dtype}")
    scales = as_float_array("scales", scales)
    group = check_int("group", group, minimum=1)
    n = q.shape[-1]
    want = q.shape[:-1] + (-(-n // group),)
    if scales.shape != want:
        raise NMRefValueError(f"scales has shape {scales.shape}, expected {want} (groups of {group} along the last axis)")
    s = np.repeat(scales.astype(np.float32), group, axis=-1)[..., :n]
    return q.astype(np.float32) * s
