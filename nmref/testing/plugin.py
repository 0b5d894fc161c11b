"""pytest plugin (registered through the ``pytest11`` entry point): the ``nmref_conform`` fixture.

In a user's own suite::

    def test_my_mask(nmref_conform):
        nmref_conform("nm_mask", my_package.nm_mask)            # raises with the minimal counterexample

``nmref_conform(op, impl, **settings)`` is :func:`nmref.testing.check_conforms`; the command-line
options ``--nmref-examples N`` and ``--nmref-seed S`` set the defaults of ``examples`` and ``seed``.
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("nmref", "nmref conformance kit")
    group.addoption("--nmref-examples", type=int, default=200, help="inputs nmref_conform draws per call (default 200)")
    group.addoption("--nmref-seed", type=int, default=0, help="seed of nmref_conform's draws (default 0)")


@pytest.fixture
def nmref_conform(request):
    """``nmref_conform(op, impl, **settings)``: check ``impl`` against nmref's ``op`` (see
    :func:`nmref.testing.check_conforms`); returns the :class:`~nmref.testing.Report`."""
    from . import check_conforms

    defaults = {"examples": request.config.getoption("--nmref-examples"),
                "seed": request.config.getoption("--nmref-seed")}

    def check(op, impl, **settings):
        __tracebackhide__ = True
        return check_conforms(op, impl, **{**defaults, **settings})
    return check
