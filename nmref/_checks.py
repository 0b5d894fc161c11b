"""Argument validation shared by every public operation.

Every error raised for bad input is an :class:`NMRefValueError` (a ``ValueError``)
or an :class:`NMRefTypeError` (a ``TypeError``) whose message names the argument,
the value received and what was expected.
"""
from __future__ import annotations

import operator

import numpy as np

__all__ = ["NMRefValueError", "NMRefTypeError", "NMRefStepWarning"]


class NMRefValueError(ValueError):
    """An argument has the right type but an invalid value."""


class NMRefTypeError(TypeError):
    """An argument has the wrong type or dtype."""


class NMRefStepWarning(RuntimeWarning):
    """An optimizer step moved a weight further than the Adam step bound (see ``adam_step_bound``)."""


def _dtype_names() -> tuple:
    names = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
    try:  # bfloat16 is optional (ml_dtypes)
        import ml_dtypes

        names.append(np.dtype(ml_dtypes.bfloat16))
    except ImportError:  # pragma: no cover - optional dependency
        pass
    return tuple(names)


FLOAT_DTYPES = _dtype_names()


def is_float_dtype(dtype) -> bool:
    return np.dtype(dtype) in FLOAT_DTYPES


def as_array(name: str, x) -> np.ndarray:
    """``x`` as an ndarray: arrays as they are, Python lists/tuples and NumPy scalars through
    ``numpy.asarray`` (so a list is treated as the array it spells); anything else is a type error."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple, np.generic)):
        try:
            return np.asarray(x)
        except ValueError as e:  # ragged nested lists
            raise NMRefValueError(f"{name} is not a rectangular array: {e}") from None
    raise NMRefTypeError(f"{name} must be a numpy.ndarray (or a list of numbers), got {type(x).__name__}")


def as_typed_array(name: str, x, dtype, what: str) -> np.ndarray:
    """``x`` (an array or a list, see :func:`as_array`) whose dtype must be ``dtype``."""
    x = as_array(name, x)
    if x.dtype != np.dtype(dtype):
        raise NMRefTypeError(f"{name} must have dtype {np.dtype(dtype)} ({what}), got dtype {x.dtype}")
    return x


def as_float_array(name: str, x, *, allow_nan: bool = True) -> np.ndarray:
    """Return ``x`` as an ndarray of a supported float dtype (no copy if possible); a Python list of
    numbers becomes float64."""
    if isinstance(x, (list, tuple)):
        x = as_array(name, x)
        if x.dtype.kind in "iuf":
            x = x.astype(np.float64)
    if not isinstance(x, np.ndarray):
        raise NMRefTypeError(f"{name} must be a numpy.ndarray of float16/bfloat16/float32/float64, got {type(x).__name__}")
    if not is_float_dtype(x.dtype):
        raise NMRefTypeError(
            f"{name} must have a floating dtype (float16, bfloat16, float32 or float64), got dtype {x.dtype}"
        )
    if not allow_nan and x.size and np.isnan(x.astype(np.float32, copy=False) if x.dtype.itemsize == 2 else x).any():
        raise NMRefValueError(f"{name} contains NaN; expected finite or infinite values only")
    return x


def as_real_array(name: str, x) -> np.ndarray:
    """Scores: any real (integer or float) array; booleans and complex are rejected."""
    x = as_array(name, x)
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or is_float_dtype(x.dtype)):
        raise NMRefTypeError(f"{name} must have a real integer or floating dtype, got dtype {x.dtype}")
    return x


def as_bool_array(name: str, x) -> np.ndarray:
    return as_typed_array(name, x, np.bool_, "a bool array")


def _unwrap(value):
    """A 0-d numeric array is its scalar (NumPy scalars, 0-d arrays and Python numbers are alike)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and (value.dtype.kind in "biu" or is_float_dtype(value.dtype)):
        return value[()]
    return value


