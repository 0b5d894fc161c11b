"""Enumerative mask code: each group's pattern in exactly ``b = ⌈log2 C(m, n)⌉`` bits.

Pattern rank: the kept positions ``p_1 < … < p_n`` of a group are ranked in lexicographic
order of the tuple (``itertools.combinations(range(m), n)`` order), 0 ≤ rank < C(m, n);
for 2:4: (0,1)→0, (0,2)→1, (0,3)→2, (1,2)→3, (1,3)→4, (2,3)→5, 3 bits each.

Bit stream: groups in C order of the grouped array (all other axes, then group index along
``axis``); group g's code occupies bits ``[g·b, (g+1)·b)`` least-significant bit first, bit ``i``
of the stream being bit ``i mod 8`` of byte ``⌊i/8⌋``; trailing pad bits are zero.
Total size: ``⌈G·b / 8⌉`` bytes for G groups. Requires ``m <= 16``.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

from .._checks import (NMRefTypeError, NMRefValueError, as_array, as_bool_array, check_axis, check_divisible, check_nm, grouped, grouped_shape,
                       ungrouped)
from .generic import check_exact_nm_mask

__all__ = ["pattern_bits", "pattern_ranks", "patterns_from_ranks", "encode_mask_enumerative", "decode_mask_enumerative"]

_MAX_M = 16


def pattern_bits(n: int, m: int) -> int:
    """``⌈log2 C(m, n)⌉`` computed exactly on integers (0 when C(m, n) = 1)."""
    n, m = check_nm(n, m)
    return (math.comb(m, n) - 1).bit_length()


@lru_cache(maxsize=None)
def _tables(n: int, m: int):
    combos = list(itertools.combinations(range(m), n))
    bits_of_rank = np.array([sum(1 << p for p in c) for c in combos], dtype=np.int64)
    rank_of_bits = np.full(1 << m, -1, dtype=np.int64)
    rank_of_bits[bits_of_rank] = np.arange(len(combos))
    return bits_of_rank, rank_of_bits


def _check_m(m):
    if m > _MAX_M:
        raise NMRefValueError(f"the enumerative code supports m <= {_MAX_M}, got m={m}")


def pattern_ranks(mask: np.ndarray, n: int, m: int, *, axis: int = -1) -> np.ndarray:
    """Rank of every group's pattern, shape ``grouped(mask).shape[:-1]`` (int64)."""
    n, m = check_nm(n, m)
    _check_m(m)
    mask = as_bool_array("mask", mask)
    axis = check_axis(axis, mask.ndim)
    check_divisible("mask", mask.shape, axis, m)
    check_exact_nm_mask(mask, n, m, axis)
    g = grouped(mask, axis, m).astype(np.int64)
    bits = (g << np.arange(m)).sum(axis=-1)
    return _tables(n, m)[1][bits]


def patterns_from_ranks(ranks: np.ndarray, n: int, m: int) -> np.ndarray:
    """Inverse of :func:`pattern_ranks` on the grouped shape: returns bool ``ranks.shape + (m,)``."""
    n, m = check_nm(n, m)
    _check_m(m)
    bits_of_rank = _tables(n, m)[0]
    ranks = as_array("ranks", ranks)
    if ranks.size and ranks.dtype.kind not in "iu":
        raise NMRefTypeError(f"ranks must be integers, got dtype {ranks.dtype}")
    ranks = ranks.astype(np.int64)
    if ranks.size and (ranks.min() < 0 or ranks.max() >= len(bits_of_rank)):
        raise NMRefValueError(f"pattern codes must lie in [0, C(m,n)={len(bits_of_rank)}), got max {ranks.max()}")
    return (bits_of_rank[ranks][..., None] >> np.arange(m)) & 1 == 1


def encode_mask_enumerative(mask: np.ndarray, n: int, m: int, *, axis: int = -1) -> bytes:
    """Encode an exact N:M mask (bool, exactly n per group) as ``⌈G·b/8⌉`` bytes."""
    mask = as_bool_array("mask", mask)
    ranks = pattern_ranks(mask, n, m, axis=axis).ravel()
    b = pattern_bits(n, m)
    if b == 0 or ranks.size == 0:
        return b""
    stream = ((ranks[:, None] >> np.arange(b)) & 1).astype(np.uint8).ravel()
    return np.packbits(stream, bitorder="little").tobytes()


def decode_mask_enumerative(data: bytes, shape, n: int, m: int, *, axis: int = -1) -> np.ndarray:
    """Decode :func:`encode_mask_enumerative` output back to a bool mask of ``shape``.

    Raises on a wrong byte count, a code ≥ C(m, n) or nonzero pad bits.
    """
    n, m = check_nm(n, m)
    _check_m(m)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise NMRefTypeError(f"data must be bytes, got {type(data).__name__}")
    shape, axis, moved = grouped_shape(shape, axis, m)
    n_groups = math.prod(moved)
    b = pattern_bits(n, m)
    expected = (n_groups * b + 7) // 8
    if len(data) != expected:
        raise NMRefValueError(f"data has {len(data)} bytes, expected {expected} for {n_groups} groups of {b} bits")
    if b == 0:
        ranks = np.zeros(n_groups, dtype=np.int64)
    else:
        stream = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8), bitorder="little")
        if stream[n_groups * b:].any():
            raise NMRefValueError("data has nonzero padding bits after the last group")
        ranks = (stream[: n_groups * b].reshape(n_groups, b).astype(np.int64) << np.arange(b)).sum(axis=1)
    pats = patterns_from_ranks(ranks.reshape(moved), n, m)
    return ungrouped(pats, axis)
