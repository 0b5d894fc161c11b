"""The NumPy transformer's loss and every gradient against PyTorch autograd (float64), per architecture."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nmref.tiny import model as M  # noqa: E402
from nmref.tiny.config import load_config  # noqa: E402

import peer_torch_tiny as P  # noqa: E402


@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
@pytest.mark.parametrize("mlp", ["swiglu", "gelu"])
@pytest.mark.parametrize("tie", [True, False])
def test_loss_and_gradients_match_torch(norm, mlp, tie):
    cfg = load_config("test", overrides=dict(dtype="float64", norm=norm, mlp=mlp, tie_embeddings=tie, n_layers=2,
                                             init_std=0.2))
    rng = np.random.default_rng(0)
    p = M.init_params(cfg, 50, rng)
    tok, tgt = rng.integers(0, 50, (3, 16)), rng.integers(0, 50, (3, 16))
    loss, grads, _ = M.loss_and_grads(p, tok, tgt, cfg)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    tl = P.loss(tp, torch.tensor(tok), torch.tensor(tgt), cfg)
    tl.backward()
    assert abs(loss - tl.item()) < 1e-12 * max(1, abs(loss))
    for k in p:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
