"""2:4 sparse GEMM on sparse tensor cores (kernels: gemm.cu), mirroring :func:`nmref.gemm_24`.

* :func:`compress_24_gemm` — the GEMM layout of :func:`nmref.compress_24_gemm`, bit for bit;
* :func:`gemm_24` — ``Y[M, N] = X[M, K] · (W⊙M)[N, K]ᵀ`` from that layout, float32 accumulation, output
  float32 or the input dtype; ``wgmma.mma_async.sp`` on sm_90a, ``mma.sp.m16n8k32`` elsewhere (sm_80+);
* :class:`Sparse24Weight` and :func:`linear_24` — one compressed weight (GEMM layout, the packed GEMV
  layout sharing its values, and optionally the transposed compression of a transposable mask) and one
  entry point that picks the GEMV kernels for a batch of at most 16 and :func:`gemm_24` above;
  :func:`linear_24_input_grad` — ``dX = dY · (W⊙M)`` on the sparse tensor cores.

Which kernel configuration runs is the rule :func:`nmref_gpu.kernels.gemm_config` (measured on an H200,
docs/benchmarks.md); the compiled instances are the table :data:`nmref_gpu.kernels.GEMM_CONFIGS`.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nmref._checks import NMRefTypeError, NMRefValueError
from nmref.compress.gemm import gemm_meta_from_nibbles, gemm_padded_shape
from . import kernels
from ._module import _HERE, as_device, cupy
from .kernels import GemmConfig, gemm_config, split_rule
from .masks import nm_mask

_HALF = {"float16", "bfloat16"}
_TN = {"float16": "f16", "bfloat16": "bf16"}


# ----------------------------------------------------------------------------------------- compilation
def _nvcc_path():
    cp = cupy()
    try:
        return cp.cuda.get_nvcc_path()
    except Exception:  # pragma: no cover - depends on the CUDA installation
        return None


def _source() -> str:
    """gemm.cu and its generated instances (:func:`nmref_gpu.kernels.instantiation_unit`)."""
    return (_HERE / "gemm.cu").read_text() + "\n" + kernels.gemm_instance_lines()


def _cubin_sm90a() -> bytes:
    """gemm.cu compiled for sm_90a with nvcc (CuPy's NVRTC call fixes the plain sm_90 target, which
    lacks wgmma), cached on disk by the hash of the source, the headers and the nvcc version."""
    nvcc = _nvcc_path()
    if nvcc is None:
        raise RuntimeError("nvcc not found (set CUDA_PATH or NVCC)")
    version = subprocess.run(nvcc.split() + ["--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\0".join([_source(), (_HERE / "common.cuh").read_text(),
                                    (_HERE / "nm_types.cuh").read_text(), version]).encode()).hexdigest()[:24]
    cache = Path(os.environ.get("NMREF_GPU_CACHE", Path.home() / ".cache" / "nmref_gpu"))
    path = cache / f"gemm-sm90a-{key}.cubin"
    if path.is_file():
        return path.read_bytes()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gemm.cubin"
        src = Path(tmp) / "gemm_instances.cu"
        src.write_text(_source())
        subprocess.run(nvcc.split() + ["-std=c++17", "-O3", f"-I{_HERE}", "-gencode", "arch=compute_90a,code=sm_90a",
                                       "-cubin", "-o", str(out), str(src)],
                       check=True, capture_output=True, text=True)
        data = out.read_bytes()
    fd, tmp_path = tempfile.mkstemp(dir=cache, prefix=".gemm-", suffix=".cubin")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp_path, path)  # atomic: a concurrent reader sees the old file or the whole new one
    return data


@lru_cache(maxsize=None)
def _module(device_id: int):
    """``(module, has_wgmma)`` for the current device: sm_90a code (wgmma) on compute capability 9.0
    when nvcc is available, else CuPy's NVRTC build for the device (the mma.sp kernels)."""
    cp = cupy()
    cc = cp.cuda.Device(device_id).compute_capability
    if int(cc) < 80:
        raise NMRefValueError(f"gemm_24 needs a GPU of compute capability >= 8.0 (sparse tensor cores), got {cc}")
    if cc == "90" and os.environ.get("NMREF_GPU_WGMMA", "1") != "0":
        try:
            mod = cp.cuda.function.Module()
            mod.load(_cubin_sm90a())
            return mod, True
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            warnings.warn(f"nmref_gpu.gemm_24: no sm_90a build ({e}); using the portable mma.sp kernels", RuntimeWarning)
    return cp.RawModule(code=_source(), options=("-std=c++17", f"-I{_HERE}")), False


