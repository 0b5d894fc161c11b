"""What limits the GEMV kernels at a given size (run on the GPU machine).

  python benchmarks/probe_limits.py ceiling
      The read ceiling *at each GEMV's byte count*: the read-only XOR reduction of bench_gpu.py over
      buffers of exactly the bytes a dense or 2:4 GEMV of each LLaMA shape must read, rotated among
      copies that exceed 3x the L2, replayed from a CUDA graph of 20 launches as bench_gpu.py times the
      GEMVs (best of several grid sizes). Also the per-launch time of an empty kernel in such a graph.
  python benchmarks/probe_limits.py one KIND OUT IN BATCH KW D
      Checks one gemv_mma launch (KIND dense or 24) against nmref, then launches it 3 more times: for
      ``ncu -k regex:gemv_mma --launch-skip 3 --launch-count 1 ...``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import cupy as cp  # noqa: E402

import nmref  # noqa: E402
import nmref_gpu  # noqa: E402
from bench_gpu import L2_BYTES, SHAPES, graph_bench  # noqa: E402


def ceiling():
    mod = cp.RawModule(code=(ROOT / "benchmarks" / "read_bw.cu").read_text() +
                       '\nextern "C" __global__ void empty_kernel() {}\n', options=("-std=c++17",))
    k, empty = mod.get_function("read_bw"), mod.get_function("empty_kernel")
    sink = cp.empty((132 * 32, 4), dtype=cp.uint32)
    t_empty = graph_bench(lambda: empty((132,), (128,), ()))
    print(f"empty kernel in a graph of 20: {t_empty * 1e6:.2f} us per launch")
    sizes = []
    for o, i in SHAPES:
        sizes += [(f"dense {o}x{i}", o * i * 2), (f"2:4 {o}x{i}", o * i + o * i // 8)]
    sizes.append(("2 GiB", 2 << 30))
    print("| bytes of | MB | best µs | GB/s | grid (blocks×threads) |")
    print("|---|---|---|---|---|")
    res = {}
    for name, nbytes in sizes:
        words = nbytes // 16
        copies = max(1, -(-3 * L2_BYTES // nbytes))
        bufs = [cp.random.randint(0, 2**31, size=words * 4, dtype=cp.int32) for _ in range(copies)]
        best = None
        for blocks, threads in ((132 * 4, 512), (132 * 8, 512), (132 * 16, 256), (132 * 4, 1024), (132 * 2, 1024)):
            it = iter(range(10**9))
            t = graph_bench(lambda: k((blocks,), (threads,), (bufs[next(it) % copies], np.int64(words), sink)))
            if best is None or t < best[0]:
                best = (t, blocks, threads)
        t, b, th = best
        res[name] = nbytes / t / 1e9
        print(f"| {name} | {nbytes / 1e6:.1f} | {t * 1e6:.2f} | {nbytes / t / 1e9:.0f} | {b}×{th} |", flush=True)
        bufs = None
        cp.get_default_memory_pool().free_all_blocks()
    full = res["2 GiB"]
    print("fraction of the 2 GiB read bandwidth:", {k: round(v / full, 3) for k, v in res.items()})


def one(kind, out_f, in_f, batch, kw, d, tag="mma"):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((out_f, in_f)).astype(np.float16)
    x = rng.standard_normal((batch, in_f)).astype(np.float16)
    v = (tag, kw, d)
    if kind == "dense":
        wd, xd = cp.asarray(w), cp.asarray(x)
        fn = lambda: nmref_gpu.gemv(xd, wd, variant=v)  # noqa: E731
        ref = x.astype(np.float64) @ w.astype(np.float64).T
    else:
        vals, meta = nmref.compress_24_packed(w)
        vd, md, xd = cp.asarray(vals), cp.asarray(meta), cp.asarray(x)
        fn = lambda: nmref_gpu.gemv_24_packed(xd, vd, md, variant=v)  # noqa: E731
        ref = x.astype(np.float64) @ nmref.decompress_24_packed(vals, meta).astype(np.float64).T
    y = cp.asnumpy(fn())
    err = np.abs(y - ref).max() / np.abs(ref).max()
    print(f"{kind} {out_f}x{in_f} batch {batch} {tag} {kw}x{d}: max rel err {err:.2e}")
    assert err < 1e-5
    for _ in range(3):
        fn()
    cp.cuda.Device().synchronize()


if __name__ == "__main__":
    if sys.argv[1] == "ceiling":
        ceiling()
    else:
        a = sys.argv[2:]
        one(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]), *a[6:7])
