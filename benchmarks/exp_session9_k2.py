"""Throwaway: split-K-by-2 GEMV variants vs the existing ones (CUDA-graph replay, checked against float64)."""
import sys
import numpy as np
import cupy as cp
sys.path.insert(0, "benchmarks")
from bench_gpu import _graph_bench, rotating, cycle, SHAPES, read_bandwidth  # noqa: E402
import nmref  # noqa: E402
import nmref_gpu  # noqa: E402
import importlib  # noqa: E402
G = importlib.import_module("nmref_gpu.gemv")

rbw, _ = read_bandwidth()
print(f"read BW {rbw:.0f} GB/s")
rng = np.random.default_rng(0)
CFG = ((4, 2), (8, 1), (8, 2), (16, 1), (16, 2))
rows = []
for out_f, in_f in SHAPES + [(4736, 13824), (6336, 13824), (12672, 4096)]:
    w = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
    v, m = nmref.compress_24_packed(w)
    wsd = nmref.decompress_24_packed(v, m)
    for kind in ("2:4", "dense"):
        nb = (v.nbytes + m.nbytes) if kind == "2:4" else w.nbytes
        bufs = rotating((lambda: (cp.asarray(v), cp.asarray(m))) if kind == "2:4" else (lambda: (cp.asarray(w),)), nb)
        fn = nmref_gpu.gemv_24_packed if kind == "2:4" else nmref_gpu.gemv
        base = "mma+pf" if kind == "2:4" else "mma"
        for batch in (1, 4, 16):
            x_h = rng.standard_normal((batch, in_f), dtype=np.float32).astype(np.float16)
            x = cp.asarray(x_h)
            ref = x_h.astype(np.float64) @ (wsd if kind == "2:4" else w).astype(np.float64).T
            y = cp.empty((batch, out_f), dtype=cp.float32)
            res = {}
            for tag in (base, base + "+k2"):
                for kw, d in CFG:
                    var = (tag, kw, d)
                    y.fill(np.nan)
                    e = np.linalg.norm(fn(x, *bufs[0], out=y, variant=var).get() - ref) / np.linalg.norm(ref)
                    assert e < 1e-5, (var, e)
                    nx = cycle(bufs)
                    res[var] = _graph_bench(lambda: fn(x, *nx(), out=y, variant=var), 20, 30)
            b0 = min((k for k in res if not k[0].endswith("k2")), key=res.get)
            b2 = min((k for k in res if k[0].endswith("k2")), key=res.get)
            dv = G.default_variant("gemv_24" if kind == "2:4" else "gemv_dense", out_f, batch)
            line = (f"| {out_f}×{in_f} | {batch} | {kind} | {res[b0] * 1e6:.1f} ({nb / res[b0] / rbw / 1e7:.0f}%) {b0[1]}×{b0[2]} "
                    f"| {res[b2] * 1e6:.1f} ({nb / res[b2] / rbw / 1e7:.0f}%) {b2[1]}×{b2[2]} | {res[b0] / res[b2]:.3f} "
                    f"| default {dv}: {res[dv] * 1e6:.1f} | " + " ".join(f"{k[0][-2:]}{k[1]}x{k[2]}:{t * 1e6:.1f}" for k, t in res.items()) + " |")
            print(line, flush=True)
        del bufs
