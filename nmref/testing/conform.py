"""Checking a foreign implementation against nmref: :func:`run_case` (one input) and
:func:`check_conforms` (hypothesis draws inputs, shrinks any difference to a minimal one).

A case passes when the implementation returns what the reference returns under the operation's
rule (``spec.rules``: exact, or a stated tolerance) and leaves its inputs unmodified. An
implementation that covers only part of an operation's domain (a kernel for some dtypes or shapes)
raises ``NotImplementedError`` on the rest: such inputs are skipped and counted, not failed. By default
only inputs the reference accepts are drawn; with ``errors=True`` the implementation must also
raise where the reference raises (``strict_errors=True``: an exception of the same builtin class,
``ValueError`` or ``TypeError``). A call that does not return within ``timeout`` seconds (default 5) is
a hang: reported as a difference on that input, without shrinking (POSIX main thread: the limit is a
``SIGALRM`` timer, which interrupts Python code and most blocking calls).
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._checks import NMRefTypeError, NMRefValueError, is_float_dtype
from .ops import get_op
from .spec import _ShapeOfResult
from .values import compare, source

__all__ = ["ConformanceError", "CaseResult", "Report", "run_case", "check_conforms", "load_impl", "resolve_impl",
           "reproduction"]

_REF_ERRORS = (NMRefValueError, NMRefTypeError)


class ConformanceError(AssertionError):
    """An implementation differs from the reference; ``repro`` is a Python reproduction of the minimal case."""

    def __init__(self, op: str, reason: str, repro: str, inputs: dict, result: "CaseResult"):
        super().__init__(f"{op}: the implementation differs from nmref's reference: {reason}\n\n{repro}")
        self.op, self.reason, self.repro, self.inputs, self.result = op, reason, repro, inputs, result


@dataclass
class CaseResult:
    """One input: the reference's and the implementation's named outputs (or exceptions) and the
    reasons they differ (empty when the case passes)."""
    want: dict | None = None
    got: dict | None = None
    ref_error: BaseException | None = None
    impl_error: BaseException | None = None
    reasons: list = field(default_factory=list)
    unsupported: str | None = None  # the implementation raised NotImplementedError: outside its domain
    hang: bool = False  # the implementation did not return within the time limit

    @property
    def ok(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Report:
    """A passing :func:`check_conforms` run: the operation, how many inputs were checked, and how many
    were skipped as outside the implementation's domain (it raised ``NotImplementedError``)."""
    op: str
    examples: int
    seed: int
    unsupported: int = 0

    def __str__(self):
        skipped = f"; {self.unsupported} inputs outside its domain skipped" if self.unsupported else ""
        return f"{self.op}: conforms on {self.examples} examples (seed {self.seed}){skipped}"


def _same(a, b) -> bool:
    """Inputs unmodified: equal structure, arrays equal bit for bit."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype and \
            a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


class _Timeout(BaseException):
    """Raised into the implementation by the time limit (a BaseException: its ``except Exception`` cannot
    swallow it)."""


@contextlib.contextmanager
def _time_limit(seconds):
    import signal
    import threading
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise _Timeout()
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_case(op: str, impl, inputs: dict, *, check_dtype: bool = True, errors: bool = False,
             strict_errors: bool = False, timeout: float | None = 5.0) -> CaseResult:
    """Run the reference and ``impl`` on one input dict and compare (see the module docstring).
    Floating-point warnings (overflow to Inf, 0/0) are silenced: adversarial inputs raise them by design."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _run_case(op, impl, inputs, check_dtype, errors, strict_errors, timeout)


def _run_case(op, impl, inputs, check_dtype, errors, strict_errors, timeout=None) -> CaseResult:
    spec = get_op(op)
    res = CaseResult()
    try:
        a, k = spec.call_args(copy.deepcopy(inputs))
        res.want = spec.outputs_of(spec.ref(*a, **k))
    except _REF_ERRORS as e:
        res.ref_error = e
    a, k = spec.call_args(copy.deepcopy(inputs))
    before = copy.deepcopy((a, k))
    try:
        try:
            with _time_limit(timeout):
                got = impl(*a, **k)
        except _Timeout:
            res.hang = True
            res.reasons.append(f"the implementation did not return within {timeout:g} s (a hang)")
            return res
        res.got = spec.outputs_of(got)
    except _ShapeOfResult as e:
        res.reasons.append(str(e))
        return res
    except NotImplementedError as e:
        res.unsupported = str(e) or "NotImplementedError"
        return res
    except Exception as e:  # noqa: BLE001 - any exception of the implementation is a finding
        res.impl_error = e
    if res.ref_error is not None:
        if not errors:
            return res
        if res.impl_error is None:
            res.reasons.append(f"the reference raises {type(res.ref_error).__name__} ({res.ref_error}); "
                               f"the implementation returned a result")
        elif strict_errors:
            builtin = ValueError if isinstance(res.ref_error, ValueError) else TypeError
            if not isinstance(res.impl_error, builtin):
                res.reasons.append(f"the reference raises a {builtin.__name__}; the implementation "
                                   f"raised {type(res.impl_error).__name__}: {res.impl_error}")
        return res
    if res.impl_error is not None:
        res.reasons.append(f"the implementation raised {type(res.impl_error).__name__}: {res.impl_error}")
        return res
    rules = spec.rules(inputs, res.want)
    for name, want in res.want.items():
        r = compare(res.got[name], want, rules[name], check_dtype=check_dtype)
        if r:
            res.reasons.append(f"{name}: {r}")
    if not _same(before, (a, k)):
        res.reasons.append("the implementation modified its inputs in place")
    return res