def check_choice(name: str, value, choices) -> str:
    """A string option: a non-string is a type error, an unknown string a value error."""
    if not isinstance(value, str):
        raise NMRefTypeError(f"{name} must be a string, one of {tuple(choices)}; got {type(value).__name__} {value!r}")
    if value not in choices:
        raise NMRefValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_int(name: str, value, *, minimum: int | None = None) -> int:
    value = _unwrap(value)
    if isinstance(value, (bool, np.bool_)):
        raise NMRefTypeError(f"{name} must be an integer, got bool {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise NMRefTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if minimum is not None and v < minimum:
        raise NMRefValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_bool(name: str, value) -> bool:
    """A flag: Python or NumPy bool (or a 0-d bool array); anything else is a type error."""
    value = _unwrap(value)
    if not isinstance(value, (bool, np.bool_)):
        raise NMRefTypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_float_dtype(name: str, dtype) -> np.dtype:
    """A float dtype (a dtype, a scalar type or its name): an unknown name is a value error, a value
    that names no dtype or a non-float one a type error."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        if isinstance(dtype, str):
            try:
                import ml_dtypes
                dt = np.dtype(getattr(ml_dtypes, dtype))
            except (ImportError, AttributeError, TypeError):
                raise NMRefValueError(f"{name} {dtype!r} is not a dtype name; expected float16, bfloat16, float32 "
                                      "or float64") from None
        else:
            raise NMRefTypeError(f"{name} must be a float dtype or its name, got {type(dtype).__name__} {dtype!r}") from None
    if not is_float_dtype(dt):
        raise NMRefTypeError(f"{name} must be float16, bfloat16, float32 or float64, got {dt}")
    return dt


def check_nm(n, m) -> tuple[int, int]:
    """Validate an N:M pair: integers with 0 <= n <= m and m >= 1."""
    n = check_int("n", n, minimum=0)
    m = check_int("m", m, minimum=1)
    if n > m:
        raise NMRefValueError(f"n must satisfy 0 <= n <= m; got n={n}, m={m}")
    return n, m


def check_axis(axis, ndim: int) -> int:
    axis = check_int("axis", axis)
    if ndim == 0:
        raise NMRefValueError("expected an array with at least one dimension, got a 0-d array")
    if not -ndim <= axis < ndim:
        raise NMRefValueError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim


def check_divisible(name: str, shape, axis: int, m: int) -> None:
    if shape[axis] % m:
        raise NMRefValueError(
            f"{name}.shape[{axis}] = {shape[axis]} is not divisible by the group size m = {m}; "
            "groups never straddle rows: pad explicitly (nmref.pad_to_multiple) if that is what you want"
        )


def check_shape(name: str, x: np.ndarray, expected: tuple) -> None:
    if tuple(x.shape) != tuple(expected):
        raise NMRefValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(expected)}")


def _real(name: str, value) -> float:
    value = _unwrap(value)
    real = isinstance(value, (int, float, np.integer, np.floating)) or \
        (isinstance(value, np.generic) and is_float_dtype(value.dtype))  # a bfloat16 scalar is no np.floating
    if isinstance(value, (bool, np.bool_)) or not real:
        raise NMRefTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_real_scalar(name: str, value) -> float:
    """A real number (Python, NumPy scalar or 0-d array; not bool) as a Python float; NaN is a value error."""
    v = _real(name, value)
    if np.isnan(v):
        raise NMRefValueError(f"{name} is NaN; expected a real number")
    return v


def check_finite_scalar(name: str, value, *, minimum: float | None = None, maximum: float | None = None) -> float:
    v = _real(name, value)
    if not np.isfinite(v):
        raise NMRefValueError(f"{name} must be finite, got {v}")
    if minimum is not None and v < minimum:
        raise NMRefValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise NMRefValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def grouped_shape(shape, axis: int, m: int) -> tuple:
    """Validated ``(shape, axis, moved)``: ``moved`` is the shape of :func:`grouped`'s result without its
    last axis (other axes, then the group index), i.e. one entry per group."""
    shape = tuple(check_int(f"shape[{i}]", s, minimum=0) for i, s in enumerate(shape))
    axis = check_axis(axis, len(shape))
    check_divisible("shape", shape, axis, m)
    return shape, axis, shape[:axis] + shape[axis + 1:] + (shape[axis] // m,)


def tokens_2d(x: np.ndarray) -> np.ndarray:
    """``x[..., d]`` as ``[tokens, d]`` (every leading axis a token); unlike ``reshape(-1, d)`` also for d = 0."""
    return x.reshape(int(np.prod(x.shape[:-1], dtype=np.int64)), x.shape[-1])


def grouped(x: np.ndarray, axis: int, m: int) -> np.ndarray:
    """View/copy ``x`` as ``(..., G, m)`` with the grouped axis last (groups of m consecutive elements)."""
    xl = np.moveaxis(x, axis, -1)
    return xl.reshape(xl.shape[:-1] + (xl.shape[-1] // m, m))


def ungrouped(g: np.ndarray, axis: int) -> np.ndarray:
    """Inverse of :func:`grouped`."""
    x = g.reshape(g.shape[:-2] + (g.shape[-2] * g.shape[-1],))
    return np.moveaxis(x, -1, axis)
