"""GPU GEMV / skinny GEMM for decoding (kernels: gemv.cu), float32 accumulation and output.

* :func:`gemv` — dense ``y = x Wᵀ`` (W row-major), the baseline of our own;
* :func:`gemv_24_packed` — ``y = x (W⊙M)ᵀ`` from nmref's packed 2:4 layout;
* :func:`gemv_24_mma` — the same on sparse tensor cores (``mma.sp``), from :func:`nmref.compress_24_mma`;
* :func:`gemv_input_sparse` — TEAL ``y = (x ⊙ 1[|x| > t]) Wᵀ`` with W column-major, as
  :func:`nmref.gemv_input_sparse` (batch 1);
* :func:`gemv_input_sparse_24_packed_t` — TEAL on a 2:4 weight in the transposed packed layout, as
  :func:`nmref.gemv_input_sparse_24_packed_t` (batch 1).
"""
from __future__ import annotations

import numpy as np

from nmref._checks import NMRefValueError, check_real_scalar
from ._launch import launch
from ._module import as_device, blocks, ctype, cupy, module

_HALF = {"float16", "bfloat16"}
_BATCH = (1, 2, 4, 8, 16)
_TYPES = ("__half", "__nv_bfloat16")
#: kernel variants: "warp" = one warp per row (first version); (R, U) = R rows per warp, U loads per row in flight
_ROWS = ((1, 4), (2, 2), (4, 1))
#: tensor-core variants (tag, KW, D): KW warps splitting K per 16-row block, D super-steps of 64 columns in
#: flight per warp (1 = load then compute, 2 = software-pipelined, 3 = two steps ahead); the tag names
#: gemv_mma's load policy PF, accumulator chains C and load form PRED: "mma" plain loads; "mma+pf" each
#: weight load prefetching its 256-byte block into L2 and bypassing L1, x kept in L1 (evict_last);
#: "mma+pf+2c" that with two accumulator chains per batch tile, so that consecutive mma instructions are
#: independent; "+pred": the loads written as predicated PTX instructions instead of branches around
#: them, which ptxas schedules earlier (ahead of part of the previous step's mma). The first three tags
#: come on every one of _MMA_SHAPES, the "+pred" ones on the shapes in _PRED.
_MMA_SHAPES = ((4, 2), (8, 1), (8, 2), (16, 1), (16, 2))
_MMA_TAGS = {"mma": ("false", 1, "false"), "mma+pf": ("true", 1, "false"), "mma+pf+2c": ("true", 2, "false"),
             "mma+pred": ("false", 1, "true"), "mma+pf+pred": ("true", 1, "true"),
             "mma+pf+2c+pred": ("true", 2, "true")}
_PRED = (("mma+pred", 4, 3), ("mma+pred", 8, 2), ("mma+pred", 8, 3), ("mma+pred", 16, 3),
         ("mma+pf+pred", 4, 2), ("mma+pf+pred", 8, 2),
         ("mma+pf+2c+pred", 4, 1), ("mma+pf+2c+pred", 4, 2), ("mma+pf+2c+pred", 16, 1))
_MMA = tuple((tag, kw, d) for tag, (_, _, pred) in _MMA_TAGS.items() if pred == "false" for kw, d in _MMA_SHAPES) + _PRED


def _mma_name(t: str, nt: int, sp: str, variant) -> str:
    """The gemv_mma instantiation of tensor-core ``variant`` = (tag, KW, D) for element type ``t``,
    ``nt`` 8-wide batch tiles and ``sp`` ("true": 2:4 packed weight)."""
    tag, kw, d = variant
    pf, c, pred = _MMA_TAGS[tag]
    return f"gemv_mma<{t},{nt},{sp},{kw},{d},{pf},{c},{pred}>"


