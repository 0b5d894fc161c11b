"""nmref.testing.adapters: PyTorch callables under the kit's NumPy contract, bfloat16 included; the
frameworks stay unimported until an adapter runs."""
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from nmref.testing import ConformanceError, check_conforms
from nmref.testing.adapters import from_torch, to_torch, torch_adapter


def test_nmref_imports_no_framework():
    code = ("import sys, nmref, nmref.testing, nmref.testing.adapters\n"
            "bad = [m for m in ('torch', 'jax') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float16, np.float32, np.float64, np.int64, np.bool_])
def test_round_trip_keeps_every_bit(dtype):
    torch = pytest.importorskip("torch")
    a = np.array([0.0, -0.0, 1.5, -3.0, np.inf, np.nan, 1e-40, 65504.0]) if np.dtype(dtype).kind == "f" else \
        np.array([0, 1, 1, 0, 5, 3, 1, 0])
    a = a.astype(dtype).reshape(2, 4)[:, ::-1]  # a non-contiguous view
    t = to_torch(a)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == a.shape
    if a.dtype.name == "bfloat16":
        assert t.dtype == torch.bfloat16
    back = from_torch(t.requires_grad_(t.is_floating_point()))
    assert back.dtype == a.dtype and back.tobytes() == np.ascontiguousarray(a).tobytes()


def test_adapter_maps_nested_inputs_and_outputs():
    torch = pytest.importorskip("torch")

    def f(x, state, *, scale):
        assert isinstance(x, torch.Tensor) and isinstance(state["m"], torch.Tensor) and scale == 2.0
        return x * scale, {"m": state["m"] + 1, "step": state["step"] + 1}
    x = np.arange(4, dtype=ml_dtypes.bfloat16)
    y, st = torch_adapter(f)(x, {"m": np.zeros(4, np.float32), "step": 3}, scale=2.0)
    assert y.dtype == x.dtype and y.astype(np.float32).tolist() == [0.0, 2.0, 4.0, 6.0]
    assert st["m"].tolist() == [1.0] * 4 and st["step"] == 4


def _torch_sparsify(exact: bool):
    import torch

    def sparsify(x, t):
        a = x.abs().double() if exact else x.abs()  # x.abs() > t rounds t to x's dtype (PyTorch's scalar rule)
        keep = ~(a <= t)
        return torch.where(keep, x, torch.zeros((), dtype=x.dtype))
    return sparsify


def test_a_one_line_torch_implementation_conforms_and_scalar_rounding_is_caught():
    pytest.importorskip("torch")
    check_conforms("sparsify", torch_adapter(_torch_sparsify(exact=True)), examples=150)
    with pytest.raises(ConformanceError) as e:
        check_conforms("sparsify", torch_adapter(_torch_sparsify(exact=False)), examples=300,
                       dtypes=["bfloat16", "float16"])
    assert "x:" in e.value.reason  # the kept set differs where t lies between two neighbours of the dtype
