
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nmref
from nmref import AdamHyper, AdamState, NMRefTypeError, NMRefValueError, init_adam_state
from nmref.testing import strategies as hs
from helpers import bits_equal

VARIANTS = ["decay_on_weights", "decay_in_grad", "ast"]


def run(step_fn, p, grads, hyper, **kw):
    st_ = init_adam_state(p)
    out = [p]
    for g in grads:
        p, st_ = step_fn(p, g, st_, hyper, **kw)
        out.append(p)
    return out, st_


@st.composite
def problems(draw, dtype=np.float32, steps=4):
    """``(p, grads, mask)`` drawn by the conformance kit's adversarial strategies: ties, ±0, subnormals,
    all-equal arrays, ragged row counts (magnitudes bounded so that g² cannot overflow)."""
    shape = (draw(st.integers(1, 4)), 4 * draw(st.integers(1, 3)))
    arr = lambda: draw(hs.float_arrays(shape, dtype, infinity=False, magnitude=100.0))  # noqa: E731
    p = arr()
    return p, [arr() for _ in range(steps)], nmref.nm_mask(p, 2, 4)


def problem(seed, shape=(8, 12), steps=4, dtype=np.float32):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]
    mask = nmref.nm_mask(p, 2, 4)
    return p, grads, mask


hypers = st.builds(AdamHyper, lr=st.sampled_from([1e-3, 1e-2, 0.1]), beta1=st.sampled_from([0.0, 0.9]),
                   beta2=st.sampled_from([0.95, 0.999]), eps=st.sampled_from([1e-8, 1e-6]),
                   weight_decay=st.sampled_from([0.0, 0.01, 0.1]))


def reference_adamw64(p, grads, h):
    """Textbook AdamW (Loshchilov & Hutter) in float64 with bias-corrected moments."""
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = g.astype(np.float64)
        p = p - h.lr * h.weight_decay * p
        m = h.beta1 * m + (1 - h.beta1) * g
        v = h.beta2 * v + (1 - h.beta2) * g * g
        mhat, vhat = m / (1 - h.beta1 ** t), v / (1 - h.beta2 ** t)
        p = p - h.lr * mhat / (np.sqrt(vhat) + h.eps)  # ε after bias correction of √v
    return p


@given(hypers, problems(np.float64))
def test_adamw_matches_textbook_float64(h, prob):
    p, grads, _ = prob
    out, st_ = run(nmref.adamw_step, p, grads, h)
    # the same formula in another order: agreement to rounding, relative to the size of the terms
    scale = 1 + np.abs(p).max() + 4 * h.lr / (1 - h.beta1)
    np.testing.assert_allclose(out[-1], reference_adamw64(p, grads, h), rtol=1e-12, atol=1e-13 * scale)
    assert st_.step == len(grads)