_NAMES = tuple(f"{k}<{t},{b}>" for k in ("gemv_dense", "gemv_24") for t in _TYPES for b in _BATCH) + \
    tuple(f"{k}<{t},{b},{r},{u}>" for k in ("gemv_dense_rows", "gemv_24_rows") for t in _TYPES for b in _BATCH
          for r, u in _ROWS) + \
    tuple(f"gemv_teal<{t}>" for t in _TYPES) + tuple(f"gemv_teal24_blk<{t},{u},{r}>" for t in _TYPES for u in (4, 8) for r in range(2)) + \
    tuple(f"gemv_teal_blk<{t},{ch},{r}>" for t in _TYPES for ch in (256, 512) for r in range(2)) + ("teal_zero",) + \
    tuple(_mma_name(t, nt, sp, v) for t in _TYPES for nt in (1, 2) for sp in ("false", "true") for v in _MMA)
#: gemv_24_mma variants: (warps splitting K, super-steps in flight, ::ordered_metadata form)
_SP_VARIANTS = ((16, 2, False), (16, 2, True))
_NAMES += tuple(f"gemv_mma_sp<{t},{nt},{kw},{d},{str(om).lower()}>" for t in _TYPES for nt in (1, 2)
                for kw, d, om in _SP_VARIANTS)


