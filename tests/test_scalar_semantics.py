"""The scalar rule (docs/semantics.md): a threshold is compared with an array as a real number, never
after rounding to the array's dtype; NaN activations propagate; TEAL's prefill slicing.

Every expectation is computed independently of NumPy's promotion: element by element with Python
floats (a comparison of two Python floats is exact, and every float16/bfloat16/float32 value is exactly
a Python float)."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

import nmref
from nmref.activation import prefill_start
from nmref.testing import strategies as hs

HALF_AND_SINGLE = ("float16", "bfloat16", "float32")


def _exact_keep(x: np.ndarray, t: float) -> np.ndarray:
    """``¬(|x| ≤ t)`` per element with Python floats (NaN kept)."""
    flat = [not (abs(float(v)) <= t) for v in x.ravel()]
    return np.array(flat, dtype=bool).reshape(x.shape)


@st.composite
def _between(draw, dtype, shape=st.integers(1, 24), magnitude=None):
    """An array of ``dtype`` and a threshold strictly between two neighbours of that dtype, next to one
    of the array's magnitudes (so rounding the threshold to the dtype would flip that element)."""
    dt = hs.dtype_of(dtype)
    x = draw(hs.float_arrays((draw(shape),), dt, infinity=False, magnitude=magnitude))
    a = float(np.abs(x.astype(np.float64)).ravel()[draw(st.integers(0, x.size - 1))])
    up = hs.neighbour(dt, a, 1)
    lo, hi = (hs.neighbour(dt, a, -1), a) if a > 0 and draw(st.booleans()) else (a, up)
    if not np.isfinite(hi):
        lo, hi = hs.neighbour(dt, a, -1), a
    t = lo + (hi - lo) * draw(st.sampled_from([0.5, 0.25, 0.75]))
    assert lo < t < hi and float(np.array(t, dtype=dt)) != t  # strictly between: not representable
    return x, t


@pytest.mark.parametrize("dtype", HALF_AND_SINGLE)
@given(data=st.data())
def test_sparsify_is_the_exact_comparison(dtype, data):
    x, t = data.draw(_between(dtype))
    got = nmref.sparsify(x, t)
    keep = _exact_keep(x, t)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got.view(np.uint8).reshape(x.shape + (-1,))[keep],
                                  x.view(np.uint8).reshape(x.shape + (-1,))[keep])  # kept: same bits
    assert (got[~keep].astype(np.float64) == 0).all() and not np.signbit(got[~keep].astype(np.float64)).any()


def test_the_reported_case():
    """The issue's examples: 0.607421875 > 0.6074 is kept in float16; in bfloat16, t halfway between
    0.60546875 and 0.609375 keeps 0.609375 (rounding t to nearest-even gives 0.609375 and drops it)."""
    assert nmref.sparsify(np.float16([0.6074]), 0.6074)[0] == np.float16(0.6074)
    bf = ml_dtypes.bfloat16
    t = (0.60546875 + 0.609375) / 2
    x = np.array([0.60546875, 0.609375], dtype=bf)
    assert nmref.sparsify(x, t).astype(np.float64).tolist() == [0.0, 0.609375]


