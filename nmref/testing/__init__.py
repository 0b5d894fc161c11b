"""The conformance kit: check any implementation of nmref's operations against the reference.

* :func:`check_conforms` — draw adversarial inputs (hypothesis), call the reference and your callable,
  compare under the operation's rule, shrink any difference, raise :class:`ConformanceError` with a
  copy-paste reproduction of the minimal case.
* :data:`OPS` / :func:`op_names` / :func:`get_op` — the operations covered (every golden-set operation)
  and, per operation, the adapter contract, input strategy and compare rule (:class:`OpSpec`).
* :mod:`nmref.testing.strategies` — the building blocks of the input strategies, for your own
  property tests.
* :func:`run_case` — one given input; :func:`reference` — the reference under the adapter contract.
* The pytest plugin (:mod:`nmref.testing.plugin`) gives a ``nmref_conform`` fixture.
* :mod:`nmref.testing.adapters` — a PyTorch or JAX callable under the NumPy contract in one line
  (``torch_adapter(fn)``, bfloat16 included); imported on demand, never by ``import nmref``.

See ``docs/conformance.md`` for the contract and a walk-through.
"""
from . import strategies
from .conform import CaseResult, ConformanceError, Report, check_conforms, load_impl, reproduction, resolve_impl, run_case
from .ops import OPS, REFERENCE, get_op, op_names, reference, teal_block
from .spec import RTOL, OpSpec
from .values import EXACT, Tol, compare

__all__ = ["check_conforms", "ConformanceError", "Report", "CaseResult", "run_case", "reproduction", "load_impl",
           "resolve_impl", "OPS", "REFERENCE", "OpSpec", "RTOL", "op_names", "get_op", "reference", "teal_block", "strategies",
           "compare", "Tol", "EXACT"]
