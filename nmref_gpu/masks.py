"""GPU N:M masks and 2:4 compression, mirroring :mod:`nmref.masks` / :mod:`nmref.compress` (kernels: masks.cu)."""
from __future__ import annotations

import numpy as np

from nmref._checks import NMRefValueError, check_axis, check_divisible, check_nm, check_shape
from nmref.compress.packed import meta_mma_from_nibbles, unpack_nibbles
from ._module import as_device, blocks, ctype, cupy, module

_FLOATS = {"float16", "float32", "float64", "bfloat16"}
_T = ("float", "double", "__half", "__nv_bfloat16")
_NAMES = tuple(f"nm_mask_kernel<{t},{m}>" for t in _T for m in range(1, 9)) + tuple(
    f"compress_24_packed_kernel<{t},2>" for t in _T) + ("refresh_mask_24_kernel",)


def _mod():
    return module("masks", (), _NAMES)


def _raise_if_nan(flag, name):
    if int(flag.get()[0]):
        raise NMRefValueError(f"{name} contains NaN; N:M ranking of NaN is undefined (expected no NaN)")


def nm_mask(w, n: int, m: int, *, axis: int = -1):
    """As :func:`nmref.nm_mask` (scores = |w|), for ``m <= 8``; returns a cupy bool array."""
    cp = cupy()
    n, m = check_nm(n, m)
    if m > 8:
        raise NMRefValueError(f"nmref_gpu.nm_mask supports m <= 8, got m={m}")
    w = as_device("w", w, dtypes=_FLOATS, contiguous=False)
    axis = check_axis(axis, w.ndim)
    check_divisible("w", w.shape, axis, m)
    wl = cp.ascontiguousarray(cp.moveaxis(w, axis, -1))
    out = cp.empty(wl.shape, dtype=cp.bool_)
    if wl.size:
        flag = cp.zeros(1, dtype=cp.int32)
        groups = wl.size // m
        k = _mod().get_function(f"nm_mask_kernel<{ctype(w.dtype)},{m}>")
        k((blocks(groups, 256),), (256,), (wl, out, np.int64(groups), np.int32(n), flag))
        _raise_if_nan(flag, "w")
    return cp.moveaxis(out, -1, axis)


def compress_24_packed(w):
    """Fused 2:4 magnitude mask + compression into nmref's packed layout: ``(values, meta)`` as
    :func:`nmref.compress_24_packed` (mask = ``nm_mask(w, 2, 4)``); ``cols % 32 == 0``."""
    cp = cupy()
    w = as_device("w", w, dtypes=_FLOATS, ndim=2, align=16)
    rows, cols = w.shape
    if cols % 32:
        raise NMRefValueError(f"w has {cols} columns; the packed 2:4 layout needs columns divisible by 32")
    values = cp.empty((rows, cols // 2), dtype=w.dtype)
    meta = cp.empty((rows, cols // 32), dtype=cp.uint32)
    if w.size:
        flag = cp.zeros(1, dtype=cp.int32)
        k = _mod().get_function(f"compress_24_packed_kernel<{ctype(w.dtype)},2>")
        k((blocks(4 * meta.size, 512),), (256,), (w, values, meta, np.int64(4 * meta.size), flag))
        _raise_if_nan(flag, "w")
    return values, meta


def refresh_mask(w, mask_old, n: int = 2, m: int = 4):
    """As :func:`nmref.refresh_mask` for 2:4 on float32 weights (last axis): ``(mask_new, flips)``."""
    cp = cupy()
    if (n, m) != (2, 4):
        raise NMRefValueError(f"nmref_gpu.refresh_mask implements 2:4 only, got {n}:{m}")
    w = as_device("w", w, dtypes={"float32"}, align=16)
    mask_old = as_device("mask_old", mask_old, dtypes={"bool"}, align=4)
    check_shape("mask_old", mask_old, w.shape)
    check_divisible("w", w.shape, w.ndim - 1, 4)
    new = cp.empty_like(mask_old)
    flips = cp.zeros(1, dtype=cp.uint64)
    flag = cp.zeros(1, dtype=cp.int32)
    groups = w.size // 4
    if groups:
        _mod().get_function("refresh_mask_24_kernel")((blocks(groups, 256),), (256,),
                                                       (w, mask_old, new, np.int64(groups), flips, flag))
        _raise_if_nan(flag, "w")
    return new, int(flips.get()[0])


def compress_24_packed_t(w):
    """As :func:`nmref.compress_24_packed_t`: ``(values_t [cols/2, rows], meta_t [cols/4, rows/8])``
    (``rows % 8 == 0``, ``cols % 32 == 0`` here: built from :func:`compress_24_packed` by transposes)."""
    cp = cupy()
    w = as_device("w", w, dtypes=_FLOATS, ndim=2)
    rows, cols = w.shape
    if rows % 8:
        raise NMRefValueError(f"w has {rows} rows; the transposed packed layout needs rows divisible by 8")
    values, meta = compress_24_packed(w)
    nib_t = unpack_nibbles(meta, cp).astype(cp.uint32).T.reshape(cols // 4, rows // 8, 8)  # [groups, rows/8, 8]
    meta_t = (nib_t << 4 * cp.arange(8, dtype=cp.uint32)).sum(axis=-1, dtype=cp.uint32)  # disjoint bits: sum == OR
    return cp.ascontiguousarray(values.T), meta_t


def compress_24_mma(w):
    """As :func:`nmref.compress_24_mma`: ``(values [rows, cols/2], meta_mma [⌈rows/16⌉, cols/2])``
    (``cols % 64 == 0``), from :func:`compress_24_packed` and a reordering of its nibbles."""
    cp = cupy()
    w = as_device("w", w, dtypes=_FLOATS, ndim=2)
    rows, cols = w.shape
    if cols % 64:
        raise NMRefValueError(f"w has {cols} columns; the mma 2:4 layout needs columns divisible by 64")
    values, meta = compress_24_packed(w)
    return values, meta_mma_from_nibbles(unpack_nibbles(meta, cp).astype(cp.uint32), cp)