@pytest.mark.parametrize("seed", range(3))
def test_adamw_matches_torch_adamw(seed):
    torch = pytest.importorskip("torch")
    p, grads, _ = problem(seed, shape=(64, 64), steps=6)
    h = AdamHyper(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
    opt = torch.optim.AdamW([tp], lr=h.lr, betas=(h.beta1, h.beta2), eps=h.eps, weight_decay=h.weight_decay, foreach=False)
    st_ = init_adam_state(p)
    q = p
    for g in grads:
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
        q, st_ = nmref.adamw_step(q, g, st_, h)
    # PyTorch's CPU kernels fuse lerp/addcmul into FMAs: agreement to a few float32 ulps, not bits.
    np.testing.assert_allclose(tp.detach().numpy(), q, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(q).max())
    np.testing.assert_allclose(opt.state[tp]["exp_avg_sq"].numpy(), st_.exp_avg_sq, rtol=1e-6)


@given(hypers, problems(), st.sampled_from(VARIANTS))
def test_variants_with_zero_lambda_are_adamw_bitwise(h, prob, variant):
    p, grads, mask = prob
    ref, ref_state = run(nmref.adamw_step, p, grads, h)
    kw = {"second_moment": "gradient"} if variant == "ast" else {}
    got, got_state = run(nmref.MASKED_ADAMW_VARIANTS[variant], p, grads, h, mask=mask, lam=0.0, **kw)
    assert all(bits_equal(a, b) for a, b in zip(ref, got))
    assert bits_equal(ref_state.exp_avg_sq, got_state.exp_avg_sq)
    # nothing pruned: any λ is AdamW too
    got, _ = run(nmref.MASKED_ADAMW_VARIANTS[variant], p, grads, h, mask=np.ones_like(mask), lam=0.5, **kw)
    assert all(bits_equal(a, b) for a, b in zip(ref, got))


def test_ast_paper_second_moment_is_not_adamw_even_at_zero_lambda():
    # Paper eq. 22 / public code: v accumulates the squared *momentum*; at t = 1 the step is
    # sign(g)/(1-β₁) instead of AdamW's sign(g) (ε aside).
    p, grads, mask = problem(0)
    h = AdamHyper(lr=1e-2, weight_decay=0.0)
    ref, _ = nmref.adamw_step(p, grads[0], init_adam_state(p), h)
    got, _ = nmref.ast_adamw_step(p, grads[0], init_adam_state(p), h, mask=mask, lam=0.0)
    np.testing.assert_allclose(p - got, (p - ref) / (1 - h.beta1), rtol=1e-4)


@given(hypers, problems(), st.floats(0, 1), st.sampled_from(nmref.ADAMS_PLACEMENTS))
def test_adams_reduces_to_adamw(h, prob, lam, placement):
    p, grads, mask = prob
    ref, _ = run(nmref.adamw_step, p, grads, h)
    # at t = 0 (first update) the ramp α is 0: AdamS is AdamW whatever λ and the mask
    p1, _ = nmref.adams_step(p, grads[0], init_adam_state(p), h, mask=mask, lam=lam, ramp_steps=5, placement=placement)
    assert bits_equal(p1, ref[1])
    got, _ = run(nmref.adams_step, p, grads, h, mask=np.ones_like(mask), lam=lam, ramp_steps=2, placement=placement)
    assert all(bits_equal(a, b) for a, b in zip(ref, got))


def independent_variant64(variant, p, grads, mask, h, lam, ramp=None, second_moment="update"):
    """The paper's equations, written out separately in float64."""
    p = p.astype(np.float64)
    u = np.zeros_like(p)
    v = np.zeros_like(p)
    pr = (~mask).astype(np.float64)
    for t, g in enumerate(grads, 1):
        g = g.astype(np.float64)
        p = p * (1 - h.lr * h.weight_decay)
        b1, b2 = 1 - h.beta1 ** t, 1 - h.beta2 ** t
        if variant == "decay_in_grad":
            g = g + lam * pr * p
        u = h.beta1 * u + (1 - h.beta1) * g
        sig = g
        if variant == "ast":
            ut = u + lam * pr * p
            sig = ut if second_moment == "update" else g + lam * pr * p
        elif variant == "adams":
            a = min((t - 1) / ramp, 1.0)
            ut = np.where(mask, u, (1 - a) * u + a * lam * np.sign(p))
            sig = ut if second_moment == "update" else np.where(mask, g, (1 - a) * g + a * lam * np.sign(p))
        else:
            ut = u
        v = h.beta2 * v + (1 - h.beta2) * sig * sig
        step = h.lr * (ut / b1) / (np.sqrt(v / b2) + h.eps)
        if variant == "decay_on_weights":
            step = step + h.lr * lam * pr * p
        p = p - step
    return p


@pytest.mark.filterwarnings("ignore::nmref.NMRefStepWarning")  # the equations, not the step size, are under test
@pytest.mark.parametrize("variant", VARIANTS + ["adams"])
@pytest.mark.parametrize("second_moment", ["update", "gradient"])
@pytest.mark.parametrize("seed", range(3))
def test_variants_match_independent_float64_equations(variant, second_moment, seed):
    p, grads, mask = problem(seed, dtype=np.float64, steps=5)
    h = AdamHyper(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    kw = {"second_moment": second_moment} if variant in ("ast", "adams") else {}
    if variant == "adams":
        got, _ = run(nmref.adams_step, p, grads, h, mask=mask, lam=0.3, ramp_steps=3, **kw)
    else:
        got, _ = run(nmref.MASKED_ADAMW_VARIANTS[variant], p, grads, h, mask=mask, lam=0.3, **kw)
    ref = independent_variant64(variant, p, grads, mask, h, 0.3, ramp=3, second_moment=second_moment)
    np.testing.assert_allclose(got[-1], ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("variant", VARIANTS + ["adams", "adams_in_gradient"])
def test_zero_gradient_decay_is_monotone_on_pruned_and_null_on_kept(variant):
    rng = np.random.default_rng(5)
    p = (rng.choice([-1, 1], size=(8, 16)) * rng.uniform(0.5, 1.0, size=(8, 16))).astype(np.float64)
    mask = nmref.nm_mask(p, 2, 4)
    h = AdamHyper(lr=1e-3, weight_decay=0.0)
    st_ = init_adam_state(p)
    zeros = np.zeros_like(p)
    prev = p
    for k in range(40):
        if variant.startswith("adams"):
            placement = "in_gradient" if variant.endswith("in_gradient") else "after_momentum"
            new, st_ = nmref.adams_step(prev, zeros, st_, h, mask=mask, lam=0.5, ramp_steps=4, placement=placement)
        else:
            new, st_ = nmref.MASKED_ADAMW_VARIANTS[variant](prev, zeros, st_, h, mask=mask, lam=0.5)
        assert bits_equal(new[mask], p[mask])  # kept weights untouched
        shrink = np.abs(new[~mask]) < np.abs(prev[~mask])
        assert shrink.all() or (variant.startswith("adams") and k == 0 and (new == prev).all())
        assert (np.sign(new[~mask]) == np.sign(p[~mask])).all()  # toward zero, not past it
        prev = new


def test_mask_stays_nm_through_training_with_refresh():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((16, 32))
    w = rng.standard_normal((16, 32))
    mask = nmref.nm_mask(w, 2, 4)
    st_, h = init_adam_state(w), AdamHyper(lr=0.05, beta2=0.95)
    flips = 0
    for t in range(60):
        if nmref.mask_refresh_due(t, 10):
            mask, f = nmref.refresh_mask(w, mask, 2, 4)
            flips += f
        grad = nmref.masked_weight(w, mask) - target  # ∂/∂W̃ of ½‖W̃ − target‖²
        w, st_ = nmref.ast_adamw_step(w, grad, st_, h, mask=mask, lam=nmref.annealing_lambda(t, 0.1, 15))
        assert nmref.is_nm_sparse(nmref.masked_weight(w, mask), 2, 4)
        assert (mask.reshape(-1, 4).sum(1) == 2).all()
    assert flips > 0


def test_ast_public_code_int_mask_bug_is_rejected():
    # AST's public code writes ~mask on an int32 0/1 mask: -1/-2, an anti-decay of every weight.
    int_mask = np.array([1, 0, 1, 0], dtype=np.int32)
    assert list(~int_mask) == [-2, -1, -2, -1]
    p = np.ones(4)
    with pytest.raises(NMRefTypeError, match="mask must have dtype bool"):
        nmref.ast_adamw_step(p, p, init_adam_state(p), AdamHyper(), mask=int_mask, lam=0.1)


def test_ste_helpers():
    assert nmref.annealing_lambda(0, 1e-4, 100) == 0.0
    assert nmref.annealing_lambda(50, 1e-4, 100) == pytest.approx(5e-5)
    assert nmref.annealing_lambda(100, 1e-4, 100) == nmref.annealing_lambda(10**6, 1e-4, 100) == 1e-4
    assert [t for t in range(25) if nmref.mask_refresh_due(t, 10)] == [0, 10, 20]
    g = np.array([1.0, 2.0, 3.0, 4.0])
    w = np.array([10.0, -10.0, 10.0, -10.0])
    mask = np.array([True, False, True, False])
    np.testing.assert_array_equal(nmref.sr_ste_grad(g, w, mask, 0.5), [1.0, -3.0, 3.0, -1.0])
    assert bits_equal(nmref.sr_ste_grad(g, w, mask, 0.0), g)
    assert nmref.adams_alpha(0, 10) == 0.0 and nmref.adams_alpha(5, 10) == 0.5 and nmref.adams_alpha(50, 10) == 1.0


def test_bad_inputs():
    p = np.ones((2, 4))
    s0 = init_adam_state(p)
    with pytest.raises(NMRefValueError, match="grads has shape"):
        nmref.adamw_step(p, np.ones((2, 3)), s0, AdamHyper())
    with pytest.raises(NMRefTypeError, match="grads has dtype float32"):
        nmref.adamw_step(p, np.ones((2, 4), np.float32), s0, AdamHyper())
    with pytest.raises(NMRefValueError, match="state.exp_avg has shape"):
        nmref.adamw_step(p, p, init_adam_state(np.ones((4, 2))), AdamHyper())
    with pytest.raises(NMRefValueError, match="lr must be >= 0"):
        AdamHyper(lr=-1.0)
    with pytest.raises(NMRefValueError, match=r"beta1 must be in \[0, 1\)"):
        AdamHyper(beta1=1.0)
    with pytest.raises(NMRefValueError, match="eps must be finite"):
        AdamHyper(eps=float("nan"))
    with pytest.raises(NMRefValueError, match="state.step must be >= 0"):
        AdamState(-1, p, p)
    with pytest.raises(NMRefValueError, match="lam must be >= 0"):
        nmref.ast_adamw_step(p, p, s0, AdamHyper(), mask=np.ones((2, 4), bool), lam=-0.1)
    with pytest.raises(NMRefValueError, match="mask has shape"):
        nmref.ast_adamw_step(p, p, s0, AdamHyper(), mask=np.ones((2, 2), bool), lam=0.1)
    with pytest.raises(NMRefValueError, match="placement must be one of"):
        nmref.adams_step(p, p, s0, AdamHyper(), mask=np.ones((2, 4), bool), lam=0.1, ramp_steps=3, placement="x")
    with pytest.raises(NMRefValueError, match="second_moment must be one of"):
        nmref.ast_adamw_step(p, p, s0, AdamHyper(), mask=np.ones((2, 4), bool), lam=0.1, second_moment="grad")
    with pytest.raises(NMRefValueError, match="ramp_steps must be >= 1"):
        nmref.adams_step(p, p, s0, AdamHyper(), mask=np.ones((2, 4), bool), lam=0.1, ramp_steps=0)
    with pytest.raises(NMRefValueError, match="t0 must be >= 1"):
        nmref.annealing_lambda(3, 0.1, 0)
    with pytest.raises(NMRefTypeError, match="state must be an AdamState"):
        nmref.adamw_step(p, p, {"step": 0}, AdamHyper())


def test_bfloat16_steps_stay_bfloat16_and_round_once_per_operation():
    """Scalars are rounded to the parameter's dtype, so bfloat16 arithmetic stays bfloat16 (NumPy would
    promote bfloat16 × Python float to float32); AdamW equals a per-operation emulation: each operation
    in float32 (exact for bfloat16 operands, but for the sqrt/div roundings) rounded to bfloat16."""
    import ml_dtypes
    bf = ml_dtypes.bfloat16
    rng = np.random.default_rng(3)
    p, g = (rng.standard_normal(64).astype(bf) for _ in range(2))
    state = nmref.AdamState(4, (0.1 * rng.standard_normal(64)).astype(bf), (0.01 * rng.random(64)).astype(bf))
    h = nmref.AdamHyper(lr=1e-2, weight_decay=0.1)
    mask = nmref.nm_mask(p, 2, 4)
    for fn, kw in ((nmref.adamw_step, {}), (nmref.adamw_decay_on_weights_step, {"mask": mask, "lam": 0.5}),
                   (nmref.adamw_decay_in_grad_step, {"mask": mask, "lam": 0.5}),
                   (nmref.ast_adamw_step, {"mask": mask, "lam": 0.5}),
                   (nmref.adams_step, {"mask": mask, "lam": 0.5, "ramp_steps": 8})):
        new, s = fn(p, g, state, h, **kw)
        assert new.dtype == s.exp_avg.dtype == s.exp_avg_sq.dtype == bf, fn.__name__

    def r(x):  # one rounding to bfloat16
        return np.asarray(x, np.float32).astype(bf)

    def op(f, *xs):
        return r(f(*[np.asarray(x).astype(np.float32) for x in xs]))
    t = 5
    c = lambda v: r(v)  # noqa: E731 - a scalar rounded to bfloat16
    pd = op(np.multiply, p, c(1 - h.lr * h.weight_decay))
    u = op(np.add, op(np.multiply, op(np.subtract, g, state.exp_avg), c(1 - h.beta1)), state.exp_avg)
    v = op(np.add, op(np.multiply, op(np.multiply, g, c(1 - h.beta2)), g), op(np.multiply, state.exp_avg_sq, c(h.beta2)))
    denom = op(np.add, op(np.divide, op(np.sqrt, v), c(np.sqrt(1 - h.beta2 ** t))), c(h.eps))
    want = op(np.add, op(np.divide, op(np.multiply, c(-h.lr / (1 - h.beta1 ** t)), u), denom), pd)
    got, s = nmref.adamw_step(p, g, state, h)
    assert got.tobytes() == want.tobytes() and s.exp_avg.tobytes() == u.tobytes() and s.exp_avg_sq.tobytes() == v.tobytes()


@pytest.mark.parametrize("variant", VARIANTS + ["adams"])
def test_zero_coefficient_adds_no_term_even_on_negative_zero(variant):
    """λ = 0 (and AdamS's first update, α = 0) is AdamW bit for bit on −0.0 weights and gradients: the
    zero term is left out, since −0.0 + 0.0 would be +0.0 (found by the kit's adversarial strategies)."""
    p = np.array([-0.0, -0.0, 0.0, -0.0, 1.0, -2.0, -0.0, 0.0], np.float32)
    g = np.array([0.0, -0.0, -0.0, -0.0, 0.5, -0.0, 0.0, -0.0], np.float32)
    mask = np.array([True, True, False, False] * 2)
    h = AdamHyper(lr=1e-3, beta1=0.0, beta2=0.95, weight_decay=0.0)
    want = nmref.adamw_step(p, g, init_adam_state(p), h)
    if variant == "adams":
        got = nmref.adams_step(p, g, init_adam_state(p), h, mask=mask, lam=0.7, ramp_steps=4)
    else:
        kw = {"second_moment": "gradient"} if variant == "ast" else {}
        got = nmref.MASKED_ADAMW_VARIANTS[variant](p, g, init_adam_state(p), h, mask=mask, lam=0.0, **kw)
    assert bits_equal(got[0], want[0]) and bits_equal(got[1].exp_avg, want[1].exp_avg)
    assert bits_equal(got[1].exp_avg_sq, want[1].exp_avg_sq)


def _cancelling_step(second_moment, lam=0.5, step_fn=None):
    """A pruned weight W = 0.2 whose gradient is exactly −λW: g + λW = 0 (float64)."""
    h = AdamHyper(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)
    p = np.array([0.2, 0.2])
    g = np.array([-lam * 0.2, 0.3])
    mask = np.array([False, True])
    st = nmref.init_adam_state(p)
    if step_fn is None:
        return nmref.ast_adamw_step(p, g, st, h, mask=mask, lam=lam, second_moment=second_moment), h
    return step_fn(p, g, st, h, mask, lam), h


def test_ast_gradient_mode_unbounded_step_warns():
    """The analysis in docs/optimizers.md: with g = −λW the second moment sees 0 while the numerator is
    u + λW = β₁λW; at t = 1 the step is (β₁λW/(1−β₁)) / ε = 9e4 for W = 0.2, λ = 0.5."""
    from nmref.optim.adamw import adam_step_bound
    with pytest.warns(nmref.NMRefStepWarning, match="more than 10× the Adam step bound"):
        (p1, _), h = _cancelling_step("gradient")
    assert abs(p1[0] - 0.2) == pytest.approx(0.9 * 0.5 * 0.2 / 0.1 * 1e-3 / 1e-8, rel=1e-6)
    bound = adam_step_bound(1, h)
    assert bound == pytest.approx(1e-3 / 0.1)  # at t = 1: lr / (1 − β₁)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the published form: no warning, and the step within the bound
        (p2, _), _ = _cancelling_step("update")
    assert np.abs(p2 - 0.2).max() <= bound * (1 + 1e-12)


def test_adams_gradient_mode_unbounded_step_warns():
    """The same cancellation in AdamS's default second moment: q = (1−α)g + αλ·sign(W) = 0 for
    α = 0.5 and g = −λ on a positive pruned weight."""
    def step(p, g, st, h, mask, lam):
        st = nmref.AdamState(5, st.exp_avg, st.exp_avg_sq)  # α = 5 / 10
        return nmref.adams_step(p, np.where(mask, g, -lam), st, h, mask=mask, lam=lam, ramp_steps=10)
    with pytest.warns(nmref.NMRefStepWarning):
        _cancelling_step(None, step_fn=step)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.9, 0.95, 0.999]), st.floats(0.0, 2.0), st.booleans())
