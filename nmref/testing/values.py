"""Values that cross the conformance boundary: comparing them, storing them in golden files, and
printing them as Python source.

An operation's inputs and outputs are NumPy arrays, Python scalars (bool, int, float, str),
``bytes``, :class:`fractions.Fraction` (exact rationals), tuples/lists of these, and dicts of these
(optimizer state). :func:`compare` applies an operation's rule to one output, :func:`encode` /
:func:`decode` map a value to ``.npz`` arrays and back (no pickles), :func:`source` writes a value
as a Python expression that rebuilds it exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .._checks import is_float_dtype

__all__ = ["Tol", "EXACT", "compare", "encode", "decode", "source", "is_jsonable"]

EXACT = "exact"


@dataclass(frozen=True)
class Tol:
    """``|got − want| ≤ atol + rtol·|want|`` elementwise, in float64; non-finite values must match
    exactly (same-signed Inf, NaN where NaN)."""
    rtol: float
    atol: float = 0.0

    def as_json(self) -> dict:
        return {"rtol": self.rtol, "atol": self.atol}


def _float_bits(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1).view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _first_diff(bad: np.ndarray, got: np.ndarray, want: np.ndarray) -> str:
    idx = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), bad.shape) if bad.ndim else ()
    g, w = got[idx], want[idx]
    where = f" at index {tuple(int(i) for i in idx)}" if bad.ndim else ""
    return f"{int(bad.sum())} of {bad.size} elements differ; first{where}: got {_scalar_text(g)}, want {_scalar_text(w)}"


def _scalar_text(v) -> str:
    if isinstance(v, (np.floating, float)):
        return repr(float(v))
    if isinstance(v, (np.bool_, bool)):
        return repr(bool(v))
    if isinstance(v, (np.integer, int)):
        return repr(int(v))
    return repr(v)


def _compare_arrays(got, want: np.ndarray, rule, check_dtype: bool) -> str | None:
    if not isinstance(got, np.ndarray):
        if np.isscalar(got) or isinstance(got, (list, tuple)):
            got = np.asarray(got)
        else:
            return f"got a {type(got).__name__}, expected a numpy.ndarray"
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if (rule == EXACT or check_dtype) and got.dtype != want.dtype:
        return f"dtype {got.dtype}, expected {want.dtype}"
    if want.size == 0:
        return None
    if rule == EXACT:
        if is_float_dtype(want.dtype):  # bitwise: -0.0 differs from +0.0, NaN equals NaN
            bad = _float_bits(got) != _float_bits(want)
            same_nan = np.isnan(got.astype(np.float64).reshape(-1)) & np.isnan(want.astype(np.float64).reshape(-1))
            bad = (bad & ~same_nan).reshape(want.shape)
        else:
            bad = got != want
        return _first_diff(bad, got, want) if bad.any() else None
    g, w = got.astype(np.float64), want.astype(np.float64)
    fin = np.isfinite(w)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.where(fin, np.abs(g - w) <= rule.atol + rule.rtol * np.abs(w),
                      (g == w) | (np.isnan(g) & np.isnan(w)))
    ok &= ~(fin & ~np.isfinite(g))
    if ok.all():
        return None
    bad = ~ok
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.abs(g - w)[bad & fin]
    extra = f" (max abs err {err.max():.3g}, allowed {rule.atol:.3g} + {rule.rtol:.3g}·|want|)" if err.size else ""
    return _first_diff(bad, got, want) + extra


def compare(got, want, rule=EXACT, *, check_dtype: bool = True) -> str | None:
    """``None`` when ``got`` matches ``want`` under ``rule`` (``"exact"`` or a :class:`Tol`), else a
    one-line reason. Arrays must have ``want``'s shape (and dtype: always for ``"exact"``, with
    ``check_dtype`` for a tolerance)."""
    if isinstance(want, np.ndarray):
        return _compare_arrays(got, want, rule, check_dtype)
    if isinstance(want, (bytes, bytearray)):
        if not isinstance(got, (bytes, bytearray, memoryview)):
            return f"got a {type(got).__name__}, expected bytes"
        got = bytes(got)
        if got == bytes(want):
            return None
        if len(got) != len(want):
            return f"{len(got)} bytes, expected {len(want)}"
        k = next(i for i in range(len(got)) if got[i] != want[i])
        return f"bytes differ first at offset {k}: got {got[k]:#04x}, want {want[k]:#04x}"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"got a {type(got).__name__}, expected a dict with keys {sorted(want)}"
        if set(got) != set(want):
            return f"keys {sorted(got)}, expected {sorted(want)}"
        for k in want:
            r = compare(got[k], want[k], rule, check_dtype=check_dtype)
            if r:
                return f"[{k!r}]: {r}"
        return None
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple, np.ndarray)) or len(got) != len(want):
            return f"got {_scalar_text(got)[:80]}, expected a sequence of {len(want)} items"
        for k, (g, w) in enumerate(zip(got, want)):
            r = compare(g, w, rule, check_dtype=check_dtype)
            if r:
                return f"[{k}]: {r}"
        return None
    if isinstance(want, Fraction):
        if isinstance(got, (Fraction, int, np.integer)) and not isinstance(got, (bool, np.bool_)):
            g = got if isinstance(got, Fraction) else Fraction(int(got))
            return None if g == want else f"got {g}, want {want} (exact rational)"
        if isinstance(got, (float, np.floating)):
            # a float passes only as the correctly rounded double of the exact rational
            return None if float(got) == float(want) else f"got {float(got)!r}, want {want} = {float(want)!r}"
        return f"got a {type(got).__name__}, expected an exact rational (fractions.Fraction or int)"
    if isinstance(want, (bool, np.bool_)):
        if not isinstance(got, (bool, np.bool_)):
            return f"got {_scalar_text(got)} ({type(got).__name__}), expected a bool"
        return None if bool(got) == bool(want) else f"got {bool(got)}, want {bool(want)}"
    if isinstance(want, (int, np.integer)):
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
            return f"got {_scalar_text(got)} ({type(got).__name__}), expected an int"
        return None if int(got) == int(want) else f"got {int(got)}, want {int(want)}"
    if isinstance(want, (float, np.floating)):
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, float, np.integer, np.floating)):
            return f"got {_scalar_text(got)} ({type(got).__name__}), expected a float"
        r = _compare_arrays(np.asarray(float(got)), np.asarray(float(want)), rule, False)
        return None if r is None else f"got {float(got)!r}, want {float(want)!r}"
    if isinstance(want, str):
        return None if got == want else f"got {got!r}, want {want!r}"
    if want is None:
        return None if got is None else f"got {_scalar_text(got)}, want None"
    raise TypeError(f"nmref.testing cannot compare values of type {type(want).__name__}")


# ------------------------------------------------------------------ golden storage
def is_jsonable(v) -> bool:
    """Python scalars, strings, None, dicts of them and flat lists of them go to a manifest's JSON ``params``."""
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and is_jsonable(x) for k, x in v.items())
    if isinstance(v, list):  # a tuple is stored as a tuple (a shape), not as a JSON list
        return all(is_jsonable(x) and not isinstance(x, (dict, list)) for x in v)
    return False


