"""Property tests of the GEMV and TEAL kernels against nmref: hypothesis draws shapes (ragged
included), batch, dtype, threshold and data (small-integer ties, ±0, all-dropped inputs), and every
result is compared with a float64 product of the reference's operands, within float32 summation
error relative to the magnitude of the summed terms (an all-zero product must be exactly zero).
The outputs are poisoned with NaN first. Skipped without CuPy and a CUDA GPU."""
from __future__ import annotations

import os

import numpy as np
import pytest

import nmref

from gpu_skip import require_gpu

cp = require_gpu()
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import nmref_gpu  # noqa: E402
from nmref_gpu import kernels  # noqa: E402

pytestmark = pytest.mark.gpu
#: examples per property (NMREF_GPU_EXAMPLES: e.g. fewer under compute-sanitizer)
EXAMPLES = settings(max_examples=int(os.environ.get("NMREF_GPU_EXAMPLES", 150)), deadline=None)
#: float32 summation of fp16/bf16 products (exact in float32), relative to sum |x||W|: the tensor
#: cores' truncated partial sums and float32 adds measured <= 4e-7; 1e-5 still catches one missing or
#: extra term of the small-integer draws (each term >= 1 against a scale <= 9 x 2048)
RTOL = 1e-5


def _dtypes():
    out = [np.dtype(np.float16)]
    try:
        import ml_dtypes
        cp.asarray(np.zeros(8, dtype=ml_dtypes.bfloat16))
        out.append(np.dtype(ml_dtypes.bfloat16))
    except Exception:  # noqa: BLE001 - a CuPy without bfloat16
        pass
    return out


DTYPES = _dtypes()


@st.composite
def data(draw, shape, dtype):
    """Small-integer ties with signed zeros, or normal values with sprinkled exact zeros."""
    n = int(np.prod(shape))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        a = rng.integers(-3, 4, size=n).astype(np.float32)
        a[(a == 0) & (rng.random(n) < 0.5)] = -0.0
    else:
        a = rng.standard_normal(n).astype(np.float32) * np.float32(draw(st.sampled_from([1.0, 1e-3, 50.0])))
        a[rng.random(n) < 0.1] = 0.0
    return a.astype(dtype).reshape(shape)


def check(y, ref, scale):
    """|y - ref| <= RTOL * scale elementwise (scale = sum of |terms|; 0 where nothing is summed)."""
    assert y.shape == ref.shape and not np.isnan(y).any()
    bad = np.abs(y.astype(np.float64) - ref) > RTOL * scale
    assert not bad.any(), (np.argwhere(bad)[:3], y[bad][:3], ref[bad][:3])


@st.composite
def gemv_case(draw, sparse):
    dt = draw(st.sampled_from(DTYPES))
    out_f = draw(st.integers(1, 300) | st.sampled_from([16, 4096 + 8]))
    in_f = (32 if sparse else 8) * draw(st.integers(1, 64))
    batch = draw(st.integers(1, 16))
    return dt, draw(data((out_f, in_f), dt)), draw(data((batch, in_f), dt)), draw(st.booleans())


@EXAMPLES
@given(gemv_case(False))
def test_gemv_dense(case):
    dt, w, x, one_d = case
    if one_d:
        x = x[:1].reshape(-1)
    out = cp.full((1 if x.ndim == 1 else x.shape[0], w.shape[0]), np.nan, dtype=cp.float32)
    y = nmref_gpu.gemv(cp.asarray(x), cp.asarray(w), out=out).get()
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    check(y, x64 @ w64.T, np.abs(x64) @ np.abs(w64).T)


@EXAMPLES
@given(gemv_case(True))
def test_gemv_24_packed(case):
    dt, w, x, one_d = case
    if one_d:
        x = x[:1].reshape(-1)
    vals, meta = nmref.compress_24_packed(w)
    w64 = nmref.decompress_24_packed(vals, meta).astype(np.float64)
    out = cp.full((1 if x.ndim == 1 else x.shape[0], w.shape[0]), np.nan, dtype=cp.float32)
    y = nmref_gpu.gemv_24_packed(cp.asarray(x), cp.asarray(vals), cp.asarray(meta), out=out).get()
    x64 = x.astype(np.float64)
    check(y, x64 @ w64.T, np.abs(x64) @ np.abs(w64).T)


