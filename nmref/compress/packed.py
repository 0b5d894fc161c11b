"""nmref's packed 2:4 layout for GEMV kernels (row-major, no interleaving).

For ``W[rows, cols]`` with exactly 2 kept per group of 4 along rows (``cols % 32 == 0``):

* ``values[rows, cols/2]`` (dtype of W): per group the two kept values, lower position first
  (identical to the CUTLASS ``values``);
* ``meta[rows, cols/32]`` uint32: group ``g`` of a row has the nibble ``i0 | i1 << 2`` at bits
  ``4·(g mod 8)`` of word ``⌊g/8⌋`` (``i0 < i1`` its kept positions).

A kernel thread that loads 8 values (16 bytes of fp16 = 4 groups) finds their 16 metadata bits in
one aligned half-word. Bytes: the same 0.5625 of dense fp16 as the CUTLASS layout, unpermuted.

The **transposed** packed layout (``*_packed_t``), for input-sparse (TEAL) decoding, where a kernel
skips the inputs whose activation is dropped and so wants a group's data contiguous over outputs
(``rows % 8 == 0``, ``cols % 4 == 0``; groups still run along ``cols``, the reduction axis):

* ``values_t[cols/2, rows] = values.T``: row ``2g + s`` holds slot ``s`` (0: lower kept position
  ``i0 ∈ {0,1,2}``, 1: upper ``i1 ∈ {1,2,3}``) of group ``g`` for every output row;
* ``meta_t[cols/4, rows/8]`` uint32: the nibble ``i0 | i1 << 2`` of output row ``o``, group ``g`` at
  bits ``4·(o mod 8)`` of word ``meta_t[g, ⌊o/8⌋]``.
"""
from __future__ import annotations

import numpy as np

from .._checks import NMRefValueError, as_bool_array, as_float_array, as_typed_array, check_shape
from ..masks import nm_mask
from .cutlass import scatter_24_nibbles
from .generic import check_exact_nm_mask

__all__ = ["compress_24_packed", "decompress_24_packed", "compress_24_packed_t", "decompress_24_packed_t",
           "compress_24_mma", "decompress_24_mma", "meta_mma_from_nibbles"]


def compress_24_packed(w: np.ndarray, *, mask: np.ndarray | None = None):
    """``(values [rows, cols/2], meta uint32 [rows, cols/32])``; mask defaults to ``nm_mask(w, 2, 4)``."""
    values, nib = _kept_values_nibbles(w, mask, 1, 32, "packed 2:4")
    return values, _pack_nibbles(nib)


