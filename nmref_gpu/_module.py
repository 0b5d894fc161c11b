"""Loading the .cu files next to this module through ``cupy.RawModule`` (compiled once per process)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from nmref._checks import NMRefTypeError, NMRefValueError

_HERE = Path(__file__).resolve().parent


def cupy():
    try:
        import cupy as cp
    except ImportError as e:  # pragma: no cover - exercised only without CuPy
        raise ImportError("nmref_gpu needs CuPy (pip install 'nmref[gpu]') and a CUDA GPU") from e
    return cp


@lru_cache(maxsize=None)
def module(name: str, options: tuple = (), names: tuple = ()):
    cp = cupy()
    code = (_HERE / f"{name}.cu").read_text()
    return cp.RawModule(code=code, options=("-std=c++17", f"-I{_HERE}", *options), name_expressions=names)


def ctype(dtype) -> str:
    dt = np.dtype(dtype)
    if dt == np.float16:
        return "__half"
    if dt == np.float32:
        return "float"
    if dt == np.float64:
        return "double"
    if dt.name == "bfloat16":
        return "__nv_bfloat16"
    raise NMRefTypeError(f"unsupported dtype {dt}; expected float16, bfloat16, float32 or float64")


def as_device(name: str, x, *, dtypes=None, ndim=None, contiguous=True, align=None):
    """``x`` as a validated CuPy array. ``align``: bytes the start address must be a multiple of, for
    kernels that read ``align``-byte vectors (a view starting mid-vector would fault on the device)."""
    cp = cupy()
    if not isinstance(x, cp.ndarray):
        raise NMRefTypeError(f"{name} must be a cupy.ndarray, got {type(x).__name__}")
    if dtypes is not None and x.dtype.name not in dtypes:
        raise NMRefTypeError(f"{name} has dtype {x.dtype}, expected one of {sorted(dtypes)}")
    if ndim is not None and x.ndim != ndim:
        raise NMRefValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if contiguous and not x.flags.c_contiguous:
        raise NMRefValueError(f"{name} must be C-contiguous (cupy.ascontiguousarray)")
    if align and x.data.ptr % align:
        raise NMRefValueError(f"{name} starts at a device address that is not {align}-byte aligned "
                              f"({x.data.ptr:#x}); pass a fresh array ({name}.copy())")
    return x


def blocks(n: int, threads: int) -> int:
    return max(1, (int(n) + threads - 1) // threads)
