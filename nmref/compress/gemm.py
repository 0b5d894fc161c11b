"""nmref's 2:4 layout for sparse-tensor-core GEMMs (``wgmma.mma_async.sp`` and ``mma.sp.m16n8k32``).

For ``W[N, K]`` (``K % 4 == 0``) with exactly 2 kept per group of 4 along ``K`` (the reduction axis
of ``Y = X·(W⊙M)ᵀ``), with ``Np = 64·⌈N/64⌉`` and ``Kp = 128·⌈K/128⌉``:

* ``values[N, K/2]`` (dtype of W): per group the two kept values, lower position first — the
  compressed row-major matrix the instruction reads as its sparse operand A (the same array as the
  ``values`` of :func:`compress_24_packed` and of the CUTLASS layout);
* ``meta[Kp/128, 4·Np]`` uint32: the metadata registers, in the order a warp reads them. Row ``kb``
  holds the 128-column block ``kb``; inside it, the 64-row atom ``a`` occupies words
  ``256·a … 256·a + 255``, and word ``256·a + 64·w + 8·g + 4·h + s`` (``w`` < 4: 16-row slice,
  ``g`` < 8, ``h`` < 2, ``s`` < 4: 32-column step) is

      Σ_j  nib[r, q] << 4j   |   nib[r + 8, q] << (16 + 4j),   j = 0..3,
      r = 64·a + 16·w + g,   q = 32·kb + 8·s + 4·h + j,

  where ``nib[r, q] = i0 | i1 << 2`` encodes the kept positions ``i0 < i1`` of group ``q`` of row
  ``r``. This is the register that lane ``4g + h`` (and, duplicated, ``4g + h + 2``) of warp ``w``
  passes as the metadata of the 32-column step ``s`` (selector 0): bits 0-15 for row ``g``, groups
  ``4h…4h+3`` of the step; bits 16-31 for row ``g + 8``. A thread loads its four steps of one
  128-column block as one 16-byte vector.

The metadata of rows ``N…Np-1`` and of groups past ``K/4`` (padding) is the nibble ``(0, 1)`` =
``0b0100``; a kernel reads zeros for the values there. Every
nibble is a pair ``i0 < i1``: the four nibbles ``0b0000, 0b0101, 0b1010, 0b1111`` that the PTX ISA
leaves undefined never occur, also for all-zero or single-nonzero groups, because the pattern comes
from the mask (``nm_mask`` by default) and never from ``w != 0``. Values are copied bit for bit: a kept
``-0.0`` stays ``-0.0`` (it multiplies to a signed zero, which does not change a sum that has any
other term).
"""
from __future__ import annotations

import numpy as np

from .._checks import NMRefValueError, as_float_array, as_typed_array, check_int
from .cutlass import scatter_24_nibbles
from .packed import _kept_values_nibbles

__all__ = ["compress_24_gemm", "decompress_24_gemm", "gemm_24", "gemm_meta_from_nibbles", "gemm_padded_shape"]

ROW_TILE, COL_TILE = 64, 128
PAD_NIBBLE = 0b0100  # (i0, i1) = (0, 1)


