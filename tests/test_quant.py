"""Per-group symmetric quantization of kept values: brute force, bounds, round trips, errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import nmref
from nmref import NMRefTypeError, NMRefValueError


def _brute(v, bits, group):
    """An independent loop: each group's float64 max, the float32 scale, round half to even."""
    qmax = 2 ** (bits - 1) - 1
    v = v.astype(np.float64)
    q = np.zeros(v.shape, np.int8)
    s = np.zeros(v.shape[:-1] + (-(-v.shape[-1] // group),), np.float32)
    for idx in np.ndindex(v.shape[:-1]):
        for g, a in enumerate(range(0, v.shape[-1], group)):
            blk = v[idx][a:a + group]
            sc = np.float32(np.abs(blk).max() / qmax)
            s[idx][g] = sc
            for j, x in enumerate(blk):
                q[idx][a + j] = 0 if sc == 0 else int(np.clip(np.rint(x / np.float64(sc)), -qmax, qmax))
    return q, s


@given(st.integers(0, 2**32 - 1), st.integers(2, 8), st.integers(1, 40), st.sampled_from([(3,), (2, 5), (1, 77)]),
       st.booleans())
def test_matches_brute_force_and_bounds(seed, bits, group, lead, ties):
    rng = np.random.default_rng(seed)
    shape = lead[:-1] + (lead[-1] * 3,)
    v = (rng.integers(-4, 5, shape) * 0.5 if ties else rng.standard_normal(shape)).astype(np.float32)
    q, s = nmref.quantize_groups(v, bits, group)
    bq, bs = _brute(v, bits, group)
    np.testing.assert_array_equal(q, bq)
    np.testing.assert_array_equal(s, bs)
    qmax = 2 ** (bits - 1) - 1
    assert np.abs(q).max(initial=0) <= qmax
    vh = nmref.dequantize_groups(q, s, group)
    srep = np.repeat(s, group, axis=-1)[..., :v.shape[-1]].astype(np.float64)
    assert np.all(np.abs(vh.astype(np.float64) - v) <= srep / 2 * (1 + 1e-6) + 1e-30)  # round to nearest
    assert np.all(vh[v == 0] == 0)
    # re-quantizing the dequantized values gives the same codes and scales back
    q2, s2 = nmref.quantize_groups(vh, bits, group)
    np.testing.assert_array_equal(q2, q)
    np.testing.assert_array_equal(s2, s)


def test_edges_and_errors():
    q, s = nmref.quantize_groups(np.zeros((2, 5), np.float32), 4, 4)
    assert not q.any() and not s.any() and s.shape == (2, 2)
    q, s = nmref.quantize_groups(np.array([-3.0, 1.5, 0.5, -2.5]), 3, 128)  # one short group, scale 3/3 = 1
    assert s.tolist() == [1.0] and q.tolist() == [-3, 2, 0, -2]  # 1.5 → 2, 0.5 → 0, −2.5 → −2: half to even
    assert nmref.quantize_groups(np.zeros((3, 0)), 4, 8)[1].shape == (3, 0)
    with pytest.raises(NMRefValueError, match="NaN"):
        nmref.quantize_groups(np.array([1.0, np.nan]))
    with pytest.raises(NMRefValueError, match="does not fit float32"):
        nmref.quantize_groups(np.array([1e300]))
    with pytest.raises(NMRefValueError, match="bits"):
        nmref.quantize_groups(np.ones(4), bits=9)
    with pytest.raises(NMRefTypeError, match="int8"):
        nmref.dequantize_groups(np.ones(4, np.int32), np.ones(1, np.float32))
    with pytest.raises(NMRefValueError, match="scales has shape"):
        nmref.dequantize_groups(np.ones(4, np.int8), np.ones(2, np.float32), 4)
