"""What the conformance kit knows about one operation: :class:`OpSpec`.

The **adapter contract**: a foreign implementation of operation ``op`` is a callable with the nmref
function's signature that takes and returns NumPy arrays (and Python scalars, ``bytes``,
``fractions.Fraction`` where nmref does). It is called as ``impl(*args, **kwargs)`` with
``args = [inputs[name] for name in spec.args]`` and every other input as a keyword. Where nmref
takes an object, the contract takes plain values instead (``spec.contract`` says which): optimizer
state is the dict ``{"step": int, "exp_avg": array, "exp_avg_sq": array}``, hyper-parameters the
dict ``{"lr", "beta1", "beta2", "eps", "weight_decay"}``, and a step returns ``(params, state)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .values import EXACT, Tol

__all__ = ["OpSpec", "RTOL", "FTZ_FLOOR"]

#: Relative tolerance by the dtype of the arithmetic: about 4 units in the last place of float16
#: and bfloat16, a few hundred of float32 (sums of up to a few hundred terms in another order), and
#: ~10⁵ of float64.
RTOL = {"float16": 4e-3, "bfloat16": 3.2e-2, "float32": 2e-5, "float64": 1e-11}
#: An arithmetic result may also differ by this many times the smallest normal number of its dtype:
#: an implementation may flush subnormals to zero (most GPU kernels do, e.g. CuPy compiles with -ftz=true).
FTZ_FLOOR = 64
_TINY = {"float16": 2.0 ** -14, "bfloat16": 2.0 ** -126, "float32": 2.0 ** -126, "float64": 2.0 ** -1022}


@dataclass(frozen=True)
class OpSpec:
    """One operation.

    * ``ref``: the reference under the adapter contract (usually the nmref function itself);
    * ``args``: the names passed positionally, in order (every other input is a keyword);
    * ``outputs``: names of the results, in the order the function returns them (one name: the
      result itself);
    * ``inputs``: ``() -> strategy`` of input dicts (adversarial, for :func:`check_conforms`);
    * ``golden``: ``((suffix, make(rng) -> inputs), ...)``: the fixed cases of a golden set;
    * ``tol``: ``"exact"``, or ``dtype_of(inputs) -> dtype name`` (arithmetic: relative tolerance
      :data:`RTOL` of that dtype), or a dict of these per output;
    * ``scale``: ``(inputs, want) -> float``: the magnitude an arithmetic result's error is relative
      to — that of the terms summed (default: the output's largest finite magnitude); the absolute
      tolerance is ``rtol·scale``;
    * ``build``: ``inputs -> inputs`` deriving arguments that cannot be stored (a callable);
    * ``post``: ``result -> result`` mapping objects to plain values (applied to both sides);
    * ``since``: the first golden-set version whose cases include the operation (an operation added
      after the latest released set is property-tested now and gets golden cases with the next set).
    """
    name: str
    ref: Callable
    args: tuple
    outputs: tuple
    inputs: Callable
    golden: tuple
    doc: str
    tol: object = EXACT
    scale: Callable | None = None
    build: Callable | None = None
    post: Callable | None = None
    contract: str = ""
    since: int = 2

    def call_args(self, inputs: dict) -> tuple[list, dict]:
        """``(args, kwargs)`` of the contract call for an input dict."""
        full = self.build(inputs) if self.build else inputs
        missing = [a for a in self.args if a not in full]
        if missing:
            raise KeyError(f"{self.name}: inputs lack {missing}")
        return [full[a] for a in self.args], {k: v for k, v in full.items() if k not in self.args}

    def outputs_of(self, result) -> dict:
        """The named outputs of one call's result."""
        if self.post:
            result = self.post(result)
        if len(self.outputs) == 1:
            return {self.outputs[0]: result}
        if not isinstance(result, (tuple, list)) or len(result) != len(self.outputs):
            raise _ShapeOfResult(f"{self.name} returns {len(self.outputs)} values {self.outputs}, "
                                 f"got {type(result).__name__}")
        return dict(zip(self.outputs, result))

    def rules(self, inputs: dict, want: dict) -> dict:
        """The compare rule of each output: ``"exact"`` or a :class:`~nmref.testing.values.Tol`."""
        out = {}
        for name, w in want.items():
            rule = self.tol.get(name, EXACT) if isinstance(self.tol, dict) else self.tol
            if rule == EXACT:
                out[name] = EXACT
                continue
            dt = str(rule(inputs))
            rtol = RTOL[dt]
            scale = max(_max_finite(w), self.scale(inputs, want) if self.scale else 0.0)
            out[name] = Tol(rtol, rtol * scale + FTZ_FLOOR * _TINY[dt])
        return out


class _ShapeOfResult(Exception):
    """The implementation returned a result of the wrong structure."""


def _max_finite(v) -> float:
    if isinstance(v, dict):
        return max([_max_finite(x) for x in v.values()] or [0.0])
    if isinstance(v, (list, tuple)):
        return max([_max_finite(x) for x in v] or [0.0])
    try:
        a = np.abs(np.asarray(v, dtype=np.float64))
    except (TypeError, ValueError):
        return 0.0
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0