def gemm_padded_shape(n: int, k: int) -> tuple[int, int]:
    """``(Np, Kp)``: ``n`` and ``k`` rounded up to multiples of 64 and 128."""
    n = check_int("n", n, minimum=0)
    k = check_int("k", k, minimum=4)
    if k % 4:
        raise NMRefValueError(f"k must be a multiple of 4 (groups of 4 along K), got {k}")
    return -(-n // ROW_TILE) * ROW_TILE, -(-k // COL_TILE) * COL_TILE


def gemm_meta_from_nibbles(nib, xp=np):
    """``nib[N, K/4]`` (uint32 nibbles ``i0 | i1 << 2``) -> ``meta[Kp/128, 4·Np]`` (see the module
    docstring), padded with the nibble (0, 1). ``xp`` is the array module (NumPy here, CuPy in
    ``nmref_gpu``)."""
    n, groups = nib.shape
    np_, kp = gemm_padded_shape(n, 4 * groups)
    full = xp.full((np_, kp // 4), PAD_NIBBLE, dtype=xp.uint32)
    full[:n, :groups] = nib
    atoms, kbs = np_ // 64, kp // 128
    # nib[r, q] with r = 64a + 16w + 8hi + g and q = 32kb + 8s + 4h + j
    n8 = full.reshape(atoms, 4, 2, 8, kbs, 4, 2, 4)            # a, w, hi, g, kb, s, h, j
    shift = (16 * xp.arange(2, dtype=xp.uint32))[:, None] + 4 * xp.arange(4, dtype=xp.uint32)[None, :]  # hi, j
    words = (n8 << shift[None, None, :, None, None, None, None, :]).sum(axis=(2, 7), dtype=xp.uint32)  # disjoint bits: sum == OR
    # words: a, w, g, kb, s, h  ->  kb, a, w, g, h, s
    return xp.ascontiguousarray(words.transpose(3, 0, 1, 2, 5, 4).reshape(kbs, 4 * np_))


def _nibbles_from_gemm_meta(meta):
    kbs, np4 = meta.shape
    np_ = np4 // 4
    w6 = meta.reshape(kbs, np_ // 64, 4, 8, 2, 4)             # kb, a, w, g, h, s
    shift = (16 * np.arange(2, dtype=np.uint32))[:, None] + 4 * np.arange(4, dtype=np.uint32)[None, :]  # hi, j
    n = (w6[..., None, None] >> shift) & 0xF                    # kb, a, w, g, h, s, hi, j
    n = n.transpose(1, 2, 6, 3, 0, 5, 4, 7)                     # a, w, hi, g, kb, s, h, j
    return n.reshape(np_, kbs * 32).astype(np.int64)


def compress_24_gemm(w: np.ndarray, *, mask: np.ndarray | None = None):
    """``(values [N, K/2], meta uint32 [Kp/128, 4·Np])`` of ``W[N, K]`` (``K % 4 == 0``) in the
    sparse-tensor-core GEMM layout (module docstring); mask defaults to ``nm_mask(w, 2, 4)`` and a given
    mask must be exactly 2:4 along ``K``. The metadata is padded to ``Np = 64·⌈N/64⌉`` rows and
    ``Kp = 128·⌈K/128⌉`` columns with the nibble ``(0, 1)``."""
    values, nib = _kept_values_nibbles(w, mask, 1, 4, "GEMM 2:4")
    return values, gemm_meta_from_nibbles(nib)


def _check_values_meta(values, meta):
    values = as_float_array("values", values)
    meta = as_typed_array("meta", meta, np.uint32, "a uint32 array")
    if values.ndim != 2 or values.shape[1] == 0 or values.shape[1] % 2:
        raise NMRefValueError(f"values must be 2-D [N, K/2] with K >= 4 and K % 4 == 0, got shape {values.shape}")
    n, k = values.shape[0], 2 * values.shape[1]
    np_, kp = gemm_padded_shape(n, k)
    if meta.shape != (kp // 128, 4 * np_):
        raise NMRefValueError(f"meta has shape {meta.shape}; values of shape {values.shape} (W of shape "
                              f"{(n, k)}) need ({kp // 128}, {4 * np_})")
    return values, meta, n, k


def _checked_nibbles(meta, n, k):
    """The nibbles ``[N, K/4]`` of ``meta``; raises on any nibble (padding included) that is not a pair
    ``i0 < i1``, naming its row and group."""
    nib = _nibbles_from_gemm_meta(meta)
    i0, i1 = nib & 3, nib >> 2
    if (i0 >= i1).any():
        r, grp = np.argwhere(i0 >= i1)[0]
        raise NMRefValueError(f"meta is invalid: row {r}, group {grp} encodes positions ({i0[r, grp]}, {i1[r, grp]}), "
                              "expected i0 < i1")
    return nib[:n, :k // 4]


def decompress_24_gemm(values: np.ndarray, meta: np.ndarray) -> np.ndarray:
    """Inverse of :func:`compress_24_gemm`: dense ``W[N, K]`` (pruned entries +0.0). Raises on a
    nibble that is not a pair ``i0 < i1`` (padding included, naming its row and group) and on a
    ``meta`` whose shape does not match ``values``."""
    values, meta, n, k = _check_values_meta(values, meta)
    return scatter_24_nibbles(values, _checked_nibbles(meta, n, k))


def gemm_24(x: np.ndarray, values: np.ndarray, meta: np.ndarray) -> np.ndarray:
    """``Y[M, N] = X[M, K] · (W⊙M)[N, K]ᵀ`` with ``W⊙M = decompress_24_gemm(values, meta)``.

    ``x`` is ``[M, K]`` (``M >= 0``) or ``[K]``. Products and sums are float32 for float16/bfloat16/
    float32 inputs and float64 if any input is float64 (the order of summation is unspecified: compare
    with a tolerance). Pruned entries are never read, so a NaN or Inf in ``x`` reaches exactly the
    outputs of the rows whose kept entries meet it."""
    values, meta, n, k = _check_values_meta(values, meta)
    x = as_float_array("x", x)
    if x.ndim not in (1, 2) or x.shape[-1] != k:
        raise NMRefValueError(f"x must be [M, {k}] or [{k}] (values imply K = {k}), got shape {x.shape}")
    acc = np.float64 if np.float64 in (x.dtype, values.dtype) else np.float32
    nib = _checked_nibbles(meta, n, k)
    w = scatter_24_nibbles(values, nib).astype(acc)
    kept = scatter_24_nibbles(np.ones(values.shape, dtype=bool), nib)
    x2 = x.reshape(-1, k).astype(acc)
    bad = ~np.isfinite(x2)
    # Σ over kept entries only, written as a dense product over finite inputs (pruned entries are +0.0
    # there) plus each non-finite input added to exactly the rows that keep its column.
    y = np.where(bad, 0, x2) @ w.T
    for m, c in np.argwhere(bad):
        y[m, kept[:, c]] += x2[m, c] * w[kept[:, c], c]
    return y.reshape(x.shape[:-1] + (n,))