def encode(name: str, v) -> tuple[dict, object]:
    """``(arrays, type)``: the ``.npz`` arrays (keys ``name`` or ``name.<part>``) storing ``v`` and its
    type tag: ``"array"``, ``"bfloat16"`` (the uint16 bit patterns of a bfloat16 array), ``"bytes"`` (uint8), ``"fraction"`` / ``"fractions"`` (int64 ``numerator``
    and ``denominator``), ``"scalar"`` (0-d), ``"tuple"`` / ``"list"`` (int64 or float64 1-d), or a dict
    ``{key: tag}`` for a dict (keys ``name.<key>``)."""
    if isinstance(v, np.ndarray):
        if v.dtype.name == "bfloat16":  # .npy has no bfloat16: store the bit patterns
            return {name: v.view(np.uint16)}, "bfloat16"
        return {name: v}, "array"
    if isinstance(v, (bytes, bytearray)):
        return {name: np.frombuffer(bytes(v), dtype=np.uint8)}, "bytes"
    if isinstance(v, Fraction):
        return {f"{name}.numerator": np.asarray(v.numerator, np.int64),
                f"{name}.denominator": np.asarray(v.denominator, np.int64)}, "fraction"
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, Fraction) for x in v):
        return {f"{name}.numerator": np.array([x.numerator for x in v], np.int64),
                f"{name}.denominator": np.array([x.denominator for x in v], np.int64)}, "fractions"
    if isinstance(v, (list, tuple)):
        arr = np.asarray(v, dtype=np.int64 if all(isinstance(x, (int, np.integer)) for x in v) else np.float64)
        return {name: arr.reshape(len(v))}, type(v).__name__
    if isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)):
        return {name: np.asarray(v)}, "scalar"
    if isinstance(v, dict):
        arrays, types = {}, {}
        for k, x in v.items():
            a, t = encode(f"{name}.{k}", x)
            arrays.update(a)
            types[k] = t
        return arrays, types
    raise TypeError(f"cannot store {name!r} of type {type(v).__name__} in a golden file")