@st.composite
def teal_case(draw, batched, multiple=1):
    dt = draw(st.sampled_from(DTYPES))
    out_f = 8 * draw(st.integers(1, 80))
    in_f = multiple * draw(st.integers(1, 1100 // multiple))
    batch = draw(st.integers(1, 16)) if batched else 1
    w = draw(data((out_f, in_f), dt))
    x = draw(data((batch, in_f), dt))
    m = np.abs(x.astype(np.float64)).mean(axis=0)
    # a threshold at a batch mean (ties: strictly greater is kept), at ±0, below/above everything
    t = draw(st.sampled_from(sorted(set(m.tolist()))) | st.sampled_from([0.0, -0.0, -1.0, np.inf, 1e6])
             | st.floats(0, 3))
    return dt, w, x, float(t), draw(st.booleans()), draw(st.booleans())


#: the rule's choice, and both TEAL kernels (CUDA cores; tensor cores) in other configurations
TEAL_CONFIGS = [None, kernels.TealConfig(256, 4), kernels.TealConfig(512, 8), kernels.TealConfig(256, 2, mma=True),
                kernels.TealConfig(512, 1, mma=True)]


@EXAMPLES
@given(teal_case(batched=True), st.sampled_from(TEAL_CONFIGS))
def test_gemv_input_sparse_batched(case, variant):
    dt, w, x, t, accumulate, deterministic = case
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    kept = np.abs(x64).mean(axis=0) > t
    ref = nmref.gemv_input_sparse_batched(x64, w64, t)
    scale = np.abs(x64[:, kept]) @ np.abs(w64[:, kept]).T
    r0 = np.arange(ref.size, dtype=np.float32).reshape(ref.shape) % 7 - 3
    out = cp.asarray(r0) if accumulate else cp.full(ref.shape, np.nan, dtype=cp.float32)
    y = nmref_gpu.gemv_input_sparse_batched(cp.asarray(x), cp.asfortranarray(cp.asarray(w)), t, out=out,
                                            accumulate=accumulate, deterministic=deterministic, variant=variant).get()
    check(y, ref + (r0 if accumulate else 0), scale + (np.abs(r0) if accumulate else 0))  # + the residual's rounding
    if not kept.any() and not accumulate:  # every input dropped: nothing is summed, +0.0 everywhere
        assert not np.signbit(y).any() and not y.any()


@EXAMPLES
@given(teal_case(batched=False))
def test_gemv_input_sparse(case):
    dt, w, x, t, accumulate, deterministic = case
    x = x[0]
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    kept = np.abs(x64) > t
    ref = nmref.gemv_input_sparse(x64, w64, t)
    out = cp.full(ref.shape, np.nan, dtype=cp.float32)
    y = nmref_gpu.gemv_input_sparse(cp.asarray(x), cp.asfortranarray(cp.asarray(w)), t, out=out,
                                    deterministic=deterministic).get()
    check(y, ref, np.abs(w64[:, kept]) @ np.abs(x64[kept]))


@EXAMPLES
@given(teal_case(batched=False, multiple=4))
def test_gemv_input_sparse_24_packed_t(case):
    dt, w, x, t, accumulate, deterministic = case
    x = x[0]
    vt, mt = nmref.compress_24_packed_t(w)
    w64 = nmref.decompress_24_packed_t(vt, mt).astype(np.float64)
    x64 = x.astype(np.float64)
    kept = np.abs(x64) > t
    out = cp.full(w.shape[0], np.nan, dtype=cp.float32)
    y = nmref_gpu.gemv_input_sparse_24_packed_t(cp.asarray(x), cp.asarray(vt), cp.asarray(mt), t, out=out,
                                                deterministic=deterministic).get()
    check(y, nmref.gemv_input_sparse_24_packed_t(x64, vt, mt, t).astype(np.float64),
          np.abs(w64[:, kept]) @ np.abs(x64[kept]))


@EXAMPLES
@given(st.sampled_from(DTYPES), st.integers(1, 40), st.integers(1, 12), st.integers(0, 2**32 - 1), st.booleans())
def test_mask_compress(dt, rows, cols32, seed, ties):
    """nm_mask and compress_24_packed on the GPU are bit-identical to nmref (ties broken alike)."""
    rng = np.random.default_rng(seed)
    w = (rng.integers(-2, 3, (rows, 32 * cols32)) if ties else rng.standard_normal((rows, 32 * cols32))).astype(np.float32)
    w = w.astype(dt)
    wd = cp.asarray(w)
    np.testing.assert_array_equal(nmref_gpu.nm_mask(wd, 2, 4).get(), nmref.nm_mask(w, 2, 4))
    v, m = nmref_gpu.compress_24_packed(wd)
    rv, rm = nmref.compress_24_packed(w)
    np.testing.assert_array_equal(v.get().view(np.uint16), rv.view(np.uint16))
    np.testing.assert_array_equal(m.get(), rm)
