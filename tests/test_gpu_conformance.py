"""nmref_gpu as the first foreign implementation: every kernel through the conformance kit (adversarial
inputs, shrinking), the pytest plugin and golden set v2. The adapters move NumPy arrays to the device
and back and raise NotImplementedError outside a kernel's documented domain (dtypes, shape multiples,
batch 1 for TEAL), which the kit skips and counts. Skipped without CuPy and a CUDA GPU."""
from __future__ import annotations

import numpy as np
import pytest

import nmref
import nmref.testing as nt

from gpu_skip import require_gpu

cp = require_gpu()
import nmref_gpu as G  # noqa: E402

pytestmark = pytest.mark.gpu
HALF = ("float16", "bfloat16")


def dev(a: np.ndarray):
    try:
        return cp.asarray(a)
    except Exception as e:  # noqa: BLE001 - e.g. a CuPy without bfloat16
        raise NotImplementedError(f"CuPy cannot hold {a.dtype}: {e}") from None


def host(a) -> np.ndarray:
    return cp.asnumpy(a)


def need(cond: bool, what: str):
    if not cond:
        raise NotImplementedError(what)


def _state(state):
    return nmref.AdamState(state["step"], dev(state["exp_avg"]), dev(state["exp_avg_sq"]))


def _step_out(p, s):
    return host(p), {"step": s.step, "exp_avg": host(s.exp_avg), "exp_avg_sq": host(s.exp_avg_sq)}


class GPU:
    """nmref_gpu under the adapter contract (NumPy in, NumPy out)."""

    @staticmethod
    def nm_mask(w, n, m, *, axis=-1, scores=None):
        need(scores is None and m <= 8, "magnitude scores and m <= 8 only")
        return host(G.nm_mask(dev(w), n, m, axis=axis))

    @staticmethod
    def compress_24_packed(w, *, mask=None):
        need(mask is None and w.ndim == 2 and w.shape[1] % 32 == 0, "magnitude mask, 2-D, cols % 32 == 0")
        return tuple(host(a) for a in G.compress_24_packed(dev(w)))

    @staticmethod
    def compress_24_packed_t(w, *, mask=None):
        need(mask is None and w.ndim == 2 and w.shape[0] % 8 == 0 and w.shape[1] % 32 == 0,
             "magnitude mask, rows % 8 == 0, cols % 32 == 0")
        return tuple(host(a) for a in G.compress_24_packed_t(dev(w)))

    @staticmethod
    def compress_24_mma(w, *, mask=None):
        need(mask is None and w.ndim == 2 and w.shape[1] % 64 == 0, "magnitude mask, cols % 64 == 0")
        return tuple(host(a) for a in G.compress_24_mma(dev(w)))

    @staticmethod
    def refresh_mask(w, mask_old, n, m, *, axis=-1):
        need((n, m) == (2, 4) and w.dtype == np.float32 and axis in (-1, w.ndim - 1), "2:4 float32 on the last axis")
        new, flips = G.refresh_mask(dev(w), dev(mask_old))
        return host(new), flips

    @staticmethod
    def ast_adamw_step(params, grads, state, hyper, *, mask, lam, second_moment="update"):
        need(params.dtype == np.float32, "float32 only")
        p, s = G.ast_adamw_step(dev(params), dev(grads), _state(state), nmref.AdamHyper(**hyper), mask=dev(mask),
                                lam=lam, second_moment=second_moment)
        return _step_out(p, s)

    @staticmethod
    def adams_step(params, grads, state, hyper, *, mask, lam, ramp_steps, placement="after_momentum",
                   second_moment=None):
        need(params.dtype == np.float32, "float32 only")
        p, s = G.adams_step(dev(params), dev(grads), _state(state), nmref.AdamHyper(**hyper), mask=dev(mask), lam=lam,
                            ramp_steps=ramp_steps, placement=placement, second_moment=second_moment)
        return _step_out(p, s)

    @staticmethod
    def gemv_input_sparse(x, w, t):
        need(x.ndim == 1 and x.dtype.name in HALF and w.shape[0] % 8 == 0 and w.shape[0] > 0,
             "batch 1, fp16/bf16, out % 8 == 0")
        return host(G.gemv_input_sparse(dev(x), cp.asfortranarray(dev(w)), t))

    @staticmethod
    def gemv_input_sparse_batched(x, w, t):
        need(x.dtype.name in HALF and w.shape[0] % 8 == 0 and w.shape[0] > 0 and (x.ndim == 1 or 1 <= x.shape[0] <= 16),
             "batch 1..16, fp16/bf16, out % 8 == 0")
        return host(G.gemv_input_sparse_batched(dev(x), cp.asfortranarray(dev(w)), t))

    @staticmethod
    def gemv_input_sparse_24_packed_t(x, values_t, meta_t, t):
        need(x.ndim == 1 and x.dtype.name in HALF, "batch 1, fp16/bf16")
        return host(G.gemv_input_sparse_24_packed_t(dev(x), dev(values_t), dev(meta_t), t))


GPU_OPS = [op for op in nt.op_names() if hasattr(GPU, op)]
#: the float dtypes each kernel takes (drawing only those saves draws; the adapters decline the rest anyway)
DTYPES = {"refresh_mask": ["float32"], "ast_adamw_step": ["float32"], "adams_step": ["float32"],
          "gemv_input_sparse": list(HALF), "gemv_input_sparse_batched": list(HALF),
          "gemv_input_sparse_24_packed_t": list(HALF)}


@pytest.mark.parametrize("op", GPU_OPS)
def test_gpu_kernel_conforms(op):
    report = nt.check_conforms(op, getattr(GPU, op), examples=300, dtypes=DTYPES.get(op))
    print(report)
    assert report.examples >= 100


def test_gpu_through_the_pytest_plugin(pytester):
    import os
    pytester.syspathinsert(os.path.dirname(__file__))
    pytester.makepyfile("""
        import pytest
        from test_gpu_conformance import DTYPES, GPU, GPU_OPS

        @pytest.mark.parametrize("op", GPU_OPS)
        def test_kernel(nmref_conform, op):
            nmref_conform(op, getattr(GPU, op), examples=100, dtypes=DTYPES.get(op))
    """)
    result = pytester.runpytest("-p", "nmref.testing.plugin")
    result.assert_outcomes(passed=len(GPU_OPS))


def test_gpu_over_golden_v2():
    results = nmref.verify_golden(nmref.golden.golden_dir(2), impl=GPU)
    by_op = {}
    for name, reason in results:
        by_op.setdefault(name.rsplit("_", 1)[0], []).append(reason)
    failures = [(n, r) for n, r in results if r not in (None, "not implemented", "unsupported")]
    assert failures == []
    checked = [n for n, r in results if r is None]
    assert len(checked) >= 20, checked
