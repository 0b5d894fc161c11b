"""The registry of operations the conformance kit and the golden sets cover: :data:`OPS`.

Each entry (an :class:`~nmref.testing.spec.OpSpec`) names the nmref function, how a foreign
implementation is called (the adapter contract), an adversarial input strategy, the compare rule
and the fixed golden cases. Grouped as the documentation is: masks, formats, compression ratios,
STE, optimizers, SparseGPT and weight scaling, SLoRB, activation sparsity, distillation.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .._checks import tokens_2d
from .. import activation as A
from .. import compress as C
from .. import distill as D
from .. import masks as M
from .. import optim as O
from .. import quant as Q
from .. import ste as S
from ..slorb import (slorb_backward, slorb_effective_weight, slorb_forward, slorb_init, slorb_parameter_overhead,
                     slorb_projection)
from ..sparsegpt import hessian_from_inputs, sparsegpt_prune
from ..weight_scaling import soft_threshold_nm, weight_scale
from . import strategies as hs
from .spec import OpSpec

__all__ = ["OPS", "REFERENCE", "op_names", "get_op", "reference", "teal_block"]

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
BF16 = hs.dtype_of("bfloat16")
HALF = ("float16", "bfloat16")


def _dt(name):
    """``tol`` helper: the arithmetic's dtype is that of input ``name``."""
    return lambda inp: inp[name].dtype.name


def _f64(inp):
    return "float64"


def _promoted(*names):
    """float64 if any named input is float64, else float32 (the GEMV accumulation rule)."""
    return lambda inp: "float64" if any(inp[n].dtype == F64 for n in names) else "float32"


# ------------------------------------------------------------------ golden input helpers (fixed seed)
def _ties(rng, shape, dtype=F32):
    """Small integers with repeats and zeros of both signs: every tie rule is exercised."""
    w = rng.integers(-3, 4, size=shape).astype(np.float32)
    w[rng.random(shape) < 0.1] = -0.0
    return w.astype(hs.dtype_of(dtype))


def _normal(rng, shape, dtype=F32):
    return rng.standard_normal(shape).astype(hs.dtype_of(dtype))


def _pruned24(rng, shape, dtype):
    """2:4-sparse ties (the compressors' input), with groups holding fewer than 2 nonzeros."""
    return hs.pruned(_ties(rng, shape, dtype))


def _mask(rng, shape, n=2, m=4, axis=-1):
    return M.nm_mask(rng.standard_normal(shape), n, m, axis=axis)


EDGE_W = np.array([[np.inf, 1, -np.inf, 0], [0, -0.0, 0, 0], [5, 5, 5, 5], [-1, 1, -1, 1], [1e-45, 0, -1e-45, 0],
                   [3, -7, 7, -3]], np.float32)

# ------------------------------------------------------------------ masks
@st.composite
def _nm_mask_in(draw):
    w, n, m, axis = draw(hs.nm_arrays())
    inp = {"w": w, "n": n, "m": m, "axis": axis}
    if draw(st.integers(0, 3)) == 3:  # explicit scores (shrinks towards none): integers or floats, ties and ±Inf
        sdt = draw(st.sampled_from(["int8", "int64", "float32", "float64"]))
        if sdt.startswith("int"):
            inp["scores"] = draw(hnp.arrays(sdt, w.shape, elements=st.integers(-3, 3)))
        else:
            inp["scores"] = draw(hs.float_arrays(w.shape, sdt))
    return inp


def _nm_golden():
    cases = [(f"{n}_{m}" + ("_axis0" if ax == 0 else ""), (lambda r, n=n, m=m, s=s, ax=ax:
              {"w": _ties(r, s), "n": n, "m": m, "axis": ax}))
             for n, m, s, ax in ((2, 4, (8, 16), -1), (1, 4, (4, 16), -1), (4, 8, (4, 32), -1), (3, 8, (16, 6), 0))]
    cases += [(f"2_4_{dt}", lambda r, dt=dt: {"w": _ties(r, (8, 16), dt), "n": 2, "m": 4}) for dt in ("float16", "bfloat16", "float64")]
    cases += [("2_4_edge", lambda r: {"w": EDGE_W.copy(), "n": 2, "m": 4}),
              ("2_4_scores", lambda r: {"w": _ties(r, (4, 16)), "n": 2, "m": 4,
                                        "scores": r.integers(-2, 3, (4, 16)).astype(np.int64)})]
    return tuple(cases)


@st.composite
def _is_nm_sparse_in(draw):
    w, n, m, axis = draw(hs.nm_arrays(infinity=True))
    if draw(st.booleans()):
        w = np.where(M.nm_mask(w, n, m, axis=axis), w, np.zeros((), w.dtype))
    return {"w": w, "n": n, "m": m, "axis": axis}


@st.composite
def _wanda_in(draw):
    out, inn, tok = draw(st.integers(0, 4)), draw(st.integers(0, 8)), draw(st.integers(1, 4))
    dt = draw(hs.float_dtypes())
    return {"w": draw(hs.float_arrays((out, inn), dt)),
            "x": draw(hs.float_arrays((tok, inn), dt, magnitude=1e4))}


@st.composite
def _transposable_in(draw):
    lead = draw(st.lists(st.integers(1, 2), max_size=1))
    shape = tuple(lead) + (4 * draw(st.integers(1, 2)), 4 * draw(st.integers(1, 2)))
    return {"w": draw(hs.float_arrays(shape))}


@st.composite
def _two_masks_in(draw, names=("mask_new", "mask_old")):
    shape = draw(hs.shapes(min_side=1))
    return {k: draw(hnp.arrays(np.bool_, shape)) for k in names}


@st.composite
def _pad_in(draw):
    w = draw(hs.float_arrays(hs.shapes()))
    inp = {"w": w, "m": draw(st.integers(1, 6)), "axis": draw(st.integers(-w.ndim, w.ndim - 1))}
    if draw(st.booleans()):
        inp["value"] = draw(hs.values(F64))
    return inp


# ------------------------------------------------------------------ quantization
@st.composite
def _quant_in(draw, magnitude=None):
    v = draw(hs.float_arrays(hs.shapes(min_dims=1), infinity=False, magnitude=magnitude))
    return {"v": v, "bits": draw(st.integers(2, 8)), "group": draw(st.integers(1, 9) | st.just(128))}


@st.composite
def _dequant_in(draw):
    inp = draw(_quant_in(magnitude=6e4))  # within every float dtype (float16 included)
    v = np.where(np.isfinite(inp["v"]), inp["v"], np.zeros((), inp["v"].dtype))  # NaN: no scale to draw codes from
    q, scales = Q.quantize_groups(v, inp["bits"], inp["group"])
    return {"q": q, "scales": scales, "group": inp["group"]}


# ------------------------------------------------------------------ formats
@st.composite
def _compress_nm_in(draw):
    w, n, m, axis = draw(hs.nm_arrays(min_n=1))
    inp = {"w": w, "n": n, "m": m, "axis": axis}
    if draw(st.booleans()):
        inp["mask"] = draw(hs.masks(w.shape, n, m, axis))
    return inp


@st.composite
def _decompress_nm_in(draw):
    inp = draw(_compress_nm_in())
    values, indices = C.compress_nm(**inp)
    return {"values": values, "indices": indices, "n": inp["n"], "m": inp["m"], "axis": inp["axis"]}