@pytest.mark.parametrize("dtype", HALF_AND_SINGLE)
@given(data=st.data())
def test_every_threshold_op_is_exact(dtype, data):
    """sparsify_batched (batch mean of |x| in float64), sparsify_prefill and the four TEAL GEMVs."""
    dt = hs.dtype_of(dtype)
    x, t = data.draw(_between(dtype, shape=st.sampled_from([4, 8, 12]), magnitude=1e3))
    k = x.size
    w = data.draw(hs.float_arrays((8, k), dt, infinity=False, magnitude=4.0))
    keep = _exact_keep(x, t)
    # GEMV: only the kept columns, summed in float64 here (products of two halves are exact in float64)
    want = (w.astype(np.float64)[:, keep] @ x.astype(np.float64)[keep])
    for got in (nmref.gemv_input_sparse(x, w, t), nmref.gemv_input_sparse_batched(x, w, t)):
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-5, atol=1e-5 * np.abs(w).max(initial=1))
    mask = nmref.nm_mask(w, 2, 4)
    w24 = np.where(mask, w, np.zeros((), dt))
    want24 = w24.astype(np.float64)[:, keep] @ x.astype(np.float64)[keep]
    vt, mt = nmref.compress_24_packed_t(w24)
    for got in (nmref.gemv_input_sparse_24(x, w, mask, t), nmref.gemv_input_sparse_24_packed_t(x, vt, mt, t)):
        np.testing.assert_allclose(got.astype(np.float64), want24, rtol=1e-5, atol=1e-5 * np.abs(w).max(initial=1))
    # batched with one row: the mean is |x| itself
    np.testing.assert_array_equal(nmref.sparsify_batched(x[None, :], t)[0] != 0, keep & (x != 0))
    seq = x.reshape(k // 4, 4)
    out = nmref.sparsify_prefill(seq, t, start=0)
    np.testing.assert_array_equal(out != 0, keep.reshape(seq.shape) & (seq != 0))


@pytest.mark.parametrize("dtype", HALF_AND_SINGLE)
@given(data=st.data())
def test_batched_mean_threshold_is_exact(dtype, data):
    """The shared mask compares the float64 batch mean with t exactly, t next to a mean."""
    dt = hs.dtype_of(dtype)
    x = data.draw(hs.float_arrays((data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))), dt, infinity=False,
                                  magnitude=100.0))
    means = np.abs(x.astype(np.float64)).mean(axis=0)
    t = data.draw(hs.scalars(dt, anchors=means))
    got = nmref.sparsify_batched(x, t)
    keep = np.array([not (float(m) <= t) for m in means])
    np.testing.assert_array_equal(got, np.where(keep[None, :], x, np.zeros((), dt)))


# ------------------------------------------------------------------ NaN activations
NAN_X = np.array([1.0, np.nan, -2.0, 0.25], dtype=np.float32)


@pytest.mark.parametrize("dtype", HALF_AND_SINGLE + ("float64",))
@pytest.mark.parametrize("t", [0.5, np.inf, -np.inf, 0.0])
def test_nan_is_kept_by_every_teal_op(dtype, t):
    """A NaN activation is never dropped: it stays NaN in every sparsify variant (dropped finite entries
    are +0.0), and makes every output of its token NaN in every TEAL GEMV."""
    dt = hs.dtype_of(dtype)
    x = NAN_X.astype(dt)
    out = nmref.sparsify(x, t)
    assert np.isnan(out[1].astype(np.float64))
    want = [v if (abs(v) > t) else 0.0 for v in (1.0, -2.0, 0.25)]
    assert out[[0, 2, 3]].astype(np.float64).tolist() == want
    xb = np.stack([x, np.ones_like(x)])  # the NaN column has a NaN mean: kept, its other entries too
    ob = nmref.sparsify_batched(xb, t)
    assert np.isnan(ob[0, 1].astype(np.float64)) and ob[1, 1] == 1
    op = nmref.sparsify_prefill(np.stack([x, x]), t)  # S = 2: the last position is sparsified
    assert np.isnan(op[1, 1].astype(np.float64)) and np.isnan(op[0, 1].astype(np.float64))
    w = (np.arange(32, dtype=np.float32).reshape(8, 4) % 5 + 1).astype(dt)
    for y in (nmref.gemv_input_sparse(x, w, t), nmref.gemv_input_sparse_batched(x, w, t)):
        assert np.isnan(y).all()  # a dense weight: the NaN meets every row
    # a 2:4 weight: the NaN reaches the rows that keep a weight in its column (pruned weights are absent)
    mask = nmref.nm_mask(w, 2, 4)
    assert 0 < mask[:, 1].sum() < 8
    np.testing.assert_array_equal(np.isnan(nmref.gemv_input_sparse_24(x, w, mask, t)), mask[:, 1])
    if dtype != "float64":
        vt, mt = nmref.compress_24_packed_t(nmref.masked_weight(w, mask))
        np.testing.assert_array_equal(np.isnan(nmref.gemv_input_sparse_24_packed_t(x, vt, mt, t)), mask[:, 1])


def test_nan_in_a_dropped_row_of_another_token_stays_there():
    """Per-token masks: token 0's NaN does not reach token 1's outputs."""
    x = np.array([[np.nan, 0.1], [0.1, 3.0]], np.float32)
    y = nmref.gemv_input_sparse(x, np.ones((2, 2), np.float32), 0.5)
    assert np.isnan(y[0]).all() and y[1].tolist() == [3.0, 3.0]


