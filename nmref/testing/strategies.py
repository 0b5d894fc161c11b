"""Hypothesis strategies for the inputs of nmref's operations — adversarial by default.

Building blocks (each shrinks towards small, simple examples, so a failure ends at a minimal one):

* :func:`float_dtypes` — float16, bfloat16, float32, float64.
* :func:`values` — one element of a float dtype, drawn from a mixture that shrinks to 0: small
  integers (ties), ±0.0, ±Inf, the smallest subnormal, the largest finite value, then any finite value.
* :func:`float_arrays` — arrays of those elements; sometimes a whole array (and so every group) holds
  one value: the all-equal case.
* :func:`nm_params` — a legal ``(n, m)``; :func:`nm_arrays` — ``(w, n, m, axis)`` with a grouped axis
  divisible by ``m``, any rank from 1 to 3, any legal axis, zero groups included.
* :func:`masks` — exact N:M boolean masks; :func:`pruned` — weights made N:M sparse.
* :func:`scalars` — a scalar operand (threshold, λ, learning rate, temperature, …) for arrays of a
  dtype: usual values, ±0, the dtype's largest and smallest finite magnitudes, and values strictly
  between two neighbours of the dtype — next to the array's own magnitudes, where rounding the scalar
  to the dtype (what NumPy ≥ 2 and PyTorch do with a Python float) changes a comparison.

With :data:`invalid_inputs` set (``check_conforms(errors=True)``), elements may also be NaN and a
grouped length may leave a partial group: inputs the reference rejects, on which an implementation
must raise too.

Per-operation input strategies live with each operation's specification
(:data:`nmref.testing.OPS`, ``spec.inputs()``): they draw a dict of the operation's arguments.
"""
from __future__ import annotations

import contextvars

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .._checks import FLOAT_DTYPES

__all__ = ["FLOAT_DTYPE_NAMES", "float_dtypes", "values", "float_arrays", "shapes", "nm_params", "nm_arrays",
           "masks", "pruned", "ranks", "dtype_of", "scalars", "neighbour"]

FLOAT_DTYPE_NAMES = ("float32", "float16", "bfloat16", "float64")


def dtype_of(name) -> np.dtype:
    """``numpy.dtype`` of a name, bfloat16 included (ml_dtypes)."""
    if str(name) == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


#: The float dtypes a draw may use (None: all); set by ``check_conforms(dtypes=...)`` for its run.
allowed_dtypes: contextvars.ContextVar = contextvars.ContextVar("nmref_allowed_dtypes", default=None)
#: Also draw inputs the reference rejects (NaN elements, a grouped length that is not a multiple of m);
#: set by ``check_conforms(errors=True)`` for its run.
invalid_inputs: contextvars.ContextVar = contextvars.ContextVar("nmref_invalid_inputs", default=False)


@st.composite
def float_dtypes(draw, names=FLOAT_DTYPE_NAMES):
    """One of the float dtypes ``names`` (shrinks to the first), restricted to :data:`allowed_dtypes`."""
    allowed = allowed_dtypes.get()
    choices = [dtype_of(n) for n in names if dtype_of(n) in FLOAT_DTYPES and (allowed is None or str(n) in allowed)]
    if not choices:
        reject()
    return draw(st.sampled_from(choices))


# Width of the element strategy that produces values exactly representable in the dtype.
_WIDTH = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}


def _largest(dtype) -> float:
    """The largest finite value of ``dtype``."""
    return 3.3895313892515355e38 if np.dtype(dtype).name == "bfloat16" else float(np.finfo(dtype).max)


def _specials(dtype, infinity: bool) -> list:
    name = np.dtype(dtype).name
    tiny = {"float16": 2.0 ** -24, "bfloat16": 2.0 ** -133, "float32": 2.0 ** -149, "float64": 5e-324}[name]
    big = _largest(dtype)
    out = [0.0, -0.0, tiny, -tiny, big, -big]
    return out + ([np.inf, -np.inf] if infinity else [])


