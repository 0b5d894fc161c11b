"""The GPU test modules' guard: CuPy and a CUDA GPU, or the whole module is skipped."""
import pytest


def require_gpu():
    """Return the cupy module, or skip the calling test module (no CuPy, or no usable CUDA GPU)."""
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA GPU", allow_module_level=True)
    except Exception:  # noqa: BLE001 - any CUDA failure means no usable GPU
        pytest.skip("no CUDA GPU", allow_module_level=True)
    return cp
