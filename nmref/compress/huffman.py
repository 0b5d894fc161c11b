"""Huffman coding of N:M group patterns (for the compression-ratio bound beyond ⌈log2 C(m,n)⌉).

Code construction is deterministic: repeatedly merge the two least-probable nodes, ties broken
by the smallest symbol id the node contains; the code is then made canonical (symbols sorted by
(length, symbol id) get consecutive codes). A single symbol gets length 0 (nothing to send).
Probabilities are exact :class:`fractions.Fraction` values summing to 1.
"""
from __future__ import annotations

import heapq
import math
from fractions import Fraction

import numpy as np

from .._checks import NMRefTypeError, NMRefValueError, check_int, check_nm, grouped_shape, ungrouped
from .enumerative import _tables, pattern_ranks, patterns_from_ranks

__all__ = ["huffman_code_lengths", "huffman_expected_bits", "encode_mask_huffman", "decode_mask_huffman", "as_probabilities"]


def as_probabilities(probs) -> list[Fraction]:
    """Exact probabilities: ``Fraction(str(p))`` for floats, must be >= 0 and sum to exactly 1."""
    if isinstance(probs, np.ndarray):
        probs = probs.tolist()
    if not isinstance(probs, (list, tuple)):
        raise NMRefTypeError(f"pattern_probs must be a list of probabilities, got {type(probs).__name__}")
    out = []
    for p in probs:
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, Fraction, np.integer, np.floating)):
            raise NMRefTypeError(f"pattern_probs entries must be numbers (fractions.Fraction for exact values), got {p!r}")
        out.append(Fraction(int(p)) if isinstance(p, (int, np.integer)) else p if isinstance(p, Fraction) else Fraction(str(float(p))))
    if not out:
        raise NMRefValueError("pattern_probs is empty; expected one probability per pattern")
    if any(p < 0 for p in out):
        raise NMRefValueError(f"pattern_probs must be >= 0, got {[str(p) for p in out if p < 0][:3]}")
    if sum(out) != 1:
        raise NMRefValueError(
            f"pattern_probs must sum to 1 exactly, got {sum(out)} (= {float(sum(out))!r}): a float is read as its shortest "
            "decimal (1/3 as 0.3333333333333333), so pass exact fractions, e.g. [Fraction(1, 3)] * 3 "
            "(from fractions import Fraction), or floats whose decimals sum to 1 (0.25, 0.75)")
    return out


def huffman_code_lengths(probs) -> list[int]:
    """Code length of each symbol of a Huffman code for ``probs``."""
    probs = as_probabilities(probs)
    if len(probs) == 1:
        return [0]
    heap = [(p, i, [i]) for i, p in enumerate(probs)]
    heapq.heapify(heap)
    lengths = [0] * len(probs)
    while len(heap) > 1:
        p1, k1, s1 = heapq.heappop(heap)
        p2, k2, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (p1 + p2, min(k1, k2), s1 + s2))
    return lengths


def huffman_expected_bits(probs) -> Fraction:
    """Expected code length ``Σ p_i ℓ_i`` (exact)."""
    probs = as_probabilities(probs)
    return sum((p * l for p, l in zip(probs, huffman_code_lengths(probs))), Fraction(0))


def _canonical_codes(lengths):
    order = sorted(range(len(lengths)), key=lambda s: (lengths[s], s))
    codes, code, prev = [0] * len(lengths), 0, lengths[order[0]]
    for k, s in enumerate(order):
        if k:
            code = (code + 1) << (lengths[s] - prev)
        prev = lengths[s]
        codes[s] = code
    return codes


def encode_mask_huffman(mask: np.ndarray, n: int, m: int, pattern_probs, *, axis: int = -1) -> tuple[bytes, int]:
    """Huffman-code each group's pattern rank (see :mod:`nmref.compress.enumerative`).

    Codes are written MSB-first of each codeword into a stream packed big-endian per byte.
    Returns ``(data, n_bits)``; ``n_bits = Σ ℓ(pattern_g)``. A pattern with probability 0 that
    occurs raises.
    """
    lengths = huffman_code_lengths(pattern_probs)
    n, m = check_nm(n, m)
    if len(lengths) != len(_tables(n, m)[0]):
        raise NMRefValueError(f"pattern_probs has {len(lengths)} entries, expected C(m,n) = {len(_tables(n, m)[0])}")
    probs = as_probabilities(pattern_probs)
    codes = _canonical_codes(lengths)
    ranks = pattern_ranks(mask, n, m, axis=axis).ravel()
    if ranks.size and any(probs[r] == 0 for r in np.unique(ranks)):
        raise NMRefValueError("mask contains a pattern whose probability in pattern_probs is 0")
    bits = []
    for r in ranks.tolist():
        ln = lengths[r]
        bits.extend((codes[r] >> (ln - 1 - i)) & 1 for i in range(ln))
    return np.packbits(np.array(bits, dtype=np.uint8)).tobytes(), len(bits)


def decode_mask_huffman(data: bytes, n_bits: int, shape, n: int, m: int, pattern_probs, *, axis: int = -1) -> np.ndarray:
    """Inverse of :func:`encode_mask_huffman`."""
    n, m = check_nm(n, m)
    n_bits = check_int("n_bits", n_bits, minimum=0)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise NMRefTypeError(f"data must be bytes, got {type(data).__name__}")
    if n_bits > 8 * len(data):
        raise NMRefValueError(f"n_bits = {n_bits} exceeds the {8 * len(data)} bits of data")
    lengths = huffman_code_lengths(pattern_probs)
    if len(lengths) != len(_tables(n, m)[0]):
        raise NMRefValueError(f"pattern_probs has {len(lengths)} entries, expected C(m,n) = {len(_tables(n, m)[0])}")
    codes = _canonical_codes(lengths)
    table = {(lengths[s], codes[s]): s for s in range(len(lengths))}
    shape, axis, moved = grouped_shape(shape, axis, m)
    n_groups = math.prod(moved)
    stream = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))[:n_bits].tolist()
    ranks, ln, code, pos = [], 0, 0, 0
    if len(lengths) == 1:
        ranks = [0] * n_groups
    else:
        for bit in stream:
            code, ln = (code << 1) | bit, ln + 1
            s = table.get((ln, code))
            if s is not None:
                ranks.append(s)
                ln = code = 0
    if len(ranks) != n_groups or ln:
        raise NMRefValueError(f"data decodes to {len(ranks)} groups (+{ln} dangling bits), expected {n_groups}")
    return ungrouped(patterns_from_ranks(np.array(ranks, dtype=np.int64).reshape(moved), n, m), axis)