def values(dtype, *, infinity: bool = True, ties: bool = True, magnitude: float | None = None):
    """Elements of ``dtype``: small integers (ties) first, then specials, then any finite value.

    ``infinity=False`` leaves out ±Inf; ``magnitude`` bounds the finite values (and leaves out the
    largest finite value), for operations whose arithmetic would otherwise overflow."""
    parts = []
    if ties:
        parts.append(st.integers(-4, 4).map(float))
    specials = _specials(dtype, infinity)
    if magnitude is not None:
        specials = [v for v in specials if abs(v) <= magnitude or np.isinf(v)]
    parts.append(st.sampled_from(specials))
    width = _WIDTH[np.dtype(dtype).name]
    if magnitude is None and np.dtype(dtype).name == "bfloat16":  # float32 draws beyond bfloat16's max round to Inf
        parts.append(st.floats(-_largest(dtype), _largest(dtype), allow_nan=False, width=width))
    elif magnitude is None:
        parts.append(st.floats(allow_nan=False, allow_infinity=False, width=width))
    else:
        parts.append(st.floats(-magnitude, magnitude, allow_nan=False, width=width))
    if invalid_inputs.get():
        parts.append(st.just(float("nan")))
    return st.one_of(*parts)


_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def neighbour(dtype, a: float, direction: int) -> float:
    """The value of ``dtype`` next to the representable ``a`` towards +inf (``direction=1``) or −inf
    (``-1``); ±0 step to ± the smallest subnormal. Computed on the bits (bfloat16 has no nextafter)."""
    dt = np.dtype(dtype)
    if a == 0:
        bits = 1 if direction > 0 else (1 << (8 * dt.itemsize - 1)) | 1
    else:
        bits = int(np.array(a, dtype=dt).view(_UINT[dt.itemsize]))
        bits += 1 if (a > 0) == (direction > 0) else -1  # away from zero: the next magnitude up
    return float(np.array(bits, dtype=_UINT[dt.itemsize]).view(dt))


@st.composite
def scalars(draw, dtype, *, base=(0.5, 0.0, 1.0), anchors=None, minimum: float = -np.inf, maximum: float = np.inf,
            infinity: bool = False):
    """A scalar operand for arrays of ``dtype``, as a Python float in ``[minimum, maximum]``.

    Shrinks to ``base[0]``; otherwise one of ``base``, ±0.0, the dtype's largest and smallest finite
    magnitudes (±Inf with ``infinity``), or a value **strictly between two neighbours** ``a⁻ < a`` of
    the dtype — halfway (a tie under round-to-nearest) or a quarter from either end — where ``a`` is one
    of ``anchors`` (e.g. the array's magnitudes; default the ``base`` values) or any finite value. Such a
    value keeps ``a`` under the exact comparison ``a > t`` and drops it once ``t`` is rounded to the
    dtype. Float64 arrays get ``a`` itself (no float64 lies between two float64 neighbours)."""
    dt = dtype_of(dtype)
    name = dt.name
    specials = [v for v in _specials(dt, infinity) if minimum <= v <= maximum]
    kind = draw(st.integers(0, 7))  # half the draws the usual values (an op's typical use), an eighth specials
    if kind <= 3 or (kind == 4 and not specials):
        v = draw(st.sampled_from(list(base)))
    elif kind == 4:
        v = draw(st.sampled_from(specials))
    else:
        finite = [float(a) for a in np.asarray(list(anchors) if anchors is not None else list(base),
                                               dtype=np.float64).ravel() if np.isfinite(a)]
        if finite and draw(st.booleans()):
            a = draw(st.sampled_from(finite))
        else:
            a = draw(values(dt, infinity=False, ties=False))
        a = float(np.array(a, dtype=dt))  # anchors of another dtype: their value in this one
        if not np.isfinite(a):
            a = float(base[0])
        if name == "float64":
            v = a
        else:
            lo, hi = (neighbour(dt, a, -1), a) if draw(st.booleans()) else (a, neighbour(dt, a, 1))
            frac = draw(st.sampled_from([0.5, 0.25, 0.75]))
            v = lo + (hi - lo) * frac if np.isfinite(lo) and np.isfinite(hi) else a
    v = float(v)
    return v if minimum <= v <= maximum else float(base[0])


