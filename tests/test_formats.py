import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

import nmref
from nmref.testing import strategies as hs
from nmref import NMRefTypeError, NMRefValueError
from helpers import bits_equal, nm_arrays, np_dtype


# ---------------------------------------------------------------- generic values + indices
@given(nm_arrays(ties=None))
def test_generic_round_trip_is_bitwise(case):
    w, n, m, axis = case
    if n == 0:
        with pytest.raises(NMRefValueError, match="n must be >= 1"):
            nmref.compress_nm(w, n, m, axis=axis)
        return
    mask = nmref.nm_mask(w, n, m, axis=axis)
    vals, idx = nmref.compress_nm(w, n, m, axis=axis)
    assert vals.dtype == w.dtype and idx.dtype == np.uint8
    assert vals.shape[axis] == w.shape[axis] // m * n
    back = nmref.decompress_nm(vals, idx, n, m, axis=axis)
    assert bits_equal(back, np.where(mask, w, np.zeros((), w.dtype)))


def test_generic_explicit_mask_and_errors():
    w = np.arange(8, dtype=np.float32).reshape(1, 8)
    mask = np.array([[True, False, False, True, False, True, True, False]])
    vals, idx = nmref.compress_nm(w, 2, 4, mask=mask)
    np.testing.assert_array_equal(vals, [[0, 3, 5, 6]])
    np.testing.assert_array_equal(idx, [[0, 3, 1, 2]])
    with pytest.raises(NMRefValueError, match="group 1 keeps 3"):
        nmref.compress_nm(w, 2, 4, mask=np.array([[1, 1, 0, 0, 1, 1, 1, 0]], bool))
    with pytest.raises(NMRefValueError, match="strictly increasing"):
        nmref.decompress_nm(vals, np.array([[3, 0, 1, 2]], np.uint8), 2, 4)
    with pytest.raises(NMRefValueError, match=r"indices must lie in \[0, m=4\)"):
        nmref.decompress_nm(vals, np.array([[0, 4, 1, 2]], np.uint8), 2, 4)
    with pytest.raises(NMRefValueError, match="indices has shape"):
        nmref.decompress_nm(vals, idx[:, :2], 2, 4)
    with pytest.raises(NMRefTypeError, match="indices must be an integer"):
        nmref.decompress_nm(vals, idx.astype(np.float32), 2, 4)
    with pytest.raises(NMRefValueError, match="not divisible by the group size m = 2"):
        nmref.decompress_nm(vals[:, :3], idx[:, :3], 2, 4)


