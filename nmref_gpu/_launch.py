"""Kernel launches with programmatic dependent launch (PDL, compute capability >= 9.0).

A kernel launched with the CUDA attribute *programmatic stream serialization* may be scheduled before
the kernel ahead of it in the stream has finished, as soon as every block of that kernel has executed
``griddepcontrol.launch_dependents`` (or exited). The GEMV and TEAL kernels that :func:`launch` starts
this way keep one protocol (``pdl_wait`` / ``pdl_launch_dependents`` in ``common.cuh``):

* every block executes ``griddepcontrol.wait`` before its first global-memory access, which returns
  once the preceding kernel has completed and its writes are visible — so the result is the same as a
  plain launch whatever ran before (a user's kernel writing ``x``, or one of ours writing ``out``);
* every block executes ``griddepcontrol.launch_dependents`` after its main loop (before its epilogue),
  so at most the next kernel is scheduled early, and only once this one is winding down.

What it hides is the gap between dependent kernels (and the zero fill before a fresh TEAL result): on
an H100, per call in a CUDA graph of back-to-back calls, the GEMVs were 1.00–1.09× faster than with a
plain launch on 28 of 30 shape×batch rows (0.95× and 0.995× on the other two), TEAL 0.99–1.11×
(docs/dev/gpu-notebook.md). Results are the same either way (the atomic TEAL path adds its partial
sums in an order that varies from run to run in both). On devices below compute capability 9.0, or inside
``programmatic_launch(False)``, or with the environment variable ``NMREF_GPU_PDL=0``, every launch is
a plain CuPy launch.
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import os
from functools import lru_cache

import numpy as np

from nmref._checks import NMRefTypeError
from ._module import cupy

#: CUlaunchAttributeID CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (cuda.h)
_ATTR_PROGRAMMATIC_STREAM_SERIALIZATION = 6

_ENABLED = contextvars.ContextVar("nmref_gpu_pdl", default=os.environ.get("NMREF_GPU_PDL", "1") != "0")


class LaunchAttribute(ctypes.Structure):
    """``CUlaunchAttribute``: a 4-byte id, 4 bytes of padding, a 64-byte value union."""
    _fields_ = [("id", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("value", ctypes.c_uint32 * 16)]


class LaunchConfig(ctypes.Structure):
    """``CUlaunchConfig`` (cuda.h, CUDA >= 12.0)."""
    _fields_ = [("gridDimX", ctypes.c_uint32), ("gridDimY", ctypes.c_uint32), ("gridDimZ", ctypes.c_uint32),
                ("blockDimX", ctypes.c_uint32), ("blockDimY", ctypes.c_uint32), ("blockDimZ", ctypes.c_uint32),
                ("sharedMemBytes", ctypes.c_uint32), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(LaunchAttribute)), ("numAttrs", ctypes.c_uint32)]


@contextlib.contextmanager
def programmatic_launch(enabled: bool):
    """Within the block, launch the PDL-aware kernels with (``True``) or without (``False``) programmatic
    dependent launch — e.g. to time both side by side. Results are identical either way."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


@lru_cache(maxsize=None)
def _driver():
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        fn = lib.cuLaunchKernelEx
    except (OSError, AttributeError):  # no driver library, or a driver older than CUDA 12.0
        return None
    fn.argtypes = [ctypes.POINTER(LaunchConfig), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    fn.restype = ctypes.c_int
    name = lib.cuGetErrorName
    name.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    return fn, name


@lru_cache(maxsize=None)
def _capable(device_id: int) -> bool:
    return int(cupy().cuda.Device(device_id).compute_capability) >= 90 and _driver() is not None


def pdl_active() -> bool:
    """Whether :func:`launch` uses programmatic dependent launch here and now."""
    return _ENABLED.get() and _capable(cupy().cuda.Device().id)


def kernel_params(args) -> list:
    """The ctypes values of a kernel's arguments: device arrays (``__cuda_array_interface__``) as their
    data pointer, NumPy scalars as their C type (the types the launchers already pass to CuPy)."""
    out = []
    for a in args:
        if hasattr(a, "__cuda_array_interface__"):  # a CuPy array: its device pointer
            out.append(ctypes.c_void_p(a.__cuda_array_interface__["data"][0]))
        elif isinstance(a, np.float32):
            out.append(ctypes.c_float(float(a)))
        elif isinstance(a, np.float64):
            out.append(ctypes.c_double(float(a)))
        elif isinstance(a, np.int32):
            out.append(ctypes.c_int32(int(a)))
        elif isinstance(a, np.int64):
            out.append(ctypes.c_int64(int(a)))
        else:
            raise NMRefTypeError(f"kernel argument of type {type(a).__name__}: expected a cupy.ndarray or a "
                                 "numpy float32/float64/int32/int64 scalar")
    return out


def launch(kernel, grid, block, args) -> None:
    """Launch ``kernel`` (a ``cupy.RawKernel`` that keeps the protocol above) on the current stream, with
    programmatic dependent launch where :func:`pdl_active`, else as CuPy would."""
    if not pdl_active():
        kernel(grid, block, args)
        return
    fn, name = _driver()
    vals = kernel_params(args)
    params = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
    attr = LaunchAttribute(id=_ATTR_PROGRAMMATIC_STREAM_SERIALIZATION)
    attr.value[0] = 1  # programmaticStreamSerializationAllowed
    g = tuple(int(v) for v in grid) + (1,) * (3 - len(grid))
    b = tuple(int(v) for v in block) + (1,) * (3 - len(block))
    cfg = LaunchConfig(*g, *b, 0, cupy().cuda.get_current_stream().ptr, ctypes.pointer(attr), 1)
    status = fn(ctypes.byref(cfg), kernel.kernel.ptr, params, None)
    if status:
        msg = ctypes.c_char_p()
        name(status, ctypes.byref(msg))
        raise RuntimeError(f"cuLaunchKernelEx failed: {(msg.value or b'?').decode()} ({status})")