def shapes(*, min_dims=1, max_dims=3, min_side=0, max_side=5):
    """Array shapes, ragged and degenerate (zero-length and length-1 axes) included."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


@st.composite
def float_arrays(draw, shape, dtype=None, *, infinity: bool = True, ties: bool = True, magnitude=None,
                 equal: bool = True, sparse: bool = False):
    """A float array of ``shape`` (a tuple or a strategy) and ``dtype`` (a dtype, name, or None: any).

    ``equal``: one draw in four, one value fills the whole array (every group is a tie). ``sparse``: most
    elements are 0 (large arrays are drawn faster and shrink better)."""
    if not isinstance(shape, tuple):
        shape = draw(shape)
    dt = draw(float_dtypes()) if dtype is None else dtype_of(dtype)
    allowed = allowed_dtypes.get()
    if allowed is not None and dt.name not in allowed:
        reject()
    base = np.float32 if dt.name == "bfloat16" else dt
    el = values(dt, infinity=infinity, ties=ties, magnitude=magnitude)
    if equal and draw(st.integers(0, 3)) == 0:  # one value everywhere: every group a tie
        return np.full(shape, draw(el), dtype=base).astype(dt)
    arr = draw(hnp.arrays(base, shape, elements=el, fill=st.just(0.0) if sparse else None))
    return arr.astype(dt)


def nm_params(*, max_m: int = 8, min_n: int = 0):
    """A legal ``(n, m)``: ``1 <= m <= max_m``, ``min_n <= n <= m``."""
    return st.integers(max(1, min_n), max_m).flatmap(lambda m: st.tuples(st.integers(min_n, m), st.just(m)))


@st.composite
def nm_arrays(draw, *, max_m: int = 8, min_n: int = 0, max_groups: int = 4, max_dims: int = 3, dtype=None,
              infinity: bool = True, min_groups: int = 0):
    """``(w, n, m, axis)``: ``w.shape[axis]`` is a multiple of ``m`` (0 groups allowed); any legal axis,
    negative or not."""
    n, m = draw(nm_params(max_m=max_m, min_n=min_n))
    nd = draw(st.integers(1, max_dims))
    axis = draw(st.integers(-nd, nd - 1))
    shape = list(draw(shapes(min_dims=nd, max_dims=nd, min_side=1, max_side=3)))
    shape[axis] = m * draw(st.integers(min_groups, max_groups))
    if invalid_inputs.get() and m > 1 and draw(st.integers(0, 7)) == 7:
        shape[axis] += 1  # a partial group: the reference raises
    w = draw(float_arrays(tuple(shape), dtype, infinity=infinity))
    return w, n, m, axis


@st.composite
def masks(draw, shape, n: int, m: int, axis: int = -1):
    """An exact N:M mask (exactly ``n`` True in every group of ``m`` along ``axis``)."""
    from ..masks import nm_mask
    scores = draw(hnp.arrays(np.int8, shape, elements=st.integers(0, 3)))
    return nm_mask(scores.astype(np.float32), n, m, axis=axis)


def pruned(w: np.ndarray, n: int = 2, m: int = 4, axis: int = -1) -> np.ndarray:
    """``w`` with everything but the N:M magnitude mask set to +0.0 (Inf-free input expected)."""
    from ..masks import nm_mask
    return np.where(nm_mask(w, n, m, axis=axis), w, np.zeros((), w.dtype))


def ranks(shape, n: int, m: int):
    """Pattern ranks in ``[0, C(m, n))`` of the given grouped shape."""
    import math
    return hnp.arrays(np.int64, shape, elements=st.integers(0, math.comb(m, n) - 1))