# ---------------------------------------------------------------- CUTLASS / PyTorch 2:4 layout
def _sparse_half(rng, rows, cols, dtype, zero_frac=0.3):
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    w[rng.random(w.shape) < zero_frac] = 0.0  # leaves groups with 0 or 1 nonzero after masking
    w = w.astype(dtype)
    return np.where(nmref.nm_mask(w, 2, 4), w, np.zeros((), dtype))


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
@pytest.mark.parametrize("rows,cols", [(32, 32), (64, 96), (96, 128)])
def test_cutlass_round_trip(dt, rows, cols):
    rng = np.random.default_rng(rows + cols)
    w = _sparse_half(rng, rows, cols, np_dtype(dt))
    vals, meta = nmref.compress_24_cutlass(w)
    assert vals.shape == (rows, cols // 2) and meta.shape == (rows, cols // 16) and meta.dtype == np.int16
    assert bits_equal(nmref.decompress_24_cutlass(vals, meta), w)


def test_cutlass_reorder_is_a_permutation():
    off = nmref.meta_reorder_offsets(64, 6)
    np.testing.assert_array_equal(np.sort(off), np.arange(64 * 6))


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
@pytest.mark.parametrize("seed", range(4))
def test_cutlass_bit_identical_to_torch(dt, seed):
    torch = pytest.importorskip("torch")
    from torch.sparse._semi_structured_conversions import (
        sparse_semi_structured_from_dense_cutlass as t_from_dense,
        sparse_semi_structured_to_dense_cutlass as t_to_dense,
    )
    rng = np.random.default_rng(seed)
    rows, cols = 32 * int(rng.integers(1, 4)), 32 * int(rng.integers(1, 4))
    w = _sparse_half(rng, rows, cols, np_dtype(dt), zero_frac=0.15 * seed)
    tw = torch.from_numpy(w.view(np.int16)).view(torch.bfloat16 if dt == "bfloat16" else torch.float16)
    tv, tm = t_from_dense(tw)
    vals, meta = nmref.compress_24_cutlass(w)
    np.testing.assert_array_equal(tv.view(torch.int16).numpy(), vals.view(np.int16))
    np.testing.assert_array_equal(tm.numpy(), meta)
    np.testing.assert_array_equal(t_to_dense(tv, tm).view(torch.int16).numpy(), nmref.decompress_24_cutlass(vals, meta).view(np.int16))


def test_cutlass_with_mask_keeps_masked_positions_even_if_zero():
    w = np.zeros((32, 32), np.float16)
    mask = np.tile(np.array([False, True, False, True]), (32, 8))
    vals, meta = nmref.compress_24_cutlass(w, mask=mask)
    nib = meta.view(np.uint16)[0, 0] & 0xF  # the first word lands at offset 0 after reordering
    assert nib == (1 | 3 << 2)


def test_cutlass_errors():
    with pytest.raises(NMRefTypeError, match="float16 or bfloat16"):
        nmref.compress_24_cutlass(np.zeros((32, 16), np.float32))
    with pytest.raises(NMRefValueError, match="rows divisible by 32"):
        nmref.compress_24_cutlass(np.zeros((16, 16), np.float16))
    with pytest.raises(NMRefValueError, match="columns divisible by 32"):
        nmref.compress_24_cutlass(np.zeros((32, 16), np.float16))
    with pytest.raises(NMRefValueError, match="row 0, group 0 has more than 2 nonzeros"):
        nmref.compress_24_cutlass(np.ones((32, 32), np.float16))
    vals, meta = nmref.compress_24_cutlass(np.zeros((32, 32), np.float16))
    with pytest.raises(NMRefValueError, match="meta has shape"):
        nmref.decompress_24_cutlass(vals, meta[:, :0])
    with pytest.raises(NMRefTypeError, match="meta must have dtype int16"):
        nmref.decompress_24_cutlass(vals, meta.astype(np.int32))
    bad = meta.copy()
    bad.view(np.uint16)[0, 0] = 0x0000  # nibble (0, 0): not a pair
    with pytest.raises(NMRefValueError, match="meta is invalid"):
        nmref.decompress_24_cutlass(vals, bad)


# ---------------------------------------------------------------- compressed-tensors bitmask
@given(st.integers(1, 5), st.integers(1, 7), st.sampled_from(["float16", "float32", "bfloat16"]), st.data())
def test_bitmask_round_trip_and_bit_order(rows, groups_, dt, data):
    w = data.draw(hs.float_arrays((rows, 4 * groups_), dt))  # ties, ±0, ±Inf, subnormals, all-equal rows
    mask = nmref.nm_mask(w, 2, 4)
    vals, bm = nmref.compress_24_bitmask(w)
    assert bm.dtype == np.uint8 and bm.shape == (rows, (4 * groups_ + 7) // 8)
    for r in range(rows):
        for c in range(4 * groups_):
            assert bool(bm[r, c // 8] >> (c % 8) & 1) == mask[r, c]  # little bit order
        assert bits_equal(vals[r], w[r][mask[r]])
    assert bits_equal(nmref.decompress_24_bitmask(vals, bm, w.shape), np.where(mask, w, np.zeros((), w.dtype)))


def test_bitmask_errors():
    w = np.ones((2, 12), np.float32)
    vals, bm = nmref.compress_24_bitmask(w)
    with pytest.raises(NMRefValueError, match="bitmask has shape"):
        nmref.decompress_24_bitmask(vals, bm[:, :1], (2, 12))
    bad = bm.copy()
    bad[0, 1] |= 0x80  # a padding bit (column 15 of 12)
    with pytest.raises(NMRefValueError, match="padding bits"):
        nmref.decompress_24_bitmask(vals, bad, (2, 12))
    bad = bm.copy()
    bad[0, 0] |= 0x04
    with pytest.raises(NMRefValueError, match="exactly n=2"):
        nmref.decompress_24_bitmask(vals, bad, (2, 12))
    with pytest.raises(NMRefValueError, match="not divisible by 4"):
        nmref.decompress_24_bitmask(vals, bm, (2, 10))


# ---------------------------------------------------------------- enumerative code
def test_enumerative_rank_order_for_24():
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    mask = np.zeros((1, 24), bool)
    for g, (a, b) in enumerate(pairs):
        mask[0, 4 * g + a] = mask[0, 4 * g + b] = True
    np.testing.assert_array_equal(nmref.pattern_ranks(mask, 2, 4), [[0, 1, 2, 3, 4, 5]])
    data = nmref.encode_mask_enumerative(mask, 2, 4)
    assert len(data) == 3  # 6 groups * 3 bits = 18 bits -> 3 bytes
    stream = int.from_bytes(data, "little")
    assert [(stream >> (3 * g)) & 7 for g in range(6)] == [0, 1, 2, 3, 4, 5]


@given(nm_arrays(max_m=10))
def test_enumerative_round_trip_and_size(case):
    w, n, m, axis = case
    mask = nmref.nm_mask(w, n, m, axis=axis)
    data = nmref.encode_mask_enumerative(mask, n, m, axis=axis)
    b = (math.comb(m, n) - 1).bit_length()
    assert b == math.ceil(math.log2(math.comb(m, n)) - 1e-12) if math.comb(m, n) > 1 else b == 0
    assert len(data) == (mask.size // m * b + 7) // 8
    np.testing.assert_array_equal(nmref.decode_mask_enumerative(data, mask.shape, n, m, axis=axis), mask)


def test_enumerative_errors():
    mask = nmref.nm_mask(np.arange(16, dtype=np.float32).reshape(2, 8), 2, 4)
    data = nmref.encode_mask_enumerative(mask, 2, 4)
    with pytest.raises(NMRefValueError, match="expected 2"):
        nmref.decode_mask_enumerative(data + b"\0", (2, 8), 2, 4)
    with pytest.raises(NMRefValueError, match=r"pattern codes must lie in \[0, C\(m,n\)=6\)"):
        nmref.decode_mask_enumerative(b"\x07\x00", (2, 8), 2, 4)
    with pytest.raises(NMRefValueError, match="padding bits"):
        nmref.decode_mask_enumerative(bytes([data[0], data[1] | 0x80]), (2, 8), 2, 4)
    with pytest.raises(NMRefValueError, match="m <= 16"):
        nmref.encode_mask_enumerative(np.ones((1, 17), bool), 17, 17)
    with pytest.raises(NMRefTypeError, match="bool"):
        nmref.encode_mask_enumerative(mask.astype(np.uint8), 2, 4)


# ---------------------------------------------------------------- Huffman
@given(st.lists(st.integers(1, 50), min_size=1, max_size=12))
def test_huffman_is_optimal_prefix_code(weights):
    total = sum(weights)
    probs = [Fraction(w, total) for w in weights]
    lengths = nmref.huffman_code_lengths(probs)
    if len(probs) > 1:
        assert sum(Fraction(1, 2 ** l) for l in lengths) == 1  # complete prefix code (Kraft equality)
    h = -sum(float(p) * math.log2(p) for p in probs)
    e = float(nmref.huffman_expected_bits(probs))
    assert h - 1e-12 <= e < h + 1


@given(st.lists(st.integers(1, 5), min_size=6, max_size=6).flatmap(
    lambda c: st.tuples(st.just(np.array(c)), st.permutations(np.repeat(np.arange(6), c).tolist()))))
def test_huffman_encoder_size_matches_expected_bits(case):
    counts, order = case
    ranks = np.array(order)  # empirical distribution == probs exactly
    mask = nmref.patterns_from_ranks(ranks, 2, 4).reshape(1, -1)
    probs = [Fraction(int(c), int(counts.sum())) for c in counts]
    data, nbits = nmref.encode_mask_huffman(mask, 2, 4, probs)
    assert nbits == len(ranks) * nmref.huffman_expected_bits(probs)
    assert len(data) == (nbits + 7) // 8
    np.testing.assert_array_equal(nmref.decode_mask_huffman(data, nbits, mask.shape, 2, 4, probs), mask)


# ---------------------------------------------------------------- compression-ratio math
def test_ast_formula_values():
    expected = {1: 0.078125, 2: 0.0859375, 4: 0.08984375, 8: 0.08984375, 16: 0.091796875}
    for n, v in expected.items():
        r = nmref.ast_compression_ratio(n)
        assert isinstance(r, Fraction) and r == Fraction(v)
        assert r == Fraction(1, 16) + Fraction((math.comb(2 * n, n) - 1).bit_length(), 64 * n)


def test_ast_limit_is_upper_bound_and_approached():
    rs = [nmref.ast_compression_ratio(n) for n in range(1, 257)]
    assert all(r < nmref.AST_LIMIT for r in rs)
    assert nmref.AST_LIMIT - rs[-1] < Fraction(1, 1000)
    assert nmref.AST_LIMIT == Fraction(3, 32)


@pytest.mark.parametrize("n,m", [(1, 2), (2, 4), (4, 8), (3, 8), (2, 8)])
def test_index_codings_against_brute_force_bit_counts(n, m):
    c = math.comb(m, n)
    assert nmref.index_bits(n, m, "bitmask") == m
    assert nmref.index_bits(n, m, "index") == n * math.ceil(math.log2(m))
    assert nmref.index_bits(n, m, "enumerative") == min(b for b in range(64) if 2 ** b >= c)
    assert nmref.compression_ratio(n, m, 4, 32) == Fraction(4 * n + nmref.index_bits(n, m), 32 * m)


def test_huffman_beats_enumerative_ceiling_for_24():
    assert nmref.compression_ratio(2, 4, 16, 16, "huffman") == Fraction(2 * 16 * 3 + 8, 64 * 3)
    assert nmref.index_bits(2, 4, "huffman") == Fraction(8, 3) < nmref.index_bits(2, 4, "enumerative")
    assert nmref.entropy_compression_ratio(2, 4, 16, 16) == pytest.approx((32 + math.log2(6)) / 64)


@pytest.mark.parametrize("rows,cols", [(32, 64), (64, 128)])
def test_measured_encoder_sizes_equal_formula(rows, cols):
    rng = np.random.default_rng(rows)
    w = rng.standard_normal((rows, cols)).astype(np.float16)
    dense_bits = rows * cols * 32  # against an FP32 dense baseline
    mask = nmref.nm_mask(w, 2, 4)
    vals, bm = nmref.compress_24_bitmask(w)
    assert Fraction((vals.nbytes + bm.nbytes) * 8, dense_bits) == nmref.compression_ratio(2, 4, 16, 32, "bitmask")
    cv, meta = nmref.compress_24_cutlass(np.where(mask, w, np.float16(0)))
    assert Fraction((cv.nbytes + meta.nbytes) * 8, dense_bits) == nmref.compression_ratio(2, 4, 16, 32, "index")
    enum = nmref.encode_mask_enumerative(mask, 2, 4)
    assert Fraction((vals.nbytes + len(enum)) * 8, dense_bits) == nmref.compression_ratio(2, 4, 16, 32, "enumerative")


def test_ratio_errors():
    with pytest.raises(NMRefValueError, match="index_coding must be one of"):
        nmref.compression_ratio(2, 4, 4, index_coding="zip")
    with pytest.raises(NMRefValueError, match="sum to 1"):
        nmref.compression_ratio(2, 4, 4, index_coding="huffman", pattern_probs=[0.5] * 6)
    with pytest.raises(NMRefValueError, match=r"expected C\(m=4, n=2\) = 6"):
        nmref.compression_ratio(2, 4, 4, index_coding="huffman", pattern_probs=[0.5, 0.5])
    with pytest.raises(NMRefValueError, match="value_bits must be >= 1"):
        nmref.compression_ratio(2, 4, 0)


# ---------------------------------------------------------------- packed 2:4 (kernel layout)
@pytest.mark.parametrize("dt", ["float16", "bfloat16", "float32"])
def test_packed_round_trip_and_bit_layout(dt):
    rng = np.random.default_rng(11)
    w = rng.standard_normal((5, 64)).astype(np_dtype(dt))
    mask = nmref.nm_mask(w, 2, 4)
    vals, meta = nmref.compress_24_packed(w)
    assert meta.dtype == np.uint32 and meta.shape == (5, 2)
    cv, _ = nmref.compress_nm(w, 2, 4)
    assert bits_equal(vals, cv)
    for r in range(5):
        for g in range(16):
            nib = int(meta[r, g // 8]) >> (4 * (g % 8)) & 0xF
            assert mask[r, 4 * g + (nib & 3)] and mask[r, 4 * g + (nib >> 2)] and (nib & 3) < (nib >> 2)
    assert bits_equal(nmref.decompress_24_packed(vals, meta), np.where(mask, w, np.zeros((), w.dtype)))
    bad = meta.copy()
    bad[0, 0] = 0
    with pytest.raises(NMRefValueError, match="meta is invalid"):
        nmref.decompress_24_packed(vals, bad)
    with pytest.raises(NMRefValueError, match="cols % 32 == 0"):
        nmref.compress_24_packed(w[:, :16])


@pytest.mark.parametrize("rows", [16, 20, 33])
def test_mma_layout_words_and_round_trip(rows):
    rng = np.random.default_rng(rows)
    w = rng.integers(-2, 3, size=(rows, 128)).astype(np.float16)  # ties and zero groups
    mask = nmref.nm_mask(w, 2, 4)
    v, m = nmref.compress_24_mma(w)
    vp, mp = nmref.compress_24_packed(w)
    assert bits_equal(v, vp) and m.dtype == np.uint32 and m.shape == (-(-rows // 16), 64) and m.flags.c_contiguous

    def nib(r, grp):  # from the row-major packed layout; rows past the end carry the pad pair (0, 1)
        return (int(mp[r, grp // 8]) >> (4 * (grp % 8))) & 0xF if r < rows else 0b0100
    for tile in range(m.shape[0]):  # word (T, s, g, r, c) at column 32 s + 4 g + 2 r + c, as documented
        for s in range(2):
            for g in range(8):
                for r in range(2):
                    for c in range(2):
                        grp = [16 * s + 4 * j + 2 * c + r for j in range(4)]
                        want = sum(nib(16 * tile + g, q) << (4 * j) | nib(16 * tile + g + 8, q) << (16 + 4 * j)
                                   for j, q in enumerate(grp))
                        assert int(m[tile, 32 * s + 4 * g + 2 * r + c]) == want
    assert bits_equal(nmref.decompress_24_mma(v, m), np.where(mask, w, np.zeros((), w.dtype)))
    bad = m.copy()
    bad[0, 0] &= ~np.uint32(0xF)  # row 0, group 0 -> (0, 0)
    with pytest.raises(NMRefValueError, match="row 0, group 0"):
        nmref.decompress_24_mma(v, bad)
    with pytest.raises(NMRefValueError, match="cols % 64 == 0"):
        nmref.compress_24_mma(w[:, :96])
    with pytest.raises(NMRefValueError, match="meta_mma"):
        nmref.decompress_24_mma(v, m[:, :-2])


@pytest.mark.parametrize("dt", ["float16", "bfloat16", "float32"])
def test_packed_t_is_the_transposed_packed_layout(dt):
    rng = np.random.default_rng(12)
    w = rng.integers(-2, 3, size=(16, 40)).astype(np_dtype(dt))  # ties and zero groups
    mask = nmref.nm_mask(w, 2, 4)
    vt, mt = nmref.compress_24_packed_t(w)
    assert vt.shape == (20, 16) and mt.shape == (10, 2) and mt.dtype == np.uint32 and vt.flags.c_contiguous and mt.flags.c_contiguous
    cv, _ = nmref.compress_nm(w, 2, 4)
    assert bits_equal(vt, cv.T)  # values_t = values.T
    for o in range(16):  # nibble of (row o, group g) at bits 4·(o mod 8) of word meta_t[g, o // 8]
        for g in range(10):
            nib = int(mt[g, o // 8]) >> (4 * (o % 8)) & 0xF
            assert mask[o, 4 * g + (nib & 3)] and mask[o, 4 * g + (nib >> 2)] and (nib & 3) < (nib >> 2)
    assert bits_equal(nmref.decompress_24_packed_t(vt, mt), np.where(mask, w, np.zeros((), w.dtype)))
    w32 = np.concatenate([w, w[:, :24]], axis=1)  # 64 columns: the row-major packed layout applies too
    v, m = nmref.compress_24_packed(w32)
    vt, mt = nmref.compress_24_packed_t(w32)
    assert bits_equal(vt, v.T)
    bad = mt.copy()
    bad[3, 1] &= ~np.uint32(0xF << 8)  # row 10, group 3 -> (0, 0)
    with pytest.raises(NMRefValueError, match="row 10, group 3"):
        nmref.decompress_24_packed_t(vt, bad)
    with pytest.raises(NMRefValueError, match="rows % 8"):
        nmref.compress_24_packed_t(w[:12])
    with pytest.raises(NMRefValueError, match="cols % 4"):
        nmref.compress_24_packed_t(w[:, :6])
    with pytest.raises(NMRefValueError, match="meta_t"):
        nmref.decompress_24_packed_t(vt, mt[:-1])
