"""Repeated gemm_24 calls on rotating weights, synchronised after each (debugging aid for faults).
Run: python benchmarks/dev/gemm_stress.py N K M DTYPE CONFIG_INDEX CALLS"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import cupy as cp  # noqa: E402

import nmref_gpu  # noqa: E402
from nmref_gpu import kernels  # noqa: E402

n, k, m = (int(v) for v in sys.argv[1:4])
dtype, ci, calls = sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
cfg = None if ci < 0 else kernels.GEMM_CONFIGS[ci].with_splits(1)
if dtype == "bfloat16":
    import ml_dtypes
    dt = np.dtype(ml_dtypes.bfloat16)
else:
    dt = np.dtype(dtype)
rng = cp.random.default_rng(0)


def rnd(shape):
    return (rng.standard_normal(shape, dtype=cp.float32).astype(cp.float16).astype(cp.float32)).get().astype(dt)


wts = [nmref_gpu.Sparse24Weight.from_dense(cp.asarray(rnd((n, k)))) for _ in range(3)]
x = cp.asarray(rnd((m, k)))
y = cp.empty((m, n), dt)
for i in range(calls):
    wt = wts[i % 3]
    nmref_gpu.gemm_24(x, wt.values, wt.meta, out=y, out_dtype=dtype, variant=cfg)
    try:
        cp.cuda.Device().synchronize()
    except Exception as e:  # noqa: BLE001
        print(f"{n}x{k} M={m} {dtype} cfg {cfg}: call {i} failed: {e}", flush=True)
        raise SystemExit(1)
print(f"{n}x{k} M={m} {dtype} cfg {cfg}: {calls} calls ok", flush=True)
