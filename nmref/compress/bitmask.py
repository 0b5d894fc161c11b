"""compressed-tensors "sparse-24-bitmask" checkpoint format.

For a 2-D ``W[rows, cols]`` with exactly 2 kept per group of 4 along rows:

* ``values[rows, cols/2]``: kept values in row-major order (increasing column within a row);
* ``bitmask[rows, ⌈cols/8⌉]`` uint8: the mask of each row packed 8 per byte, **little** bit
  order (column ``8b + k`` is bit ``k`` of byte ``b``), trailing pad bits zero —
  ``numpy.packbits(mask, axis=-1, bitorder="little")``.

Difference from compressed-tensors' own compressor: it computes the mask with ``topk`` over
groups of 4 of the *flattened* tensor (groups straddle rows when cols % 4 != 0) and an
unspecified tie rule; nmref requires cols % 4 == 0 and uses :func:`nmref.nm_mask`'s tie rule.
The stored layout is the same.
"""
from __future__ import annotations

import numpy as np

from .._checks import NMRefTypeError, NMRefValueError, as_bool_array, as_typed_array, as_float_array, check_int, check_shape
from ..masks import nm_mask
from .generic import check_exact_nm_mask

__all__ = ["compress_24_bitmask", "decompress_24_bitmask"]


def compress_24_bitmask(w: np.ndarray, *, mask: np.ndarray | None = None):
    """Return ``(values [rows, cols/2], bitmask uint8 [rows, ceil(cols/8)])``; mask defaults to ``nm_mask(w, 2, 4)``."""
    w = as_float_array("w", w)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be 2-D, got shape {w.shape}")
    if mask is None:
        mask = nm_mask(w, 2, 4)
    else:
        mask = as_bool_array("mask", mask)
        check_shape("mask", mask, w.shape)
        if w.shape[1] % 4:
            raise NMRefValueError(f"w.shape[1] = {w.shape[1]} is not divisible by 4")
        check_exact_nm_mask(mask, 2, 4, 1)
    values = w[mask].reshape(w.shape[0], w.shape[1] // 2)
    return values, np.packbits(mask, axis=-1, bitorder="little")


def decompress_24_bitmask(values: np.ndarray, bitmask: np.ndarray, shape) -> np.ndarray:
    """Inverse of :func:`compress_24_bitmask`; ``shape`` is the dense ``(rows, cols)``."""
    values = as_float_array("values", values)
    bitmask = as_typed_array("bitmask", bitmask, np.uint8, "a uint8 array")
    try:
        rows, cols = (check_int("shape[0]", shape[0], minimum=0), check_int("shape[1]", shape[1], minimum=0))
    except (TypeError, IndexError):
        raise NMRefTypeError(f"shape must be a pair (rows, cols), got {shape!r}") from None
    if len(shape) != 2:
        raise NMRefValueError(f"shape must have 2 entries, got {shape!r}")
    if cols % 4:
        raise NMRefValueError(f"shape[1] = {cols} is not divisible by 4")
    check_shape("bitmask", bitmask, (rows, (cols + 7) // 8))
    check_shape("values", values, (rows, cols // 2))
    bits = np.unpackbits(bitmask, axis=-1, bitorder="little")
    if bits[:, cols:].any():
        raise NMRefValueError("bitmask has nonzero padding bits beyond shape[1]")
    mask = bits[:, :cols].astype(bool)
    check_exact_nm_mask(mask, 2, 4, 1, name="bitmask")
    out = np.zeros((rows, cols), dtype=values.dtype)
    out[mask] = values.ravel()
    return out
