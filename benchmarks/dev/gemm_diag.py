"""Run one gemm_24 case in this process and report (debugging aid for kernel faults).
Run: python benchmarks/dev/gemm_diag.py N K M CONFIG_INDEX [graph]"""
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cupy as cp  # noqa: E402

import nmref_gpu  # noqa: E402
from nmref_gpu import kernels  # noqa: E402

n, k, m, ci = (int(v) for v in sys.argv[1:5])
cfg = kernels.GEMM_CONFIGS[ci].with_splits(1)
rng = cp.random.default_rng(0)
w = rng.standard_normal((n, k), dtype=cp.float32).astype(cp.float16)
x = rng.standard_normal((m, k), dtype=cp.float32).astype(cp.float16)
wt = nmref_gpu.Sparse24Weight.from_dense(w)
wm = cp.where(nmref_gpu.nm_mask(w, 2, 4), w, cp.float16(0)).astype(cp.float32)
y = cp.empty((m, n), cp.float16)
nmref_gpu.gemm_24(x, wt.values, wt.meta, out=y, out_dtype="float16", variant=cfg)
cp.cuda.Device().synchronize()
ref = x.astype(cp.float32) @ wm.T
err = float(cp.abs(y.astype(cp.float32) - ref).max() / cp.abs(ref).max())
print(f"{n}x{k} M={m} {cfg.short()}: direct ok, rel err {err:.2e}", flush=True)
if len(sys.argv) > 5:
    from bench_gpu import graph_bench
    t = graph_bench(lambda: nmref_gpu.gemm_24(x, wt.values, wt.meta, out=y, out_dtype="float16", variant=cfg), k=10, reps=5)
    print(f"  graph ok: {t * 1e6:.1f} us", flush=True)