def _compress24_in(rows_mult, cols_mult, dtypes=hs.FLOAT_DTYPE_NAMES, max_rows=2, max_cols=2):
    # widths of 32 and 64 columns come often: the layouts' and the kernels' common multiples
    wide = [k for k in (32 // cols_mult, 64 // cols_mult) if 1 <= k <= max(max_cols, 64 // cols_mult)]

    @st.composite
    def draw_in(draw):
        shape = (rows_mult * draw(st.integers(0 if rows_mult < 32 else 1, max_rows)),
                 cols_mult * draw(st.integers(1, max_cols) | st.sampled_from(wide)))
        dt = draw(hs.float_dtypes(dtypes))
        w = draw(hs.float_arrays(shape, dt, infinity=False, sparse=shape[0] * shape[1] > 256))
        if draw(st.booleans()):
            return {"w": w, "mask": draw(hs.masks(shape, 2, 4))}
        return {"w": hs.pruned(w) if rows_mult == 32 else w}  # CUTLASS reads the pattern from w != 0
    return draw_in


def _decompress_in(compress, names, rows_mult, cols_mult, dtypes=hs.FLOAT_DTYPE_NAMES):
    @st.composite
    def draw_in(draw):
        inp = draw(_compress24_in(rows_mult, cols_mult, dtypes)())
        return dict(zip(names, compress(**inp)))
    return draw_in


def _format_golden(shape, dtypes=("float16", "bfloat16", "float32"), with_mask=True):
    cases = [(dt, lambda r, dt=dt: {"w": _pruned24(r, shape, dt)}) for dt in dtypes]
    if with_mask:
        cases.append(("mask", lambda r: {"w": _ties(r, shape, dtypes[0]), "mask": _mask(r, shape)}))
    return tuple(cases)


def _decompress_golden(compress, names, shape, dtypes=("float16", "bfloat16")):
    return tuple((dt, lambda r, dt=dt: dict(zip(names, compress(_pruned24(r, shape, dt))))) for dt in dtypes)


@st.composite
def _meta_offsets_in(draw):
    return {"rows": 32 * draw(st.integers(1, 3)), "meta_cols": 2 * draw(st.integers(1, 3))}


@st.composite
def _nibbles_in(draw):
    rows, groups = draw(st.integers(1, 40)), 16 * draw(st.integers(1, 2))
    pairs = np.array([1 << 2, 2 << 2, 3 << 2, 1 | 2 << 2, 1 | 3 << 2, 2 | 3 << 2], np.uint32)
    return {"nib": pairs[draw(hnp.arrays(np.int8, (rows, groups), elements=st.integers(0, 5)))]}


@st.composite
def _mask_nm_in(draw, max_m=8, min_n=0):
    n, m = draw(hs.nm_params(max_m=max_m, min_n=min_n))
    nd = draw(st.integers(1, 3))
    axis = draw(st.integers(-nd, nd - 1))
    shape = list(draw(hs.shapes(min_dims=nd, max_dims=nd, min_side=1, max_side=3)))
    shape[axis] = m * draw(st.integers(0, 4))
    return {"mask": draw(hs.masks(tuple(shape), n, m, axis)), "n": n, "m": m, "axis": axis}


@st.composite
def _decode_enum_in(draw):
    inp = draw(_mask_nm_in())
    return {"data": C.encode_mask_enumerative(**inp), "shape": inp["mask"].shape, "n": inp["n"], "m": inp["m"],
            "axis": inp["axis"]}


@st.composite
def _patterns_in(draw):
    n, m = draw(hs.nm_params(max_m=8))
    return {"ranks": draw(hs.ranks(draw(hs.shapes(max_dims=2)), n, m)), "n": n, "m": m}


@st.composite
def _probs(draw, count):
    """Exact probabilities (Fractions) over ``count`` symbols, zeros and ties included."""
    w = draw(st.lists(st.integers(0, 6), min_size=count, max_size=count).filter(lambda x: sum(x) > 0))
    total = sum(w)
    return [Fraction(x, total) for x in w]


@st.composite
def _huffman_in(draw):
    inp = draw(_mask_nm_in(max_m=6, min_n=1))
    probs = draw(_probs(math.comb(inp["m"], inp["n"])))
    # only patterns of nonzero probability may occur
    allowed = np.array([p > 0 for p in probs])
    ranks = C.pattern_ranks(inp["mask"], inp["n"], inp["m"], axis=inp["axis"]) if inp["mask"].size else np.zeros(0, int)
    if ranks.size and not allowed[ranks].all():
        first = int(np.flatnonzero(allowed)[0])
        pats = C.patterns_from_ranks(np.where(allowed[ranks], ranks, first), inp["n"], inp["m"])
        g = pats.reshape(pats.shape[:-2] + (-1,))
        inp["mask"] = np.moveaxis(g, -1, inp["axis"])
    inp["pattern_probs"] = probs
    return inp


@st.composite
def _decode_huffman_in(draw):
    inp = draw(_huffman_in())
    data, n_bits = C.encode_mask_huffman(**inp)
    return {"data": data, "n_bits": n_bits, "shape": inp["mask"].shape, "n": inp["n"], "m": inp["m"],
            "pattern_probs": inp["pattern_probs"], "axis": inp["axis"]}


@st.composite
def _ratio_in(draw, with_values=True, coding=True):
    n, m = draw(hs.nm_params(max_m=8))
    inp = {"n": n, "m": m}
    if with_values:
        inp["value_bits"] = draw(st.integers(1, 32))
        if draw(st.booleans()):
            inp["base_bits"] = draw(st.sampled_from([16, 32, 8, 1]))
    if coding:
        ic = draw(st.sampled_from(C.INDEX_CODINGS))
        inp["index_coding"] = ic
        if ic == "huffman" and draw(st.booleans()):
            inp["pattern_probs"] = draw(_probs(math.comb(m, n)))
    elif draw(st.booleans()):
        inp["pattern_probs"] = draw(_probs(math.comb(m, n)))
    return inp


def _ratio_golden(with_values=True):
    out = []
    for ic in C.INDEX_CODINGS:
        for n, m in ((2, 4), (1, 4), (4, 8), (8, 16)):
            inp = {"n": n, "m": m, "index_coding": ic}
            if with_values:
                inp.update(value_bits=4, base_bits=32)
            out.append((f"{ic}_{n}_{m}", lambda r, inp=inp: dict(inp)))
    skew = [Fraction(k + 1, 21) for k in range(6)]
    out.append(("huffman_skewed_2_4", lambda r: dict({"n": 2, "m": 4, "index_coding": "huffman", "pattern_probs": skew},
                                                     **({"value_bits": 4, "base_bits": 16} if with_values else {}))))
    return tuple(out)


# ------------------------------------------------------------------ STE
@st.composite
def _masked_weight_in(draw):
    w = draw(hs.float_arrays(hs.shapes()))
    return {"w": w, "mask": draw(hnp.arrays(np.bool_, w.shape))}


@st.composite
def _sr_ste_in(draw):
    dt = draw(hs.float_dtypes())
    shape = draw(hs.shapes())
    return {"grad": draw(hs.float_arrays(shape, dt, magnitude=1e3)), "w": draw(hs.float_arrays(shape, dt, magnitude=1e3)),
            "mask": draw(hnp.arrays(np.bool_, shape)),
            "lam": draw(hs.scalars(dt, base=(0.0, 2e-4, 0.5, 1.0, 3.0), minimum=0.0, maximum=1e3))}


@st.composite
def _annealing_in(draw):
    t0 = draw(st.integers(1, 1000))
    return {"t": draw(st.integers(0, 2 * t0)), "alpha": draw(st.sampled_from([0.0, 2e-4, 6e-5, 0.5, 1.0, 3.0])), "t0": t0}


@st.composite
def _refresh_in(draw):
    w, n, m, axis = draw(hs.nm_arrays() | hs.nm_arrays(max_m=4, min_n=2).filter(lambda c: (c[1], c[2]) == (2, 4)))
    return {"w": w, "mask_old": draw(hs.masks(w.shape, n, m, axis)), "n": n, "m": m, "axis": axis}


# ------------------------------------------------------------------ optimizers
_STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")


def _adam_contract(fn):
    """The reference of an optimizer step under the contract: plain dicts in, ``(params, state dict)`` out."""
    def ref(params, grads, state, hyper, **options):
        st_ = O.AdamState(state["step"], state["exp_avg"], state["exp_avg_sq"])
        p, s = fn(params, grads, st_, O.AdamHyper(**hyper), **options)
        return p, {"step": s.step, "exp_avg": s.exp_avg, "exp_avg_sq": s.exp_avg_sq}
    ref.__name__ = fn.__name__
    ref.__doc__ = f"{fn.__name__} under the adapter contract (state and hyper as plain dicts)."
    return ref


@st.composite
def _hyper(draw, dtype):
    # float16: eps in the normal range (1e-8 is 0 there, 1e-6 subnormal: see _adam_in)
    # Every hyper-parameter may also lie strictly between two neighbours of the parameter dtype
    # (hs.scalars), within a range where a half-precision step stays in its normal range.
    eps = (1e-8, 1e-6, 1e-3) if dtype != F16 else (1e-4, 1e-3)
    return {"lr": draw(hs.scalars(dtype, base=(1e-3, 0.0, 1e-2, 0.1, 1.0), minimum=0.0, maximum=1.0)),
            "beta1": draw(hs.scalars(dtype, base=(0.9, 0.0, 0.5, 0.99), minimum=0.0, maximum=0.99)),
            "beta2": draw(hs.scalars(dtype, base=(0.999, 0.0, 0.9, 0.95), minimum=0.0, maximum=0.999)),
            "eps": draw(hs.scalars(dtype, base=eps, minimum=eps[0], maximum=1e-3)),
            "weight_decay": draw(hs.scalars(dtype, base=(1e-2, 0.0, 0.1), minimum=0.0, maximum=0.1))}


@st.composite
def _adam_in(draw, extra=None):
    dt = draw(hs.float_dtypes())
    shape = draw(hs.shapes(max_dims=2))

    def arr():
        a = draw(hs.float_arrays(shape, dt, infinity=False, magnitude=100.0))
        # The reference rounds every operation of a half-precision step in that dtype, where lr·u of a
        # small moment underflows; implementations that keep intermediates in float32 (most) then differ
        # by far more than rounding. Drawing 0 or magnitudes above a floor keeps both in the normal range.
        floor = _HALF_STEP_FLOOR.get(dt.name)
        return a if floor is None else np.where(np.abs(a.astype(np.float32)) < floor, np.zeros((), dt), a)
    inp = {"params": arr(), "grads": arr(),
           "state": {"step": draw(st.integers(0, 20) | st.sampled_from([1000, 10 ** 6])),
                     "exp_avg": arr(), "exp_avg_sq": np.abs(arr())},
           "hyper": draw(_hyper(dt))}
    if extra is not None:
        inp["mask"] = draw(hnp.arrays(np.bool_, shape))
        inp.update(draw(extra))
    return inp


_LAM = st.sampled_from([2e-4, 0.0, 0.5, 1.0]) | hs.scalars("bfloat16", base=(2e-4,), minimum=0.0, maximum=1.0) | \
    hs.scalars("float16", base=(2e-4,), minimum=0.0, maximum=1.0)
#: Smallest nonzero magnitude of a half-precision optimizer draw (see _adam_in).
_HALF_STEP_FLOOR = {"float16": 2.0 ** -4, "bfloat16": 2.0 ** -100}


def _adam_scale(inp, want):
    """An optimizer step sums the parameters and a step: its rounding is relative to both (and the
    moments to the gradient and the old moments), not to a result that cancels to near 0."""
    mag = lambda a: float(np.max(np.abs(np.asarray(a, np.float64)), initial=0.0))  # noqa: E731
    st_ = inp["state"]
    step = np.asarray(want["params"], np.float64) - np.asarray(inp["params"], np.float64)
    return max(mag(inp["params"]), mag(inp["grads"]), mag(st_["exp_avg"]), mag(st_["exp_avg_sq"])) + mag(step)


def _adam_golden(**options):
    def make(r, dt, step):
        p = _normal(r, (4, 16), dt)
        inp = {"params": p, "grads": _normal(r, (4, 16), dt),
               "state": {"step": step, "exp_avg": (0.1 * _normal(r, (4, 16))).astype(p.dtype) if step else np.zeros_like(p),
                         "exp_avg_sq": (0.01 * np.abs(_normal(r, (4, 16)))).astype(p.dtype) if step else np.zeros_like(p)},
               "hyper": {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}}
        if options:
            inp["mask"] = M.nm_mask(p, 2, 4)
            inp.update(options)
        return inp
    return tuple((f"{dt}_step{step}", lambda r, dt=dt, step=step: make(r, dt, step))
                 for dt, step in (("float32", 0), ("float32", 5), ("float64", 5), ("bfloat16", 5), ("float16", 5)))


@st.composite
def _adams_alpha_in(draw):
    return {"step": draw(st.integers(0, 100)), "ramp_steps": draw(st.integers(1, 50))}


# ------------------------------------------------------------------ SparseGPT, weight scaling
@st.composite
def _sparsegpt_in(draw):
    n, m = draw(hs.nm_params(max_m=4))
    rows, cols = draw(st.integers(1, 3)), m * draw(st.integers(1, 3))
    w = draw(hs.float_arrays((rows, cols), F64, infinity=False, magnitude=100.0))
    x = draw(hs.float_arrays((draw(st.integers(1, 6)), cols), F64, infinity=False, magnitude=100.0))
    inp = {"w": w, "h": hessian_from_inputs(x), "n": n, "m": m,
           "blocksize": m * draw(st.integers(1, 3)),
           "damp": draw(hs.scalars("float32", base=(0.01, 0.1, 1.0), minimum=1e-3, maximum=1.0))}
    return inp


@st.composite
def _hessian_in(draw):
    return {"x": draw(hs.float_arrays(draw(hs.shapes(min_dims=2, max_dims=3, min_side=1)), infinity=False,
                                      magnitude=1e3))}


@st.composite
def _soft_threshold_in(draw):
    w, n, m, axis = draw(hs.nm_arrays(infinity=False))
    return {"w": w, "n": n, "m": m, "axis": axis}


@st.composite
def _weight_scale_in(draw):
    shape = draw(hs.shapes(min_side=1, max_dims=2))
    dt = draw(hs.float_dtypes())
    ref = draw(hs.float_arrays(shape, dt, infinity=False, magnitude=1e3))
    sparse = draw(hs.float_arrays(shape, dt, infinity=False, magnitude=1e3))
    inp = {"w_ref": ref, "sparse": sparse}
    if draw(st.booleans()):
        inp["axis"] = draw(st.integers(-len(shape), len(shape) - 1))
    flat = np.moveaxis(sparse, inp.get("axis", 0), -1).reshape(-1, shape[inp.get("axis", 0)]) if "axis" in inp \
        else sparse.reshape(1, -1)
    if (flat.astype(np.float64) ** 2).sum(axis=-1).min() == 0:  # ⟨S, S⟩ = 0 raises: give every slice a nonzero
        sparse = sparse.copy()
        np.moveaxis(sparse, inp.get("axis", -1), -1)[..., 0] = 1.0
        inp["sparse"] = sparse
    return inp


# ------------------------------------------------------------------ SLoRB
@st.composite
def _slorb_base(draw, x=False, s=False, grad=False, bias=False):
    k, groups, rows = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    d = k * groups
    dt = draw(hs.float_dtypes(("float32", "float64")))
    arr = lambda shape: draw(hs.float_arrays(shape, dt, infinity=False, magnitude=100.0))  # noqa: E731
    inp = {"w": arr((rows, d)), "mask": draw(hnp.arrays(np.bool_, (rows, d))), "k": k}
    tokens = (draw(st.integers(1, 3)),)
    if x:
        inp["x"] = arr(tokens + (d,))
    if s:
        inp["s"] = arr((rows, groups))
    if grad:
        inp["grad_y"] = arr(tokens + (rows,))
        inp["ste"] = draw(st.booleans())
    if bias and draw(st.booleans()):
        inp["b"] = arr((rows,))
    return inp


def _slorb_golden(x=False, s=False, grad=False):
    def make(r, dt, ste=True):
        w = _normal(r, (8, 16), dt)
        inp = {"w": w, "mask": M.nm_mask(w, 2, 4), "k": 4}
        if x:
            inp["x"] = _normal(r, (3, 16), dt)
        if s:
            inp["s"] = _normal(r, (8, 4), dt)
        if grad:
            inp["grad_y"] = _normal(r, (3, 8), dt)
            inp["ste"] = ste
        return inp
    cases = [(dt, lambda r, dt=dt: make(r, dt)) for dt in ("float32", "float64", "bfloat16")]
    if grad:
        cases.append(("float64_masked_grad", lambda r: make(r, "float64", False)))
    return tuple(cases)


def _slorb_scale(inp, want=None):
    """|x|·|W_eff|ᵀ-sized products: the magnitude of a row of the forward or backward sums."""
    mags = [float(np.max(np.abs(inp[k].astype(np.float64)), initial=0.0)) for k in ("x", "w", "s", "grad_y", "b") if k in inp]
    return (1 + max(mags, default=0.0)) ** 2 * inp["w"].shape[1]


# ------------------------------------------------------------------ activation sparsity
@st.composite
def _threshold_in(draw):
    x = draw(hs.float_arrays(hs.shapes(min_side=1), infinity=True))
    return {"x": x, "p": draw(st.sampled_from([0.5, 0.0, 1.0, 0.25, 0.75, 0.4, 0.9]) | st.floats(0, 1))}


@st.composite
def _histogram_in(draw):
    inp = draw(_threshold_in())
    inp["mantissa_bits"] = draw(st.integers(0, 10))
    return inp


def histogram_threshold(x, p, *, mantissa_bits=7):
    """``ThresholdHistogram(mantissa_bits).update(x).threshold(p)`` — the streaming threshold as one call."""
    return A.ThresholdHistogram(mantissa_bits).update(x).threshold(p)


_T_BASE = (0.5, 0.0, -1.0, 1.0, 2.0, np.inf, -np.inf)


def _threshold(draw, x, means=False):
    """A threshold for ``x``: usual values, any float, ±0, the dtype's extremes, and values strictly
    between two neighbours of x's dtype next to its magnitudes (or its batch means of |x|)."""
    a = np.abs(x.astype(np.float64))
    if means:
        a = tokens_2d(a).mean(axis=0) if a.size else a
    return draw(hs.scalars(x.dtype, base=_T_BASE, anchors=a, infinity=True) | st.floats(-1, 5, allow_nan=False))


@st.composite
def _sparsify_in(draw, batched=False, prefill=False):
    shape = draw(hs.shapes(min_dims=2, max_dims=2)) if batched else draw(hs.shapes(min_dims=2 if prefill else 1))
    x = draw(hs.float_arrays(shape))
    inp = {"x": x, "t": _threshold(draw, x, means=batched)}
    if prefill and draw(st.booleans()):
        inp["start"] = draw(st.integers(0, shape[-2] + 1))
    return inp


def _gemv_shapes(draw, batch=True):
    out, inn = draw(st.integers(0, 6) | st.sampled_from([8, 16])), draw(st.integers(0, 12))
    xshape = (inn,) if not batch or draw(st.booleans()) else (draw(st.integers(1, 3)), inn)
    return out, inn, xshape


@st.composite
def _gemv_in(draw, kind):
    dt = draw(hs.float_dtypes())
    if kind == "packed_t":
        out, inn = 8 * draw(st.integers(1, 2)), 4 * draw(st.integers(0, 3))
        xshape = (inn,) if draw(st.booleans()) else (draw(st.integers(1, 3)), inn)
    else:
        out, inn, xshape = _gemv_shapes(draw)
        if kind == "24":
            inn = 4 * (inn // 4)
            xshape = xshape[:-1] + (inn,)
    x = draw(hs.float_arrays(xshape, dt, infinity=False, magnitude=1e3))
    w = draw(hs.float_arrays((out, inn), dt, infinity=False, magnitude=1e3))
    inp = {"x": x}
    if kind == "output":
        inp.update(w=w, s=draw(hnp.arrays(np.bool_, (out,))))
        return inp
    inp["t"] = _threshold(draw, x, means=kind == "batched")
    if kind == "batched":  # thresholds at the batch means of |x| (ties of the shared mask) are likely draws
        means = np.abs(tokens_2d(x).astype(np.float64)).mean(axis=0) if x.size else np.zeros(1)
        inp["t"] = draw(st.sampled_from(sorted(set(means.tolist()))) | st.just(inp["t"]))
    if kind in ("input", "batched"):
        inp["w"] = w
    elif kind == "24":
        inp.update(w=w, mask=draw(hs.masks((out, inn), 2, 4)))
    else:
        inp["values_t"], inp["meta_t"] = C.compress_24_packed_t(w)
        inp = {"x": inp["x"], "values_t": inp["values_t"], "meta_t": inp["meta_t"], "t": inp["t"]}
    return inp


def _gemv_scale(inp, want=None):
    """Σ_j |x_j||W_ij| bound: the error of a dot product is relative to the sum of its terms' magnitudes."""
    x = np.abs(inp["x"].astype(np.float64))
    w = inp.get("w")
    if w is None:
        w = C.decompress_24_packed_t(inp["values_t"], inp["meta_t"])
    return float(np.max(tokens_2d(x) @ np.abs(w.astype(np.float64)).T, initial=0.0))


def _gemm_scale(inp, want=None):
    """Σ_k |x_k||W_nk| bound of :func:`nmref.gemm_24` (W decompressed from the GEMM layout)."""
    w = C.decompress_24_gemm(inp["values"], inp["meta"]).astype(np.float64)
    return float(np.max(np.abs(inp["x"].astype(np.float64)).reshape(-1, w.shape[1]) @ np.abs(w).T, initial=0.0))


@st.composite
def _gemm_in(draw):
    n, k = draw(st.integers(1, 70)), 4 * draw(st.integers(1, 40))
    dt = draw(hs.float_dtypes())
    values, meta = C.compress_24_gemm(draw(hs.float_arrays((n, k), dt, infinity=False, sparse=True)))
    x = draw(hs.float_arrays((draw(st.integers(0, 5)), k), dt, infinity=False, sparse=True))
    return {"x": x, "values": values, "meta": meta}


def _gemm_golden():
    def make(r, dt):
        values, meta = C.compress_24_gemm(_ties(r, (70, 136), dt))
        return {"x": _normal(r, (5, 136), dt), "values": values, "meta": meta}
    return tuple((dt, lambda r, dt=dt: make(r, dt)) for dt in ("float16", "bfloat16", "float32"))


def _teal_golden(kind):
    def make(r, dt, batch):
        x = _normal(r, (batch, 64) if batch else (64,), dt)
        w = _normal(r, (16, 64), dt)
        t = float(np.quantile(np.abs(x.astype(np.float64)), 0.5))
        if kind == "input":
            return {"x": x, "w": w, "t": t}
        if kind == "24":
            return {"x": x, "w": w, "mask": M.nm_mask(w, 2, 4), "t": t}
        if kind == "output":
            return {"x": x, "w": w, "s": r.random(16) < 0.5}
        vt, mt = C.compress_24_packed_t(w)
        return {"x": x, "values_t": vt, "meta_t": mt, "t": t}
    return tuple((f"{dt}" + (f"_batch{b}" if b else ""), lambda r, dt=dt, b=b: make(r, dt, b))
                 for dt, b in (("float16", 0), ("bfloat16", 0), ("float32", 3)))


def teal_block(weights: dict):
    """The block of the greedy-allocation golden case and conformance op, as ``block_fn``: every projection
    ``i`` reads the same input, sparsified at its own level with the exact threshold of that input,
    ``y = concat_i sparsify(x, exact_threshold(x, s_i)) W_iᵀ`` (float64), for ``weights = {name: W_i}``."""
    def block_fn(x, sparsities):
        outs = []
        for name, w in weights.items():
            s = sparsities[name]
            xs = A.sparsify(x, A.exact_threshold(x, s)) if s > 0 else x
            outs.append(xs.astype(np.float64) @ w.astype(np.float64).T)
        return np.concatenate(outs, axis=-1)
    return block_fn


def _greedy_build(inp):
    """The stored ``weights`` become the call's ``block_fn`` (:func:`teal_block`)."""
    return {"block_fn": teal_block(inp["weights"]), **{k: v for k, v in inp.items() if k != "weights"}}


def _greedy_post(path):
    """A greedy path as plain arrays: ``(sparsities [steps, projections], totals [steps], errors [steps])``;
    steps are :class:`~nmref.GreedyStep` or ``(sparsities dict, total, error)`` tuples."""
    steps = [(p.sparsities, p.total, p.error) if hasattr(p, "sparsities") else tuple(p) for p in path]
    names = list(steps[0][0]) if steps else []
    return (np.array([[float(s[0][k]) for k in names] for s in steps], np.float64).reshape(len(steps), len(names)),
            np.array([float(s[1]) for s in steps], np.float64), np.array([float(s[2]) for s in steps], np.float64))


@st.composite
def _greedy_in(draw):
    d = draw(st.integers(2, 6))
    names = draw(st.lists(st.sampled_from(["q", "k", "v", "o", "up", "down"]), min_size=1, max_size=3, unique=True))
    weights = {nm: draw(hs.float_arrays((draw(st.integers(1, 3)), d), F64, infinity=False, magnitude=10.0, ties=True))
               for nm in names}
    x = draw(hs.float_arrays((draw(st.integers(1, 4)), d), F64, infinity=False, magnitude=10.0))
    return {"weights": weights, "x_calib": x, "param_counts": {nm: int(w.size) for nm, w in weights.items()},
            "step": draw(st.sampled_from([0.25, 0.1, 0.5, 1.0])), "max_total": draw(st.sampled_from([1.0, 0.5]))}


def _greedy_golden():
    def make(r):
        ws = {"q": _normal(r, (8, 16), F64), "up": _normal(r, (24, 16), F64), "down": _normal(r, (8, 16), F64)}
        return {"weights": ws, "x_calib": _normal(r, (32, 16), F64), "param_counts": {k: int(w.size) for k, w in ws.items()},
                "step": 0.1, "max_total": 0.7}
    return (("three_projections", make),)


def _path_build(inp):
    names = inp["names"]
    path = [A.GreedyStep({nm: float(v) for nm, v in zip(names, row)}, float(t), float(e))
            for row, t, e in zip(inp["sparsities"], inp["totals"], inp["errors"])]
    return {"path": path, "target": inp["target"]}


@st.composite
def _path_in(draw):
    steps, names = draw(st.integers(1, 5)), ["a", "b", "c"][:draw(st.integers(1, 3))]
    sp = np.sort(draw(hnp.arrays(np.float64, (steps, len(names)), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0]))), axis=0)
    return {"names": names, "sparsities": sp, "totals": sp.mean(axis=1), "errors": np.linspace(0, 1, steps),
            "target": draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1))}


