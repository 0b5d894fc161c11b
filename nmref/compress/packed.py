"""nmref's packed 2:4 layout for GEMV kernels (row-major, no interleaving).

For ``W[rows, cols]`` with exactly 2 kept per group of 4 along rows (``cols % 32 == 0``):

* ``values[rows, cols/2]`` (dtype of W): per group the two kept values, lower position first
  (identical to the CUTLASS ``values``);
* ``meta[rows, cols/32]`` uint32: group ``g`` of a row has the nibble ``i0 | i1 << 2`` at bits
  ``4·(g mod 8)`` of word ``⌊g/8⌋`` (``i0 < i1`` its kept positions).

A kernel thread that loads 8 values (16 bytes of fp16 = 4 groups) finds their 16 metadata bits in
one aligned half-word. Bytes: the same 0.5625 of dense fp16 as the CUTLASS layout, unpermuted.
"""
from __future__ import annotations

import numpy as np

from .._checks import NMRefTypeError, NMRefValueError, as_bool_array, as_float_array, check_shape
from ..masks import nm_mask
from .cutlass import scatter_24_nibbles
from .generic import check_exact_nm_mask

__all__ = ["compress_24_packed", "decompress_24_packed"]


def compress_24_packed(w: np.ndarray, *, mask: np.ndarray | None = None):
    """``(values [rows, cols/2], meta uint32 [rows, cols/32])``; mask defaults to ``nm_mask(w, 2, 4)``."""
    w = as_float_array("w", w)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be 2-D, got shape {w.shape}")
    rows, cols = w.shape
    if cols % 32:
        raise NMRefValueError(f"w has {cols} columns; the packed 2:4 layout needs columns divisible by 32")
    if mask is None:
        mask = nm_mask(w, 2, 4)
    else:
        check_shape("mask", as_bool_array("mask", mask), w.shape)
        check_exact_nm_mask(mask, 2, 4, 1)
    g = mask.reshape(rows, cols // 4, 4)
    pos = np.argsort(~g, axis=-1, kind="stable")[..., :2]  # kept positions, increasing
    values = np.take_along_axis(w.reshape(rows, cols // 4, 4), pos, axis=-1).reshape(rows, cols // 2)
    nib = (pos[..., 0] | pos[..., 1] << 2).astype(np.uint32).reshape(rows, cols // 32, 8)
    meta = np.bitwise_or.reduce(nib << (4 * np.arange(8, dtype=np.uint32)), axis=-1).astype(np.uint32)
    return values, meta


def decompress_24_packed(values: np.ndarray, meta: np.ndarray) -> np.ndarray:
    """Inverse of :func:`compress_24_packed` (pruned entries +0.0); invalid nibbles (``i0 >= i1``) raise."""
    values = as_float_array("values", values)
    if values.ndim != 2:
        raise NMRefValueError(f"values must be 2-D [rows, cols/2], got shape {values.shape}")
    if not isinstance(meta, np.ndarray) or meta.dtype != np.uint32:
        raise NMRefTypeError(f"meta must be a uint32 numpy.ndarray, got {getattr(meta, 'dtype', type(meta))}")
    rows, half = values.shape
    cols = 2 * half
    if cols % 32:
        raise NMRefValueError(f"values imply {cols} dense columns; the packed 2:4 layout needs a multiple of 32")
    check_shape("meta", meta, (rows, cols // 32))
    nib = ((meta[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF).reshape(rows, cols // 4).astype(np.int64)
    return scatter_24_nibbles(values, nib)
