"""nmref_gpu's TEAL kernels under the scalar rule (docs/semantics.md): thresholds strictly between two
neighbours of the activation dtype equal the exact comparison, and NaN activations are kept.

The expectation is independent of nmref and of NumPy's promotion: the kept set is decided with
Python floats (exact), and the weights are positive small integers, so one flipped input changes an
output by at least its magnitude — far beyond float32 rounding of the sum."""
import importlib

import numpy as np
import pytest

from gpu_skip import require_gpu

cp = require_gpu()
import nmref  # noqa: E402
import nmref_gpu  # noqa: E402
from nmref.testing.strategies import neighbour  # noqa: E402

pytestmark = pytest.mark.gpu
kernels = importlib.import_module("nmref_gpu.kernels")


def _dtype(name):
    if name == "float16":
        return np.dtype(np.float16)
    import ml_dtypes
    try:
        cp.asarray(np.zeros(8, dtype=ml_dtypes.bfloat16))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"CuPy has no bfloat16 arrays here: {e}")
    return np.dtype(ml_dtypes.bfloat16)


def _thresholds_between(x: np.ndarray, count: int, rng) -> list:
    """Thresholds strictly between two neighbours of x's dtype, next to magnitudes of x."""
    out = []
    for a in rng.choice(np.abs(x.astype(np.float64)), count, replace=False):
        a = float(a)
        for lo, hi in ((neighbour(x.dtype, a, -1), a), (a, neighbour(x.dtype, a, 1))):
            for frac in (0.25, 0.5, 0.75):
                t = lo + (hi - lo) * frac
                assert float(np.array(t, dtype=x.dtype)) != t
                out.append(t)
    return out


def _keep(a, t):
    return np.array([not (abs(float(v)) <= t) for v in np.ravel(a)]).reshape(np.shape(a))


def _weights(rng, shape, dtype):
    return rng.integers(1, 4, size=shape).astype(np.float32).astype(dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("variant", [None, kernels.TealConfig(512), kernels.TealConfig(256, 2, mma=True)], ids=str)
def test_teal_dense_threshold_between_neighbours(dtype, variant):
    dt = _dtype(dtype)
    rng = np.random.default_rng(1)
    out_f, in_f = 264, 1040
    w = _weights(rng, (out_f, in_f), dt)
    wd = cp.asfortranarray(cp.asarray(w))
    x = rng.standard_normal(in_f).astype(np.float32).astype(dt)
    for t in _thresholds_between(x, 4, rng):
        keep = _keep(x, t)
        ref = w.astype(np.float64)[:, keep] @ x.astype(np.float64)[keep]
        y = nmref_gpu.gemv_input_sparse(cp.asarray(x), wd, t, variant=variant).get()
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(nmref.gemv_input_sparse(x, w, t), ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 2, 5, 16])
def test_teal_batched_threshold_between_neighbours(dtype, batch):
    """The shared mask compares the float64 batch mean with t; t between two neighbours of the dtype
    next to a batch of one's |x| (for batch > 1 the means are float64 values: t next to them)."""
    dt = _dtype(dtype)
    rng = np.random.default_rng(batch)
    out_f, in_f = 256, 520
    w = _weights(rng, (out_f, in_f), dt)
    wd = cp.asfortranarray(cp.asarray(w))
    x = rng.standard_normal((batch, in_f)).astype(np.float32).astype(dt)
    means = np.abs(x.astype(np.float64)).mean(axis=0)
    ts = _thresholds_between(x[0], 3, rng) if batch == 1 else \
        [float(m) + d for m in rng.choice(means, 4) for d in (0.0, -1e-12, 1e-12)]
    for t in ts:
        keep = np.array([not (float(m) <= t) for m in means])
        ref = x.astype(np.float64)[:, keep] @ w.astype(np.float64)[:, keep].T
        y = nmref_gpu.gemv_input_sparse_batched(cp.asarray(x), wd, t).get()
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_teal_24_threshold_between_neighbours(dtype):
    dt = _dtype(dtype)
    rng = np.random.default_rng(3)
    out_f, in_f = 264, 1040
    w = _weights(rng, (out_f, in_f), dt)
    vt, mt = nmref.compress_24_packed_t(w)
    w24 = nmref.decompress_24_packed_t(vt, mt).astype(np.float64)
    x = rng.standard_normal(in_f).astype(np.float32).astype(dt)
    for t in _thresholds_between(x, 4, rng):
        keep = _keep(x, t)
        ref = w24[:, keep] @ x.astype(np.float64)[keep]
        for cfg in (kernels.TealConfig(256, 4), kernels.TealConfig(256, 8)):
            y = nmref_gpu.gemv_input_sparse_24_packed_t(cp.asarray(x), cp.asarray(vt), cp.asarray(mt), t,
                                                        variant=cfg).get()
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("t", [0.5, 0.0, np.inf, -np.inf])
def test_teal_nan_activation_is_kept(dtype, t):
    """A NaN activation is kept (as nmref): on a dense weight every output is NaN; on a 2:4 weight the
    outputs whose row keeps a weight in the NaN's column."""
    dt = _dtype(dtype)
    rng = np.random.default_rng(4)
    w = _weights(rng, (256, 520), dt)
    wd = cp.asfortranarray(cp.asarray(w))
    x = rng.standard_normal(520).astype(np.float32)
    x[17] = np.nan
    x = x.astype(dt)
    assert np.isnan(nmref_gpu.gemv_input_sparse(cp.asarray(x), wd, t).get()).all()
    assert np.isnan(nmref.gemv_input_sparse(x, w, t)).all()
    xb = np.stack([x, np.ones_like(x)])  # the NaN column is kept for the batch; only token 0 holds a NaN
    yb = nmref_gpu.gemv_input_sparse_batched(cp.asarray(xb), wd, t).get()
    assert np.isnan(yb[0]).all() and np.isfinite(yb[1]).all()
    np.testing.assert_allclose(yb[1], nmref.gemv_input_sparse_batched(xb, w, t)[1], rtol=1e-5)
    vt, mt = nmref.compress_24_packed_t(w)
    y24 = nmref_gpu.gemv_input_sparse_24_packed_t(cp.asarray(x), cp.asarray(vt), cp.asarray(mt), t).get()
    stored = nmref.decompress_24_packed_t(np.ones(vt.shape, np.float32), mt) != 0
    assert 0 < stored[:, 17].sum() < stored.shape[0]
    np.testing.assert_array_equal(np.isnan(y24), stored[:, 17])  # only rows that keep a weight there
    np.testing.assert_array_equal(np.isnan(nmref.gemv_input_sparse_24_packed_t(x, vt, mt, t)), stored[:, 17])
