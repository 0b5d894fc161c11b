import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import nmref
from nmref import NMRefValueError


@given(hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(-100, 100, width=32)), st.floats(0, 1))
def test_exact_threshold_achieves_target(x, p):
    t = nmref.exact_threshold(x, p)
    dropped = int(np.sum(~(np.abs(x) > t)))
    d = round(p * x.size)
    assert abs(d - p * x.size) <= 0.5
    ties_at_t = int(np.sum(np.abs(x).astype(np.float64) == t))
    assert d <= dropped <= d + max(ties_at_t - 1, 0)  # only ties with the threshold drop extra
    if np.unique(np.abs(x)).size == x.size:  # no ties: exactly within rounding of the target
        assert dropped == d


@given(hnp.arrays(np.float64, 64, elements=st.floats(-10, 10)), st.floats(0, 1), st.floats(0, 1))
def test_thresholds_monotone_in_p(x, p1, p2):
    lo, hi = sorted((p1, p2))
    assert nmref.exact_threshold(x, lo) <= nmref.exact_threshold(x, hi)


@pytest.mark.parametrize("bits", [3, 7, 10])
@pytest.mark.parametrize("seed", range(3))
def test_histogram_within_stated_bound(bits, seed):
    rng = np.random.default_rng(seed)
    batches = [rng.standard_t(3, size=(rng.integers(10, 500), 64)).astype(np.float32) for _ in range(5)]
    batches[0][0, :5] = 0.0
    h = nmref.ThresholdHistogram(bits)
    for b in batches:
        h.update(b)
    allx = np.concatenate([b.ravel() for b in batches])
    assert h.total == allx.size
    for p in (0.0, 0.1, 0.25, 0.4, 0.5, 0.65, 0.9, 1.0):
        t, th = nmref.exact_threshold(allx, p), h.threshold(p)
        if t == float("-inf"):
            assert th == float("-inf")
            continue
        assert t <= th <= t * (1 + 2.0 ** -bits) + 2.0 ** (-149 + 23 - bits)


def test_sparsify_variants():
    x = np.array([[0.5, -2.0, 1.0, -0.1], [3.0, 0.2, -0.3, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(nmref.sparsify(x, 0.5), [[0, -2.0, 1.0, 0], [3.0, 0, 0, 1.0]])  # strict: 0.5 dropped
    # shared mask from the batch mean of |x|: means [1.75, 1.1, 0.65, 0.55]
    np.testing.assert_array_equal(nmref.sparsify_batched(x, 0.6), np.array([[0.5, -2.0, 1.0, 0], [3.0, 0.2, -0.3, 0]], np.float32))
    seq = np.tile(x[:1], (4, 1))
    out = nmref.sparsify_prefill(seq, 0.6)
    np.testing.assert_array_equal(out[:2], seq[:2])
    np.testing.assert_array_equal(out[2:], nmref.sparsify(seq[2:], 0.6))
    assert nmref.sparsify(x, float("-inf")).tolist() == x.tolist()


def orthogonal_block(d_in=(8, 8, 16), seed=0):
    """Parallel projections with orthogonal weights: the block error is the sum of the dropped
    inputs' energy of each projection, so it is monotone in every projection's sparsity."""
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    ws = {n: np.linalg.qr(rng.standard_normal((d, d)))[0] for n, d in zip(names, d_in)}
    x = rng.standard_normal((40, sum(d_in)))
    splits = np.cumsum(d_in)[:-1]

    def block(xx, sp):
        parts = np.split(xx, splits, axis=1)
        out = []
        for n, part in zip(names, parts):
            t = nmref.exact_threshold(part, sp[n])
            out.append(nmref.sparsify(part, t) @ ws[n].T)
        return np.concatenate(out, axis=1)

    return block, x, {n: d * d for n, d in zip(names, d_in)}


def test_greedy_path_monotone_total_and_error():
    block, x, params = orthogonal_block()
    path = nmref.greedy_block_allocation(block, x, params, step=0.05)
    totals = [st.total for st in path]
    errs = [st.error for st in path]
    assert totals[0] == 0 and errs[0] == 0
    assert all(b > a for a, b in zip(totals, totals[1:]))
    assert all(b >= a - 1e-12 for a, b in zip(errs, errs[1:]))
    assert totals[-1] == pytest.approx(1.0)
    s = nmref.sparsities_at(path, 0.5)
    mean = sum(params[k] * s[k] for k in s) / sum(params.values())
    assert 0.5 - 1e-9 <= mean < 0.5 + 0.05 / min(p / sum(params.values()) for p in params.values())


def test_greedy_steps_are_inverse_to_parameter_share():
    calls = []

    def block(xx, sp):
        calls.append(dict(sp))
        return xx * (1 - sp["small"]) + 10 * xx * (1 - sp["big"])  # error in 'big' costs 100x

    path = nmref.greedy_block_allocation(block, np.ones((2, 3)), {"small": 1, "big": 3}, step=0.05, max_total=0.2)
    first = path[1].sparsities
    assert first == {"small": pytest.approx(0.2), "big": 0.0}  # Δ = 0.05 / (1/4)
    assert path[1].total == pytest.approx(0.05)


def test_gemv_semantics_exact_in_float64():
    rng = np.random.default_rng(0)
    w = rng.integers(-8, 9, size=(24, 32)).astype(np.float64)
    x = rng.integers(-8, 9, size=(3, 32)).astype(np.float64)
    t = 3.0
    xm = x * (np.abs(x) > t)
    np.testing.assert_array_equal(nmref.gemv_input_sparse(x, w, t), xm @ w.T)  # integer sums: exact
    kept = np.abs(x[0]) > t
    np.testing.assert_array_equal(nmref.gemv_input_sparse(x[0], w, t), w[:, kept] @ x[0, kept])  # column skipping
    mask = nmref.nm_mask(w, 2, 4)
    np.testing.assert_array_equal(nmref.gemv_input_sparse_24(x, w, mask, t), xm @ np.where(mask, w, 0).T)
    vt, mt = nmref.compress_24_packed_t(w, mask=mask)
    np.testing.assert_array_equal(nmref.gemv_input_sparse_24_packed_t(x, vt, mt, t), xm @ np.where(mask, w, 0).T)
    s = rng.random(24) < 0.5
    np.testing.assert_array_equal(nmref.gemv_output_sparse(x, w, s), np.where(s, x @ w.T, 0))


def test_gemv_input_sparse_never_reads_dropped_columns():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 16))
    x = rng.standard_normal((2, 16))
    t = 0.5
    dropped = np.abs(x[0]) <= t
    col = int(np.argmax(dropped))
    assert dropped[col]
    w[:, col] = np.inf  # a non-finite weight where token 0's input is dropped
    x[1, col] = 2.0     # ... and token 1's is kept
    y = nmref.gemv_input_sparse(x, w, t)
    assert np.isfinite(y[0]).all() and np.isinf(y[1]).all()
    np.testing.assert_array_equal(y[0], w[:, ~dropped] @ x[0, ~dropped])
    np.testing.assert_array_equal(nmref.gemv_input_sparse(x[0], w, t), y[0])


def test_gemv_float16_accumulates_in_float32():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 4096)).astype(np.float16)
    x = rng.standard_normal(4096).astype(np.float16)
    y = nmref.gemv_input_sparse(x, w, 0.5)
    assert y.dtype == np.float32
    ref = nmref.sparsify(x, 0.5).astype(np.float64) @ w.astype(np.float64).T
    assert np.abs(y - ref).max() / np.abs(ref).max() < 1e-5


