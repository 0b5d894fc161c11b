"""SparseGPT against an independent, naive OBS computation, and its defining properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nmref
from helpers import brute_nm_mask


def naive_sparsegpt(w, h, n, m, damp=0.01):
    """Column by column with an explicit inverse of the Hessian of the not-yet-processed columns F:
    saliency w_j²/[(H_{F_j})⁻¹]_jj, OBS update w_F −= (w_c/[(H_F)⁻¹]_cc) · (H_F)⁻¹[c, F]."""
    W = w.astype(np.float64).copy()
    H = h.astype(np.float64).copy()
    cols = W.shape[1]
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * np.mean(np.diag(H)) * np.eye(cols)
    mask = np.ones(W.shape, dtype=bool)
    for c in range(cols):
        if c % m == 0:
            diag = np.array([np.linalg.inv(H[j:, j:])[0, 0] for j in range(c, c + m)])
            mask[:, c:c + m] = brute_nm_mask(W[:, c:c + m] ** 2 / diag, n, m)
        hinv = np.linalg.inv(H[c:, c:])
        for r in range(W.shape[0]):
            if not mask[r, c]:
                W[r, c:] -= W[r, c] / hinv[0, 0] * hinv[0, :]
                W[r, c] = 0.0
    return W, mask


@given(st.integers(0, 2**32 - 1), st.sampled_from([(2, 4), (1, 4), (3, 8), (1, 2)]), st.sampled_from([4, 8, 128]))
def test_matches_naive_obs(seed, nm, blocksize):
    n, m = nm
    rng = np.random.default_rng(seed)
    rows, cols = 3, 2 * m * (1 + seed % 2)
    if blocksize % m:
        blocksize = m
    w = rng.standard_normal((rows, cols))
    x = rng.standard_normal((50, cols)) @ rng.standard_normal((cols, cols))  # correlated inputs
    h = nmref.hessian_from_inputs(x)
    got, mask = nmref.sparsegpt_prune(w, h, n, m, blocksize=blocksize)
    want, wmask = naive_sparsegpt(w, h, n, m)
    assert np.array_equal(mask, wmask)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert nmref.is_nm_sparse(got, n, m)
    assert not got[~mask].any()


def test_diagonal_hessian_is_magnitude_pruning_without_update():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 16)).astype(np.float32)
    got, mask = nmref.sparsegpt_prune(w, np.eye(16) * 2.5, 2, 4)
    assert np.array_equal(mask, nmref.nm_mask(w, 2, 4))
    assert np.array_equal(got, np.where(mask, w, 0).astype(np.float32))
    assert got.dtype == np.float32


def test_reduces_reconstruction_error_versus_magnitude():
    rng = np.random.default_rng(4)
    cols = 64
    x = rng.standard_normal((400, cols)) @ rng.standard_normal((cols, cols)) * 0.3
    w = rng.standard_normal((32, cols))
    got, _ = nmref.sparsegpt_prune(w, nmref.hessian_from_inputs(x), 2, 4)
    mag = np.where(nmref.nm_mask(w, 2, 4), w, 0)
    err = np.linalg.norm(x @ (w - got).T)
    assert err < 0.8 * np.linalg.norm(x @ (w - mag).T)


def test_dead_inputs_are_zeroed():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 8))
    x[:, 3] = 0
    got, _ = nmref.sparsegpt_prune(rng.standard_normal((2, 8)), nmref.hessian_from_inputs(x), 2, 4)
    assert not got[:, 3].any()


def test_errors():
    w = np.ones((2, 8))
    with pytest.raises(nmref.NMRefValueError, match="h"):
        nmref.sparsegpt_prune(w, np.eye(4), 2, 4)
    with pytest.raises(nmref.NMRefValueError, match="divisible"):
        nmref.sparsegpt_prune(np.ones((2, 6)), np.eye(6), 2, 4)
    with pytest.raises(nmref.NMRefValueError, match="blocksize"):
        nmref.sparsegpt_prune(w, np.eye(8), 2, 4, blocksize=6)
    with pytest.raises(nmref.NMRefValueError, match="NaN"):
        nmref.sparsegpt_prune(np.full((2, 8), np.nan), np.eye(8), 2, 4)
    with pytest.raises(nmref.NMRefValueError, match="calibration"):
        nmref.hessian_from_inputs(np.zeros((0, 8)))


def test_hessian_scale_matters_only_with_dead_inputs():
    """Without dead inputs, c·H prunes like H (the damping is relative); a dead input's H_cc becomes the
    absolute 1, so with dead inputs the scale of H changes the result (docstring of sparsegpt_prune)."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((64, 256))
    x = rng.standard_normal((512, 256)) @ (np.eye(256) + 0.3 * rng.standard_normal((256, 256)))
    h = nmref.hessian_from_inputs(x)
    w1, m1 = nmref.sparsegpt_prune(w, h, 2, 4)
    w32, m32 = nmref.sparsegpt_prune(w, 32 * h, 2, 4)
    assert np.array_equal(m1, m32)
    np.testing.assert_allclose(w1, w32, rtol=1e-9, atol=1e-9)
    x[:, [5, 77]] = 0.0  # two dead inputs
    hd = nmref.hessian_from_inputs(x)
    hd /= np.mean(np.diag(hd))  # diag of order 1, where the dead inputs' fill value 1 is not negligible
    _, md1 = nmref.sparsegpt_prune(w, hd, 2, 4)
    _, md32 = nmref.sparsegpt_prune(w, 32 * hd, 2, 4)
    assert (md1 != md32).sum() >= 10  # 46 of the 16384 entries here


def test_per_token_hessian_is_the_original_per_sequence_one_over_seq_len():
    """SparseGPT's add_batch: H ← H·n/(n + b); x ← √(2/(n + b))·x; H ← H + xxᵀ, n counting sequences.
    For sequences of equal length L that is 2/N·Σ_tokens xxᵀ = L · nmref's 2XᵀX/n_tokens."""
    seqs, seq_len, d = 6, 9, 16
    x = np.random.default_rng(12).standard_normal((seqs, seq_len, d))
    h, n, start = np.zeros((d, d)), 0, 0
    for b in (2, 1, 3):  # batches of sequences, as the original calibration loop sees them
        batch = x[start:start + b]
        start += b
        h *= n / (n + b)
        n += b
        inp = np.sqrt(2 / n) * batch.reshape(-1, d).T
        h += inp @ inp.T
    np.testing.assert_allclose(h, seq_len * nmref.hessian_from_inputs(x), rtol=1e-12)
