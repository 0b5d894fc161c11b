"""Every layer's hand-written backward against float64 central finite differences, over random
shapes (hypothesis), and the whole model's gradient for each architecture option."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nmref.tiny import layers as L
from nmref.tiny import model as M
from nmref.tiny.config import load_config

from helpers import central_fd

shapes = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4).map(lambda h: 2 * h))


def _fd_check(loss_of, x, analytic, rtol=1e-6, atol=1e-8):
    fd = central_fd(loss_of, x)
    np.testing.assert_allclose(analytic, fd, rtol=rtol, atol=atol)


def _probe(rng, shape):
    return rng.standard_normal(shape)


@given(shapes, st.integers(0, 2**32 - 1))
def test_linear_backward(shape, seed):
    rng = np.random.default_rng(seed)
    b, t, d = shape
    x, w = rng.standard_normal((b, t, d)), rng.standard_normal((3, d))
    r = _probe(rng, (b, t, 3))
    gx, gw = L.linear_backward(x, w, r)
    _fd_check(lambda x_: np.sum(L.linear_forward(x_, w)[0] * r), x, gx)
    _fd_check(lambda w_: np.sum(L.linear_forward(x, w_)[0] * r), w, gw)


@given(shapes, st.integers(0, 2**32 - 1))
def test_rmsnorm_backward(shape, seed):
    rng = np.random.default_rng(seed)
    x, g = rng.standard_normal(shape), rng.standard_normal(shape[-1])
    r = _probe(rng, shape)
    y, cache = L.rmsnorm_forward(x, g)
    gx, gg = L.rmsnorm_backward(cache, r)
    _fd_check(lambda x_: np.sum(L.rmsnorm_forward(x_, g)[0] * r), x, gx, rtol=1e-5, atol=1e-7)
    _fd_check(lambda g_: np.sum(L.rmsnorm_forward(x, g_)[0] * r), g, gg)
    # the definition, independently: x / sqrt(mean(x²) + eps) * g
    np.testing.assert_allclose(y, x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * g, rtol=1e-12)


@given(shapes, st.integers(0, 2**32 - 1))
def test_layernorm_backward(shape, seed):
    rng = np.random.default_rng(seed)
    x, g, b = rng.standard_normal(shape), rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    r = _probe(rng, shape)
    _, cache = L.layernorm_forward(x, g, b)
    gx, gg, gb = L.layernorm_backward(cache, r)
    _fd_check(lambda x_: np.sum(L.layernorm_forward(x_, g, b)[0] * r), x, gx, rtol=1e-5, atol=1e-6)
    _fd_check(lambda g_: np.sum(L.layernorm_forward(x, g_, b)[0] * r), g, gg)
    _fd_check(lambda b_: np.sum(L.layernorm_forward(x, g, b_)[0] * r), b, gb)


@given(shapes, st.integers(0, 2**32 - 1))
def test_rope_backward_and_norm_preservation(shape, seed):
    rng = np.random.default_rng(seed)
    b, t, dh = shape
    x = rng.standard_normal((b, 2, t, dh))
    cos, sin = L.rope_tables(t, dh, dtype=np.float64)
    y = L.rope_forward(x, cos, sin)
    # a rotation per pair: the norm of each (x_i, x_{i+dh/2}) pair is preserved
    h = dh // 2
    np.testing.assert_allclose(y[..., :h] ** 2 + y[..., h:] ** 2, x[..., :h] ** 2 + x[..., h:] ** 2, rtol=1e-12)
    r = _probe(rng, x.shape)
    _fd_check(lambda x_: np.sum(L.rope_forward(x_, cos, sin) * r), x, L.rope_backward(r, cos, sin))


def test_rope_relative_position():
    """⟨RoPE(q)_i, RoPE(k)_j⟩ depends on i − j only (the defining property)."""
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal(8), rng.standard_normal(8)
    cos, sin = L.rope_tables(12, 8, dtype=np.float64)
    qs = L.rope_forward(np.tile(q, (12, 1)), cos, sin)
    ks = L.rope_forward(np.tile(k, (12, 1)), cos, sin)
    np.testing.assert_allclose(qs[5] @ ks[2], qs[9] @ ks[6], rtol=1e-12)


@given(shapes, st.integers(0, 2**32 - 1))
def test_attention_backward_and_causality(shape, seed):
    rng = np.random.default_rng(seed)
    b, t, dh = shape
    q, k, v = (rng.standard_normal((b, 2, t, dh)) for _ in range(3))
    o, cache = L.attention_forward(q, k, v)
    r = _probe(rng, o.shape)
    gq, gk, gv = L.attention_backward(cache, r)
    _fd_check(lambda q_: np.sum(L.attention_forward(q_, k, v)[0] * r), q, gq, rtol=1e-5, atol=1e-7)
    _fd_check(lambda k_: np.sum(L.attention_forward(q, k_, v)[0] * r), k, gk, rtol=1e-5, atol=1e-7)
    _fd_check(lambda v_: np.sum(L.attention_forward(q, k, v_)[0] * r), v, gv, rtol=1e-5, atol=1e-7)
    # causality: changing the last position's k, v leaves the earlier outputs bit for bit unchanged
    k2, v2 = k.copy(), v.copy()
    k2[..., -1, :] += 1.0
    v2[..., -1, :] -= 1.0
    o2, _ = L.attention_forward(q, k2, v2)
    assert np.array_equal(o2[..., :-1, :], o[..., :-1, :])


@given(st.integers(0, 2**32 - 1))
def test_activations_backward(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((3, 7)) * 3
    r = _probe(rng, a.shape)
    for fwd, bwd in ((L.silu_forward, L.silu_backward), (L.gelu_forward, L.gelu_backward)):
        _, cache = fwd(a)
        _fd_check(lambda a_: np.sum(fwd(a_)[0] * r), a, bwd(cache, r))


@given(st.integers(0, 2**32 - 1))
def test_embedding_backward(seed):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((6, 4))
    tok = rng.integers(0, 6, (2, 5))
    r = _probe(rng, (2, 5, 4))
    _fd_check(lambda e_: np.sum(L.embedding_forward(e_, tok)[0] * r), e, L.embedding_backward(tok, r, 6))


@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
@pytest.mark.parametrize("mlp", ["swiglu", "gelu"])
@pytest.mark.parametrize("tie", [True, False])
def test_model_gradient_matches_finite_differences(norm, mlp, tie):
    cfg = load_config("test", overrides=dict(dtype="float64", norm=norm, mlp=mlp, tie_embeddings=tie, n_layers=2,
                                             d_model=8, n_heads=2, d_ff=8, init_std=0.5, slorb_k=4))
    rng = np.random.default_rng(1)
    vocab = 11
    p = M.init_params(cfg, vocab, rng)
    for k in p:
        if "norm" in k:
            p[k] = p[k] + 0.3 * rng.standard_normal(p[k].shape)
    tok, tgt = rng.integers(0, vocab, (2, 5)), rng.integers(0, vocab, (2, 5))
    _, grads, _ = M.loss_and_grads(p, tok, tgt, cfg)
    assert set(grads) == set(p)
    for name, arr in p.items():
        idx = rng.choice(arr.size, min(arr.size, 5), replace=False)

        def f(a, name=name):
            q = dict(p)
            q[name] = a
            return M.loss_and_grads(q, tok, tgt, cfg)[0]

        fd = central_fd(f, arr, idx=idx).reshape(-1)[idx]
        np.testing.assert_allclose(grads[name].reshape(-1)[idx], fd, rtol=1e-5, atol=1e-8, err_msg=name)


def test_effective_weights_replace_linears_and_gradients_are_wrt_them():
    cfg = load_config("test", overrides=dict(dtype="float64"))
    rng = np.random.default_rng(2)
    p = M.init_params(cfg, 20, rng)
    name = M.linear_names(cfg)[0]
    w_eff = rng.standard_normal(p[name].shape) * 0.1
    tok, tgt = rng.integers(0, 20, (2, 6)), rng.integers(0, 20, (2, 6))
    loss_a, g_a, _ = M.loss_and_grads(p, tok, tgt, cfg, weights={name: w_eff})
    q = dict(p)
    q[name] = w_eff
    loss_b, g_b, _ = M.loss_and_grads(q, tok, tgt, cfg)
    assert loss_a == loss_b and np.array_equal(g_a[name], g_b[name])
