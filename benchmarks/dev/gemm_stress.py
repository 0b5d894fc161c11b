"""Repeated gemm_24 calls on rotating weights, synchronised after each (debugging aid for faults).
Run: python benchmarks/dev/gemm_stress.py N K M DTYPE CONFIG_INDEX CALLS [async] [torch]
``async``: synchronise only after all calls; ``torch``: inputs allocated by PyTorch (as bench_gemm does)."""
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


mode = set(sys.argv[7:])
if "torch" in mode:
    import torch
    tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]

    def dev(t):
        return cp.asarray(t.view(torch.int16)).view(dt)

    def rnd(shape):  # noqa: F811
        return dev(torch.randn(*shape, device="cuda", dtype=tdt))
wts = [nmref_gpu.Sparse24Weight.from_dense(cp.asarray(rnd((n, k)))) for _ in range(3)]
x = cp.asarray(rnd((m, k)))
y = cp.empty((m, n), dt)
for spec in [a for a in mode if a.startswith("pre")]:  # pre<M>c<CONFIG>: 3 calls of another config first
    pm, pc = (int(v) for v in spec[3:].split("c"))
    xp = cp.asarray(rnd((pm, k)))
    for i in range(3):
        wt = wts[i % 3]
        nmref_gpu.gemm_24(xp, wt.values, wt.meta, out=cp.empty((pm, n), dt), out_dtype=dtype,
                          variant=kernels.GEMM_CONFIGS[pc].with_splits(1))
    print("pre", spec, "launched", flush=True)
for i in range(calls):
    wt = wts[i % 3]
    nmref_gpu.gemm_24(x, wt.values, wt.meta, out=y, out_dtype=dtype, variant=cfg)
    if "async" in mode and i < calls - 1:
        continue
    try:
        cp.cuda.Device().synchronize()
    except Exception as e:  # noqa: BLE001
        print(f"{n}x{k} M={m} {dtype} cfg {cfg}: call {i} failed: {e}", flush=True)
        raise SystemExit(1)
print(f"{n}x{k} M={m} {dtype} cfg {cfg}: {calls} calls ok", flush=True)
