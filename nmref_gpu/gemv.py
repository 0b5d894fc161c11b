"""GPU GEMV / skinny GEMM for decoding (kernels: gemv.cu), float32 accumulation and output.

* :func:`gemv` — dense ``y = x Wᵀ`` (W row-major), batch 1..16;
* :func:`gemv_24_packed` — ``y = x (W⊙M)ᵀ`` from nmref's packed 2:4 layout, batch 1..16;
* :func:`gemv_input_sparse` — TEAL ``y = (x ⊙ 1[|x| > t]) Wᵀ`` with W column-major (batch 1), as
  :func:`nmref.gemv_input_sparse`;
* :func:`gemv_input_sparse_batched` — TEAL for batch 1..16 with one mask shared by the batch, as
  :func:`nmref.gemv_input_sparse_batched`;
* :func:`gemv_input_sparse_24_packed_t` — TEAL on a 2:4 weight in the transposed packed layout, as
  :func:`nmref.gemv_input_sparse_24_packed_t` (batch 1).

Which kernel runs is decided by the rules in :mod:`nmref_gpu.kernels`; ``variant=`` overrides it with a
configuration object (a benchmarking hook; results differ from the default's only by float32 rounding).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from nmref._checks import NMRefTypeError, NMRefValueError, check_bool, check_real_scalar
from . import kernels
from ._launch import launch
from ._module import as_device, blocks, ctype, cupy, module
from .kernels import MmaConfig, TealConfig

_HALF = {"float16", "bfloat16"}


def _mod():
    return module("gemv", (), kernels.instances("gemv"))


@lru_cache(maxsize=None)
def _extra(name: str):
    return module("gemv", (), (name,))


def _function(name: str):
    """The compiled kernel ``name``: from the shipped set, or (a ``variant=`` outside it) compiled alone."""
    return _mod().get_function(name) if name in kernels.instances("gemv") else _extra(name).get_function(name)


def _check_variant(variant, cls):
    if variant is not None and not isinstance(variant, cls):
        raise NMRefTypeError(f"variant must be None or a nmref_gpu.kernels.{cls.__name__}, got {variant!r}")


def _x(x, in_features, dtype):
    x = as_device("x", x, dtypes=_HALF, align=16)
    if x.dtype != dtype:
        raise NMRefValueError(f"x has dtype {x.dtype}, expected the weight's dtype {dtype}")
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    if x2.ndim != 2 or x2.shape[1] != in_features:
        raise NMRefValueError(f"x must be [in] or [batch, in] with in = {in_features}, got {x.shape}")
    if not 1 <= x2.shape[0] <= 16:
        raise NMRefValueError(f"batch must be 1..16, got {x2.shape[0]}")
    return x, x2


def _out(out, shape):
    cp = cupy()
    if out is None:
        return cp.empty(shape, dtype=cp.float32)
    if not isinstance(out, cp.ndarray) or out.dtype != cp.float32 or out.shape != shape or not out.flags.c_contiguous:
        raise NMRefValueError(f"out must be a C-contiguous float32 cupy array of shape {shape}")
    return out


def _launch_mma(kind, dtype, batch, out_f, args, variant):
    _check_variant(variant, MmaConfig)
    cfg = kernels.gemv_config(kind, out_f, batch) if variant is None else variant
    k = _function(cfg.kernel(ctype(dtype), 1 if batch <= 8 else 2, kind == "24"))
    launch(k, (blocks(out_f, 16),), (32 * cfg.warps,), args)


def gemv(x, w, *, out=None, variant=None):
    """Dense ``y = x Wᵀ``: ``W[out, in]`` fp16/bf16 row-major (``in % 8 == 0``), ``x[in]`` or ``[batch≤16, in]``
    of the same dtype; returns float32 ``[out]`` or ``[batch, out]``. ``out``: optional preallocated
    float32 result (``[batch, out]``). ``variant``: a :class:`nmref_gpu.kernels.MmaConfig` instead of the
    rule's choice (benchmarking hook).

    Numerics: products of two halves are exact in float32; each block of 64 columns (with two chains,
    each 32) is summed inside the tensor core (aligned to the largest term, truncated), and those partial
    sums are added in IEEE float32 in a fixed order per configuration — measured relative error 1–4e-7
    against float64 (docs/gpu.md)."""
    w = as_device("w", w, dtypes=_HALF, ndim=2, align=16)
    out_f, in_f = w.shape
    if in_f % 8:
        raise NMRefValueError(f"w.shape[1] = {in_f} must be divisible by 8 (16-byte loads)")
    x, x2 = _x(x, in_f, w.dtype)
    y = _out(out, (x2.shape[0], out_f))
    _launch_mma("dense", w.dtype, x2.shape[0], out_f,
                (w, w, x2, y, np.int32(out_f), np.int32(in_f), np.int32(x2.shape[0])), variant)
    return y.reshape(x.shape[:-1] + (out_f,))


def gemv_24_packed(x, values, meta, *, out=None, variant=None):
    """``y = x (W⊙M)ᵀ`` with ``(values [out, in/2], meta [out, in/32])`` from :func:`nmref.compress_24_packed`
    (on the device; ``in % 32 == 0``). Shapes, ``out``, ``variant`` and numerics as :func:`gemv`; the
    weight is read compressed (0.5625 of the dense bytes) and expanded to dense tensor-core fragments in
    registers."""
    values = as_device("values", values, dtypes=_HALF, ndim=2, align=16)
    meta = as_device("meta", meta, dtypes={"uint32"}, ndim=2)
    out_f, in_f = values.shape[0], 2 * values.shape[1]
    if in_f % 32 or meta.shape != (out_f, in_f // 32):
        raise NMRefValueError(f"meta has shape {meta.shape}, expected {(out_f, in_f // 32)} (dense in = {in_f}, a multiple of 32)")
    x, x2 = _x(x, in_f, values.dtype)
    y = _out(out, (x2.shape[0], out_f))
    _launch_mma("24", values.dtype, x2.shape[0], out_f,
                (values, meta, x2, y, np.int32(out_f), np.int32(in_f), np.int32(x2.shape[0])), variant)
    return y.reshape(x.shape[:-1] + (out_f,))


# ------------------------------------------------------------------------------------------------ TEAL
#: TEAL block kernels' ways of combining the input chunks' partial sums (gemv.cu, TealRed)
_ATOMIC, _ORDERED = 0, 1
#: per (device, stream, tiles, chunks, batch, out): the deterministic reduction's ticket counters (uint64
#: per tile, only growing, so never reset) and the chunks' float32 partial sums [chunks * batch * out].
#: Kept for the process's life, so a call captured in a CUDA graph keeps valid pointers; calls on one
#: stream run in order, so they may share them.
_TEAL_STATE: dict = {}


def _teal_state(ntiles, nsplit, batch, out_f):
    cp = cupy()
    key = (cp.cuda.Device().id, cp.cuda.get_current_stream().ptr, ntiles, nsplit, batch, out_f)
    if key not in _TEAL_STATE:
        _TEAL_STATE[key] = (cp.zeros(ntiles, dtype=cp.uint64), cp.empty(nsplit * batch * out_f, dtype=cp.float32))
    return _TEAL_STATE[key]


def _teal_launch(name, grid, args, batch, out_f, y, accumulate, deterministic):
    """Launch TEAL block kernel ``name(red)`` over ``grid = (output tiles, input chunks)``: partial sums
    combined in chunk order (``deterministic``) or by float32 atomics into ``y`` (zero-filled first
    unless ``accumulate``)."""
    if deterministic:
        tick, ws = _teal_state(grid[0], grid[1], batch, out_f)
    else:
        tick, ws = y, y  # unused by the atomic kernels
        if not accumulate:  # a fresh result starts from zero: one fill launch that keeps the PDL protocol
            launch(_mod().get_function("teal_zero"), (min(blocks(y.size, 256), 1024),), (256,), (y, np.int32(y.size)))
    launch(_function(name(_ORDERED if deterministic else _ATOMIC)), grid, (256,),
           args + (ws, tick, np.int32(accumulate)))


def _teal_options(out, shape, accumulate, deterministic):
    accumulate = check_bool("accumulate", accumulate)
    deterministic = check_bool("deterministic", deterministic)
    if accumulate and out is None:
        raise NMRefValueError(f"accumulate=True adds into out: pass out (a float32 cupy array {list(shape)})")
    return _out(out, shape), accumulate, deterministic


def _threshold(t):
    return check_real_scalar("t (threshold)", t)  # ±Inf allowed (keep everything / nothing), NaN rejected


def _teal_w(w):
    cp = cupy()
    if not isinstance(w, cp.ndarray) or w.ndim != 2 or not w.flags.f_contiguous:
        raise NMRefValueError("w must be a 2-D column-major cupy array [out, in] (cupy.asfortranarray(W))")
    as_device("w", w, dtypes=_HALF, contiguous=False, align=16)
    if w.shape[0] % 8:
        raise NMRefValueError(f"w.shape[0] = {w.shape[0]} must be divisible by 8")
    return w


def _teal_dense(x2, w, t, y, batch, accumulate, deterministic, variant):
    _check_variant(variant, TealConfig)
    out_f, in_f = w.shape
    cfg = kernels.TEAL_RULE[kernels.batch_bound(batch)] if variant is None else variant
    bb = kernels.batch_bound(batch)
    _teal_launch(lambda red: cfg.kernel(ctype(w.dtype), bb, red), (blocks(out_f, 256), blocks(in_f, cfg.chunk)),
                 (w.T, x2, np.float64(t), y, np.int32(in_f), np.int32(out_f), np.int32(batch)), batch, out_f, y,
                 accumulate, deterministic)


def gemv_input_sparse(x, w, t: float, *, out=None, accumulate: bool = False, deterministic: bool = False,
                      variant=None):
    """TEAL: ``y = (x ⊙ 1[|x| > t]) Wᵀ`` for one token ``x[in]``; ``w`` is ``[out, in]`` stored
    **column-major** (``cupy.asfortranarray(W)``, or ``Wt.T`` for a row-major ``Wt[in, out]``), so a
    dropped input skips one contiguous row of ``Wᵀ``; ``out % 8 == 0``; returns float32 ``[out]``.
    The comparison ``|x| > t`` is exact (float64) and a NaN input is kept (every output becomes NaN),
    as in :func:`nmref.gemv_input_sparse`. ``accumulate=True``: ``out += …`` (BLAS ``beta = 1``;
    e.g. the residual add after a decoder layer's output projection) — also saves the zero-fill launch
    that a fresh result needs.

    Summation: each block (256 outputs × a chunk of 256 input rows) sums its kept rows in a fixed order;
    the chunks' partial sums ``s_j`` are added into ``out`` by float32 atomics by default, so the order,
    and the last bits, vary between runs. ``deterministic=True``: ``out = (out +) ((s_0 + s_1) + … +
    s_{n-1})`` in chunk order, bitwise reproducible. It keeps a workspace and counters per (device,
    stream, shape) for the process's life; calls on one stream run in order and share them safely, and
    a captured CUDA graph replays correctly — but do not replay one graph on two streams at once.
    ``variant``: a :class:`nmref_gpu.kernels.TealConfig` (benchmarking hook)."""
    w = _teal_w(w)
    x = as_device("x", x, dtypes=_HALF)
    if x.ndim != 1 or x.shape[0] != w.shape[1] or x.dtype != w.dtype:
        raise NMRefValueError(f"x must be [{w.shape[1]}] of dtype {w.dtype}, got {x.shape} {x.dtype} "
                              "(a batch with one shared mask: gemv_input_sparse_batched)")
    y, accumulate, deterministic = _teal_options(out, (w.shape[0],), accumulate, deterministic)
    _teal_dense(x.reshape(1, -1), w, _threshold(t), y, 1, accumulate, deterministic, variant)
    return y


def gemv_input_sparse_batched(x, w, t: float, *, out=None, accumulate: bool = False, deterministic: bool = False,
                              variant=None):
    """TEAL for a batch with one shared mask, as :func:`nmref.gemv_input_sparse_batched`:
    ``y = (x ⊙ s) Wᵀ`` with ``s_j = 1[mean_b |x_bj| > t]`` (mean in float64, as
    :func:`nmref.sparsify_batched`), ``x[batch ≤ 16, in]`` (or ``x[in]``: batch 1), ``w`` column-major as
    :func:`gemv_input_sparse`; returns float32 ``[batch, out]`` (``[out]`` for 1-D ``x``). Every kept row
    of ``Wᵀ`` is read once for the whole batch. ``out``, ``accumulate``, ``deterministic``, ``variant``
    and summation as :func:`gemv_input_sparse`."""
    w = _teal_w(w)
    x = as_device("x", x, dtypes=_HALF)
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    if x2.ndim != 2 or x2.shape[1] != w.shape[1] or x.dtype != w.dtype:
        raise NMRefValueError(f"x must be [in] or [batch, in] with in = {w.shape[1]} and dtype {w.dtype}, "
                              f"got {x.shape} {x.dtype}")
    if not 1 <= x2.shape[0] <= 16:
        raise NMRefValueError(f"batch must be 1..16, got {x2.shape[0]}")
    batch = x2.shape[0]
    y, accumulate, deterministic = _teal_options(out, x.shape[:-1] + (w.shape[0],), accumulate, deterministic)
    _teal_dense(x2, w, _threshold(t), y, batch, accumulate, deterministic, variant)
    return y


def gemv_input_sparse_24_packed_t(x, values_t, meta_t, t: float, *, out=None, accumulate: bool = False,
                                  deterministic: bool = False, variant=None):
    """TEAL on a 2:4 weight: ``y = (x ⊙ 1[|x| > t]) (W⊙M)ᵀ`` from ``(values_t [in/2, out], meta_t
    [in/4, out/8])`` of :func:`nmref.compress_24_packed_t` (on the device); ``x[in]`` (8-byte aligned: a
    group's 4 inputs are one load), ``out % 8 == 0``.
    A group of 4 inputs is skipped when all four are dropped, and each of its two value slots when the
    inputs it can hold are (see :func:`nmref.gemv_input_sparse_24_packed_t`). ``meta_t`` must be a valid
    layout (nibbles ``i0 < i1``; not checked on the device). ``out``, ``accumulate``, ``deterministic``
    and summation as :func:`gemv_input_sparse`; ``variant``: a :class:`nmref_gpu.kernels.TealConfig`
    (only ``loads`` applies)."""
    values_t = as_device("values_t", values_t, dtypes=_HALF, ndim=2, align=16)
    meta_t = as_device("meta_t", meta_t, dtypes={"uint32"}, ndim=2)
    half, out_f = values_t.shape
    in_f = 2 * half
    if half % 2 or out_f % 8 or meta_t.shape != (in_f // 4, out_f // 8):
        raise NMRefValueError(f"values_t {values_t.shape} and meta_t {meta_t.shape} are not a transposed packed "
                              f"2:4 layout: expected [in/2, out] and [in/4, out/8] with in % 4 == 0, out % 8 == 0")
    x = as_device("x", x, dtypes=_HALF, ndim=1, align=8)  # a group's 4 inputs are one 8-byte load
    if x.shape[0] != in_f or x.dtype != values_t.dtype:
        raise NMRefValueError(f"x must be [{in_f}] of dtype {values_t.dtype}, got {x.shape} {x.dtype}")
    _check_variant(variant, TealConfig)
    cfg = kernels.TEAL24_RULE if variant is None else variant
    t = _threshold(t)
    # The kernel compares in float32: t rounded toward −∞, so that ¬(|x| ≤ t32) equals the float64
    # ¬(|x| ≤ t) for every float32-representable |x| (all fp16/bf16 values, NaN kept by both); rounding
    # to nearest would keep an x lying between t and t32 < t.
    with np.errstate(over="ignore"):
        t32 = np.float32(t)
    if float(t32) > t:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    y, accumulate, deterministic = _teal_options(out, (out_f,), accumulate, deterministic)
    _teal_launch(lambda red: cfg.kernel24(ctype(values_t.dtype), red), (blocks(out_f, 256), blocks(in_f // 4, 64)),
                 (values_t, meta_t, x, t32, y, np.int32(in_f), np.int32(out_f)), 1, out_f, y, accumulate,
                 deterministic)
    return y