def _kept_values_nibbles(w, mask, rows_multiple, cols_multiple, layout):
    """Shared front end of the compressors: validate ``w`` (2-D, ``rows % rows_multiple``,
    ``cols % cols_multiple``) and ``mask`` (default ``nm_mask(w, 2, 4)``); return the kept values
    ``[rows, cols/2]`` (lower position first) and the nibbles ``i0 | i1 << 2`` as uint32 ``[rows, cols/4]``."""
    w = as_float_array("w", w)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be 2-D, got shape {w.shape}")
    rows, cols = w.shape
    if rows % rows_multiple or cols % cols_multiple:
        raise NMRefValueError(f"w has shape {w.shape}; the {layout} layout needs rows % {rows_multiple} == 0 "
                              f"and cols % {cols_multiple} == 0")
    if mask is None:
        mask = nm_mask(w, 2, 4)
    else:
        mask = as_bool_array("mask", mask)
        check_shape("mask", mask, w.shape)
        check_exact_nm_mask(mask, 2, 4, 1)
    pos = np.argsort(~mask.reshape(rows, cols // 4, 4), axis=-1, kind="stable")[..., :2]  # kept, increasing
    values = np.take_along_axis(w.reshape(rows, cols // 4, 4), pos, axis=-1).reshape(rows, cols // 2)
    return values, (pos[..., 0] | pos[..., 1] << 2).astype(np.uint32)


def _pack_nibbles(nib):
    """``[a, 8·b]`` nibbles -> ``[a, b]`` uint32 words, element ``8·j + i`` at bits ``4·i`` of word ``j``."""
    a, n = nib.shape
    nib = nib.astype(np.uint32).reshape(a, n // 8, 8)
    return np.bitwise_or.reduce(nib << (4 * np.arange(8, dtype=np.uint32)), axis=-1).astype(np.uint32)


def unpack_nibbles(meta, xp=np):
    """``[a, b]`` uint32 words -> ``[a, 8·b]`` nibbles (inverse of :func:`_pack_nibbles`); ``xp``: NumPy or CuPy."""
    a, b = meta.shape
    return ((meta[..., None] >> (4 * xp.arange(8, dtype=xp.uint32))) & 0xF).reshape(a, 8 * b).astype(xp.int64)


def _check_meta_u32(name, meta):
    return as_typed_array(name, meta, np.uint32, "a uint32 array")


def _check_values_meta(values, meta, name, multiple):
    """Validate ``values [rows, cols/2]`` and a uint32 ``meta``; returns ``(values, rows, cols)``."""
    values = as_float_array("values", values)
    if values.ndim != 2:
        raise NMRefValueError(f"values must be 2-D [rows, cols/2], got shape {values.shape}")
    _check_meta_u32(name, meta)
    rows, cols = values.shape[0], 2 * values.shape[1]
    if cols % multiple:
        raise NMRefValueError(f"values imply {cols} dense columns; the layout needs a multiple of {multiple}")
    return values, rows, cols


def decompress_24_packed(values: np.ndarray, meta: np.ndarray) -> np.ndarray:
    """Inverse of :func:`compress_24_packed` (pruned entries +0.0); invalid nibbles (``i0 >= i1``) raise."""
    meta = _check_meta_u32("meta", meta)
    values, rows, cols = _check_values_meta(values, meta, "meta", 32)
    check_shape("meta", meta, (rows, cols // 32))
    return scatter_24_nibbles(values, unpack_nibbles(meta))


def compress_24_packed_t(w: np.ndarray, *, mask: np.ndarray | None = None):
    """Transposed packed layout ``(values_t [cols/2, rows], meta_t uint32 [cols/4, rows/8])`` of
    ``W[rows, cols]`` (see the module docstring); mask defaults to ``nm_mask(w, 2, 4)``."""
    values, nib = _kept_values_nibbles(w, mask, 8, 4, "transposed packed")
    return np.ascontiguousarray(values.T), np.ascontiguousarray(_pack_nibbles(nib.T))


def decompress_24_packed_t(values_t: np.ndarray, meta_t: np.ndarray) -> np.ndarray:
    """Inverse of :func:`compress_24_packed_t`: dense ``W[rows, cols]`` (pruned entries +0.0);
    invalid nibbles (``i0 >= i1``) raise."""
    values_t = as_float_array("values_t", values_t)
    if values_t.ndim != 2:
        raise NMRefValueError(f"values_t must be 2-D [cols/2, rows], got shape {values_t.shape}")
    meta_t = _check_meta_u32("meta_t", meta_t)
    half, rows = values_t.shape
    if half % 2 or rows % 8:
        raise NMRefValueError(f"values_t has shape {values_t.shape}; expected [cols/2, rows] with cols % 4 == 0, rows % 8 == 0")
    check_shape("meta_t", meta_t, (half // 2, rows // 8))
    return scatter_24_nibbles(np.ascontiguousarray(values_t.T), unpack_nibbles(meta_t).T)


# ------------------------------------------------------------------ sparse-tensor-core (mma.sp) metadata
# Tile of 16 rows × 64 columns (a kernel "super-step"): lane (g, t) of a warp loads the values of groups
# 4t..4t+3 of rows g and g+8 (16 bytes of fp16 each) and feeds them to two mma.sp.m16n8k32 (chunks
# c = 0, 1) as logical groups L = t (actual 4t + 2c) and L = t + 4 (actual 4t + 2c + 1). The hardware
# reads metadata from lanes t = 0, 1 of each quad (selector 0): lane t = r holds logical groups
# 4r..4r+3, i.e. actual groups 4j + 2c + r (j = 0..3), row g in bits 0-15 and row g+8 in bits 16-31,
# one nibble per group (layout established on the GPU by benchmarks/probe_mma_sp.py).
_PAD_NIBBLE = 0b0100  # (i0, i1) = (0, 1): a valid pair for the rows that pad the last 16-row tile


def meta_mma_from_nibbles(nib, xp=np):
    """``[rows, cols/4]`` nibbles -> ``meta_mma [⌈rows/16⌉, cols/2]`` uint32 (``cols % 64 == 0``).

    Word ``(T, s, g, r, c)`` — at column ``32·s + 4·g + 2·r + c`` of row ``T`` — is
    ``Σ_j nib[16T + g, 16s + 4j + 2c + r] << 4j  |  nib[16T + g + 8, same] << (16 + 4j)``.
    ``xp`` is the array module (NumPy here, CuPy in ``nmref_gpu``)."""
    if xp is np:
        nib = as_typed_array("nib", nib, np.uint32, "a uint32 array of nibbles")
        if nib.ndim != 2 or nib.shape[1] % 16:
            raise NMRefValueError(f"nib must be [rows, cols/4] with cols % 64 == 0, got shape {nib.shape}")
        i0, i1 = nib & 3, nib >> 2
        if nib.size and ((i1 > 3) | (i0 >= i1)).any():
            raise NMRefValueError("nib holds a value that is not a nibble i0 | i1 << 2 with i0 < i1")
    rows, groups = nib.shape
    tiles, steps = -(-rows // 16), groups // 16
    full = xp.full((tiles * 16, groups), _PAD_NIBBLE, dtype=xp.uint32)
    full[:rows] = nib
    n7 = full.reshape(tiles, 2, 8, steps, 4, 2, 2)              # T, h, g, s, j, c, r
    shift = (16 * xp.arange(2, dtype=xp.uint32))[:, None, None, None] + 4 * xp.arange(4, dtype=xp.uint32)[:, None, None]
    words = (n7 << shift[None, :, None, None]).sum(axis=(1, 4), dtype=xp.uint32)  # disjoint bits: sum == OR
    return xp.ascontiguousarray(words.transpose(0, 2, 1, 4, 3).reshape(tiles, steps * 32))  # T, s, g, r, c


def _nibbles_from_meta_mma(meta, rows, groups):
    tiles, steps = meta.shape[0], groups // 16
    w = meta.reshape(tiles, steps, 8, 2, 2).transpose(0, 2, 1, 4, 3)  # T, g, s, c, r
    hj = (16 * np.arange(2, dtype=np.uint32))[:, None] + 4 * np.arange(4, dtype=np.uint32)  # [h, j]
    n = (w[:, None, :, :, None, :, :] >> hj[None, :, None, None, :, None, None]) & 0xF   # T, h, g, s, j, c, r
    return n.reshape(tiles * 16, groups)[:rows].astype(np.int64)


def compress_24_mma(w: np.ndarray, *, mask: np.ndarray | None = None):
    """``(values [rows, cols/2], meta_mma uint32 [⌈rows/16⌉, cols/2])`` for the sparse-tensor-core GEMV
    (``cols % 64 == 0``): ``values`` as :func:`compress_24_packed`, the metadata of each 16×64 tile in
    the register order of ``mma.sp.m16n8k32`` (see :func:`meta_mma_from_nibbles`). Rows past ``rows``
    in the last tile get the nibble (0, 1). Mask defaults to ``nm_mask(w, 2, 4)``."""
    values, nib = _kept_values_nibbles(w, mask, 1, 64, "mma 2:4")
    return values, meta_mma_from_nibbles(nib)


def decompress_24_mma(values: np.ndarray, meta_mma: np.ndarray) -> np.ndarray:
    """Inverse of :func:`compress_24_mma`: dense ``[rows, cols]`` (pruned entries +0.0); invalid
    nibbles (``i0 >= i1``) of real rows raise (padding rows are not read)."""
    meta_mma = _check_meta_u32("meta_mma", meta_mma)
    values, rows, cols = _check_values_meta(values, meta_mma, "meta_mma", 64)
    check_shape("meta_mma", meta_mma, (-(-rows // 16), cols // 2))
    return scatter_24_nibbles(values, _nibbles_from_meta_mma(meta_mma, rows, cols // 4))