def has_wgmma() -> bool:
    """Whether :func:`gemm_24` runs the sm_90a (wgmma.sp) kernels on the current device."""
    return _module(cupy().cuda.Device().id)[1]


@lru_cache(maxsize=None)
def _libcuda():
    lib = ctypes.CDLL("libcuda.so.1")
    lib.cuTensorMapEncodeTiled.restype = ctypes.c_int
    lib.cuFuncSetAttribute.restype = ctypes.c_int
    return lib


_configured = set()


def _function(name: str, smem: int):
    cp = cupy()
    dev = cp.cuda.Device().id
    f = _module(dev)[0].get_function(name)
    if (dev, name) not in _configured and smem > 48 * 1024:
        # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
        rc = _libcuda().cuFuncSetAttribute(ctypes.c_void_p(f.ptr), 8, smem)
        if rc:
            raise RuntimeError(f"cuFuncSetAttribute({name}, max dynamic shared memory {smem}) failed: {rc}")
        _configured.add((dev, name))
    return f


# CUtensorMapDataType: FLOAT16 = 6, BFLOAT16 = 9; swizzle 128B = 3; L2 promotion 256B = 3
_TMA_DTYPE = {"float16": 6, "bfloat16": 9}


@lru_cache(maxsize=256)
def _tensor_map(ptr: int, dtype: str, rows: int, cols: int, box_rows: int, device_id: int):
    """A device copy of the ``CUtensorMap`` of the row-major ``[rows, cols]`` array at ``ptr`` with
    64-column × ``box_rows`` boxes and the 128-byte swizzle. Cached by address and shape: a map
    describes only those, so a new array at the same address and shape is described by it as well."""
    cp = cupy()
    raw = np.zeros(128 + 64, np.uint8)
    off = (-raw.ctypes.data) % 64  # CUtensorMap is 64-byte aligned
    dims = (ctypes.c_uint64 * 2)(cols, rows)
    strides = (ctypes.c_uint64 * 1)(cols * 2)
    box = (ctypes.c_uint32 * 2)(64, box_rows)
    estr = (ctypes.c_uint32 * 2)(1, 1)
    rc = _libcuda().cuTensorMapEncodeTiled(ctypes.c_void_p(raw.ctypes.data + off), _TMA_DTYPE[dtype], 2,
                                           ctypes.c_void_p(ptr), dims, strides, box, estr, 0, 3, 3, 0)
    if rc:
        raise RuntimeError(f"cuTensorMapEncodeTiled failed with CUresult {rc} (rows={rows}, cols={cols}, box_rows={box_rows})")
    with cp.cuda.Device(device_id):
        return cp.asarray(raw[off:off + 128])


@lru_cache(maxsize=None)
def _tickets(device_id: int, stream_ptr: int, size: int):
    """Split-K tickets, zero at rest: the last split of a tile resets its ticket. One array per stream
    (launches on one stream never overlap)."""
    cp = cupy()
    with cp.cuda.Device(device_id):
        return cp.zeros(size, cp.int32)


