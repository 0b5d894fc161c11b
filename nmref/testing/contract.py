"""The error contract, checked on the reference itself: :func:`check_error_contract`.

For inputs the reference accepts, one argument at a time is changed, and the reference must answer as
``docs/errors.md`` says:

* an array argument replaced by an object that is no array → :class:`~nmref.NMRefTypeError`;
* an array argument given as the Python list it spells (bool, int64 and float64 arrays, whose
  ``numpy.asarray`` round trip keeps the dtype) → the same result, bit for bit;
* a numeric scalar argument given as a NumPy scalar or a 0-d array → the same result; given as a
  string → :class:`~nmref.NMRefTypeError`;
* a string option given as an int → :class:`~nmref.NMRefTypeError`; as an unknown string →
  :class:`~nmref.NMRefValueError`.

Derived (built) arguments and dict arguments of the adapter contract are left alone.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np

from .._checks import NMRefTypeError, NMRefValueError
from .ops import get_op
from .values import compare

__all__ = ["check_error_contract", "contract_violations"]


def _probes(name, value):
    """``(changed value, expected)`` pairs; expected is an error class or ``"same"`` (with the value the
    reference's result must equal the original's)."""
    if isinstance(value, np.ndarray):
        yield object(), NMRefTypeError
        # a list spells a shape only when no axis is empty ([] cannot say (0, 4))
        if value.ndim >= 1 and 0 < value.size <= 64 and value.dtype in (np.bool_, np.int64, np.float64):
            yield value.tolist(), "same"
    elif isinstance(value, (bool, np.bool_)):
        yield "yes", NMRefTypeError
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield np.asarray(value)[()], "same"        # NumPy scalar of the natural dtype
        yield np.asarray(value), "same"            # 0-d array
        yield "1", NMRefTypeError
    elif isinstance(value, str):
        yield 3, NMRefTypeError
        yield value + "_not_an_option", NMRefValueError


def contract_violations(op: str, inputs: dict) -> list[str]:
    """Every way the reference breaks the error contract on this input (empty: none)."""
    spec = get_op(op)
    if spec.build is not None:
        return []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            a, k = spec.call_args(copy.deepcopy(inputs))
            want = spec.outputs_of(spec.ref(*a, **k))
        except (NMRefValueError, NMRefTypeError):
            return []
        out = []
        for name, value in inputs.items():
            for changed, expected in _probes(name, value):
                a, k = spec.call_args(dict(copy.deepcopy(inputs), **{name: changed}))
                shown = f"{name}={type(changed).__name__} {str(changed)[:40]!s}"
                try:
                    got = spec.outputs_of(spec.ref(*a, **k))
                except Exception as e:  # noqa: BLE001
                    if expected == "same":
                        out.append(f"{shown}: raised {type(e).__name__} ({e}), expected the same result as the array/scalar")
                    elif not isinstance(e, expected):
                        out.append(f"{shown}: raised {type(e).__name__} ({e}), expected {expected.__name__}")
                    continue
                if expected != "same":
                    out.append(f"{shown}: returned a result, expected {expected.__name__}")
                    continue
                for key in want:
                    r = compare(got[key], want[key])
                    if r:
                        out.append(f"{shown}: {key} differs from the result for the array/scalar: {r}")
        return out


def check_error_contract(op: str, *, examples: int = 50, seed: int = 0) -> int:
    """Run :func:`contract_violations` on ``examples`` inputs drawn from the op's strategy; raise
    ``AssertionError`` with the first (shrunk) violation. Returns the number of inputs checked."""
    from hypothesis import HealthCheck, Verbosity, given, settings
    from hypothesis import seed as hseed

    spec = get_op(op)
    count = [0]

    @settings(max_examples=examples, deadline=None, database=None, verbosity=Verbosity.quiet, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @hseed(seed)
    @given(spec.inputs())
    def prop(inputs):
        count[0] += 1
        bad = contract_violations(op, inputs)
        assert not bad, f"{op}: " + "; ".join(bad)

    prop()
    return count[0]
