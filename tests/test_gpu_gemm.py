"""nmref_gpu's 2:4 sparse GEMM (gemm_24, linear_24, the GPU compressor) against nmref; skipped without a GPU.

Every result is compared with the float64 product of the decompressed weight on fresh random inputs,
into outputs poisoned with NaN first, over shapes with ragged M, N and K, ties and all-zero groups."""
import os

import numpy as np
import pytest

import nmref
from gpu_skip import require_gpu
from helpers import np_dtype

cp = require_gpu()
import nmref_gpu  # noqa: E402
from nmref_gpu import gemm as G, kernels  # noqa: E402

if os.environ.get("NMREF_GPU_NO_POOL"):
    cp.cuda.set_allocator(None)

pytestmark = pytest.mark.gpu
HALF = ["float16", "bfloat16"]


def weight(rng, n, k, dtype, kind="normal"):
    if kind == "ties":  # small integers with repeats, zeros of both signs, all-zero and 1-nonzero groups
        w = rng.integers(-2, 3, size=(n, k)).astype(np.float32)
        w[rng.random((n, k)) < 0.1] = -0.0
        w[:, :min(k, 8)] = 0.0
        if k >= 12:
            w[::3, 8:12] = [0, 0, 5, 0]
    else:
        w = rng.standard_normal((n, k)).astype(np.float32)
    return w.astype(np_dtype(dtype))


def check(y, x, w_masked, out_dtype, dtype):
    """|y - ref| <= tol · Σ|x||w| per element (float32 accumulation; a half output adds one rounding)."""
    ref = x.astype(np.float64) @ w_masked.astype(np.float64).T
    scale = np.abs(x.astype(np.float64)) @ np.abs(w_masked.astype(np.float64)).T
    y = cp.asnumpy(y).astype(np.float64)
    tol = 2e-6 * scale + 1e-30
    if out_dtype != "float32":
        tol = tol + (2 ** -8 if dtype == "bfloat16" else 2 ** -11) * np.abs(ref)
    bad = ~(np.abs(y - ref) <= tol)
    assert not bad.any(), f"{bad.sum()} of {bad.size} differ; first at {np.argwhere(bad)[0]}: got {y[bad][0]}, want {ref[bad][0]}"


@pytest.mark.parametrize("dtype", HALF + ["float32"])
@pytest.mark.parametrize("shape", [(64, 128), (70, 136), (1, 4), (300, 4096), (129, 1000)])
@pytest.mark.parametrize("explicit_mask", [False, True])
def test_compress_24_gemm_bit_identical(dtype, shape, explicit_mask):
    rng = np.random.default_rng(shape)
    w = weight(rng, *shape, dtype, kind="ties")
    mask = nmref.nm_mask(rng.standard_normal(shape), 2, 4) if explicit_mask else None
    v, m = nmref_gpu.compress_24_gemm(cp.asarray(w), mask=None if mask is None else cp.asarray(mask))
    v_ref, m_ref = nmref.compress_24_gemm(w, mask=mask)
    assert v.dtype == v_ref.dtype and m.dtype == np.uint32
    np.testing.assert_array_equal(cp.asnumpy(v).view(np.uint8), v_ref.view(np.uint8))
    np.testing.assert_array_equal(cp.asnumpy(m), m_ref)


def test_compress_24_gemm_rejects_bad_masks():
    w = cp.ones((4, 8), cp.float16)
    with pytest.raises(nmref.NMRefValueError, match="row 0, group 0 keeps 3"):
        nmref_gpu.compress_24_gemm(w, mask=cp.asarray(np.array([[1, 1, 1, 0, 1, 1, 0, 0]] * 4, bool)))
    with pytest.raises(nmref.NMRefValueError, match="cols % 4"):
        nmref_gpu.compress_24_gemm(cp.ones((4, 6), cp.float16))


SHAPES = [  # (N, K, M): tile-exact, ragged N, ragged K (K % 128, K % 16), ragged and tiny M, split-K
    (128, 256, 16), (64, 128, 1), (200, 384, 33), (70, 136, 5), (256, 1000, 65), (4096, 4096, 16),
    (1000, 2048, 300), (256, 512, 129), (384, 1024, 1000),
]


def configs():
    out = ["rule", "mma"]
    if G.has_wgmma():
        out += [c.with_splits(s) for c in kernels.GEMM_CONFIGS for s in (1, 3)]
    return out


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("nkm", SHAPES)
def test_gemm_24_equals_reference_every_config(dtype, nkm):
    n, k, m = nkm
    rng = np.random.default_rng([n, k, m])
    w = weight(rng, n, k, dtype, kind="ties" if n % 2 else "normal")
    x = rng.standard_normal((m, k)).astype(np_dtype(dtype))
    values, meta = nmref.compress_24_gemm(w)
    wm = nmref.decompress_24_gemm(values, meta)
    xd, vd, md = cp.asarray(x), cp.asarray(values), cp.asarray(meta)
    for cfg in configs():
        for out_dtype in ("float32", dtype):
            out = cp.full((m, n), np.nan, dtype=np_dtype(out_dtype))
            y = nmref_gpu.gemm_24(xd, vd, md, out=out, out_dtype=out_dtype, variant=None if cfg == "rule" else cfg)
            assert y is out
            check(y, x, wm, out_dtype, dtype)