# ------------------------------------------------------------------ distillation
_TEMPS = st.sampled_from([1.0, 2.0, 0.5, 4.0]) | hs.scalars("float32", base=(1.0,), minimum=0.25, maximum=8.0)


@st.composite
def _logits_pair(draw, names=("teacher_logits", "student_logits")):
    dt = draw(hs.float_dtypes(("float32", "float64")))
    shape = draw(hs.shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    return {k: draw(hs.float_arrays(shape, dt, infinity=False, magnitude=30.0)) for k in names}


@st.composite
def _log_softmax_in(draw):
    return {"z": draw(_logits_pair(("z",)))["z"], "temperature": draw(_TEMPS)}


@st.composite
def _kl_in(draw):
    inp = draw(_logits_pair())
    inp["temperature"] = draw(_TEMPS)
    return inp


@st.composite
def _ce_in(draw):
    z = draw(_logits_pair(("logits",)))["logits"]
    return {"logits": z, "targets": draw(hnp.arrays(np.int64, z.shape[:-1], elements=st.integers(0, z.shape[-1] - 1)))}


@st.composite
def _distill_in(draw):
    inp = draw(_logits_pair(("student_logits", "teacher_logits")))
    z = inp["student_logits"]
    inp["targets"] = draw(hnp.arrays(np.int64, z.shape[:-1], elements=st.integers(0, z.shape[-1] - 1)))
    inp.update(alpha=draw(hs.scalars(z.dtype, base=(0.67, 0.0, 1.0, 0.5), minimum=0.0, maximum=1.0)),
               temperature=draw(_TEMPS),
               kind=draw(st.sampled_from(D.DISTILL_KINDS)))
    return inp


@st.composite
def _squarehead_in(draw):
    inp = draw(_logits_pair(("student_features", "teacher_features")))
    if not inp["teacher_features"].any():
        inp["teacher_features"] = inp["teacher_features"].copy()
        inp["teacher_features"].reshape(-1)[0] = 1.0
    return inp


def _logit_scale(inp, want=None):
    zs = [np.abs(v.astype(np.float64)) for k, v in inp.items() if k.endswith(("logits", "features")) or k == "z"]
    t = float(inp.get("temperature", 1.0))
    return max(1.0, max(float(z.max()) for z in zs) / min(t, 1.0)) * max(t * t, 1.0)


def _distill_golden(names, kinds=(None,), temps=(2.0,), with_targets=False, extra=None):
    def make(r, dt, kind, temp):
        inp = {k: _normal(r, (4, 10), dt) * 3 for k in names}
        if with_targets:
            inp["targets"] = r.integers(0, 10, 4)
        if temp is not None:
            inp["temperature"] = temp
        if kind is not None:
            inp["kind"] = kind
        inp.update(extra or {})
        return inp
    return tuple((f"{dt}" + (f"_{kind}" if kind else "") + (f"_T{temp:g}" if temp is not None else ""),
                  lambda r, dt=dt, kind=kind, temp=temp: make(r, dt, kind, temp))
                 for dt in ("float32", "float64") for kind in kinds for temp in temps)


# ------------------------------------------------------------------ the registry
def _spec(name, ref, args, outputs, inputs, golden, doc, **kw):
    return OpSpec(name, ref, tuple(args), tuple(outputs), inputs, tuple(golden), doc, **kw)


def _specs():
    W = ("w",)
    NM = ("n", "m")
    out = [
        # masks
        _spec("nm_mask", M.nm_mask, W + NM, ("mask",), _nm_mask_in, _nm_golden(), "docs/masks.md"),
        _spec("is_nm_sparse", M.is_nm_sparse, W + NM, ("sparse",), _is_nm_sparse_in,
              (("pruned", lambda r: {"w": _pruned24(r, (4, 16), F32), "n": 2, "m": 4}),
               ("dense", lambda r: {"w": _normal(r, (4, 16)), "n": 2, "m": 4})), "docs/masks.md"),
        _spec("wanda_scores", M.wanda_scores, ("w", "x"), ("scores",), _wanda_in,
              tuple((dt, lambda r, dt=dt: {"w": _normal(r, (8, 16), dt), "x": _normal(r, (2, 5, 16), dt)})
                    for dt in ("float32", "bfloat16")), "docs/masks.md", tol=_f64),
        _spec("transposable_nm_mask", M.transposable_nm_mask, W, ("mask",), _transposable_in,
              (("2_4", lambda r: {"w": _ties(r, (8, 12))}), ("2_4_bfloat16", lambda r: {"w": _ties(r, (2, 8, 8), BF16)})),
              "docs/masks.md"),
        _spec("flip_rate", M.flip_rate, ("mask_new", "mask_old"), ("rate",), _two_masks_in,
              (("2_4", lambda r: {"mask_new": _mask(r, (8, 16)), "mask_old": _mask(r, (8, 16))}),), "docs/masks.md",
              tol=_f64),
        _spec("initial_flip_rate", M.initial_flip_rate, ("mask_t", "mask_0"), ("rate",),
              lambda: _two_masks_in(("mask_t", "mask_0")),
              (("2_4", lambda r: {"mask_t": _mask(r, (8, 16)), "mask_0": _mask(r, (8, 16))}),), "docs/masks.md",
              tol=_f64),
        _spec("pad_to_multiple", M.pad_to_multiple, ("w", "m"), ("padded",), _pad_in,
              (("axis0", lambda r: {"w": _ties(r, (5, 3)), "m": 4, "axis": 0}),
               ("value", lambda r: {"w": _ties(r, (2, 6), BF16), "m": 4, "value": -1.5})), "docs/masks.md"),
        # formats
        _spec("compress_nm", C.compress_nm, W + NM, ("values", "indices"), _compress_nm_in,
              (("2_8", lambda r: {"w": _ties(r, (6, 32)), "n": 2, "m": 8}),
               ("3_8_axis0_bfloat16", lambda r: {"w": _ties(r, (16, 6), BF16), "n": 3, "m": 8, "axis": 0}),
               ("2_4_mask", lambda r: {"w": _ties(r, (4, 8)), "n": 2, "m": 4, "mask": _mask(r, (4, 8))})), "docs/formats.md"),
        _spec("decompress_nm", C.decompress_nm, ("values", "indices") + NM, ("w",), _decompress_nm_in,
              (("2_8", lambda r: dict(zip(("values", "indices"), C.compress_nm(_ties(r, (6, 32)), 2, 8)), n=2, m=8)),
               ("1_4_axis0_float16", lambda r: dict(zip(("values", "indices"), C.compress_nm(_ties(r, (8, 3), F16), 1, 4, axis=0)),
                                                    n=1, m=4, axis=0))), "docs/formats.md"),
        _spec("compress_24_cutlass", C.compress_24_cutlass, W, ("values", "meta"), _compress24_in(32, 32, HALF),
              _format_golden((32, 64), HALF), "docs/formats.md"),
        _spec("decompress_24_cutlass", C.decompress_24_cutlass, ("values", "meta"), ("w",),
              _decompress_in(C.compress_24_cutlass, ("values", "meta"), 32, 32, HALF),
              _decompress_golden(C.compress_24_cutlass, ("values", "meta"), (32, 64)), "docs/formats.md"),
        _spec("meta_reorder_offsets", C.meta_reorder_offsets, ("rows", "meta_cols"), ("offsets",), _meta_offsets_in,
              (("64x4", lambda r: {"rows": 64, "meta_cols": 4}),), "docs/formats.md"),
        _spec("compress_24_bitmask", C.compress_24_bitmask, W, ("values", "bitmask"), _compress24_in(1, 4, max_rows=3, max_cols=3),
              _format_golden((8, 36)), "docs/formats.md"),
        _spec("decompress_24_bitmask", C.decompress_24_bitmask, ("values", "bitmask", "shape"), ("w",),
              lambda: _decompress_in(lambda **k: C.compress_24_bitmask(**k) + (k["w"].shape,), ("values", "bitmask", "shape"), 1, 4)(),
              tuple((dt, lambda r, dt=dt: dict(zip(("values", "bitmask"), C.compress_24_bitmask(_pruned24(r, (8, 36), dt))),
                                               shape=(8, 36))) for dt in ("float32", "bfloat16")), "docs/formats.md"),
        _spec("compress_24_packed", C.compress_24_packed, W, ("values", "meta"), _compress24_in(1, 32),
              _format_golden((16, 64)), "docs/formats.md"),
        _spec("decompress_24_packed", C.decompress_24_packed, ("values", "meta"), ("w",),
              _decompress_in(C.compress_24_packed, ("values", "meta"), 1, 32),
              _decompress_golden(C.compress_24_packed, ("values", "meta"), (16, 64)), "docs/formats.md"),
        _spec("compress_24_packed_t", C.compress_24_packed_t, W, ("values_t", "meta_t"), _compress24_in(8, 4, max_cols=4),
              _format_golden((16, 64)), "docs/formats.md"),
        _spec("decompress_24_packed_t", C.decompress_24_packed_t, ("values_t", "meta_t"), ("w",),
              _decompress_in(C.compress_24_packed_t, ("values_t", "meta_t"), 8, 4),
              _decompress_golden(C.compress_24_packed_t, ("values_t", "meta_t"), (16, 64)), "docs/formats.md"),
        _spec("compress_24_mma", C.compress_24_mma, W, ("values", "meta_mma"), _compress24_in(1, 64, max_rows=20, max_cols=1),
              _format_golden((24, 128)), "docs/formats.md"),
        _spec("decompress_24_mma", C.decompress_24_mma, ("values", "meta_mma"), ("w",),
              _decompress_in(C.compress_24_mma, ("values", "meta_mma"), 1, 64),
              _decompress_golden(C.compress_24_mma, ("values", "meta_mma"), (24, 128)), "docs/formats.md"),
        _spec("compress_24_gemm", C.compress_24_gemm, W, ("values", "meta"), _compress24_in(1, 4, max_rows=70, max_cols=40),
              _format_golden((70, 136)), "docs/formats.md", since=3),
        _spec("decompress_24_gemm", C.decompress_24_gemm, ("values", "meta"), ("w",),
              _decompress_in(C.compress_24_gemm, ("values", "meta"), 1, 4),
              _decompress_golden(C.compress_24_gemm, ("values", "meta"), (70, 136)), "docs/formats.md", since=3),
        _spec("gemm_24", C.gemm_24, ("x", "values", "meta"), ("y",), _gemm_in, _gemm_golden(), "docs/formats.md",
              tol=_promoted("x", "values"), scale=_gemm_scale, since=3),
        _spec("meta_mma_from_nibbles", C.meta_mma_from_nibbles, ("nib",), ("meta_mma",), _nibbles_in,
              (("24x32", lambda r: {"nib": np.array([4, 8, 12, 9, 13, 14], np.uint32)[r.integers(0, 6, (24, 32))]}),),
              "docs/formats.md"),
        _spec("encode_mask_enumerative", C.encode_mask_enumerative, ("mask",) + NM, ("data",), _mask_nm_in,
              (("2_4", lambda r: {"mask": _mask(r, (8, 32)), "n": 2, "m": 4}),
               ("3_8_axis0", lambda r: {"mask": _mask(r, (16, 3), 3, 8, 0), "n": 3, "m": 8, "axis": 0})), "docs/formats.md"),
        _spec("decode_mask_enumerative", C.decode_mask_enumerative, ("data", "shape") + NM, ("mask",), _decode_enum_in,
              (("2_4", lambda r: {"data": C.encode_mask_enumerative(_mask(r, (8, 32)), 2, 4), "shape": (8, 32), "n": 2, "m": 4}),),
              "docs/formats.md"),
        _spec("pattern_bits", C.pattern_bits, NM, ("bits",), lambda: hs.nm_params(max_m=64).map(lambda nm: dict(zip(NM, nm))),
              tuple((f"{n}_{m}", lambda r, n=n, m=m: {"n": n, "m": m}) for n, m in ((2, 4), (4, 8), (8, 16), (0, 4))),
              "docs/formats.md"),
        _spec("pattern_ranks", C.pattern_ranks, ("mask",) + NM, ("ranks",), _mask_nm_in,
              (("2_4", lambda r: {"mask": _mask(r, (4, 16)), "n": 2, "m": 4}),), "docs/formats.md"),
        _spec("patterns_from_ranks", C.patterns_from_ranks, ("ranks",) + NM, ("patterns",), _patterns_in,
              (("2_4", lambda r: {"ranks": np.arange(6).reshape(2, 3), "n": 2, "m": 4}),), "docs/formats.md"),
        _spec("encode_mask_huffman", C.encode_mask_huffman, ("mask",) + NM + ("pattern_probs",), ("data", "n_bits"),
              _huffman_in, (("2_4_skewed", lambda r: {"mask": _mask(r, (8, 32)), "n": 2, "m": 4,
                                                      "pattern_probs": [Fraction(k + 1, 21) for k in range(6)]}),),
              "docs/formats.md"),
        _spec("decode_mask_huffman", C.decode_mask_huffman, ("data", "n_bits", "shape") + NM + ("pattern_probs",), ("mask",),
              _decode_huffman_in,
              (("2_4_skewed", lambda r: dict(zip(("data", "n_bits"), C.encode_mask_huffman(
                  _mask(r, (8, 32)), 2, 4, [Fraction(k + 1, 21) for k in range(6)])), shape=(8, 32), n=2, m=4,
                  pattern_probs=[Fraction(k + 1, 21) for k in range(6)])),), "docs/formats.md"),
        _spec("huffman_code_lengths", C.huffman_code_lengths, ("probs",), ("lengths",),
              lambda: st.integers(1, 12).flatmap(_probs).map(lambda p: {"probs": p}),
              (("skewed", lambda r: {"probs": [Fraction(k + 1, 21) for k in range(6)]}),
               ("dyadic", lambda r: {"probs": [Fraction(1, 2), Fraction(1, 4), Fraction(1, 8), Fraction(1, 8)]})),
              "docs/compression.md"),
        _spec("huffman_expected_bits", C.huffman_expected_bits, ("probs",), ("bits",),
              lambda: st.integers(1, 12).flatmap(_probs).map(lambda p: {"probs": p}),
              (("skewed", lambda r: {"probs": [Fraction(k + 1, 21) for k in range(6)]}),), "docs/compression.md"),
        # compression ratios
        _spec("compression_ratio", C.compression_ratio, NM + ("value_bits",), ("ratio",), _ratio_in, _ratio_golden(),
              "docs/compression.md"),
        _spec("index_bits", C.index_bits, NM, ("bits",), lambda: _ratio_in(with_values=False), _ratio_golden(False),
              "docs/compression.md"),
        _spec("ast_compression_ratio", C.ast_compression_ratio, ("n",), ("ratio",),
              lambda: st.integers(1, 64).map(lambda n: {"n": n}),
              tuple((str(n), lambda r, n=n: {"n": n}) for n in (1, 2, 4, 8, 16, 32)), "docs/compression.md"),
        _spec("entropy_compression_ratio", C.entropy_compression_ratio, NM + ("value_bits",), ("ratio",),
              lambda: _ratio_in(coding=False),
              (("2_4", lambda r: {"n": 2, "m": 4, "value_bits": 4}),
               ("2_4_skewed", lambda r: {"n": 2, "m": 4, "value_bits": 4, "base_bits": 16,
                                         "pattern_probs": [Fraction(k + 1, 21) for k in range(6)]})),
              "docs/compression.md", tol=_f64),
        # STE
        _spec("masked_weight", S.masked_weight, ("w", "mask"), ("w",), _masked_weight_in,
              tuple((dt, lambda r, dt=dt: {"w": _ties(r, (4, 16), dt), "mask": _mask(r, (4, 16))}) for dt in ("float32", "bfloat16")),
              "docs/optimizers.md"),
        _spec("sr_ste_grad", S.sr_ste_grad, ("grad", "w", "mask", "lam"), ("grad",), _sr_ste_in,
              tuple((dt, lambda r, dt=dt: {"grad": _normal(r, (4, 16), dt), "w": _normal(r, (4, 16), dt),
                                           "mask": _mask(r, (4, 16)), "lam": 2e-4}) for dt in ("float32", "bfloat16")),
              "docs/optimizers.md", tol=_dt("grad")),
        _spec("annealing_lambda", S.annealing_lambda, ("t", "alpha", "t0"), ("lam",), _annealing_in,
              tuple((f"t{t}", lambda r, t=t: {"t": t, "alpha": 2e-4, "t0": 250}) for t in (0, 100, 250, 1000)),
              "docs/optimizers.md", tol=_f64),
        _spec("mask_refresh_due", S.mask_refresh_due, ("t", "interval"), ("due",),
              lambda: st.tuples(st.integers(0, 100), st.integers(1, 20)).map(lambda a: {"t": a[0], "interval": a[1]}),
              tuple((f"t{t}", lambda r, t=t: {"t": t, "interval": 10}) for t in (0, 5, 10)), "docs/optimizers.md"),
        _spec("refresh_mask", S.refresh_mask, ("w", "mask_old") + NM, ("mask", "flips"), _refresh_in,
              (("2_4", lambda r: {"w": _ties(r, (8, 16)), "mask_old": _mask(r, (8, 16)), "n": 2, "m": 4}),),
              "docs/optimizers.md"),
        # optimizers
        _spec("init_adam_state", lambda params: (lambda s: {"step": s.step, "exp_avg": s.exp_avg, "exp_avg_sq": s.exp_avg_sq})(
              O.init_adam_state(params)), ("params",), ("state",),
              lambda: hs.float_arrays(hs.shapes()).map(lambda p: {"params": p}),
              (("float32", lambda r: {"params": _normal(r, (4, 8))}),), "docs/optimizers.md",
              contract="returns the state dict {'step': 0, 'exp_avg': zeros, 'exp_avg_sq': zeros}"),
        _spec("adamw_step", _adam_contract(O.adamw_step), ("params", "grads", "state", "hyper"), ("params", "state"),
              _adam_in, _adam_golden(), "docs/optimizers.md", tol=_dt("params"), scale=_adam_scale,
              contract="state and hyper are plain dicts; returns (params, state dict)"),
        _spec("adamw_decay_on_weights_step", _adam_contract(O.adamw_decay_on_weights_step),
              ("params", "grads", "state", "hyper"), ("params", "state"),
              lambda: _adam_in(st.fixed_dictionaries({"lam": _LAM})), _adam_golden(lam=2e-4), "docs/optimizers.md",
              tol=_dt("params"), scale=_adam_scale, contract="state and hyper are plain dicts; returns (params, state dict)"),
        _spec("adamw_decay_in_grad_step", _adam_contract(O.adamw_decay_in_grad_step),
              ("params", "grads", "state", "hyper"), ("params", "state"),
              lambda: _adam_in(st.fixed_dictionaries({"lam": _LAM})), _adam_golden(lam=2e-4), "docs/optimizers.md",
              tol=_dt("params"), scale=_adam_scale, contract="state and hyper are plain dicts; returns (params, state dict)"),
        _spec("ast_adamw_step", _adam_contract(O.ast_adamw_step), ("params", "grads", "state", "hyper"), ("params", "state"),
              lambda: _adam_in(st.fixed_dictionaries({"lam": _LAM, "second_moment": st.sampled_from(O.SECOND_MOMENT_SOURCES)})),
              _adam_golden(lam=2e-4, second_moment="update") + tuple(
                  (k + "_gradient", lambda r, f=f: dict(f(r), second_moment="gradient"))
                  for k, f in _adam_golden(lam=2e-4)[:2]),
              "docs/optimizers.md", tol=_dt("params"), scale=_adam_scale, contract="state and hyper are plain dicts; returns (params, state dict)"),
        _spec("adams_step", _adam_contract(O.adams_step), ("params", "grads", "state", "hyper"), ("params", "state"),
              lambda: _adam_in(st.fixed_dictionaries({"lam": _LAM, "ramp_steps": st.integers(1, 30)}) | st.fixed_dictionaries(
                  {"lam": _LAM, "ramp_steps": st.integers(1, 30), "placement": st.just("after_momentum"),
                   "second_moment": st.sampled_from(O.SECOND_MOMENT_SOURCES)}) | st.fixed_dictionaries(
                  {"lam": _LAM, "ramp_steps": st.integers(1, 30), "placement": st.just("in_gradient")})),
              tuple((f"{pl}" + (f"_{sm}_" if sm else "_") + k,
                     lambda r, f=f, pl=pl, sm=sm: dict(f(r), placement=pl, **({"second_moment": sm} if sm else {})))
                    for pl, sm in (("after_momentum", "gradient"), ("after_momentum", "update"), ("in_gradient", None))
                    for k, f in _adam_golden(lam=2e-4, ramp_steps=8)[1:3]) +
              _adam_golden(lam=2e-4, ramp_steps=8)[3:],
              "docs/optimizers.md", tol=_dt("params"), scale=_adam_scale, contract="state and hyper are plain dicts; returns (params, state dict)"),
        _spec("adams_alpha", O.adams_alpha, ("step", "ramp_steps"), ("alpha",), _adams_alpha_in,
              tuple((f"k{k}", lambda r, k=k: {"step": k, "ramp_steps": 8}) for k in (0, 3, 8, 20)), "docs/optimizers.md",
              tol=_f64),
        # SparseGPT, weight scaling
        _spec("sparsegpt_prune", sparsegpt_prune, ("w", "h") + NM, ("w", "mask"), _sparsegpt_in,
              (("2_4", lambda r: {"w": _normal(r, (8, 32), F64), "h": hessian_from_inputs(_normal(r, (64, 32), F64)), "n": 2, "m": 4,
                                  "blocksize": 16}),
               ("2_4_dead_inputs", lambda r: (lambda x: {"w": _normal(r, (8, 32), F32), "h": hessian_from_inputs(x), "n": 2, "m": 4})(
                   _normal(r, (64, 32)) * (np.arange(32) % 7 != 3)))), "docs/experiments.md",
              tol={"w": _dt("w")}, scale=lambda inp, want: float(np.max(np.abs(inp["w"].astype(np.float64)), initial=0.0)) * 10),
        _spec("hessian_from_inputs", hessian_from_inputs, ("x",), ("h",), _hessian_in,
              (("float32", lambda r: {"x": _normal(r, (2, 8, 16))}),), "docs/experiments.md", tol=_f64,
              scale=lambda inp, want: 2 * float(np.max(np.abs(inp["x"].astype(np.float64)), initial=0.0)) ** 2),
        _spec("soft_threshold_nm", soft_threshold_nm, W + NM, ("w",), _soft_threshold_in,
              tuple((dt, lambda r, dt=dt: {"w": _normal(r, (4, 16), dt), "n": 2, "m": 4}) for dt in ("float32", "bfloat16")),
              "docs/optimizers.md", tol=_dt("w")),
        _spec("weight_scale", weight_scale, ("w_ref", "sparse"), ("scale",), _weight_scale_in,
              (("tensor", lambda r: (lambda w: {"w_ref": w, "sparse": soft_threshold_nm(w, 2, 4)})(_normal(r, (8, 16)))),
               ("rows", lambda r: (lambda w: {"w_ref": w, "sparse": soft_threshold_nm(w, 2, 4), "axis": -1})(_normal(r, (8, 16))))),
              "docs/optimizers.md", tol=_f64),
        # SLoRB
        _spec("slorb_projection", slorb_projection, ("d", "k"), ("x",),
              lambda: st.tuples(st.integers(1, 4), st.integers(1, 4), st.sampled_from(["float32", "float64", "float16"])).map(
                  lambda a: {"d": a[0] * a[1], "k": a[1], "dtype": a[2]}),
              (("16_4", lambda r: {"d": 16, "k": 4, "dtype": "float32"}),), "docs/optimizers.md"),
        _spec("slorb_init", slorb_init, ("w", "mask", "k"), ("s",), lambda: _slorb_base(),
              _slorb_golden(), "docs/optimizers.md", tol=_dt("w"), scale=_slorb_scale),
        _spec("slorb_effective_weight", slorb_effective_weight, ("w", "mask", "s", "k"), ("w_eff",),
              lambda: _slorb_base(s=True), _slorb_golden(s=True), "docs/optimizers.md", tol=_dt("w"), scale=_slorb_scale),
        _spec("slorb_forward", slorb_forward, ("x", "w", "mask", "s", "k"), ("y",), lambda: _slorb_base(x=True, s=True, bias=True),
              _slorb_golden(x=True, s=True), "docs/optimizers.md", tol=_dt("w"), scale=_slorb_scale),
        _spec("slorb_backward", slorb_backward, ("x", "w", "mask", "s", "k", "grad_y"), ("grad_x", "grad_w", "grad_s"),
              lambda: _slorb_base(x=True, s=True, grad=True), _slorb_golden(x=True, s=True, grad=True), "docs/optimizers.md",
              tol={k: _dt("w") for k in ("grad_x", "grad_w", "grad_s")}, scale=_slorb_scale),
        _spec("slorb_parameter_overhead", slorb_parameter_overhead, ("n_out", "d", "k"), ("overhead",),
              lambda: st.tuples(st.integers(1, 64), st.integers(1, 8), st.integers(1, 8), hs.nm_params(min_n=1)).map(
                  lambda a: {"n_out": a[0], "d": a[1] * a[2], "k": a[2], "n": a[3][0], "m": a[3][1]}),
              (("4096_16", lambda r: {"n_out": 4096, "d": 4096, "k": 16}),), "docs/optimizers.md",
              contract="returns {'extra_params': int, 'vs_dense': Fraction, 'vs_kept': Fraction}"),
        # activation sparsity
        _spec("exact_threshold", A.exact_threshold, ("x", "p"), ("t",), _threshold_in,
              tuple((f"p{int(p * 100)}_{dt}", lambda r, p=p, dt=dt: {"x": _normal(r, 257, dt), "p": p})
                    for p, dt in ((0.5, "float32"), (0.0, "float32"), (0.25, "bfloat16"), (0.9, "float16"))) +
              (("ties", lambda r: {"x": _ties(r, (4, 16)), "p": 0.4}),
               # p·N = 3.6: the nearest drop count (4) and the floor (3) pick different distinct values
               ("p36_n10_rounding", lambda r: {"x": _normal(r, 10), "p": 0.36})), "docs/activation.md"),
        _spec("histogram_threshold", histogram_threshold, ("x", "p"), ("t",), _histogram_in,
              tuple((f"bits{b}", lambda r, b=b: {"x": _normal(r, (8, 64)), "p": 0.5, "mantissa_bits": b}) for b in (7, 0, 12)),
              "docs/activation.md",
              contract="ThresholdHistogram(mantissa_bits).update(x).threshold(p) as one function"),
        _spec("sparsify", A.sparsify, ("x", "t"), ("x",), _sparsify_in,
              tuple((dt, lambda r, dt=dt: {"x": _ties(r, (4, 16), dt), "t": 1.0}) for dt in ("float32", "bfloat16")),
              "docs/activation.md"),
        _spec("sparsify_batched", A.sparsify_batched, ("x", "t"), ("x",), lambda: _sparsify_in(batched=True),
              tuple((dt, lambda r, dt=dt: {"x": _normal(r, (4, 16), dt), "t": 0.7}) for dt in ("float32", "bfloat16")),
              "docs/activation.md"),
        _spec("sparsify_prefill", A.sparsify_prefill, ("x", "t"), ("x",), lambda: _sparsify_in(prefill=True),
              (("default_start", lambda r: {"x": _normal(r, (2, 6, 8)), "t": 0.7}),
               ("start1_bfloat16", lambda r: {"x": _normal(r, (5, 8), BF16), "t": 0.7, "start": 1})), "docs/activation.md"),
        _spec("greedy_block_allocation", A.greedy_block_allocation, ("block_fn", "x_calib", "param_counts"),
              ("sparsities", "totals", "errors"), _greedy_in, _greedy_golden(), "docs/activation.md",
              tol={"sparsities": _f64, "totals": _f64, "errors": _f64}, build=_greedy_build, post=_greedy_post,
              contract="block_fn is nmref.testing.teal_block(weights); the path (GreedySteps or (sparsities, total, error) "
                       "tuples) is compared as arrays"),
        _spec("sparsities_at", A.sparsities_at, ("path", "target"), ("sparsities",), _path_in,
              (("t35", lambda r: {"names": ["q", "up"], "sparsities": np.array([[0, 0], [0.2, 0], [0.2, 0.5], [0.6, 0.5]]),
                                  "totals": np.array([0.0, 0.1, 0.35, 0.55]), "errors": np.array([0.0, 0.01, 0.05, 0.2]),
                                  "target": 0.35}),),
              "docs/activation.md", build=_path_build, contract="path is a list of nmref.GreedySteps"),
        _spec("gemv_input_sparse", A.gemv_input_sparse, ("x", "w", "t"), ("y",), lambda: _gemv_in("input"), _teal_golden("input"),
              "docs/activation.md", tol=_promoted("x", "w"), scale=_gemv_scale),
        _spec("gemv_input_sparse_batched", A.gemv_input_sparse_batched, ("x", "w", "t"), ("y",), lambda: _gemv_in("batched"),
              _teal_golden("input"), "docs/activation.md", tol=_promoted("x", "w"), scale=_gemv_scale, since=3),
        _spec("gemv_output_sparse", A.gemv_output_sparse, ("x", "w", "s"), ("y",), lambda: _gemv_in("output"),
              _teal_golden("output"), "docs/activation.md", tol=_promoted("x", "w"), scale=_gemv_scale),
        _spec("gemv_input_sparse_24", A.gemv_input_sparse_24, ("x", "w", "mask", "t"), ("y",), lambda: _gemv_in("24"),
              _teal_golden("24"), "docs/activation.md", tol=_promoted("x", "w"), scale=_gemv_scale),
        _spec("gemv_input_sparse_24_packed_t", A.gemv_input_sparse_24_packed_t, ("x", "values_t", "meta_t", "t"), ("y",),
              lambda: _gemv_in("packed_t"), _teal_golden("packed_t"), "docs/activation.md",
              tol=_promoted("x", "values_t"), scale=_gemv_scale),
        # quantization of kept values
        _spec("quantize_groups", Q.quantize_groups, ("v",), ("q", "scales"), _quant_in,
              (("int4_g128", lambda r: {"v": _normal(r, (4, 300)), "bits": 4, "group": 128}),), "docs/compression.md",
              since=3),
        _spec("dequantize_groups", Q.dequantize_groups, ("q", "scales"), ("v",), _dequant_in,
              (("int4_g128", lambda r: dict(zip(("q", "scales"), Q.quantize_groups(_normal(r, (4, 300)), 4, 128)),
                                            group=128)),), "docs/compression.md", since=3),
        # distillation
        _spec("log_softmax", D.log_softmax, ("z",), ("log_p",), _log_softmax_in,
              _distill_golden(("z",), temps=(1.0, 2.0)), "docs/optimizers.md", tol=_dt("z"), scale=_logit_scale),
        _spec("kl_forward", D.kl_forward, ("teacher_logits", "student_logits"), ("loss", "grad"), _kl_in,
              _distill_golden(("teacher_logits", "student_logits"), temps=(1.0, 2.0)), "docs/optimizers.md",
              tol={"loss": _dt("student_logits"), "grad": _dt("student_logits")}, scale=_logit_scale),
        _spec("kl_reverse", D.kl_reverse, ("teacher_logits", "student_logits"), ("loss", "grad"), _kl_in,
              _distill_golden(("teacher_logits", "student_logits"), temps=(1.0, 2.0)), "docs/optimizers.md",
              tol={"loss": _dt("student_logits"), "grad": _dt("student_logits")}, scale=_logit_scale),
        _spec("cross_entropy", D.cross_entropy, ("logits", "targets"), ("loss", "grad"), _ce_in,
              _distill_golden(("logits",), temps=(None,), with_targets=True), "docs/optimizers.md",
              tol={"loss": _dt("logits"), "grad": _dt("logits")}, scale=_logit_scale),
        _spec("distill_loss", D.distill_loss, ("student_logits", "teacher_logits", "targets"), ("loss", "grad"), _distill_in,
              _distill_golden(("student_logits", "teacher_logits"), kinds=D.DISTILL_KINDS, with_targets=True,
                              extra={"alpha": 0.67}), "docs/optimizers.md",
              tol={"loss": _dt("student_logits"), "grad": _dt("student_logits")}, scale=_logit_scale),
        _spec("squarehead_loss", D.squarehead_loss, ("student_features", "teacher_features"), ("loss", "grad"), _squarehead_in,
              _distill_golden(("student_features", "teacher_features"), temps=(None,)), "docs/optimizers.md",
              tol={"loss": _dt("student_features"), "grad": _dt("student_features")},
              scale=lambda inp, want: 4.0 * max(1.0, float(np.max(np.abs(inp["student_features"].astype(np.float64))))) ** 2 /
              max(float(np.mean(np.square(inp["teacher_features"].astype(np.float64)))), 1e-300)),
    ]
    return {s.name: s for s in out}


#: Every operation of the conformance kit and the golden sets, by name.
OPS = _specs()


def op_names() -> list[str]:
    """The operation names, in the registry's (documentation) order."""
    return list(OPS)


def get_op(name: str) -> OpSpec:
    from .._checks import NMRefValueError
    if not isinstance(name, str) or name not in OPS:
        raise NMRefValueError(f"op must be one of the conformance kit's operations (nmref conform --list), got {name!r}")
    return OPS[name]


def reference(name: str):
    """The reference of operation ``name`` under the adapter contract (usually the nmref function itself)."""
    return get_op(name).ref


class _Reference:
    """Every operation's reference under the adapter contract, as one namespace (``--impl nmref.testing:REFERENCE``)."""

    def __getattr__(self, name):
        if name in OPS:
            return OPS[name].ref
        raise AttributeError(name)

    def __dir__(self):
        return list(OPS)


#: The reference as a foreign implementation: ``nmref conform --impl nmref.testing:REFERENCE --op all``.
REFERENCE = _Reference()
