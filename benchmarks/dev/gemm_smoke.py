"""Quick look at gemm_24: max relative error per kernel configuration on a few shapes (debugging aid).
Run: python benchmarks/dev/gemm_smoke.py"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import cupy as cp  # noqa: E402

import nmref  # noqa: E402
import nmref_gpu  # noqa: E402
from nmref_gpu import gemm as G, kernels  # noqa: E402

print("wgmma:", G.has_wgmma())
rng = np.random.default_rng(0)
for n, k, m in [(64, 128, 16), (128, 256, 16), (128, 256, 64), (256, 512, 128), (200, 384, 33), (4096, 4096, 16)]:
    w = rng.standard_normal((n, k)).astype(np.float16)
    x = rng.standard_normal((m, k)).astype(np.float16)
    v, me = nmref.compress_24_gemm(w)
    ref = x.astype(np.float64) @ nmref.decompress_24_gemm(v, me).astype(np.float64).T
    res = []
    for cfg in ["mma"] + [c.with_splits(s) for c in kernels.GEMM_CONFIGS for s in (1, 2)]:
        try:
            y = cp.full((m, n), np.nan, cp.float32)
            nmref_gpu.gemm_24(cp.asarray(x), cp.asarray(v), cp.asarray(me), out=y, variant=cfg)
            cp.cuda.Device().synchronize()
            err = np.nanmax(np.abs(cp.asnumpy(y) - ref)) / np.abs(ref).max()
            res.append(f"{cfg if cfg == 'mma' else cfg.short()}:{err:.1e}{'(nan)' if np.isnan(cp.asnumpy(y)).any() else ''}")
        except Exception as e:  # noqa: BLE001
            res.append(f"{cfg}: {type(e).__name__} {str(e)[:150]}")
    print((n, k, m), " ".join(res), flush=True)