def resolve_impl(obj, op: str):
    """The callable for ``op``: ``obj.<op>`` (or ``obj[op]``) when ``obj`` is a namespace (a module, a
    class, an object, a dict), else ``obj`` itself when it is a function or other callable object.
    ``None`` when it has no such operation."""
    if isinstance(obj, dict):
        return obj.get(op)
    fn = getattr(obj, op, None)
    if fn is not None and callable(fn):
        return fn
    if callable(obj) and not isinstance(obj, (type, type(importlib))):
        return obj
    return None


def load_impl(target: str):
    """Import ``MODULE:OBJECT`` (``OBJECT`` may be dotted) or ``MODULE``; errors name what is missing.
    The current directory is searched first, as ``python -m`` does, so a module next to you is found."""
    import os
    import sys
    if not isinstance(target, str) or not target or target.startswith(":"):
        raise NMRefValueError(f"--impl must be MODULE:OBJECT or MODULE, got {target!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    mod_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise NMRefValueError(f"--impl {target!r}: cannot import module {mod_name!r} ({e}); "
                              "is it on PYTHONPATH (or installed)?") from None
    except SyntaxError as e:
        raise NMRefValueError(f"--impl {target!r}: module {mod_name!r} has a syntax error at {e.filename}:{e.lineno}: "
                              f"{e.msg}") from None
    except SystemExit as e:  # the module called sys.exit() while being imported
        raise NMRefValueError(f"--impl {target!r}: importing module {mod_name!r} called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 - any error raised by the module's own top-level code
        raise NMRefValueError(f"--impl {target!r}: importing module {mod_name!r} raised {type(e).__name__}: {e}") from None
    for part in filter(None, attr.split(".")):
        if not hasattr(obj, part):
            raise NMRefValueError(f"--impl {target!r}: {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _summary(v, limit=600) -> str:
    if isinstance(v, np.ndarray):
        text = np.array2string(v, threshold=16, edgeitems=3, max_line_width=100)
        text = f"{text} (shape {v.shape}, dtype {v.dtype})"
    else:
        text = repr(v)
    return text if len(text) <= limit else text[:limit] + " …"


def reproduction(op: str, inputs: dict, result: CaseResult, impl_line: str = "impl = ...  # your implementation") -> str:
    """A copy-paste Python reproduction of one case: inputs inline, both calls, and the outputs where they differ."""
    spec = get_op(op)
    lines = ["# nmref conform: minimal input on which the implementation and the reference differ",
             "import numpy as np"]
    text = "\n".join(source(v) for v in inputs.values())
    if "ml_dtypes" in text:
        lines.append("import ml_dtypes")
    if "Fraction(" in text:
        lines.append("from fractions import Fraction")
    if "sparse_array(" in text:
        lines.append("from nmref.testing.values import sparse_array")
    lines.append("from nmref.testing import get_op, reference")
    lines.append(impl_line)
    lines.append("")
    if spec.build is None:
        for k, v in inputs.items():
            lines.append(f"{k} = {source(v)}")
        call = ", ".join(list(spec.args) + [f"{k}={k}" for k in inputs if k not in spec.args])
        lines.append(f'want = reference("{op}")({call})')
        lines.append(f"got = impl({call})")
    else:
        lines.append(f"inputs = {source(inputs)}")
        lines.append(f'args, kwargs = get_op("{op}").call_args(inputs)')
        lines.append(f'want = reference("{op}")(*args, **kwargs)')
        lines.append("got = impl(*args, **kwargs)")
    lines.append("")
    if result.ref_error is not None:
        lines.append(f"# reference raises: {type(result.ref_error).__name__}: {result.ref_error}")
    if result.impl_error is not None:
        lines.append(f"# implementation raises: {type(result.impl_error).__name__}: {result.impl_error}")
    if result.want is not None and result.got is not None:
        names = [r.split(":", 1)[0] for r in result.reasons if r.split(":", 1)[0] in result.want] or list(result.want)
        for name in names:
            lines.append(f"# reference      {name}: " + _summary(result.want[name]).replace("\n", "\n#   "))
            lines.append(f"# implementation {name}: " + _summary(result.got[name]).replace("\n", "\n#   "))
    for r in result.reasons:
        lines.append(f"# differs: {r}")
    return "\n".join(lines)


class _Mismatch(Exception):
    pass


class _HangFound(BaseException):
    """Ends the search at once: shrinking a hang would wait out the limit on every step."""


def _float_dtypes_in(v) -> set:
    if isinstance(v, np.ndarray):
        return {v.dtype.name} if is_float_dtype(v.dtype) else set()
    if isinstance(v, dict):
        return set().union(*[_float_dtypes_in(x) for x in v.values()]) if v else set()
    return set()


def check_conforms(op: str, impl, *, examples: int = 200, seed: int = 0, errors: bool = False,
                   strict_errors: bool = False, check_dtype: bool = True, dtypes=None,
                   impl_line: str = "impl = ...  # your implementation", timeout: float | None = 5.0) -> Report:
    """Check ``impl`` against nmref's ``op`` on ``examples`` adversarial inputs drawn by hypothesis
    (``seed`` makes the run reproducible). Returns a :class:`Report`; on a difference, hypothesis
    shrinks the input and a :class:`ConformanceError` carrying the minimal case's reproduction is
    raised. ``impl`` follows the adapter contract (``nmref.testing.spec``). ``dtypes``: the float
    dtypes (names) the inputs may have, for an implementation that supports only some. ``timeout``:
    seconds one call may take (None: no limit); a longer call is reported as a hang."""
    from .strategies import FLOAT_DTYPE_NAMES, allowed_dtypes, invalid_inputs
    if dtypes is not None:
        if isinstance(dtypes, str) or not all(isinstance(d, str) for d in dtypes):
            raise NMRefTypeError(f"dtypes must be a list of dtype names, got {dtypes!r}")
        unknown = sorted(set(dtypes) - set(FLOAT_DTYPE_NAMES))
        if unknown or not dtypes:
            raise NMRefValueError(f"dtypes must name some of {FLOAT_DTYPE_NAMES}, got {list(dtypes)!r}")
        dtypes = frozenset(dtypes)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise NMRefValueError(f"timeout must be a number of seconds > 0 (or None), got {timeout!r}")
    token, token_invalid = allowed_dtypes.set(dtypes), invalid_inputs.set(bool(errors))
    try:
        return _check_conforms(op, impl, examples, seed, errors, strict_errors, check_dtype, dtypes, impl_line,
                               timeout)
    finally:
        allowed_dtypes.reset(token)
        invalid_inputs.reset(token_invalid)


def _drawn_by_reference(strategy):
    """``strategy``, with a draw rejected when building it calls the reference on an input the reference
    rejects (some strategies prune or compress what they drew; with ``errors=True`` that may be NaN)."""
    from hypothesis import reject
    from hypothesis import strategies as st

    @st.composite
    def draw_one(draw):
        try:
            return draw(strategy)
        except _REF_ERRORS:
            reject()
    return draw_one()


def _check_conforms(op, impl, examples, seed, errors, strict_errors, check_dtype, dtypes, impl_line,
                    timeout=None) -> Report:
    from hypothesis import HealthCheck, Verbosity, given, reject, settings
    from hypothesis import seed as hseed
    from hypothesis.errors import Unsatisfiable

    spec = get_op(op)
    if not callable(impl):
        raise NMRefTypeError(f"impl must be a callable implementing {op}, got {type(impl).__name__}")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise NMRefValueError(f"examples must be an integer >= 1, got {examples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NMRefTypeError(f"seed must be an integer, got {seed!r}")
    state = {"last": None, "ran": 0, "unsupported": 0}
    drawn = _drawn_by_reference(spec.inputs()) if errors else spec.inputs()
    if dtypes is not None:
        drawn = drawn.filter(lambda i: _float_dtypes_in(i) <= dtypes)

    @settings(max_examples=examples, deadline=None, database=None, verbosity=Verbosity.quiet, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @hseed(seed)
    @given(drawn)
    def prop(inputs):
        res = run_case(op, impl, inputs, check_dtype=check_dtype, errors=errors, strict_errors=strict_errors,
                       timeout=timeout)
        if res.hang:
            state["last"] = (inputs, res)
            raise _HangFound()
        if res.ref_error is not None and not errors:
            reject()
        if res.unsupported is not None:
            state["unsupported"] += 1
            reject()
        state["ran"] += 1
        if not res.ok:
            state["last"] = (inputs, res)
            raise _Mismatch(res.reasons[0])

    try:
        prop()
    except (_Mismatch, _HangFound):
        inputs, res = state["last"]
        raise ConformanceError(op, res.reasons[0], reproduction(op, inputs, res, impl_line), inputs, res) from None
    except Unsatisfiable:
        why = (f" with float dtypes {sorted(dtypes)}" if dtypes else "") + \
            (f" ({state['unsupported']} were outside the implementation's domain)" if state["unsupported"] else "")
        raise NMRefValueError(f"{op}: no inputs the reference accepts could be drawn{why}") from None
    if state["ran"] == 0:
        raise NMRefValueError(f"{op}: every drawn input was outside the implementation's domain "
                              f"({state['unsupported']} raised NotImplementedError)")
    return Report(op, state["ran"], seed, state["unsupported"])