def default_variant(kind: str, out_features: int, batch: int):
    """The variant a call without ``variant=`` uses (``kind``: ``"gemv_dense"`` or ``"gemv_24"``).

    A rule on the number of 16-row blocks ``ceil(out/16)`` (the grid), fitted to two H100 runs of session
    11 recorded in docs/benchmarks.md (five LLaMA projection shapes, batch 1/4/16, every variant timed
    side by side): on all 30 rows of both runs the rule's choice is within 1.7% of the fastest of the 24
    tensor-core variants. More blocks need fewer warps per block splitting K. 2:4 weights use the
    L2-prefetching loads ("mma+pf": 0-10% less time than the plain loads for them) and mostly two
    accumulator chains ("+2c"; with 16 warps per block only on grids of at most 264 = 2 x 132 blocks,
    since their 48 registers per thread leave room for 2 such blocks per SM, not 3); on the grids of
    600+ blocks and at batch 16 on mid-size grids, predicated loads ("+pred"; the rule before them took
    1.00-1.05x the time there). Dense weights use predicated loads with 2-3 super-steps in flight except
    at batch 16 on grids of more than 264 blocks, where the plain "mma" variants are as fast (the rule
    before them took 1.00-1.06x the time of this one)."""
    blocks16 = -(-int(out_features) // 16)
    if kind == "gemv_24":
        if blocks16 >= 600:
            if batch > 8 or blocks16 >= 800:
                return ("mma+pf+2c+pred", 4, 1)
            return ("mma+pf+2c", 8, 2)
        if blocks16 <= 264:
            return ("mma+pf+2c", 16, 1)
        return ("mma+pf+pred", 8, 2) if batch > 8 else ("mma+pf", 16, 1)
    if blocks16 <= 264:
        return ("mma+pred", 8, 3)
    if batch > 8:
        return ("mma", 4, 2) if blocks16 >= 800 else ("mma", 8, 2)
    return ("mma+pred", 4, 3) if blocks16 >= 800 else ("mma+pred", 8, 2)


_WARPS = 4


def _mod():
    return module("gemv", (), _NAMES)


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


def _teal_x_t(x, t, in_f, dtype, align=None):
    """The TEAL kernels' activation ``x[in]`` (the weight's dtype) and the threshold as the float32 the
    kernels compare with: ``t`` rounded toward −∞, so that ``|x| > t32`` equals nmref's float64
    ``|x| > t`` for every float32-representable ``|x|`` (all fp16/bf16 values); rounding to nearest
    would keep an ``x`` lying between ``t`` and ``t32 < t``."""
    x = as_device("x", x, dtypes=_HALF, ndim=1, align=align)
    if x.shape[0] != in_f or x.dtype != dtype:
        raise NMRefValueError(f"x must be [{in_f}] of dtype {dtype}, got {x.shape} {x.dtype}")
    t = check_real_scalar("t (threshold)", t)
    with np.errstate(over="ignore"):
        t32 = np.float32(t)
    if float(t32) > t:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return x, t32


def _bmax(batch):
    return next(b for b in _BATCH if b >= batch)


def _out(out, shape):
    cp = cupy()
    if out is None:
        return cp.empty(shape, dtype=cp.float32)
    if not isinstance(out, cp.ndarray) or out.dtype != cp.float32 or out.shape != shape or not out.flags.c_contiguous:
        raise NMRefValueError(f"out must be a C-contiguous float32 cupy array of shape {shape}")
    return out


def _launch(kind, dtype, batch, out_f, args, variant):
    v = default_variant(kind, out_f, batch) if variant is None else variant
    if isinstance(v, tuple) and v in _MMA:
        w, meta, rest = (args[0], args[1], args[2:]) if kind == "gemv_24" else (args[0], args[0], args[1:])
        k = _mod().get_function(_mma_name(ctype(dtype), 1 if batch <= 8 else 2,
                                          "true" if kind == "gemv_24" else "false", v))
        launch(k, (blocks(out_f, 16),), (32 * v[1],), (w, meta) + tuple(rest))
        return
    if v == "warp":
        k = _mod().get_function(f"{kind}<{ctype(dtype)},{_bmax(batch)}>")
        k((blocks(out_f, _WARPS),), (32 * _WARPS,), args)
        return
    if v not in _ROWS:
        raise NMRefValueError(f"variant must be 'warp' or one of {_ROWS + _MMA}, got {v!r}")
    r, u = v
    k = _mod().get_function(f"{kind}_rows<{ctype(dtype)},{_bmax(batch)},{r},{u}>")
    k((blocks(blocks(out_f, r), _WARPS),), (32 * _WARPS,), args)


def gemv(x, w, *, out=None, variant=None):
    """Dense ``y = x Wᵀ``: ``W[out, in]`` fp16/bf16 row-major (``in % 8 == 0``), ``x[in]`` or ``[batch≤16, in]``.
    ``out``: optional preallocated float32 result (``[batch, out]``). ``variant``: the kernel, for
    benchmarks: ``"warp"``, ``(rows per warp, loads in flight)`` (CUDA cores) or ``("mma", KW, D)``
    (tensor cores, mma.sync m16n8k16: 16 rows per block, KW warps splitting K, D super-steps of 64
    columns in flight per warp, 2 = software-pipelined) or ``("mma+pf", KW, D)`` (the same, each
    weight load prefetching its 256-byte block into L2 and bypassing L1; x kept in L1) or
    ``("mma+pf+2c", KW, D)`` (the same with two accumulator chains per batch tile, so consecutive mma
    are independent), or a ``"+pred"`` form of these three (``_PRED``: the loads written as predicated
    PTX instructions, which ptxas schedules earlier; D up to 3); the default is chosen by
    :func:`default_variant` from the shape and batch. All variants multiply
    exactly (products of two halves are exact in float32) and sum in float32; the tensor-core variants
    sum each 64 columns (``+2c``: each 32, columns of k16 steps 0, 2 and 1, 3) inside the mma (aligned to
    the largest term, truncated) and add those partial sums in IEEE float32 — measured relative error
    1–4e-7 vs float64 for both kinds (docs/benchmarks.md)."""
    w = as_device("w", w, dtypes=_HALF, ndim=2, align=16)
    out_f, in_f = w.shape
    if in_f % 8:
        raise NMRefValueError(f"w.shape[1] = {in_f} must be divisible by 8 (16-byte loads)")
    x, x2 = _x(x, in_f, w.dtype)
    y = _out(out, (x2.shape[0], out_f))
    _launch("gemv_dense", w.dtype, x2.shape[0], out_f,
            (w, x2, y, np.int32(out_f), np.int32(in_f), np.int32(x2.shape[0])), variant)
    return y.reshape(x.shape[:-1] + (out_f,))


def gemv_24_packed(x, values, meta, *, out=None, variant=None):
    """``y = x (W⊙M)ᵀ`` with ``(values, meta)`` from :func:`nmref.compress_24_packed` (on the device)."""
    values = as_device("values", values, dtypes=_HALF, ndim=2, align=16)
    meta = as_device("meta", meta, dtypes={"uint32"}, ndim=2)
    out_f, in_f = values.shape[0], 2 * values.shape[1]
    if in_f % 32 or meta.shape != (out_f, in_f // 32):
        raise NMRefValueError(f"meta has shape {meta.shape}, expected {(out_f, in_f // 32)} (dense in = {in_f}, a multiple of 32)")
    x, x2 = _x(x, in_f, values.dtype)
    y = _out(out, (x2.shape[0], out_f))
    _launch("gemv_24", values.dtype, x2.shape[0], out_f,
            (values, meta, x2, y, np.int32(out_f), np.int32(in_f), np.int32(x2.shape[0])), variant)
    return y.reshape(x.shape[:-1] + (out_f,))


#: TEAL block kernels' ways of combining the input chunks' partial sums (gemv.cu, TealRed)
_ATOMIC, _ORDERED = 0, 1
#: per (device, stream, tiles, chunks, out): the deterministic reduction's ticket counters (uint64 per
#: tile, only growing, so never reset) and the chunks' float32 partial sums [chunks * out]. Kept for the
#: process's life, so a call captured in a CUDA graph keeps valid pointers; calls on one stream run in
#: order, so they may share them.
_TEAL_STATE: dict = {}


def _teal_state(ntiles, nsplit, out_f):
    cp = cupy()
    key = (cp.cuda.Device().id, cp.cuda.get_current_stream().ptr, ntiles, nsplit, out_f)
    if key not in _TEAL_STATE:
        _TEAL_STATE[key] = (cp.zeros(ntiles, dtype=cp.uint64), cp.empty(nsplit * out_f, dtype=cp.float32))
    return _TEAL_STATE[key]


def _teal_launch(kernel, targs, grid, args, out_f, y, accumulate, deterministic):
    """Launch TEAL block kernel ``kernel<targs, RED>`` over ``grid = (output tiles, input chunks)``: partial
    sums combined in chunk order (``deterministic``) or by float32 atomics into ``y`` (zero-filled first
    unless ``accumulate``)."""
    if deterministic:
        tick, ws = _teal_state(grid[0], grid[1], out_f)
    else:
        tick, ws = y, y  # unused by the atomic kernels
        _teal_zero_fill(y, accumulate)
    red = _ORDERED if deterministic else _ATOMIC
    launch(_mod().get_function(f"{kernel}<{targs},{red}>"), grid, (256,), args + (ws, tick, np.int32(accumulate)))


def _teal_zero_fill(y, accumulate):
    """Atomic kernels add into ``y``: a fresh result starts from zero (one fill launch, which keeps the
    programmatic-dependent-launch protocol so that the TEAL kernel may be scheduled while it runs)."""
    if not accumulate:
        launch(_mod().get_function("teal_zero"), (min(blocks(y.size, 256), 1024),), (256,), (y, np.int32(y.size)))


def _teal_out(out, out_f, accumulate):
    if accumulate and out is None:
        raise NMRefValueError("accumulate=True adds into out: pass out (a float32 cupy array [out])")
    return _out(out, (out_f,))


def gemv_input_sparse(x, w, t: float, *, out=None, variant: str = "block", accumulate: bool = False,
                      deterministic: bool = False):
    """TEAL: ``y = (x ⊙ 1[|x| > t]) Wᵀ``; ``w`` is ``[out, in]`` stored **column-major**
    (``cupy.asfortranarray(W)``, or ``Wt.T`` for a row-major ``Wt[in, out]``); ``x[in]``; ``out % 8 == 0``.
    ``variant``: ``"block"`` (256 outputs × 256 input rows per block, the default), ``"block512"``
    (× 512 rows) or ``"chunk32"`` (the first version: 32 input rows per block).
    ``accumulate=True``: ``out += (x ⊙ 1[|x| > t]) Wᵀ`` (BLAS ``beta = 1``; e.g. the residual add after
    a decoder layer's output projection) — also saves the zero-fill launch that a fresh result needs.
    Summation: each block sums its input chunk in a fixed order; the chunks' partial sums ``s_j`` are
    added into ``out`` by float32 atomics by default, so the order, and the last bits, vary between
    runs (results agree to float32 rounding). ``deterministic=True`` (``"block"``, ``"block512"``):
    ``out = (out +) ((s_0 + s_1) + … + s_{n-1})`` in chunk order, bitwise reproducible run to run, at
    1.09–1.27× the time (H100, docs/benchmarks.md). It keeps a workspace and counters per (device,
    stream, shape) for the process's life; calls on one stream run in order and share them safely, and
    a captured CUDA graph replays correctly — but keeps the state of the stream it was captured on, so
    do not replay one graph on two streams at once."""
    cp = cupy()
    if not isinstance(w, cp.ndarray) or w.ndim != 2 or not w.flags.f_contiguous:
        raise NMRefValueError("w must be a 2-D column-major cupy array [out, in] (cupy.asfortranarray(W))")
    as_device("w", w, dtypes=_HALF, contiguous=False, align=16)
    out_f, in_f = w.shape
    if out_f % 8:
        raise NMRefValueError(f"w.shape[0] = {out_f} must be divisible by 8")
    x, t = _teal_x_t(x, t, in_f, w.dtype)
    y = _teal_out(out, out_f, accumulate)
    wt = w.T  # C-contiguous [in, out]
    args = (wt, x, t, y, np.int32(in_f), np.int32(out_f))
    if variant in ("block", "block512"):  # 256 outputs × 256 (512) input rows per block
        ch = 512 if variant == "block512" else 256
        _teal_launch("gemv_teal_blk", f"{ctype(w.dtype)},{ch}", (blocks(out_f, 256), blocks(in_f, ch)), args, out_f,
                     y, accumulate, deterministic)
    elif variant == "chunk32":  # first version: 32 input rows per block, 8 atomics per thread
        if deterministic:
            raise NMRefValueError("variant 'chunk32' has no deterministic mode; use 'block' or 'block512'")
        _teal_zero_fill(y, accumulate)
        threads = 128
        _mod().get_function(f"gemv_teal<{ctype(w.dtype)}>")((blocks(out_f // 8, threads), blocks(in_f, 32)), (threads,), args)
    else:
        raise NMRefValueError(f"variant must be 'block', 'block512' or 'chunk32', got {variant!r}")
    return y


def gemv_input_sparse_24_packed_t(x, values_t, meta_t, t: float, *, out=None, variant: int = 4,
                                  accumulate: bool = False, deterministic: bool = False):
    """TEAL on a 2:4 weight: ``y = (x ⊙ 1[|x| > t]) (W⊙M)ᵀ`` from ``(values_t [in/2, out], meta_t
    [in/4, out/8])`` of :func:`nmref.compress_24_packed_t` (on the device); ``x[in]`` (8-byte aligned: a
    group's 4 inputs are one load), ``out % 8 == 0``.
    A group of 4 inputs is skipped when all four are dropped, and each of its two value slots when the
    inputs it can hold are (see :func:`nmref.gemv_input_sparse_24_packed_t`). ``meta_t`` must be a valid
    layout (nibbles ``i0 < i1``; not checked on the device). ``variant``: groups per lane in flight (4 or 8).
    ``accumulate=True``: ``out +=`` the product; summation (float32 atomics, or chunk order with
    ``deterministic=True``, here at 1.10–1.25× the time on the H100) as :func:`gemv_input_sparse`."""
    values_t = as_device("values_t", values_t, dtypes=_HALF, ndim=2, align=16)
    meta_t = as_device("meta_t", meta_t, dtypes={"uint32"}, ndim=2)
    half, out_f = values_t.shape
    in_f = 2 * half
    if half % 2 or out_f % 8 or meta_t.shape != (in_f // 4, out_f // 8):
        raise NMRefValueError(f"values_t {values_t.shape} and meta_t {meta_t.shape} are not a transposed packed "
                              f"2:4 layout: expected [in/2, out] and [in/4, out/8] with in % 4 == 0, out % 8 == 0")
    x, t = _teal_x_t(x, t, in_f, values_t.dtype, align=8)  # a group's 4 inputs are one 8-byte load
    if variant not in (4, 8):
        raise NMRefValueError(f"variant must be 4 or 8 (groups in flight per lane), got {variant!r}")
    y = _teal_out(out, out_f, accumulate)
    _teal_launch("gemv_teal24_blk", f"{ctype(values_t.dtype)},{variant}", (blocks(out_f, 256), blocks(in_f // 4, 64)),
                 (values_t, meta_t, x, t, y, np.int32(in_f), np.int32(out_f)), out_f, y, accumulate,
                 deterministic)
    return y


#: default (warps splitting K, super-steps in flight) of :func:`gemv_24_mma` per batch bound
DEFAULT_SP_VARIANT = {b: (16, 2, False) for b in _BATCH}


def gemv_24_mma(x, values, meta_mma, *, out=None, variant=None):
    """``y = x (W⊙M)ᵀ`` on sparse tensor cores (``mma.sp.m16n8k32``, fp32 accumulate) from
    ``(values, meta_mma)`` of :func:`nmref.compress_24_mma` (on the device); ``in % 64 == 0``, batch
    1..16. ``variant``: ``(KW, D, OM)`` — warps splitting K per 16-row block, super-steps of 64 columns
    in flight per warp (2 = software-pipelined), ``mma.sp::ordered_metadata`` instead of ``mma.sp``.
    Summation as the ``("mma", KW, D)`` variants of :func:`gemv`: 64 columns inside the tensor core, then
    IEEE float32. On an H100 this kernel measured 1.3–2.1× slower than :func:`gemv_24_packed`'s register
    expansion onto dense ``mma.sync`` (docs/benchmarks.md), which stays the default 2:4 path."""
    values = as_device("values", values, dtypes=_HALF, ndim=2, align=16)
    meta_mma = as_device("meta_mma", meta_mma, dtypes={"uint32"}, ndim=2, align=8)
    out_f, in_f = values.shape[0], 2 * values.shape[1]
    if in_f % 64 or meta_mma.shape != (-(-out_f // 16), in_f // 2):
        raise NMRefValueError(f"meta_mma has shape {meta_mma.shape}, expected {(-(-out_f // 16), in_f // 2)} "
                              f"(dense in = {in_f}, a multiple of 64)")
    x, x2 = _x(x, in_f, values.dtype)
    batch = x2.shape[0]
    v = DEFAULT_SP_VARIANT[_bmax(batch)] if variant is None else variant
    if v not in _SP_VARIANTS:
        raise NMRefValueError(f"variant must be one of {_SP_VARIANTS}, got {v!r}")
    kw, d, om = v
    y = _out(out, (batch, out_f))
    k = _mod().get_function(f"gemv_mma_sp<{ctype(values.dtype)},{1 if batch <= 8 else 2},{kw},{d},{str(om).lower()}>")
    k((blocks(out_f, 16),), (32 * kw,), (values, meta_mma, x2, y, np.int32(out_f), np.int32(in_f), np.int32(batch)))
    return y.reshape(x.shape[:-1] + (out_f,))