# ----------------------------------------------------------------------------------------- compression
def _values_nibbles(w, mask):
    """Validated ``w [N, K]`` and mask (default :func:`nmref_gpu.nm_mask`) -> the kept values
    ``[N, K/2]`` (lower position first) and the nibbles ``i0 | i1 << 2`` as uint32 ``[N, K/4]``."""
    cp = cupy()
    w = as_device("w", w, dtypes={"float16", "bfloat16", "float32", "float64"}, ndim=2)
    n, k = w.shape
    if k % 4 or k == 0:
        raise NMRefValueError(f"w has shape {w.shape}; the GEMM 2:4 layout needs cols % 4 == 0 and cols >= 4")
    if mask is None:
        mask = nm_mask(w, 2, 4)
    else:
        mask = as_device("mask", mask, dtypes={"bool"}, ndim=2)
        if mask.shape != w.shape:
            raise NMRefValueError(f"mask has shape {mask.shape}, expected {w.shape}")
        counts = mask.reshape(n, k // 4, 4).sum(axis=-1)
        if n and bool((counts != 2).any()):
            r, g = (int(i) for i in cp.argwhere(counts != 2)[0])
            raise NMRefValueError(f"mask is not exactly 2:4: row {r}, group {g} keeps {int(counts[r, g])} of 4")
    g4 = mask.reshape(n, k // 4, 4)
    i0 = cp.argmax(g4, axis=-1)                   # first kept position
    i1 = 3 - cp.argmax(g4[..., ::-1], axis=-1)    # last kept position
    values = cp.take_along_axis(w.reshape(n, k // 4, 4), cp.stack([i0, i1], axis=-1), axis=-1)
    return cp.ascontiguousarray(values.reshape(n, k // 2)), (i0 | i1 << 2).astype(cp.uint32)


def compress_24_gemm(w, *, mask=None):
    """As :func:`nmref.compress_24_gemm`: ``(values [N, K/2], meta uint32 [Kp/128, 4·Np])`` of a CuPy
    ``W[N, K]`` (``K % 4 == 0``); mask defaults to :func:`nmref_gpu.nm_mask` ``(w, 2, 4)``, a given
    (CuPy bool) mask must be exactly 2:4 along K. Bit-identical to the reference."""
    values, nib = _values_nibbles(w, mask)
    return values, gemm_meta_from_nibbles(nib, cupy())


# ----------------------------------------------------------------------------------------- the GEMM
def _check_operands(x, values, meta):
    cp = cupy()
    values = as_device("values", values, dtypes=_HALF, ndim=2, align=16)
    meta = as_device("meta", meta, dtypes={"uint32"}, ndim=2, align=16)
    x = as_device("x", x, dtypes=_HALF, align=16)
    if x.dtype != values.dtype:
        raise NMRefTypeError(f"x has dtype {x.dtype}, expected the weight's dtype {values.dtype}")
    n, k = values.shape[0], 2 * values.shape[1]
    if k == 0 or k % 4:
        raise NMRefValueError(f"values must be [N, K/2] with K % 4 == 0, got shape {values.shape}")
    np_, kp = gemm_padded_shape(n, k)
    if meta.shape != (kp // 128, 4 * np_):
        raise NMRefValueError(f"meta has shape {meta.shape}; values of shape {values.shape} need {(kp // 128, 4 * np_)}")
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    if x2.ndim != 2 or x2.shape[1] != k:
        raise NMRefValueError(f"x must be [M, {k}] or [{k}] (values imply K = {k}), got shape {x.shape}")
    return cp, x, x2, values, meta, n, k, np_


def gemm_24(x, values, meta, *, out=None, out_dtype="float32", variant=None):
    """``Y = X · (W⊙M)ᵀ`` as :func:`nmref.gemm_24`: ``x[M, K]`` or ``x[K]`` (float16/bfloat16, the dtype
    of ``values``), ``(values, meta)`` from :func:`compress_24_gemm`. Returns ``[M, N]`` (or ``[N]``) of
    ``out_dtype`` (``"float32"``, or the input dtype: rounded once from the float32 sum). ``out``: a
    preallocated C-contiguous result of that shape and dtype. ``variant``: a :class:`GemmConfig` instead
    of the rule (a benchmarking hook), or ``"mma"`` for the portable mma.sp kernel.

    Fast path: ``K % 16 == 0`` (16-byte aligned rows); other ``K`` are zero-padded to a multiple of 16
    first (a copy of ``x`` and ``values``). Any ``M >= 0`` and ``N >= 1``. Deterministic: split-K
    partial sums are added in a fixed order."""
    cp, x, x2, values, meta, n, k, np_ = _check_operands(x, values, meta)
    name = getattr(out_dtype, "name", None) or getattr(out_dtype, "__name__", None) or str(out_dtype)
    if name not in ("float32", values.dtype.name):
        raise NMRefValueError(f"out_dtype must be 'float32' or the input dtype {values.dtype.name!r}, got {out_dtype!r}")
    odt = np.dtype(np.float32) if name == "float32" else values.dtype
    m = x2.shape[0]
    shape = (m, n) if x.ndim == 2 else (n,)
    if out is None:
        out = cp.empty(shape, dtype=odt)
    elif not (isinstance(out, cp.ndarray) and out.dtype == odt and out.shape == shape and out.flags.c_contiguous):
        raise NMRefValueError(f"out must be a C-contiguous {odt.name} cupy array of shape {shape}")
    if m == 0:
        return out
    if k % 16:
        kk = -(-k // 16) * 16
        x2 = cp.pad(x2, ((0, 0), (0, kk - k)))
        values = cp.pad(values, ((0, 0), (0, (kk - k) // 2)))
        k = kk
    tn, on = _TN[values.dtype.name], ("f32" if odt == np.float32 else _TN[values.dtype.name])
    dev = cp.cuda.Device().id
    use_wgmma = _module(dev)[1] and variant != "mma"
    if not use_wgmma:
        if variant not in (None, "mma"):
            raise NMRefValueError(f"variant {variant!r} needs the sm_90a kernels, which this device lacks")
        f = _function(f"gemm24_mma_{tn}_{on}", 3 * (64 * 128 + 64 * 256 + 1024))
        f((-(-n // 64), -(-m // 64)), (128,), (values, x2, meta, out, np.int32(m), np.int32(n), np.int32(k), np.int32(np_)),
          shared_mem=3 * (64 * 128 + 64 * 256 + 1024))
        return out
    if variant is not None and not isinstance(variant, GemmConfig):
        raise NMRefTypeError(f"variant must be None, 'mma' or a nmref_gpu.gemm.GemmConfig, got {variant!r}")
    sms = cp.cuda.Device().attributes["MultiProcessorCount"]
    cfg = gemm_config(m, n, k, sms) if variant is None else variant
    if cfg.splits == 0:
        cfg = cfg.with_splits(split_rule(cfg, m, n, k, sms))
    ktiles = -(-k // 128)
    splits = max(1, min(cfg.splits, ktiles))
    per = -(-ktiles // splits)
    splits = -(-ktiles // per)  # every split gets at least one block of columns
    tiles = -(-n // cfg.bm) * -(-m // cfg.bn)
    tm_w = _tensor_map(values.data.ptr, values.dtype.name, n, k // 2, cfg.bm, dev)
    tm_x = _tensor_map(x2.data.ptr, x2.dtype.name, m, k, cfg.bn, dev)
    if splits > 1:
        ws = cp.empty(tiles * splits * cfg.bm * cfg.bn, dtype=cp.float32)
        tickets = _tickets(dev, cp.cuda.get_current_stream().ptr, max(1024, 1 << (tiles - 1).bit_length()))
    else:
        ws = tickets = cp.empty(0, dtype=cp.int32)
    smem = cfg.smem_bytes()
    f = _function(cfg.kernel(tn, on), smem)
    f((tiles, 1, splits), (128 * (cfg.wg + 1),), (tm_w, tm_x, meta, out, ws, tickets, np.int32(m), np.int32(n),
                                                 np.int32(np_), np.int32(ktiles), np.int32(per)), shared_mem=smem)
    return out


# ----------------------------------------------------------------------------------------- weights
@dataclass
class Sparse24Weight:
    """A compressed 2:4 weight ``W⊙M [N, K]`` for :func:`linear_24`.

    ``values``/``meta``: the GEMM layout (:func:`compress_24_gemm`); ``meta_packed``: the packed GEMV
    metadata (:func:`nmref.compress_24_packed`, the same ``values``; ``None`` when ``K % 32 != 0``);
    ``values_t``/``meta_t``: the GEMM layout of ``(W⊙M)ᵀ`` when the mask is transposable (both ``M``
    and ``Mᵀ`` are 2:4), for :func:`linear_24_input_grad`."""

    values: object
    meta: object
    shape: tuple
    meta_packed: object = None
    values_t: object = None
    meta_t: object = None

    @classmethod
    def from_dense(cls, w, *, mask=None, transposable: bool = False):
        """Compress a CuPy ``w [N, K]`` (float16/bfloat16). ``mask``: a CuPy bool 2:4 mask (default
        :func:`nmref_gpu.nm_mask`); ``transposable=True`` also compresses ``(W⊙M)ᵀ``, which needs a mask
        that is 2:4 along both axes (e.g. :func:`nmref.transposable_nm_mask`)."""
        cp = cupy()
        w = as_device("w", w, dtypes=_HALF, ndim=2)
        if mask is None and transposable:
            raise NMRefValueError("transposable=True needs an explicit mask that is 2:4 along both axes "
                                  "(nmref.transposable_nm_mask)")
        values, nib = _values_nibbles(w, mask)
        meta = gemm_meta_from_nibbles(nib, cp)
        n, k = w.shape
        meta_packed = None
        if k % 32 == 0:  # the packed GEMV metadata of the same values (disjoint bits: sum == OR)
            meta_packed = (nib.reshape(n, k // 32, 8) << (4 * cp.arange(8, dtype=cp.uint32))).sum(axis=-1, dtype=cp.uint32)
        values_t = meta_t = None
        if transposable:
            if n % 4:
                raise NMRefValueError(f"w has {n} rows; a transposable 2:4 weight needs rows % 4 == 0")
            # pruned entries are never read, so W itself (not W⊙M) is compressed under Mᵀ; the transpose is a
            # copy of 16-bit patterns (CuPy has no bfloat16 arithmetic kernels)
            w_t = w.view(cp.uint16).T.copy().view(w.dtype)
            values_t, meta_t = compress_24_gemm(w_t, mask=cp.ascontiguousarray(mask.T))
        return cls(values, meta, (n, k), meta_packed, values_t, meta_t)


#: Batches up to this size run the GEMV kernels in :func:`linear_24`, larger ones :func:`gemm_24`. On the
#: H200 (docs/benchmarks.md) gemm_24 was 1.05-1.19x faster than gemv_24_packed at 16 rows on all 12
#: shape/dtype rows; at batch 1-4 the GEMV reads the weight at 70-79% of bandwidth, against 49-80% for
#: gemm_24 at 16 rows. Batch 5-15 was not timed: the boundary lies between the two measurements.
GEMV_MAX_BATCH = 8


def linear_24(x, weight: Sparse24Weight, *, out=None):
    """``y = x · (W⊙M)ᵀ`` (float32) for ``x[..., K]`` (float16/bfloat16): :func:`nmref_gpu.gemv_24_packed`
    for 1 to :data:`GEMV_MAX_BATCH` rows (when ``K % 32 == 0``), :func:`gemm_24` otherwise."""
    from .gemv import gemv_24_packed
    if not isinstance(weight, Sparse24Weight):
        raise NMRefTypeError(f"weight must be a nmref_gpu.Sparse24Weight, got {type(weight).__name__}")
    cp = cupy()
    x = as_device("x", x, dtypes=_HALF, align=16)
    n, k = weight.shape
    if x.ndim < 1 or x.shape[-1] != k:
        raise NMRefValueError(f"x must be [..., {k}], got shape {x.shape}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    if out is not None and (not isinstance(out, cp.ndarray) or out.shape != lead + (n,)):
        raise NMRefValueError(f"out must be a cupy array of shape {lead + (n,)}")
    o2 = None if out is None else out.reshape(m, n)
    if 1 <= m <= GEMV_MAX_BATCH and weight.meta_packed is not None:
        y = gemv_24_packed(x2, weight.values, weight.meta_packed, out=o2)
    else:
        y = gemm_24(x2, weight.values, weight.meta, out=o2)
    return y.reshape(lead + (n,))


def linear_24_input_grad(dy, weight: Sparse24Weight, *, out=None, out_dtype="float32"):
    """``dX = dY · (W⊙M)`` for ``dy[M, N]``, on the sparse tensor cores through the compressed
    ``(W⊙M)ᵀ`` (``weight`` built with ``transposable=True``)."""
    if not isinstance(weight, Sparse24Weight) or weight.values_t is None:
        raise NMRefValueError("weight must be a Sparse24Weight built with transposable=True")
    return gemm_24(dy, weight.values_t, weight.meta_t, out=out, out_dtype=out_dtype)