@pytest.mark.parametrize("dtype", HALF)
def test_gemm_24_deterministic_and_vector_input(dtype):
    rng = np.random.default_rng(7)
    n, k, m = 4096, 4096, 16
    assert kernels.gemm_config(m, n, k).splits > 1  # so the repeated results cover the split-K reduction
    values, meta = (cp.asarray(a) for a in nmref.compress_24_gemm(weight(rng, n, k, dtype)))
    x = cp.asarray(rng.standard_normal((m, k)).astype(np_dtype(dtype)))
    y1 = nmref_gpu.gemm_24(x, values, meta)
    for _ in range(3):
        assert bool((nmref_gpu.gemm_24(x, values, meta) == y1).all())
    y0 = nmref_gpu.gemm_24(x[3], values, meta)
    assert y0.shape == (n,)
    np.testing.assert_allclose(cp.asnumpy(y0), cp.asnumpy(y1[3]), rtol=1e-6, atol=1e-4)
    assert nmref_gpu.gemm_24(x[:0], values, meta).shape == (0, n)


def test_gemm_24_non_finite_inputs_follow_the_reference():
    rng = np.random.default_rng(3)
    n, k, m = 128, 256, 16
    w = rng.standard_normal((n, k)).astype(np.float16)
    values, meta = nmref.compress_24_gemm(w)
    x = rng.standard_normal((m, k)).astype(np.float16)
    x[2, 5], x[4, 100] = np.inf, np.nan
    want = nmref.gemm_24(x, values, meta)
    for cfg in configs():
        got = cp.asnumpy(nmref_gpu.gemm_24(cp.asarray(x), cp.asarray(values), cp.asarray(meta),
                                           variant=None if cfg == "rule" else cfg))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-3, atol=1e-2)


def test_gemm_24_errors():
    values, meta = nmref_gpu.compress_24_gemm(cp.ones((64, 128), cp.float16))
    with pytest.raises(nmref.NMRefTypeError, match="dtype"):
        nmref_gpu.gemm_24(cp.ones((2, 128), cp.float32), values, meta)
    with pytest.raises(nmref.NMRefValueError, match="x must be"):
        nmref_gpu.gemm_24(cp.ones((2, 64), cp.float16), values, meta)
    with pytest.raises(nmref.NMRefValueError, match="meta has shape"):
        nmref_gpu.gemm_24(cp.ones((2, 128), cp.float16), values, cp.ascontiguousarray(meta[:, :-4]))
    with pytest.raises(nmref.NMRefValueError, match="out must be"):
        nmref_gpu.gemm_24(cp.ones((2, 128), cp.float16), values, meta, out=cp.empty((2, 32), cp.float32))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("m", [1, 8, 9, 16, 256])
def test_linear_24_and_input_gradient_on_a_transposable_mask(dtype, m):
    rng = np.random.default_rng(m)
    n, k = 256, 512
    w = rng.standard_normal((n, k)).astype(np_dtype(dtype))
    mask = nmref.transposable_nm_mask(w)
    wm = np.where(mask, w, np.zeros((), w.dtype))
    weight24 = nmref_gpu.Sparse24Weight.from_dense(cp.asarray(w), mask=cp.asarray(mask), transposable=True)
    x = rng.standard_normal((m, k)).astype(np_dtype(dtype))
    check(nmref_gpu.linear_24(cp.asarray(x), weight24), x, wm, "float32", dtype)
    dy = rng.standard_normal((m, n)).astype(np_dtype(dtype))
    check(nmref_gpu.linear_24_input_grad(cp.asarray(dy), weight24), dy, wm.T, "float32", dtype)
    # the transposed compression is nmref's compression of (W⊙M)ᵀ under Mᵀ
    vt, mt = nmref.compress_24_gemm(np.ascontiguousarray(wm.T), mask=np.ascontiguousarray(mask.T))
    np.testing.assert_array_equal(cp.asnumpy(weight24.values_t).view(np.uint8), vt.view(np.uint8))
    np.testing.assert_array_equal(cp.asnumpy(weight24.meta_t), mt)


def test_linear_24_batched_leading_dims_and_errors():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((128, 256)).astype(np.float16)
    weight24 = nmref_gpu.Sparse24Weight.from_dense(cp.asarray(w))
    x = rng.standard_normal((2, 3, 256)).astype(np.float16)
    wm = np.where(nmref.nm_mask(w, 2, 4), w, np.float16(0))
    y = nmref_gpu.linear_24(cp.asarray(x), weight24)
    assert y.shape == (2, 3, 128)
    check(y.reshape(6, 128), x.reshape(6, 256), wm, "float32", "float16")
    with pytest.raises(nmref.NMRefValueError, match="transposable=True"):
        nmref_gpu.linear_24_input_grad(cp.ones((2, 128), cp.float16), weight24)
    with pytest.raises(nmref.NMRefValueError, match="explicit mask"):
        nmref_gpu.Sparse24Weight.from_dense(cp.asarray(w), transposable=True)
