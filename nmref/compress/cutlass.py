"""NVIDIA sparse-tensor-core layout for 2:4 half precision (CUTLASS / PyTorch ``_cutlass`` conversion).

For a 2:4-sparse ``W[rows, cols]`` (float16 or bfloat16):

* ``values[rows, cols/2]``: per group of 4, the two kept values in increasing position.
* metadata: per group a nibble ``i0 | i1 << 2`` (``i0 < i1`` the kept positions); four consecutive
  groups of a row fill one 16-bit word, group ``q`` at bits ``4q..4q+3``
  (``meta[r, c] = Σ_q nib[r, 4c+q] << 4q``, shape ``[rows, cols/16]``).
* the words are then stored reordered, as CUTLASS's ColumnMajorInterleaved<2> metadata layout for
  its sparse GEMM wants: see :func:`meta_reorder_offsets` (rows % 32 == 0, cols % 32 == 0).

Groups with fewer than two nonzeros (when the pattern is read from ``w != 0``) are encoded
as CUTLASS/PyTorch encode them, so that the output is bit-for-bit the same as
``torch.sparse._semi_structured_conversions.sparse_semi_structured_from_dense_cutlass``:
``[0000]→(2,3) [0001]→(2,3) [0010]→(2,3) [0100]→(1,2) [1000]→(0,2)`` (bits listed by position
0..3). Groups with more than two nonzeros raise (PyTorch silently drops values there).
"""
from __future__ import annotations

import numpy as np

from .._checks import NMRefTypeError, NMRefValueError, as_bool_array, as_float_array, as_typed_array, check_int, check_shape
from .generic import check_exact_nm_mask

__all__ = ["compress_24_cutlass", "decompress_24_cutlass", "meta_reorder_offsets", "scatter_24_nibbles"]

# (i0, i1) for every 4-bit presence pattern p = Σ b_k << k; (-1, -1) marks > 2 present.
_PAIR_OF_PATTERN = np.full((16, 2), -1, dtype=np.int64)
for _p in range(16):
    _pos = [k for k in range(4) if _p >> k & 1]
    if len(_pos) == 2:
        _PAIR_OF_PATTERN[_p] = _pos
_PAIR_OF_PATTERN[0b0000] = (2, 3)
_PAIR_OF_PATTERN[0b1000] = (2, 3)  # only position 3 present
_PAIR_OF_PATTERN[0b0100] = (2, 3)  # only position 2
_PAIR_OF_PATTERN[0b0010] = (1, 2)  # only position 1
_PAIR_OF_PATTERN[0b0001] = (0, 2)  # only position 0


def _half_dtypes():
    out = [np.dtype(np.float16)]
    try:
        import ml_dtypes

        out.append(np.dtype(ml_dtypes.bfloat16))
    except ImportError:  # pragma: no cover
        pass
    return out


def _check_half(name, x):
    x = as_float_array(name, x)
    if x.dtype not in _half_dtypes():
        raise NMRefTypeError(f"{name} must be float16 or bfloat16 for the CUTLASS 2:4 layout, got {x.dtype}")
    return x