def decode(name: str, tag, arrays: dict):
    """Inverse of :func:`encode`."""
    if isinstance(tag, dict):
        return {k: decode(f"{name}.{k}", t, arrays) for k, t in tag.items()}
    if tag == "array":
        return arrays[name]
    if tag == "bfloat16":
        import ml_dtypes
        return arrays[name].view(ml_dtypes.bfloat16)

    if tag == "bytes":
        return arrays[name].tobytes()
    if tag == "fraction":
        return Fraction(int(arrays[f"{name}.numerator"]), int(arrays[f"{name}.denominator"]))
    if tag == "fractions":
        return [Fraction(int(a), int(b)) for a, b in zip(arrays[f"{name}.numerator"], arrays[f"{name}.denominator"])]
    if tag in ("tuple", "list"):
        items = arrays[name].tolist()
        return tuple(items) if tag == "tuple" else items
    if tag == "scalar":
        return arrays[name].item()
    raise ValueError(f"unknown stored type {tag!r} for {name!r}")


# ------------------------------------------------------------------ Python source of a value
def _num(x: float) -> str:
    if math.isnan(x):
        return "np.nan"
    if math.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(x)


def _nested(a) -> str:
    if isinstance(a, list):
        return "[" + ", ".join(_nested(x) for x in a) + "]"
    if isinstance(a, float):
        return _num(a)
    return repr(a)


def sparse_array(shape, dtype, entries: dict) -> np.ndarray:
    """An array of zeros of ``shape`` and ``dtype`` (a name; bfloat16 included) with ``entries``
    ``{index tuple: value}`` set: how a reproduction spells a large, mostly-zero input."""
    from .strategies import dtype_of
    dt = dtype_of(dtype)
    out = np.zeros(shape, dtype=np.float32 if dt.name == "bfloat16" else dt)
    for idx, val in entries.items():
        out[idx] = val
    return out.astype(dt)


def _np_name(dt) -> str:
    """The NumPy attribute that names ``dt`` in every supported NumPy: ``bool_`` (``np.bool`` is NumPy ≥ 2
    only), ``float32`` for bfloat16 (rebuilt through ``.astype(ml_dtypes.bfloat16)``)."""
    return {"bool": "bool_", "bfloat16": "float32"}.get(dt.name, dt.name)


def source(v) -> str:
    """A Python expression (using ``np``, ``ml_dtypes``, ``Fraction`` and, for a large mostly-zero
    array, :func:`sparse_array`) that rebuilds ``v`` exactly."""
    if isinstance(v, np.ndarray) and v.size > 64 and np.count_nonzero(v) <= 16 and \
            (v.dtype.kind in "iub" or is_float_dtype(v.dtype)) and \
            not (is_float_dtype(v.dtype) and np.signbit(v[v == 0].astype(np.float64)).any()):
        nz = np.argwhere(v != 0)
        vals = v[tuple(nz.T)]
        vals = vals.astype(np.float64).tolist() if is_float_dtype(v.dtype) else vals.tolist()
        entries = ", ".join(f"{tuple(int(i) for i in idx)}: {_nested(x)}" for idx, x in zip(nz, vals))
        return f'sparse_array({v.shape}, "{v.dtype.name}", {{{entries}}})'
    if isinstance(v, np.ndarray):
        dt = v.dtype
        if v.size == 0:
            body = f"np.zeros({v.shape}, dtype=np.{_np_name(dt)})"
        else:
            lst = v.astype(np.float64).tolist() if is_float_dtype(dt) else v.tolist()
            body = f"np.array({_nested(lst)}, dtype=np.{_np_name(dt)})"
        return body + ".astype(ml_dtypes.bfloat16)" if dt.name == "bfloat16" else body
    if isinstance(v, Fraction):
        return f"Fraction({v.numerator}, {v.denominator})"
    if isinstance(v, (float, np.floating)):
        return _num(float(v))
    if isinstance(v, (np.bool_,)):
        return repr(bool(v))
    if isinstance(v, np.integer):
        return repr(int(v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k!r}: {source(x)}" for k, x in v.items()) + "}"
    if isinstance(v, tuple):
        return "(" + ", ".join(source(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, list):
        return "[" + ", ".join(source(x) for x in v) + "]"
    return repr(v)
