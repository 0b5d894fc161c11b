"""Generic N:M storage: kept values plus their in-group positions, along any axis.

``values[..., g*n + k]`` is the k-th kept element (in increasing position) of group g and
``indices[..., g*n + k]`` its position inside the group (0 <= index < m), both laid along
``axis`` (length ``G*n`` instead of ``G*m``). Round trip: ``decompress_nm(*compress_nm(w, ...))``
equals ``where(mask, w, +0.0)`` bit for bit.
"""
from __future__ import annotations

import numpy as np

from .._checks import (
    NMRefTypeError,
    NMRefValueError,
    as_array,
    as_bool_array,
    as_float_array,
    check_axis,
    check_divisible,
    check_nm,
    check_shape,
    grouped,
    ungrouped,
)
from ..masks import nm_mask

__all__ = ["compress_nm", "decompress_nm", "check_exact_nm_mask"]


def check_exact_nm_mask(mask: np.ndarray, n: int, m: int, axis: int, name: str = "mask") -> None:
    """Raise unless ``mask`` is bool with exactly ``n`` True in every group of ``m`` along ``axis``."""
    as_bool_array(name, mask)
    counts = grouped(mask, axis, m).sum(axis=-1)
    if counts.size and not (counts == n).all():
        bad = int(np.flatnonzero(counts.ravel() != n)[0])
        raise NMRefValueError(
            f"{name} must keep exactly n={n} of every m={m} along axis {axis}; group {bad} keeps {int(counts.ravel()[bad])}"
        )


def compress_nm(w: np.ndarray, n: int, m: int, *, axis: int = -1, mask: np.ndarray | None = None):
    """Compress ``w`` to ``(values, indices)`` keeping ``mask`` (default ``nm_mask(w, n, m, axis=axis)``).

    ``values`` has ``w``'s dtype, ``indices`` is uint8; both have ``w``'s shape with
    ``shape[axis] = G*n``. Requires ``n >= 1`` (with n = 0 nothing is stored and the dense
    length could not be recovered). An explicit ``mask`` must keep exactly n per group.
    """
    n, m = check_nm(n, m)
    if n == 0:
        raise NMRefValueError("n must be >= 1 for a storage format (n=0 stores nothing); got n=0")
    if m > 256:
        raise NMRefValueError(f"m must be <= 256 so positions fit uint8, got m={m}")
    w = as_float_array("w", w)
    axis = check_axis(axis, w.ndim)
    check_divisible("w", w.shape, axis, m)
    if mask is None:
        mask = nm_mask(w, n, m, axis=axis)
    else:
        mask = as_bool_array("mask", mask)
        check_shape("mask", mask, w.shape)
        check_exact_nm_mask(mask, n, m, axis)
    gm = grouped(mask, axis, m)
    # kept positions in increasing order: a stable sort puts the False keys of ~mask first
    pos = np.argsort(~gm, axis=-1, kind="stable")[..., :n]
    vals = np.take_along_axis(grouped(w, axis, m), pos, axis=-1)
    return ungrouped(vals, axis), ungrouped(pos.astype(np.uint8), axis)


def decompress_nm(values: np.ndarray, indices: np.ndarray, n: int, m: int, *, axis: int = -1) -> np.ndarray:
    """Inverse of :func:`compress_nm`: dense array with ``shape[axis] = G*m``, pruned entries +0.0.

    Validates: same shapes, ``shape[axis]`` divisible by n, integer indices in ``[0, m)`` and
    strictly increasing inside each group.
    """
    n, m = check_nm(n, m)
    if n == 0:
        raise NMRefValueError("n must be >= 1 for a storage format; got n=0")
    values = as_float_array("values", values)
    indices = as_array("indices", indices)
    if not np.issubdtype(indices.dtype, np.integer):
        raise NMRefTypeError(f"indices must be an integer array, got dtype {indices.dtype}")
    check_shape("indices", indices, values.shape)
    axis = check_axis(axis, values.ndim)
    check_divisible("values", values.shape, axis, n)
    gi = grouped(indices, axis, n).astype(np.int64)
    if gi.size:
        if gi.min() < 0 or gi.max() >= m:
            raise NMRefValueError(f"indices must lie in [0, m={m}), got range [{gi.min()}, {gi.max()}]")
        if n > 1 and not (np.diff(gi, axis=-1) > 0).all():
            raise NMRefValueError("indices must be strictly increasing inside each group (sorted, no repeats)")
    gv = grouped(values, axis, n)
    out = np.zeros(gv.shape[:-1] + (m,), dtype=values.dtype)
    np.put_along_axis(out, gi, gv, axis=-1)
    return ungrouped(out, axis)
