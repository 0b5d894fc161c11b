from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import nmref
from nmref.testing import strategies as hs
from nmref import NMRefTypeError, NMRefValueError
from helpers import central_fd


# ---------------------------------------------------------------- SLoRB
def slorb_case(seed, n_out=6, d=16, k=4, tokens=5):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_out, d))
    mask = nmref.nm_mask(w, 2, 4)
    x = rng.standard_normal((tokens, d))
    return w, mask, x, k


def test_slorb_projection_structure():
    X = nmref.slorb_projection(12, 4)
    assert X.shape == (3, 12)
    for i in range(3):
        for j in range(12):
            assert X[i, j] == (1.0 if i * 4 <= j <= (i + 1) * 4 - 1 else 0.0)


@given(hs.float_arrays((5, 32), np.float64, infinity=False, magnitude=1e3), st.sampled_from([4, 8, 16]))
def test_slorb_init_preserves_group_means(w, k):
    mask = nmref.nm_mask(w, 2, 4)
    s = nmref.slorb_init(w, mask, k)
    weff = nmref.slorb_effective_weight(w, mask, s, k)
    tol = 1e-14 * k * (1 + np.abs(w).max())  # means of k terms in float64, in two different orders
    np.testing.assert_allclose(weff.reshape(5, -1, k).mean(-1), w.reshape(5, -1, k).mean(-1), rtol=0, atol=tol)
    np.testing.assert_allclose(weff, np.where(mask, w, 0) + s @ nmref.slorb_projection(32, k, np.float64), atol=0)
    for i in range(5):  # S is the mean of the pruned weights of each group (kept ones count as zero)
        for j in range(32 // k):
            grp = slice(j * k, (j + 1) * k)
            assert np.isclose(s[i, j], sum(w[i, grp][~mask[i, grp]]) / k, rtol=1e-12, atol=tol)


@pytest.mark.parametrize("seed", range(3))
def test_slorb_forward_and_backward_against_finite_differences(seed):
    w, mask, x, k = slorb_case(seed)
    s = nmref.slorb_init(w, mask, k) + 0.1
    b = np.linspace(-1, 1, w.shape[0])
    rng = np.random.default_rng(seed + 100)
    gy = rng.standard_normal((x.shape[0], w.shape[0]))
    y = nmref.slorb_forward(x, w, mask, s, k, b)
    np.testing.assert_allclose(y, x @ nmref.slorb_effective_weight(w, mask, s, k).T + b, atol=1e-12)
    loss = lambda xx, ww, ss: float(np.sum(gy * nmref.slorb_forward(xx, ww, mask, ss, k, b)))
    gx, gw, gs = nmref.slorb_backward(x, w, mask, s, k, gy, ste=False)
    np.testing.assert_allclose(gx, central_fd(lambda v: loss(v, w, s), x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gw, central_fd(lambda v: loss(x, v, s), w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gs, central_fd(lambda v: loss(x, w, v), s), rtol=1e-6, atol=1e-7)
    # STE: the gradient w.r.t. the masked weight W⊙M, passed to every weight
    _, gw_ste, _ = nmref.slorb_backward(x, w, mask, s, k, gy, ste=True)
    np.testing.assert_allclose(gw_ste, gy.T @ x, atol=1e-12)


def test_slorb_overhead_and_errors():
    ov = nmref.slorb_parameter_overhead(4096, 4096, 16)
    assert ov["extra_params"] == 4096 * 256 and ov["vs_dense"] == Fraction(1, 16) and ov["vs_kept"] == Fraction(1, 8)
    w, mask, x, _ = slorb_case(0)
    with pytest.raises(NMRefValueError, match="not divisible by the SLoRB group size k = 5"):
        nmref.slorb_init(w, mask, 5)
    with pytest.raises(NMRefValueError, match="s has shape"):
        nmref.slorb_forward(x, w, mask, np.zeros((6, 3)), 4)
    with pytest.raises(NMRefValueError, match="x must have shape"):
        nmref.slorb_forward(x[:, :8], w, mask, np.zeros((6, 4)), 4)


# ---------------------------------------------------------------- distillation
def logits(seed, shape=(3, 4, 11), scale=3.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


@given(st.integers(0, 2**32 - 1), st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from(["forward", "reverse"]))
def test_kl_nonnegative_and_zero_iff_equal(seed, temp, kind):
    kl = nmref.kl_forward if kind == "forward" else nmref.kl_reverse
    zt, zs = logits(seed), logits(seed + 1)
    loss, _ = kl(zt, zs, temperature=temp)
    assert loss > 0
    same, grad = kl(zt, zt + 7.5, temperature=temp)  # a shift of the logits is the same distribution
    assert abs(same) < 1e-12 and np.abs(grad).max() < 1e-12


@pytest.mark.parametrize("fn", ["kl_forward", "kl_reverse", "cross_entropy", "distill_forward", "distill_reverse", "squarehead"])
def test_gradients_match_central_differences(fn):
    zt, zs = logits(1, (2, 3, 7)), logits(2, (2, 3, 7))
    targets = np.random.default_rng(3).integers(0, 7, size=(2, 3))
    f = {
        "kl_forward": lambda s: nmref.kl_forward(zt, s, temperature=2.0),
        "kl_reverse": lambda s: nmref.kl_reverse(zt, s, temperature=2.0),
        "cross_entropy": lambda s: nmref.cross_entropy(s, targets),
        "distill_forward": lambda s: nmref.distill_loss(s, zt, targets, alpha=0.67, temperature=2.0),
        "distill_reverse": lambda s: nmref.distill_loss(s, zt, targets, alpha=0.3, kind="reverse"),
        "squarehead": lambda s: nmref.squarehead_loss(s, zt),
    }[fn]
    _, grad = f(zs)
    np.testing.assert_allclose(grad, central_fd(lambda s: f(s)[0], zs), rtol=1e-6, atol=1e-9)


def test_large_logits_and_vocabulary_are_stable():
    rng = np.random.default_rng(0)
    zt = rng.standard_normal((2, 50_000)) * 1e4
    zs = zt + rng.standard_normal((2, 50_000)) * 10
    loss, grad = nmref.kl_forward(zt, zs, temperature=2.0)
    assert np.isfinite(loss) and np.isfinite(grad).all() and loss >= 0
    # float32 logits agree with float64
    l32, g32 = nmref.kl_forward(zt.astype(np.float32), zs.astype(np.float32), temperature=2.0)
    assert g32.dtype == np.float32 and abs(l32 - loss) <= 1e-3 * max(1.0, loss)
    ce, _ = nmref.cross_entropy(np.array([[1e30, 0.0, -1e30]]), np.array([1]))
    assert ce == pytest.approx(1e30)


def test_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    zt, zs = logits(5, (4, 9)), logits(6, (4, 9))
    targets = np.arange(4) % 9
    ts, tt = torch.tensor(zs, requires_grad=True), torch.tensor(zt)
    ref = F.kl_div(F.log_softmax(ts / 2, -1), F.log_softmax(tt / 2, -1), log_target=True, reduction="batchmean") * 4
    ref.backward()
    loss, grad = nmref.kl_forward(zt, zs, temperature=2.0)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, ts.grad.numpy(), rtol=1e-10, atol=1e-15)
    ts.grad = None
    ce = F.cross_entropy(ts, torch.tensor(targets))
    ce.backward()
    l2, g2 = nmref.cross_entropy(zs, targets)
    assert l2 == pytest.approx(ce.item(), rel=1e-12)
    np.testing.assert_allclose(g2, ts.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_distill_bad_inputs():
    z = logits(0)
    bad = z.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(NMRefValueError, match="student_logits contains NaN or Inf"):
        nmref.kl_forward(z, bad)
    with pytest.raises(NMRefValueError, match="student_logits has shape"):
        nmref.kl_forward(z, z[:1])
    with pytest.raises(NMRefValueError, match="temperature must be > 0"):
        nmref.kl_forward(z, z, temperature=0.0)
    with pytest.raises(NMRefValueError, match="alpha must be <= 1"):
        nmref.distill_loss(z, z, np.zeros((3, 4), int), alpha=1.5)
    with pytest.raises(NMRefValueError, match=r"targets must lie in \[0, V=11\)"):
        nmref.cross_entropy(z, np.full((3, 4), 11))
    with pytest.raises(NMRefTypeError, match="targets must be integer"):
        nmref.cross_entropy(z, np.zeros((3, 4)))
    with pytest.raises(NMRefValueError, match="teacher_features are all zero"):
        nmref.squarehead_loss(z, np.zeros_like(z))
    with pytest.raises(NMRefValueError, match="no tokens"):
        nmref.kl_forward(np.zeros((0, 5)), np.zeros((0, 5)))


# ---------------------------------------------------------------- weight scaling
@given(hs.float_arrays((4, 16), np.float64, infinity=False, magnitude=1e3))
def test_soft_threshold_properties(w):
    s = nmref.soft_threshold_nm(w, 2, 4)
    assert nmref.is_nm_sparse(s, 2, 4)
    assert (np.sign(s)[s != 0] == np.sign(w)[s != 0]).all() and (np.abs(s) <= np.abs(w)).all()
    g = np.sort(np.abs(w).reshape(-1, 4), axis=1)[:, ::-1]
    np.testing.assert_allclose(np.sort(np.abs(s).reshape(-1, 4), axis=1)[:, ::-1][:, :2], g[:, :2] - g[:, 2:3])
    eps = 1e-9  # continuity: a tiny change of w moves S(w) by at most as much
    # |ΔS_i| ≤ |Δw_i| + |Δτ| = 2ε, plus the rounding of w + ε near the group's largest magnitude
    assert np.abs(nmref.soft_threshold_nm(w + eps, 2, 4) - s).max() <= 2 * eps + 8 * np.spacing(1 + np.abs(w).max())


@given(hs.float_arrays((4, 16), np.float64, infinity=False, magnitude=1e3))
def test_weight_scale_is_least_squares(w):
    s = nmref.soft_threshold_nm(w, 2, 4)
    assume((s != 0).any(axis=1).all())  # ties at τ can leave a row (or all of S) zero: no scale exists there
    beta = nmref.weight_scale(w, s)
    assert beta >= 1.0
    tol = 1e-12 * float(np.sum(np.abs(w * s)) + np.sum(s * s) * beta)  # the normal equation, to rounding
    assert abs(np.sum((w - beta * s) * s)) <= tol  # normal equation of min_β ‖W − βS‖²
    rows = nmref.weight_scale(w, s, axis=-1)
    assert rows.shape == (4,) and np.allclose(np.sum((w - rows[:, None] * s) * s, axis=1), 0, atol=tol)
    if np.where(nmref.nm_mask(w, 2, 4), w, 0).any():
        assert nmref.weight_scale(w, np.where(nmref.nm_mask(w, 2, 4), w, 0)) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(NMRefValueError, match="all zero"):
        nmref.weight_scale(w, np.zeros_like(w))
