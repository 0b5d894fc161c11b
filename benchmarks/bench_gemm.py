"""nmref_gpu.gemm_24 (2:4 sparse GEMM on sparse tensor cores) side by side with dense cuBLAS on the same
W⊙M, PyTorch's semi-structured 2:4 (cuSPARSELt through torch.sparse.to_sparse_semi_structured), and
nmref_gpu's own 2:4 GEMV at M = 16.

Run (on the GPU machine): python benchmarks/bench_gemm.py [--dtypes float16,bfloat16] [--sweep] [--doc]
``--sweep`` also times every compiled configuration with split-K 1, 2 and 4 (the data behind the rule,
nmref_gpu.gemm.gemm_config). ``--doc`` writes the table into docs/benchmarks.md.
Each kernel's output is checked against float64 before timing (random inputs, never zeros); weights
rotate among enough copies to exceed the L2; per-launch medians of CUDA-graph replays; output in the
input dtype for every contender (as cuBLAS returns it). TFLOP/s are dense-equivalent: 2·M·N·K / time.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import cupy as cp  # noqa: E402
import torch  # noqa: E402

import nmref_gpu  # noqa: E402
from nmref_gpu import gemm as G, kernels  # noqa: E402
from bench_gpu import L2_BYTES, graph_bench, torch_graph_bench  # noqa: E402

SHAPES = [(4096, 4096), (11008, 4096), (4096, 11008), (5120, 13824), (13824, 5120), (8192, 8192)]
MS = [16, 64, 256, 1024, 4096, 8192]


def copies_for(bytes_per_copy):
    return 1 + int(np.ceil(3 * L2_BYTES / max(bytes_per_copy, 1)))


def check_close(y, x, wm, what):
    """A sample of rows against float64: |err| <= 1e-2 relative to Σ|x||w| (half output rounding)."""
    rows = np.unique(np.linspace(0, x.shape[0] - 1, 8).astype(int))
    xs = cp.asnumpy(x[rows]).astype(np.float64)
    w64 = cp.asnumpy(wm).astype(np.float64)
    ref = xs @ w64.T
    scale = np.abs(xs) @ np.abs(w64).T
    err = np.abs(cp.asnumpy(y[rows]).astype(np.float64) - ref) / (scale + 1e-30)
    if not err.max() < 1e-2:
        raise AssertionError(f"{what}: relative error {err.max():.3g}")


def dev(t):
    """A CuPy view of a CUDA torch tensor (bfloat16 through its 16-bit patterns: CuPy reads torch's
    bfloat16 typestr as raw bytes)."""
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return cp.asarray(t.view(torch.int16)).view(np.dtype(ml_dtypes.bfloat16))
    return cp.asarray(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtypes", default="float16,bfloat16")
    ap.add_argument("--shapes", default="all", help="'all' or a comma list of NxK")
    ap.add_argument("--ms", default=",".join(map(str, MS)))
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--doc", action="store_true")
    ap.add_argument("--out", help="also write the table to this file")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    shapes = SHAPES if args.shapes == "all" else [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")]
    ms = [int(v) for v in args.ms.split(",")]
    gpu = torch.cuda.get_device_name()
    print(f"device: {gpu}; wgmma kernels: {G.has_wgmma()}")
    lines = [f"GPU: {gpu}. Times in µs (median per launch, CUDA-graph replay of 10 launches, weights rotated past the L2); "
             "TFLOP/s dense-equivalent (2·M·N·K/t); ratios are speedups over dense cuBLAS on the same W⊙M.", "",
             "| dtype | N×K | M | cuBLAS µs | cuSPARSELt µs | gemm_24 µs (config) | gemm_24 TFLOP/s | cuSPARSELt × | gemm_24 × | gemm_24 / cuSPARSELt | GEMV × |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    sweep_lines = ["| dtype | N×K | M | " + " | ".join(f"{c.bm}x{c.bn} s{s}" for c in kernels.GEMM_CONFIGS for s in (1, 2, 4)) + " |",
                   "|---|---|---|" + "---|" * (3 * len(kernels.GEMM_CONFIGS))]
    for dtype in args.dtypes.split(","):
        tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        for n, k in shapes:
            ncopy = copies_for(n * k * 9 // 8)
            wts = []
            for _ in range(ncopy):
                w = torch.randn(n, k, device="cuda", dtype=tdt)
                wc = dev(w)
                mask = nmref_gpu.nm_mask(wc, 2, 4)
                wm = (wc.view(cp.uint16) * mask).view(wc.dtype)  # W⊙M on the bit patterns (no bfloat16 arithmetic in CuPy)
                wts.append((wm, nmref_gpu.Sparse24Weight.from_dense(wc, mask=mask)))
            dense_t = [torch.as_tensor(wm.view(cp.int16), device="cuda").view(tdt) for wm, _ in wts]
            try:
                sparse_t = [torch.sparse.to_sparse_semi_structured(d) for d in dense_t]
            except Exception as e:  # noqa: BLE001
                print("cuSPARSELt unavailable:", repr(e)[:200])
                sparse_t = None
            for m in ms:
                x = dev(torch.randn(m, k, device="cuda", dtype=tdt))
                xt = torch.as_tensor(x.view(cp.int16), device="cuda").view(tdt)
                y = cp.empty((m, n), dtype=x.dtype)
                yt = torch.as_tensor(y.view(cp.int16), device="cuda").view(tdt)
                # correctness first, on the first copy
                nmref_gpu.gemm_24(x, wts[0][1].values, wts[0][1].meta, out=y, out_dtype=dtype)
                check_close(y, x, wts[0][0], f"gemm_24 {dtype} {n}x{k} M={m}")
                it = {"i": 0}

                def nxt():
                    it["i"] = (it["i"] + 1) % ncopy
                    return it["i"]

                def run_ours(cfg=None):
                    def f():
                        wt = wts[nxt()][1]
                        nmref_gpu.gemm_24(x, wt.values, wt.meta, out=y, out_dtype=dtype, variant=cfg)
                    for _ in range(ncopy + 1):
                        f()  # tensor maps of every copy built outside the captured graph
                    return graph_bench(f, k=10, reps=args.reps)

                t_ours = run_ours()
                cfg = G.gemm_config(m, n, k, cp.cuda.Device().attributes["MultiProcessorCount"])
                t_cublas = torch_graph_bench(lambda: torch.matmul(xt, dense_t[nxt()].T, out=yt), k=10, reps=args.reps)
                t_lt = float("nan")
                if sparse_t is not None:
                    torch.nn.functional.linear(xt, sparse_t[0])
                    out_lt = torch.nn.functional.linear(xt, sparse_t[0])
                    check_close(dev(out_lt.contiguous()), x, wts[0][0], "cuSPARSELt")
                    t_lt = torch_graph_bench(lambda: torch.nn.functional.linear(xt, sparse_t[nxt()]), k=10, reps=args.reps)
                t_gemv = float("nan")
                if m <= 16:
                    y32 = cp.empty((m, n), cp.float32)

                    def g():
                        wt = wts[nxt()][1]
                        nmref_gpu.gemv_24_packed(x, wt.values, wt.meta_packed, out=y32)
                    t_gemv = graph_bench(g, k=10, reps=args.reps)
                tf = 2 * m * n * k / t_ours / 1e12
                lines.append(f"| {dtype} | {n}×{k} | {m} | {t_cublas * 1e6:.1f} | {t_lt * 1e6:.1f} | {t_ours * 1e6:.1f} "
                             f"({cfg.short()}) | {tf:.0f} | {t_cublas / t_lt:.2f} | "
                             f"{t_cublas / t_ours:.2f} | {t_lt / t_ours:.2f} | "
                             + (f"{t_cublas / t_gemv:.2f}" if m <= 16 else "—") + " |")
                print(lines[-1], flush=True)
                if args.out:  # row by row, so that a failure later keeps what was measured
                    with open(args.out, "a") as fh:
                        fh.write(lines[-1] + "\n")
                if args.sweep:
                    row = []
                    for c in kernels.GEMM_CONFIGS:
                        for s in (1, 2, 4):
                            big = c.bm * c.bn >= 128 * 128
                            row.append(float("nan") if (big and m <= 64) or (not big and m >= 4096)
                                       else run_ours(c.with_splits(s)) * 1e6)
                    sweep_lines.append(f"| {dtype} | {n}×{k} | {m} | " + " | ".join(f"{t:.1f}" for t in row) + " |")
                    print(sweep_lines[-1], flush=True)
            del wts, dense_t, sparse_t
            torch.cuda.empty_cache()
            cp.get_default_memory_pool().free_all_blocks()
    text = "\n".join(lines + ([""] + sweep_lines if args.sweep else []))
    print(text)
    if args.doc:
        from _common import write_section
        write_section(f"2:4 sparse GEMM: {gpu}", text, "python benchmarks/bench_gemm.py --doc")


if __name__ == "__main__":
    main()
