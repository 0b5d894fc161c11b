"""nmref's sparse-tensor-core GEMM layout (compress_24_gemm / decompress_24_gemm) and its product gemm_24."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import nmref
from nmref import NMRefValueError
from nmref.testing import strategies as hs
from helpers import bits_equal, np_dtype

VALID_NIBBLES = {0x4, 0x8, 0xC, 0x9, 0xD, 0xE}


def brute_meta(mask, n, k):
    """The metadata words built one by one from the definition in docs/formats.md (independent of the
    vectorised packer): word 256a + 64w + 8g + 4h + s of row kb."""
    np_, kp = -(-n // 64) * 64, -(-k // 128) * 128

    def nib(r, q):
        if r >= n or q >= k // 4:
            return 0b0100
        i0, i1 = np.flatnonzero(mask[r, 4 * q:4 * q + 4])
        return int(i0) | int(i1) << 2

    out = np.zeros((kp // 128, 4 * np_), np.uint32)
    for kb in range(kp // 128):
        for a in range(np_ // 64):
            for w in range(4):
                for g in range(8):
                    for h in range(2):
                        for s in range(4):
                            r, word = 64 * a + 16 * w + g, 0
                            for j in range(4):
                                q = 32 * kb + 8 * s + 4 * h + j
                                word |= nib(r, q) << 4 * j | nib(r + 8, q) << (16 + 4 * j)
                            out[kb, 256 * a + 64 * w + 8 * g + 4 * h + s] = word
    return out


@pytest.mark.parametrize("shape", [(64, 128), (70, 136), (1, 4), (65, 12)])
def test_meta_matches_brute_force_definition(shape):
    rng = np.random.default_rng(shape)
    w = rng.standard_normal(shape).astype(np.float32)
    values, meta = nmref.compress_24_gemm(w)
    mask = nmref.nm_mask(w, 2, 4)
    assert meta.dtype == np.uint32 and values.shape == (shape[0], shape[1] // 2)
    np.testing.assert_array_equal(meta, brute_meta(mask, *shape))
    np.testing.assert_array_equal(values, w[mask].reshape(shape[0], shape[1] // 2))


@st.composite
def gemm_weights(draw):
    n = draw(st.integers(1, 80))
    k = 4 * draw(st.integers(1, 40) | st.sampled_from([32, 64]))
    dt = draw(hs.float_dtypes())
    w = draw(hs.float_arrays((n, k), dt, infinity=True, sparse=True))
    mask = draw(st.none() | hs.masks((n, k), 2, 4))
    return w, mask


@given(gemm_weights())
def test_round_trip_bitwise_and_valid_nibbles(case):
    w, mask = case
    values, meta = nmref.compress_24_gemm(w, mask=mask)
    m = nmref.nm_mask(w, 2, 4) if mask is None else mask
    assert bits_equal(nmref.decompress_24_gemm(values, meta), np.where(m, w, np.zeros((), w.dtype)))
    nibbles = (meta[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
    assert set(np.unique(nibbles).tolist()) <= VALID_NIBBLES


def test_degenerate_groups_and_negative_zero():
    # all-zero, single-nonzero, -0.0 groups: the nibble comes from the mask, never from w != 0,
    # so it is always a valid pair, and a kept -0.0 keeps its sign
    w = np.array([[0, 0, 0, 0, 0, 0, 5, 0, -0.0, -0.0, 0, 0, 0, -0.0, 1, 0] * 8], np.float16)
    values, meta = nmref.compress_24_gemm(w)
    back = nmref.decompress_24_gemm(values, meta)
    assert bits_equal(back, np.where(nmref.nm_mask(w, 2, 4), w, np.float16(0)))
    assert np.signbit(values).any()  # a -0.0 was kept, sign and all
    nibbles = (meta[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
    assert set(np.unique(nibbles).tolist()) <= VALID_NIBBLES


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_gemm_24_matches_float64_product(dtype):
    rng = np.random.default_rng(1)
    n, k, m = 70, 136, 9
    w = rng.standard_normal((n, k)).astype(np_dtype(dtype))
    values, meta = nmref.compress_24_gemm(w)
    x = rng.standard_normal((m, k)).astype(np_dtype(dtype))
    y = nmref.gemm_24(x, values, meta)
    wm = np.where(nmref.nm_mask(w, 2, 4), w.astype(np.float64), 0.0)
    ref = x.astype(np.float64) @ wm.T
    assert y.dtype == np.float32 and y.shape == (m, n)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert nmref.gemm_24(x[0], values, meta).shape == (n,)
    assert nmref.gemm_24(x[:0], values, meta).shape == (0, n)


def test_gemm_24_non_finite_input_reaches_only_rows_that_keep_it():
    w = np.ones((2, 8), np.float32)
    mask = np.array([[1, 1, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0]], bool)
    values, meta = nmref.compress_24_gemm(w, mask=mask)
    x = np.ones((1, 8), np.float32)
    x[0, 0] = np.inf  # kept by row 0 only
    y = nmref.gemm_24(x, values, meta)
    assert np.isinf(y[0, 0]) and y[0, 1] == 4.0
    x[0, 0], x[0, 6] = 1, np.nan  # pruned in both rows: never read
    np.testing.assert_array_equal(nmref.gemm_24(x, values, meta), [[4.0, 4.0]])


def test_errors_name_the_problem():
    w = np.ones((3, 8), np.float32)
    values, meta = nmref.compress_24_gemm(w)
    with pytest.raises(NMRefValueError, match="meta has shape"):
        nmref.decompress_24_gemm(values, meta[:, :-1])
    bad = meta.copy()
    bad[0, 0] = (bad[0, 0] & ~np.uint32(0xF)) | np.uint32(0b0101)  # (1, 1): undefined in PTX
    with pytest.raises(NMRefValueError, match="row 0, group 0"):
        nmref.decompress_24_gemm(values, bad)
    with pytest.raises(NMRefValueError, match="x must be"):
        nmref.gemm_24(np.ones((2, 12), np.float32), values, meta)
    with pytest.raises(NMRefValueError, match="cols % 4 == 0"):
        nmref.compress_24_gemm(np.ones((2, 6), np.float32))
    with pytest.raises(NMRefValueError):
        nmref.compress_24_gemm(w, mask=np.ones((3, 8), bool))