# ------------------------------------------------------------------ TEAL's prefill slicing
def _teal_prefill(x: np.ndarray, t: float) -> np.ndarray:
    """TEAL's ``SparsifyFn.forward`` for ``x[batch, S, d]`` (FasterDecoding/TEAL, utils/utils.py at
    66507ba9ed04548578dd87739e12670dfa104d11), in NumPy: for S > 1 the last ``S // 2`` positions
    (``x[:, -(S // 2):]``) are sparsified and concatenated after the rest; S = 1 is decoding and is
    sparsified whole. Its threshold comparison is replaced by the exact one (the scalar rule)."""
    s = x.shape[1]
    apply = lambda v: np.where(_exact_keep(v, t), v, np.zeros((), v.dtype))  # noqa: E731
    if s > 1:
        half = s // 2
        return np.concatenate([x[:, :-half, :], apply(x[:, -half:, :])], axis=1)
    return apply(x)


@pytest.mark.parametrize("seq", [1, 2, 3, 4, 5, 7, 8, 9])
def test_prefill_default_is_teal_slicing(seq):
    rng = np.random.default_rng(seq)
    x = rng.standard_normal((2, seq, 6)).astype(np.float32)
    got = nmref.sparsify_prefill(x, 0.5)
    np.testing.assert_array_equal(got, _teal_prefill(x, 0.5))
    dense = seq - prefill_start(seq)
    assert dense == (seq // 2 if seq > 1 else 1)  # positions sparsified


def test_prefill_odd_length_keeps_the_middle_dense():
    x = np.full((5, 2), 0.1, np.float32)
    out = nmref.sparsify_prefill(x, 0.5)
    assert (out[:3] == 0.1).all() and (out[3:] == 0).all()  # 2 of 5 sparsified, as TEAL


# ------------------------------------------------------------------ other scalar operands
def test_pad_value_must_be_representable():
    w = np.ones((1, 3), np.float32)
    assert nmref.pad_to_multiple(w, 4, value=-np.inf)[0, 3] == -np.inf
    assert nmref.pad_to_multiple(w, 4, value=np.float32(0.1))[0, 3] == np.float32(0.1)
    with pytest.raises(nmref.NMRefValueError, match="value 0.1 is not exactly representable in w's dtype float32"):
        nmref.pad_to_multiple(w, 4, value=0.1)
    with pytest.raises(nmref.NMRefValueError, match="int32"):
        nmref.pad_to_multiple(np.ones(3, np.int32), 4, value=0.5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_distillation_of_half_logits_is_float32_arithmetic(dtype):
    """Half-precision logits are widened to float32 and T enters as a float32: the result equals the
    float32 computation on the widened logits, rounded once (whatever NumPy/ml_dtypes promote)."""
    dt = hs.dtype_of(dtype)
    rng = np.random.default_rng(0)
    zs, zt = (rng.standard_normal((3, 7)) * 3).astype(dt), (rng.standard_normal((3, 7)) * 3).astype(dt)
    T = 0.7  # not representable in either dtype
    loss, grad = nmref.kl_forward(zt, zs, temperature=T)
    loss32, grad32 = nmref.kl_forward(zt.astype(np.float32), zs.astype(np.float32), temperature=T)
    assert loss == loss32 and grad.dtype == dt
    np.testing.assert_array_equal(grad, grad32.astype(dt))
    np.testing.assert_array_equal(nmref.log_softmax(zs, T), nmref.log_softmax(zs.astype(np.float32), T).astype(dt))
    targets = np.array([0, 3, 6])
    l1, g1 = nmref.distill_loss(zs, zt, targets, alpha=0.67, temperature=T)
    l2, g2 = nmref.distill_loss(zs.astype(np.float32), zt.astype(np.float32), targets, alpha=0.67, temperature=T)
    assert l1 == l2
    np.testing.assert_array_equal(g1, g2.astype(dt))


def test_sr_ste_lambda_is_rounded_to_the_weight_dtype():
    """The documented arithmetic rule of sr_ste_grad: λ rounded to w's dtype, product and sum there."""
    bf = ml_dtypes.bfloat16
    w = np.array([3.0, 5.0], bf)
    g = np.array([0.0, 0.0], bf)
    lam = 0.3  # bfloat16(0.3) = 0.30078125
    got = nmref.sr_ste_grad(g, w, np.array([False, True]), lam)
    assert got[0] == bf(bf(0.30078125) * bf(3.0)) and got[1] == 0