def test_update_mode_steps_never_exceed_the_bound(seed, beta2, lam, cancel):
    """AST's published second moment (the numerator is in v) keeps every step within adam_step_bound,
    even when the gradient cancels the decay; and λ = 0 in "gradient" mode (AdamW) never warns."""
    from nmref.optim.adamw import adam_step_bound
    rng = np.random.default_rng(seed)
    h = AdamHyper(lr=1e-2, beta1=0.9, beta2=beta2, eps=1e-8, weight_decay=0.1)
    p = rng.standard_normal(64)
    mask = nmref.nm_mask(p.reshape(8, 8), 2, 4).reshape(-1)
    s_upd = s_grad = nmref.init_adam_state(p)
    q_upd = q_grad = p
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(12):
            g = rng.standard_normal(64) * rng.choice([1e-3, 1.0, 1e3])
            g_upd = np.where(cancel & ~mask, -lam * q_upd, g)
            decayed = q_upd * (1 - h.lr * h.weight_decay)
            q_new, s_upd = nmref.ast_adamw_step(q_upd, g_upd, s_upd, h, mask=mask, lam=lam)
            assert np.abs(q_new - decayed).max() <= adam_step_bound(s_upd.step, h) * (1 + 1e-9)
            q_upd = q_new
            q_grad, s_grad = nmref.ast_adamw_step(q_grad, g, s_grad, h, mask=mask, lam=0.0, second_moment="gradient")