def meta_reorder_offsets(rows: int, meta_cols: int) -> np.ndarray:
    """Flat destination offset of each logical metadata word ``meta[r, c]`` (16-bit words).

    1. rows are permuted inside each band of 32: ``r' = 32⌊r/32⌋ + 4(r mod 8) + ⌊(r mod 32)/8⌋``;
    2. in every 2×2 block of (r', c) the off-diagonal words swap
       (``r'`` even and ``c`` odd → ``(r'+1, c−1)``; ``r'`` odd and ``c`` even → ``(r'−1, c+1)``);
    3. the result is stored column-major interleaved by 2:
       ``offset = ⌊c'/2⌋·2·rows + 2r' + (c' mod 2)``.
    """
    rows = check_int("rows", rows, minimum=0)
    meta_cols = check_int("meta_cols", meta_cols, minimum=0)
    if rows % 32 or meta_cols % 2:
        raise NMRefValueError(f"the CUTLASS metadata reordering needs rows % 32 == 0 and an even meta_cols, "
                              f"got rows={rows}, meta_cols={meta_cols}")
    r = np.arange(rows)[:, None].repeat(meta_cols, axis=1)
    c = np.arange(meta_cols)[None, :].repeat(rows, axis=0)
    r2 = r // 32 * 32 + (r % 8) * 4 + (r % 32) // 8
    swap = ((r2 % 2 == 0) & (c % 2 == 1)).astype(np.int64) - ((r2 % 2 == 1) & (c % 2 == 0)).astype(np.int64)
    r2 = r2 + swap
    c2 = c - swap
    return ((c2 // 2) * rows * 2 + r2 * 2 + c2 % 2).ravel()


def _check_shape_24(name, rows, cols):
    if rows % 32:
        raise NMRefValueError(f"{name} has {rows} rows; the CUTLASS 2:4 layout needs rows divisible by 32")
    if cols % 32:
        # 16 columns fill one metadata word; the 2x2 word swap of the reordering needs an even
        # number of words per row (PyTorch's converter fails with an index error otherwise).
        raise NMRefValueError(f"{name} has {cols} columns; the CUTLASS 2:4 layout needs columns divisible by 32")


def compress_24_cutlass(w: np.ndarray, *, mask: np.ndarray | None = None):
    """Compress a 2-D float16/bfloat16 matrix into ``(values [rows, cols/2], meta int16 [rows, cols/16])``.

    The pattern is ``mask`` (exactly 2 per group of 4 along rows) if given, else ``w != 0``
    (at most 2 nonzeros per group; NaN counts as nonzero).
    """
    w = _check_half("w", w)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be 2-D, got shape {w.shape}")
    rows, cols = w.shape
    _check_shape_24("w", rows, cols)
    if mask is None:
        present = w != 0
    else:
        present = as_bool_array("mask", mask)
        check_shape("mask", present, w.shape)
        check_exact_nm_mask(present, 2, 4, 1)
    g = present.reshape(rows, cols // 4, 4).astype(np.int64)
    pat = g[..., 0] | g[..., 1] << 1 | g[..., 2] << 2 | g[..., 3] << 3
    pair = _PAIR_OF_PATTERN[pat]  # (rows, G, 2)
    if (pair[..., 0] < 0).any():
        r, grp = np.argwhere(pair[..., 0] < 0)[0]
        raise NMRefValueError(
            f"w is not 2:4 sparse: row {r}, group {grp} has more than 2 nonzeros; prune first (nm_mask) or pass mask="
        )
    values = np.take_along_axis(w.reshape(rows, cols // 4, 4), pair, axis=-1).reshape(rows, cols // 2)
    nib = (pair[..., 0] | pair[..., 1] << 2).reshape(rows, cols // 16, 4)
    word = (nib[..., 0] | nib[..., 1] << 4 | nib[..., 2] << 8 | nib[..., 3] << 12).astype(np.uint16)
    meta = np.empty(rows * (cols // 16), dtype=np.uint16)
    meta[meta_reorder_offsets(rows, cols // 16)] = word.ravel()
    return values, meta.view(np.int16).reshape(rows, cols // 16)


def scatter_24_nibbles(values: np.ndarray, nib: np.ndarray) -> np.ndarray:
    """Dense ``[rows, 4·G]`` from kept ``values[rows, 2G]`` and per-group nibbles ``i0 | i1 << 2``
    (``nib[rows, G]``); raises on a nibble that is not a pair ``i0 < i1``. Shared by the CUTLASS and
    packed layouts, which differ only in how the nibbles are stored."""
    rows, groups = nib.shape
    i0, i1 = nib & 3, nib >> 2
    if (i0 >= i1).any():
        r, grp = np.argwhere(i0 >= i1)[0]
        raise NMRefValueError(f"meta is invalid: row {r}, group {grp} encodes positions ({i0[r, grp]}, {i1[r, grp]}), expected i0 < i1")
    out = np.zeros((rows, groups, 4), dtype=values.dtype)
    np.put_along_axis(out, np.stack([i0, i1], axis=-1), values.reshape(rows, groups, 2), axis=-1)
    return out.reshape(rows, 4 * groups)


def decompress_24_cutlass(values: np.ndarray, meta: np.ndarray) -> np.ndarray:
    """Inverse of :func:`compress_24_cutlass`: dense ``[rows, 2·values.shape[1]]``, pruned entries +0.0.

    Raises if shapes or dtypes disagree or a metadata nibble is not a valid pair ``i0 < i1``.
    """
    values = _check_half("values", values)
    if values.ndim != 2:
        raise NMRefValueError(f"values must be 2-D [rows, cols/2], got shape {values.shape}")
    meta = as_typed_array("meta", meta, np.int16, "an int16 array")
    rows, half = values.shape
    cols = 2 * half
    _check_shape_24("the dense matrix (from values)", rows, cols)
    check_shape("meta", meta, (rows, cols // 16))
    word = meta.view(np.uint16).ravel()[meta_reorder_offsets(rows, cols // 16)].reshape(rows, cols // 16)
    word = word.astype(np.int64)
    nib = np.stack([(word >> (4 * q)) & 0xF for q in range(4)], axis=-1).reshape(rows, cols // 4)
    return scatter_24_nibbles(values, nib)
