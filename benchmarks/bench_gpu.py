"""nmref_gpu on a CUDA GPU: the shipped kernels as a call uses them (the rules of nmref_gpu/kernels.py),
side by side with cuBLAS, PyTorch's semi-structured 2:4 (cuSPARSELt), PyTorch's fused AdamW, and a
pure read of the same bytes under the same timing (the bound each kernel is held to).

Run (on the GPU machine): python benchmarks/bench_gpu.py [--out FILE] [--doc]
``--doc`` writes the tables into docs/benchmarks.md (section "GPU kernels: <device>").
Each kernel is checked against nmref/float64 before it is timed; inputs are random (never zeros);
weights rotate among enough copies to exceed the L2 cache; per-launch medians of CUDA-graph replays.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import cupy as cp  # noqa: E402

import nmref  # noqa: E402
import nmref_gpu  # noqa: E402
from nmref_gpu import kernels  # noqa: E402

SHAPES = [(4096, 4096), (11008, 4096), (4096, 11008), (5120, 13824), (13824, 5120)]
L2_BYTES = 50 << 20


def bench(fn, reps=50, warm=5):
    for _ in range(warm):
        fn()
    cp.cuda.Device().synchronize()
    ts = []
    for _ in range(reps):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(cp.cuda.get_elapsed_time(a, b) * 1e-3)
    return statistics.median(ts)


def graph_bench(fn, k=20, reps=30):
    """Per-launch time of ``fn`` from replays of a CUDA graph holding ``k`` calls (host gaps removed);
    falls back to ``k`` back-to-back calls between two events if capture fails."""
    try:
        return _graph_bench(fn, k, reps)
    except Exception as e:  # noqa: BLE001
        print("graph capture failed, timing back-to-back launches:", repr(e)[:200])
        ts = []
        for _ in range(reps):
            a, b = cp.cuda.Event(), cp.cuda.Event()
            a.record()
            for _ in range(k):
                fn()
            b.record()
            b.synchronize()
            ts.append(cp.cuda.get_elapsed_time(a, b) * 1e-3 / k)
        return statistics.median(ts)


def _graph_bench(fn, k, reps):
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        fn()
        stream.synchronize()
        stream.begin_capture()
        for _ in range(k):
            fn()
        graph = stream.end_capture()
        for _ in range(3):
            graph.launch(stream)
        stream.synchronize()
        ts = []
        for _ in range(reps):
            a, b = cp.cuda.Event(), cp.cuda.Event()
            a.record(stream)
            graph.launch(stream)
            b.record(stream)
            b.synchronize()
            ts.append(cp.cuda.get_elapsed_time(a, b) * 1e-3 / k)
    return statistics.median(ts)


def torch_graph_bench(fn, k=20, reps=30):
    import torch
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(k):
            fn()
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e-3 / k)
    return statistics.median(ts)


def cublas_time(x, ws, out):
    """cuBLAS (through PyTorch, which can capture it in a CUDA graph) on the same CuPy buffers."""
    import torch
    cp.cuda.Device().synchronize()
    xt, yt = torch.as_tensor(x, device="cuda"), torch.as_tensor(out, device="cuda")
    wts = [torch.as_tensor(w, device="cuda") for w in ws]
    nxt = cycle(wts)
    return torch_graph_bench(lambda: torch.matmul(xt, nxt().T, out=yt))


def rotating(make, bytes_per_call):
    """Enough independent copies that a call never finds its weights in L2: between two calls on one copy,
    the calls on the others read at least 3x the L2 (``bytes_per_call``: what one call reads, e.g. only
    the kept columns for TEAL — with too few copies, a sparse call's few rows stay in L2 until the same
    copy comes round again)."""
    k = 1 + int(np.ceil(3 * L2_BYTES / max(bytes_per_call, 1)))
    return [make() for _ in range(k)]


def cycle(items):
    state = {"i": 0}

    def nxt():
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]
    return nxt


def read_bandwidth():
    mod = cp.RawModule(code=(ROOT / "benchmarks" / "read_bw.cu").read_text(), options=("-std=c++17",))
    k = mod.get_function("read_bw")
    n = 2 << 30
    src = cp.random.randint(0, 2**31, size=n // 4, dtype=cp.int32)
    sink = cp.empty((132 * 8 * 4, 4), dtype=cp.uint32)
    words = n // 16
    t = bench(lambda: k((132 * 8,), (512,), (src, np.int64(words), sink)), reps=20)
    copy_src = cp.random.random(n // 8 // 2, dtype=cp.float64)
    dst = cp.empty_like(copy_src)
    tc = bench(lambda: dst.__setitem__(slice(None), copy_src), reps=20)
    return n / t / 1e9, 2 * copy_src.nbytes / tc / 1e9


_READ = {}


def _read_kernel():
    if "k" not in _READ:
        mod = cp.RawModule(code=(ROOT / "benchmarks" / "read_bw.cu").read_text(), options=("-std=c++17",))
        _READ["k"] = mod.get_function("read_bw")
        _READ["sink"] = cp.empty((132 * 32, 4), dtype=cp.uint32)
    return _READ["k"], _READ["sink"]


def read_ceiling(nbytes: int) -> float:
    """Seconds per launch of the best pure read (XOR reduction of 16-byte words) of ``nbytes`` contiguous
    bytes, timed as the kernels are (CUDA-graph replay of 20 launches, copies rotated past the L2):
    the floor for a kernel that must read those bytes once."""
    k, sink = _read_kernel()
    words = -(-int(nbytes) // 16)
    bufs = rotating(lambda: cp.random.randint(1, 2**31, size=4 * words, dtype=cp.int32), 16 * words)
    nb = cycle(bufs)
    sms = cp.cuda.Device().attributes["MultiProcessorCount"]
    best = min(graph_bench(lambda: k((sms * g,), (512,), (nb(), np.int64(words), sink)))
               for g in (1, 2, 4, 8))
    del bufs
    return best


def _err(y, ref):
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--doc", action="store_true", help="write the tables into docs/benchmarks.md")
    ap.add_argument("--only", choices=("gemv", "teal", "other"), default=None)
    args = ap.parse_args()
    import torch
    from torch.sparse import to_sparse_semi_structured
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    read_gbs, copy_gbs = read_bandwidth()
    pct = lambda nbytes, t: f"{100 * nbytes / t / 1e9 / read_gbs:.0f}%"  # noqa: E731
    lines = [f"Device: {dev}; date {datetime.date.today()}; CuPy {cp.__version__}; PyTorch {torch.__version__}", "",
             f"Read bandwidth (read-only XOR reduction, 2 GiB): **{read_gbs:.0f} GB/s**; "
             f"device copy (read+write counted): **{copy_gbs:.0f} GB/s**. Percentages below are of this read "
             "bandwidth, on the bytes each kernel must read; *read bound* is a pure read of exactly those "
             "bytes timed the same way (CUDA-graph replay of 20 launches, weights rotated past the L2).", ""]
    rng = np.random.default_rng(0)
    if args.only in (None, "gemv"):
        lines += ["### GEMV, fp16, float32 accumulation (`gemv`, `gemv_24_packed`, the rule's kernel)", "",
                  "| out×in | batch | cuBLAS µs | dense µs (% BW) [kernel] | dense read bound µs | 2:4 µs (% BW) [kernel] "
                  "| 2:4 read bound µs | 2:4 vs cuBLAS | cuSPARSELt µs | rel err dense, 2:4 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for out_f, in_f in SHAPES:
            w_h = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
            vals_h, meta_h = nmref.compress_24_packed(w_h)
            ws_h = nmref.decompress_24_packed(vals_h, meta_h)
            db, sb = w_h.nbytes, vals_h.nbytes + meta_h.nbytes
            rd, rs = read_ceiling(db), read_ceiling(sb)
            ws = rotating(lambda: cp.asarray(w_h), db)
            cv = rotating(lambda: (cp.asarray(vals_h), cp.asarray(meta_h)), sb)
            nw, nv = cycle(ws), cycle(cv)
            tsp = to_sparse_semi_structured(torch.from_numpy(ws_h).cuda())
            for batch in (1, 2, 4, 8, 16):
                x_h = rng.standard_normal((batch, in_f), dtype=np.float32).astype(np.float16)
                x = cp.asarray(x_h)
                y = cp.full((batch, out_f), np.nan, dtype=cp.float32)
                ed = _err(nmref_gpu.gemv(x, ws[0], out=y).get(), x_h.astype(np.float64) @ w_h.astype(np.float64).T)
                y.fill(np.nan)
                es = _err(nmref_gpu.gemv_24_packed(x, *cv[0], out=y).get(), x_h.astype(np.float64) @ ws_h.astype(np.float64).T)
                t_cub = cublas_time(x, ws, cp.empty((batch, out_f), dtype=cp.float16))
                td = graph_bench(lambda: nmref_gpu.gemv(x, nw(), out=y))
                ts = graph_bench(lambda: nmref_gpu.gemv_24_packed(x, *nv(), out=y))
                xt8 = torch.zeros((max(batch, 8) if batch % 8 else batch, in_f), dtype=torch.float16, device="cuda")
                xt8[:batch] = torch.from_numpy(x_h).cuda()  # cuSPARSELt wants >= 8 dense columns
                t_t = torch_graph_bench(lambda: torch.mm(tsp, xt8.T))
                kd = kernels.gemv_config("dense", out_f, batch).short()
                ks = kernels.gemv_config("24", out_f, batch).short()
                lines.append(f"| {out_f}×{in_f} | {batch} | {t_cub * 1e6:.1f} | {td * 1e6:.1f} ({pct(db, td)}) [{kd}] "
                             f"| {rd * 1e6:.1f} ({pct(db, rd)}) | {ts * 1e6:.1f} ({pct(sb, ts)}) [{ks}] "
                             f"| {rs * 1e6:.1f} ({pct(sb, rs)}) | {t_cub / ts:.2f}× | {t_t * 1e6:.1f} | {ed:.1e}, {es:.1e} |")
                print(lines[-1], flush=True)
            del ws, cv, tsp
    if args.only in (None, "teal"):
        lines += ["", "### TEAL (`gemv_input_sparse`, `gemv_input_sparse_batched`), fp16, W column-major", "",
                  "Needed bytes = kept rows of Wᵀ × out × 2 (the batch shares one mask). Dense = our dense GEMV "
                  "at the same batch (reads all of W).", "",
                  "| out×in | batch | p | dense µs | TEAL µs | needed bytes: % BW | read bound µs (% BW) | TEAL vs dense "
                  "| accumulate µs | deterministic µs | rel err |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for out_f, in_f in SHAPES:
            w_h = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
            wfs = rotating(lambda: cp.asfortranarray(cp.asarray(w_h)), 0.35 * w_h.nbytes)
            wrs = rotating(lambda: cp.asarray(w_h), w_h.nbytes)
            nf, nr = cycle(wfs), cycle(wrs)
            bounds = {}
            for batch, p in [(1, 0.25), (1, 0.4), (1, 0.5), (1, 0.65), (2, 0.5), (4, 0.5), (8, 0.5), (16, 0.5)]:
                x_h = rng.standard_normal((batch, in_f), dtype=np.float32).astype(np.float16)
                m = np.abs(x_h.astype(np.float64)).mean(0)
                t = float(np.quantile(m, p))
                kept = int((m > t).sum())
                need = kept * out_f * 2
                if kept not in bounds:
                    bounds[kept] = read_ceiling(need)
                x = cp.asarray(x_h)
                y = cp.full((batch, out_f), np.nan, dtype=cp.float32)
                ref = nmref.gemv_input_sparse_batched(x_h.astype(np.float64), w_h.astype(np.float64), t)
                err = _err(nmref_gpu.gemv_input_sparse_batched(x, wfs[0], t, out=y).get(), ref)
                t_d = graph_bench(lambda: nmref_gpu.gemv(x, nr(), out=y))
                tt = graph_bench(lambda: nmref_gpu.gemv_input_sparse_batched(x, nf(), t, out=y))
                ta = graph_bench(lambda: nmref_gpu.gemv_input_sparse_batched(x, nf(), t, out=y, accumulate=True))
                tdet = graph_bench(lambda: nmref_gpu.gemv_input_sparse_batched(x, nf(), t, out=y, deterministic=True))
                rb = bounds[kept]
                lines.append(f"| {out_f}×{in_f} | {batch} | {p:.2f} | {t_d * 1e6:.1f} | {tt * 1e6:.1f} | {pct(need, tt)} "
                             f"| {rb * 1e6:.1f} ({pct(need, rb)}) | {t_d / tt:.2f}× | {ta * 1e6:.1f} | {tdet * 1e6:.1f} | {err:.1e} |")
                print(lines[-1], flush=True)
            del wfs, wrs
        lines += ["", "### TEAL on a 2:4 weight (`gemv_input_sparse_24_packed_t`), fp16, batch 1", "",
                  "Needed bytes: per group of 4 inputs, value slot 0 if one of inputs 0..2 is kept, slot 1 if one of "
                  "1..3 is, the nibbles if either. *TEAL dense-W* reads the kept rows of the dense column-major W.", "",
                  "| out×in | p | TEAL dense-W µs | TEAL+2:4 µs | needed bytes 2:4 / dense-W | % BW on needed | read bound µs (% BW) "
                  "| TEAL+2:4 vs TEAL dense-W | rel err |", "|---|---|---|---|---|---|---|---|---|"]
        for out_f, in_f in SHAPES:
            w_h = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
            vt_h, mt_h = nmref.compress_24_packed_t(w_h)
            w24 = nmref.decompress_24_packed_t(vt_h, mt_h).astype(np.float64)
            cts = rotating(lambda: (cp.asarray(vt_h), cp.asarray(mt_h)), 0.4 * w_h.nbytes)
            wfs = rotating(lambda: cp.asfortranarray(cp.asarray(w_h)), 0.35 * w_h.nbytes)
            nt, nf = cycle(cts), cycle(wfs)
            x_h = rng.standard_normal(in_f, dtype=np.float32).astype(np.float16)
            x = cp.asarray(x_h)
            y = cp.full(out_f, np.nan, dtype=cp.float32)
            for p in (0.25, 0.4, 0.5, 0.65):
                t = nmref.exact_threshold(x_h, p)
                k4 = (np.abs(x_h) > t).reshape(-1, 4)
                n0, n1 = k4[:, :3].any(1), k4[:, 1:].any(1)
                need = out_f * (2 * (int(n0.sum()) + int(n1.sum())) + 0.5 * int((n0 | n1).sum()))
                need_d = int(k4.sum()) * out_f * 2
                err = _err(nmref_gpu.gemv_input_sparse_24_packed_t(x, *cts[0], t, out=y).get(),
                           nmref.sparsify(x_h, t).astype(np.float64) @ w24.T)
                tt = graph_bench(lambda: nmref_gpu.gemv_input_sparse_24_packed_t(x, *nt(), t, out=y))
                tb = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y))
                rb = read_ceiling(need)
                lines.append(f"| {out_f}×{in_f} | {p:.2f} | {tb * 1e6:.1f} | {tt * 1e6:.1f} | {need / need_d:.3f} | {pct(need, tt)} "
                             f"| {rb * 1e6:.1f} ({pct(need, rb)}) | {tb / tt:.2f}× | {err:.1e} |")
                print(lines[-1], flush=True)
            del cts, wfs
    if args.only in (None, "other"):
        lines += ["", "### Mask+compress and fused optimizer steps (bytes moved / time, % of copy bandwidth)", "",
                  "| operation | size | µs | GB/s (%) | baseline | ratio |", "|---|---|---|---|---|---|"]
        w_h = rng.standard_normal((8192, 8192), dtype=np.float32).astype(np.float16)
        wd = cp.asarray(w_h)
        v, m = nmref_gpu.compress_24_packed(wd)
        rv, rm = nmref.compress_24_packed(w_h)
        ok = bool((v.get().view(np.uint16) == rv.view(np.uint16)).all() and (m.get() == rm).all())
        by = w_h.nbytes + v.nbytes + m.nbytes
        from nmref_gpu import masks as gm
        kern = gm._mod().get_function("compress_24_packed_kernel<__half,2>")
        flag = cp.zeros(1, dtype=cp.int32)
        tk = graph_bench(lambda: kern((gm.blocks(4 * m.size, 512),), (256,), (wd, v, m, np.int64(4 * m.size), flag)), k=10)
        tmc = bench(lambda: nmref_gpu.compress_24_packed(wd), reps=30)
        lines.append(f"| mask+compress 2:4 fp16, kernel (graph; equal to nmref: {ok}) | 8192×8192 | {tk * 1e6:.0f} "
                     f"| {by / tk / 1e9:.0f} ({100 * by / tk / 1e9 / copy_gbs:.0f}%) | — | — |")
        lines.append(f"| mask+compress 2:4 fp16, `compress_24_packed` call (allocations + NaN-flag readback) | 8192×8192 "
                     f"| {tmc * 1e6:.0f} | {by / tmc / 1e9:.0f} ({100 * by / tmc / 1e9 / copy_gbs:.0f}%) | kernel | {tmc / tk:.2f} |")
        n = 64 << 20
        p = cp.random.standard_normal(n, dtype=cp.float32)
        g = cp.random.standard_normal(n, dtype=cp.float32)
        st = nmref.AdamState(3, cp.random.standard_normal(n, dtype=cp.float32) * 0.1,
                             cp.abs(cp.random.standard_normal(n, dtype=cp.float32)) * 0.01)
        mask = nmref_gpu.nm_mask(p.reshape(-1, 4096), 2, 4).reshape(-1)
        h = nmref.AdamHyper(lr=1e-4, beta1=0.9, beta2=0.95, weight_decay=0.1)
        tp = torch.nn.Parameter(torch.randn(n, device="cuda"))
        tp.grad = torch.randn(n, device="cuda")
        opt = torch.optim.AdamW([tp], lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
        opt.step()
        t_torch = bench(lambda: opt.step(), reps=20)
        opt_bytes, torch_bytes = n * (4 * 4 + 1 + 3 * 4), n * (4 * 4 + 3 * 4)
        lines.append(f"| torch AdamW fused (baseline) | {n >> 20}M fp32 | {t_torch * 1e6:.0f} | {torch_bytes / t_torch / 1e9:.0f} "
                     f"({100 * torch_bytes / t_torch / 1e9 / copy_gbs:.0f}%) | — | 1.00 |")
        for name, fn in [("ast_adamw_step (update)", lambda: nmref_gpu.ast_adamw_step(p, g, st, h, mask=mask, lam=1e-4)),
                         ("adams_step", lambda: nmref_gpu.adams_step(p, g, st, h, mask=mask, lam=1e-4, ramp_steps=10))]:
            t = bench(fn, reps=20)
            lines.append(f"| {name} | {n >> 20}M fp32 | {t * 1e6:.0f} | {opt_bytes / t / 1e9:.0f} "
                         f"({100 * opt_bytes / t / 1e9 / copy_gbs:.0f}%) | torch AdamW fused | {t / t_torch:.2f} |")
    finish(lines, args.out, dev if args.doc else None)


def finish(lines, out, doc_device=None):
    text = "\n".join(lines)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
    if doc_device:
        from _common import write_section
        write_section(f"GPU kernels: {doc_device}", text, "python benchmarks/bench_gpu.py --doc")


if __name__ == "__main__":
    main()