def test_activation_bad_inputs():
    x = np.ones((4, 8), np.float32)
    with pytest.raises(NMRefValueError, match=r"p \(target sparsity\) must lie in \[0, 1\]"):
        nmref.exact_threshold(x, 1.5)
    with pytest.raises(NMRefValueError, match="calibration activations\\) is empty"):
        nmref.exact_threshold(np.zeros(0, np.float32), 0.5)
    with pytest.raises(NMRefValueError, match="histogram is empty"):
        nmref.ThresholdHistogram().threshold(0.5)
    with pytest.raises(NMRefValueError, match="x contains NaN"):
        nmref.ThresholdHistogram().update(np.array([np.nan], np.float32))
    with pytest.raises(NMRefValueError, match="x must be \\[in\\] or \\[batch, in\\] with in = w.shape\\[1\\] = 8"):
        nmref.gemv_input_sparse(np.ones(7, np.float32), x, 0.1)
    with pytest.raises(NMRefValueError, match="s has shape"):
        nmref.gemv_output_sparse(np.ones(8, np.float32), x, np.ones(3, bool))
    with pytest.raises(NMRefValueError, match="param_counts is empty"):
        nmref.greedy_block_allocation(lambda a, b: a, x, {})
    with pytest.raises(NMRefValueError, match=r"step must lie in \(0, 1\]"):
        nmref.greedy_block_allocation(lambda a, b: a, x, {"q": 1}, step=0)


@given(st.integers(1, 6), st.integers(0, 9), st.integers(1, 5), st.integers(0, 2**32 - 1), st.booleans())
def test_gemv_input_sparse_batched_is_the_shared_mask_product(batch, inn, out, seed, at_a_mean):
    """One mask for the batch (sparsify_batched's, ties at the mean dropped), only kept columns read,
    and a batch of one is the per-token gemv_input_sparse."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (batch, inn)).astype(np.float64)
    w = rng.integers(-9, 10, (out, inn)).astype(np.float64)  # integer sums: exact in any order
    means = np.abs(x).mean(axis=0)
    t = float(means[0]) if at_a_mean and inn else 1.0
    y = nmref.gemv_input_sparse_batched(x, w, t)
    np.testing.assert_array_equal(y, nmref.sparsify_batched(x, t) @ w.T)
    keep = means > t
    w_inf = w.copy()
    w_inf[:, ~keep] = np.inf  # never read
    np.testing.assert_array_equal(nmref.gemv_input_sparse_batched(x, w_inf, t), y)
    np.testing.assert_array_equal(nmref.gemv_input_sparse_batched(x[0], w, t), nmref.gemv_input_sparse(x[0], w, t))
    assert nmref.gemv_input_sparse_batched(x[:0], w, t).shape == (0, out)


def test_per_token_masks_do_not_conform_to_the_batched_op():
    """The conformance kit tells the shared mask from per-token masks (a plausible mistake)."""
    import nmref.testing as nt
    with pytest.raises(nt.ConformanceError):
        nt.check_conforms("gemv_input_sparse_batched", nmref.gemv_input_sparse, examples=200)
