"""Compression-ratio math (AST appendix): exact bits of N:M storage relative to dense.

For one group of m weights:

    ratio = (n · value_bits + index_bits(n, m)) / (m · base_bits)

with ``index_bits``:

=============== ============================================ ==========================
``bitmask``      m                                            1 bit per element
``index``        n · ⌈log2 m⌉                                 position of each kept value
``enumerative``  ⌈log2 C(m, n)⌉                               rank of the pattern
``huffman``      Σ p_i ℓ_i (Huffman code over pattern_probs)  uniform by default
=============== ============================================ ==========================

The AST 4-bit n:2n formula is ``ast_compression_ratio(n) = compression_ratio(n, 2n, 4, 32)
= 1/16 + ⌈log2 C(2n, n)⌉ / (64 n)``, increasing towards :data:`AST_LIMIT` = 3/32.
The entropy bound ``H(pattern)`` is irrational in general, so :func:`entropy_compression_ratio`
returns a float.
"""
from __future__ import annotations

import math
from fractions import Fraction

from .._checks import NMRefValueError, check_choice, check_int, check_nm
from .enumerative import pattern_bits
from .huffman import as_probabilities, huffman_expected_bits

__all__ = ["compression_ratio", "index_bits", "ast_compression_ratio", "AST_LIMIT", "entropy_compression_ratio", "INDEX_CODINGS"]

INDEX_CODINGS = ("bitmask", "index", "enumerative", "huffman")
#: lim_{n→∞} of the AST 4-bit n:2n ratio: (4 + 2)/64 = 3/32 (log2 C(2n,n) / 2n → 1).
AST_LIMIT = Fraction(3, 32)


def _probs(n, m, pattern_probs):
    c = math.comb(m, n)
    if pattern_probs is None:
        return [Fraction(1, c)] * c
    probs = as_probabilities(pattern_probs)
    if len(probs) != c:
        raise NMRefValueError(f"pattern_probs has {len(probs)} entries, expected C(m={m}, n={n}) = {c}")
    return probs


def index_bits(n: int, m: int, index_coding: str = "enumerative", pattern_probs=None) -> Fraction:
    """Bits of position information per group (exact; fractional for Huffman)."""
    n, m = check_nm(n, m)
    check_choice("index_coding", index_coding, INDEX_CODINGS)
    if pattern_probs is not None and index_coding != "huffman":
        raise NMRefValueError(f"pattern_probs is used only with index_coding='huffman', got index_coding={index_coding!r}; "
                              "drop pattern_probs or choose huffman")
    if index_coding == "bitmask":
        return Fraction(m)
    if index_coding == "index":
        return Fraction(n * (m - 1).bit_length())
    if index_coding == "enumerative":
        return Fraction(pattern_bits(n, m))
    return huffman_expected_bits(_probs(n, m, pattern_probs))  # huffman


def compression_ratio(n: int, m: int, value_bits: int, base_bits: int = 32, index_coding: str = "enumerative",
                      pattern_probs=None) -> Fraction:
    """Exact ratio of N:M storage bits to dense ``base_bits`` storage (see module docstring)."""
    n, m = check_nm(n, m)
    value_bits = check_int("value_bits", value_bits, minimum=1)
    base_bits = check_int("base_bits", base_bits, minimum=1)
    return (n * value_bits + index_bits(n, m, index_coding, pattern_probs)) / (m * base_bits)


def ast_compression_ratio(n: int) -> Fraction:
    """AST's C_n for 4-bit n:2n against FP32: ``1/16 + ⌈log2 C(2n,n)⌉/(64n)``."""
    n = check_int("n", n, minimum=1)
    return compression_ratio(n, 2 * n, 4, 32, "enumerative")


def entropy_compression_ratio(n: int, m: int, value_bits: int, base_bits: int = 32, pattern_probs=None) -> float:
    """Ratio with the index cost at the entropy bound ``H = −Σ p log2 p`` (a float: H is irrational)."""
    n, m = check_nm(n, m)
    value_bits = check_int("value_bits", value_bits, minimum=1)
    base_bits = check_int("base_bits", base_bits, minimum=1)
    h = -sum(float(p) * math.log2(p) for p in _probs(n, m, pattern_probs) if p > 0)
    return (n * value_bits + h) / (m * base_bits)
