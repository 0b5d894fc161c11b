"""nmref_gpu on a CUDA GPU: bandwidth-relative timings of every kernel, side by side with cuBLAS,
PyTorch's semi-structured 2:4 (cuSPARSELt) and PyTorch's fused AdamW.

Run (on the GPU machine): python benchmarks/bench_gpu.py [--out FILE]
Each kernel is checked against nmref/float64 before it is timed; inputs are random (never zeros);
the GEMV and TEAL kernels run with programmatic dependent launch (nmref_gpu/_launch.py) and, for the
best variants, again without it (``programmatic_launch(False)``), side by side;
weights rotate among enough copies to exceed the L2 cache; medians of CUDA-event timings.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import cupy as cp  # noqa: E402

import nmref  # noqa: E402
import nmref_gpu  # noqa: E402

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


VARIANTS = ["warp", (1, 4), (2, 2), (4, 1), *importlib.import_module("nmref_gpu.gemv")._MMA]  # every GEMV variant


SP_VARIANTS = [(16, 2, False), (16, 2, True)]  # gemv_24_mma (mma.sp) on the compress_24_mma layout


def vname(v):
    if isinstance(v, tuple) and v[0] == "sp":
        return "mma.sp%s %d×%d" % (" ordered" if v[3] else "", v[1], v[2])
    return "%s %d×%d" % v if isinstance(v, tuple) and isinstance(v[0], str) and v[0].startswith("mma") else str(v)


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--gemv-only", action="store_true", help="only the GEMV section (for kernel iteration)")
    ap.add_argument("--teal-only", action="store_true", help="only the two TEAL sections (for kernel iteration)")
    args = ap.parse_args()
    import torch
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    read_gbs, copy_gbs = read_bandwidth()
    lines = [f"Device: {dev}; date {datetime.date.today()}; CuPy {cp.__version__}; PyTorch {torch.__version__}",
             "", f"Read bandwidth (read-only XOR reduction, 2 GiB): **{read_gbs:.0f} GB/s**; "
             f"device copy (read+write counted): **{copy_gbs:.0f} GB/s**", ""]
    rng = np.random.default_rng(0)
    lines += ["### GEMV, fp16, float32 accumulation — CUDA-graph replay of 20 launches (no host gaps)", "",
              "GB/s on the bytes each kernel must read (dense: W; 2:4: values + metadata = 0.5625 of W), % of read "
              "bandwidth. Best of our variants per row; every variant's time is in the variants table below.", "",
              "| out×in | batch | cuBLAS µs (GB/s; torch.matmul in a CUDA graph) | dense µs (GB/s, %) [variant] | 2:4 µs (GB/s, %) [variant] "
              "| 2:4 vs cuBLAS | 2:4 vs our dense | torch 2:4 µs | default variant µs: dense, 2:4 packed, 2:4 mma.sp "
              "| best variants without PDL µs: dense, 2:4 | rel err dense, 2:4 |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    sp_names = [("sp",) + v for v in SP_VARIANTS]
    var_lines = ["| out×in | batch | kernel | " + " | ".join(vname(v) for v in VARIANTS + sp_names) + " |",
                 "|---|---|---|" + "---|" * (len(VARIANTS) + len(sp_names))]
    for out_f, in_f in ([] if args.teal_only else SHAPES):  # --teal-only: no GEMV rows
        w_h = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        vals_h, meta_h = nmref.compress_24_packed(w_h)
        ws_h = nmref.decompress_24_packed(vals_h, meta_h)
        dense_bytes = w_h.nbytes
        sb = vals_h.nbytes + meta_h.nbytes
        ws = rotating(lambda: cp.asarray(w_h), dense_bytes)
        cvals = rotating(lambda: (cp.asarray(vals_h), cp.asarray(meta_h)), sb)
        mvals_h, mmeta_h = nmref.compress_24_mma(w_h)
        assert mmeta_h.nbytes == meta_h.nbytes
        mvals = rotating(lambda: (cp.asarray(mvals_h), cp.asarray(mmeta_h)), sb)
        try:
            from torch.sparse import to_sparse_semi_structured
            tsp = to_sparse_semi_structured(torch.from_numpy(ws_h).cuda())
        except Exception as e:  # noqa: BLE001
            tsp = None
            print("torch semi-structured unavailable:", e)
        for batch in (1, 4, 16):
            x_h = rng.standard_normal((batch, in_f), dtype=np.float32).astype(np.float16)
            x = cp.asarray(x_h)
            y = cp.empty((batch, out_f), dtype=cp.float32)
            yh = cp.empty((batch, out_f), dtype=cp.float16)
            ref = x_h.astype(np.float64) @ w_h.astype(np.float64).T
            ref24 = x_h.astype(np.float64) @ ws_h.astype(np.float64).T
            nw, nv, nm = cycle(ws), cycle(cvals), cycle(mvals)
            t_cub = cublas_time(x, ws, yh)
            td, ts, ed, es = {}, {}, {}, {}
            for v in VARIANTS:
                y.fill(np.nan)
                ed[v] = np.linalg.norm(nmref_gpu.gemv(x, ws[0], out=y, variant=v).get() - ref) / np.linalg.norm(ref)
                y.fill(np.nan)
                es[v] = np.linalg.norm(nmref_gpu.gemv_24_packed(x, *cvals[0], out=y, variant=v).get() - ref24) / np.linalg.norm(ref24)
                td[v] = graph_bench(lambda: nmref_gpu.gemv(x, nw(), out=y, variant=v))
                ts[v] = graph_bench(lambda: nmref_gpu.gemv_24_packed(x, *nv(), out=y, variant=v))
            for v in SP_VARIANTS:
                y.fill(np.nan)
                es[("sp",) + v] = np.linalg.norm(nmref_gpu.gemv_24_mma(x, *mvals[0], out=y, variant=v).get() - ref24) / np.linalg.norm(ref24)
                ts[("sp",) + v] = graph_bench(lambda: nmref_gpu.gemv_24_mma(x, *nm(), out=y, variant=v))
            bd, bs = min(td, key=td.get), min(ts, key=ts.get)
            with nmref_gpu.programmatic_launch(False):  # the same variants launched plainly
                tdn = graph_bench(lambda: nmref_gpu.gemv(x, nw(), out=y, variant=bd))
                tsn = (graph_bench(lambda: nmref_gpu.gemv_24_packed(x, *nv(), out=y, variant=bs))
                       if bs in VARIANTS else float("nan"))
            tdd = graph_bench(lambda: nmref_gpu.gemv(x, nw(), out=y))  # the defaults (default_variant)
            tsd = graph_bench(lambda: nmref_gpu.gemv_24_packed(x, *nv(), out=y))
            tspd = graph_bench(lambda: nmref_gpu.gemv_24_mma(x, *nm(), out=y))
            t_t = float("nan")
            if tsp is not None:
                xt = torch.from_numpy(x_h).cuda()
                # cuSPARSELt wants the dense operand with >= 8 columns: pad the batch
                xt8 = torch.zeros((max(batch, 8) if batch % 8 else batch, in_f), dtype=torch.float16, device="cuda")
                xt8[:batch] = xt
                try:
                    torch.mm(tsp, xt8.T)
                    t_t = torch_graph_bench(lambda: torch.mm(tsp, xt8.T))
                except Exception as e:  # noqa: BLE001
                    print("torch 2:4 mm failed:", e)
            pct = lambda nbytes, t: f"{nbytes / t / 1e9:.0f}, {100 * nbytes / t / 1e9 / read_gbs:.0f}%"  # noqa: E731
            lines.append(f"| {out_f}×{in_f} | {batch} | {t_cub * 1e6:.1f} ({dense_bytes / t_cub / 1e9:.0f}) "
                         f"| {td[bd] * 1e6:.1f} ({pct(dense_bytes, td[bd])}) [{vname(bd)}] "
                         f"| {ts[bs] * 1e6:.1f} ({pct(sb, ts[bs])}) [{vname(bs)}] | {t_cub / ts[bs]:.2f}× | {td[bd] / ts[bs]:.2f}× "
                         f"| {t_t * 1e6:.1f} | {tdd * 1e6:.1f}, {tsd * 1e6:.1f}, {tspd * 1e6:.1f} | {tdn * 1e6:.1f}, {tsn * 1e6:.1f} "
                         f"| {max(ed.values()):.1e}, {max(es.values()):.1e} |")
            var_lines.append(f"| {out_f}×{in_f} | {batch} | dense | " + " | ".join(f"{td[v] * 1e6:.1f}" for v in VARIANTS)
                             + " | —" * len(sp_names) + " |")
            var_lines.append(f"| {out_f}×{in_f} | {batch} | 2:4 | " + " | ".join(f"{ts[v] * 1e6:.1f}" for v in VARIANTS + sp_names) + " |")
            print(lines[-1], flush=True)
    lines += ["", "GEMV variants, µs (`warp`: one warp per row, the first version; `(R, U)`: R rows per warp, "
              "U 16-byte loads per row in flight; `mma KW×U`: tensor-core mma.sync, 16 rows per block, KW warps "
              "splitting K, D super-steps of 64 columns in flight per warp, 2 = software-pipelined; `mma+pf`: the same "
              "with weight loads that prefetch their 256-byte block into L2 and skip L1, x kept in L1; `mma+pf+2c`: `mma+pf` "
              "with two accumulator chains per batch tile, consecutive mma independent; `+pred`: the same with the loads "
              "written as predicated PTX instructions, which ptxas schedules earlier, D up to 3):", ""] + var_lines
    if args.gemv_only:
        return finish(lines, args.out)
    lines += ["", "### Activation-sparse GEMV (TEAL), fp16, batch 1, W column-major — CUDA-graph replay", "",
              "Needed bytes = kept columns × out × 2. Target: ≥ 80% of read bandwidth on them, i.e. ≥ 0.9/(1−p) × our dense.", "",
              "`accumulate`: the same kernels adding into a residual buffer (`out +=`, BLAS beta = 1), without the "
              "zero-fill launch a fresh result needs.", "",
              "`deterministic`: the chunks' partial sums added in a fixed order (bitwise reproducible), see docs/gpu.md.", "",
              "| out×in | p | cuBLAS µs | TEAL block µs | TEAL block512 µs | TEAL chunk32 µs | best vs cuBLAS | best vs our dense (target) "
              "| GB/s on needed bytes (%) | block, block512 accumulate µs | accumulate: GB/s (%) "
              "| block, block512 deterministic µs | deterministic: GB/s (%), time vs best "
              "| without PDL µs: block, block accumulate | rel err |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for out_f, in_f in SHAPES:
        w_h = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        wfs = rotating(lambda: cp.asfortranarray(cp.asarray(w_h)), 0.35 * w_h.nbytes)  # p = 0.65 reads 35%
        wrs = rotating(lambda: cp.asarray(w_h), w_h.nbytes)
        nf, nr = cycle(wfs), cycle(wrs)
        x_h = rng.standard_normal(in_f, dtype=np.float32).astype(np.float16)
        x = cp.asarray(x_h)
        y = cp.empty(out_f, dtype=cp.float32)
        yh = cp.empty(out_f, dtype=cp.float16)
        t_cub = cublas_time(x, wrs, yh)
        t_d = graph_bench(lambda: nmref_gpu.gemv(x, nr(), out=y.reshape(1, -1)))
        for p in (0.25, 0.40, 0.50, 0.65):
            t = nmref.exact_threshold(x_h, p)
            kept = int(np.sum(np.abs(x_h) > t))
            ref = nmref.sparsify(x_h, t).astype(np.float64) @ w_h.astype(np.float64).T
            errs = []
            for v in ("block", "block512", "chunk32"):
                y.fill(np.nan)
                errs.append(np.linalg.norm(nmref_gpu.gemv_input_sparse(x, wfs[0], t, out=y, variant=v).get() - ref) / np.linalg.norm(ref))
            tb = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y, variant="block"))
            tc = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y, variant="chunk32"))
            t5 = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y, variant="block512"))
            tt = min(tb, tc, t5)
            yacc = cp.zeros(out_f, dtype=cp.float32)
            tba = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=yacc, variant="block", accumulate=True))
            t5a = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=yacc, variant="block512", accumulate=True))
            ta = min(tba, t5a)
            tbd = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y, variant="block", deterministic=True))
            t5d = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y, variant="block512", deterministic=True))
            td = min(tbd, t5d)
            with nmref_gpu.programmatic_launch(False):
                tbn = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y, variant="block"))
                tban = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=yacc, variant="block", accumulate=True))
            for v in ("block", "block512"):
                y.fill(np.nan)
                errs.append(np.linalg.norm(nmref_gpu.gemv_input_sparse(x, wfs[0], t, out=y, variant=v, deterministic=True).get() - ref) / np.linalg.norm(ref))
            need = kept * out_f * 2
            lines.append(f"| {out_f}×{in_f} | {p:.2f} | {t_cub * 1e6:.1f} | {tb * 1e6:.1f} | {t5 * 1e6:.1f} | {tc * 1e6:.1f} | {t_cub / tt:.2f}× "
                         f"| {t_d / tt:.2f}× ({0.9 / (1 - p):.2f}×) | {need / tt / 1e9:.0f} ({100 * need / tt / 1e9 / read_gbs:.0f}%) "
                         f"| {tba * 1e6:.1f}, {t5a * 1e6:.1f} | {need / ta / 1e9:.0f} ({100 * need / ta / 1e9 / read_gbs:.0f}%) "
                         f"| {tbd * 1e6:.1f}, {t5d * 1e6:.1f} | {need / td / 1e9:.0f} ({100 * need / td / 1e9 / read_gbs:.0f}%), {td / tt:.2f}× "
                         f"| {tbn * 1e6:.1f}, {tban * 1e6:.1f} | {max(errs):.1e} |")
        print("\n".join(lines[-4:]), flush=True)
    lines += ["", "### Activation-sparse GEMV on a 2:4 weight (TEAL + 2:4), fp16, batch 1, transposed packed layout", "",
              "Needed bytes: per group of 4 inputs, slot 0 of the values (out × 2 B) if one of inputs 0..2 is kept, "
              "slot 1 if one of inputs 1..3 is, the nibbles (out × 0.5 B) if either. Compared with TEAL on the dense "
              "column-major W and with our 2:4 GEMV (batch 1, no activation sparsity).", "",
              "| out×in | p | cuBLAS µs | TEAL dense-W µs | 2:4 GEMV µs | TEAL+2:4 µs | vs cuBLAS | vs TEAL dense-W "
              "| vs 2:4 GEMV | needed bytes / dense | GB/s on needed (%) | deterministic µs [U=4] | without PDL µs [same U] | rel err |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for out_f, in_f in SHAPES:
        w_h = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        vt_h, mt_h = nmref.compress_24_packed_t(w_h)
        ws_h = nmref.decompress_24_packed_t(vt_h, mt_h)
        vals_h, meta_h = nmref.compress_24_packed(w_h)
        sb = vt_h.nbytes + mt_h.nbytes
        cts = rotating(lambda: (cp.asarray(vt_h), cp.asarray(mt_h)), 0.41 / 0.5625 * sb)  # p = 0.65: 0.41 of dense
        cvals = rotating(lambda: (cp.asarray(vals_h), cp.asarray(meta_h)), sb)
        mvals_h, mmeta_h = nmref.compress_24_mma(w_h)
        assert mmeta_h.nbytes == meta_h.nbytes
        mvals = rotating(lambda: (cp.asarray(mvals_h), cp.asarray(mmeta_h)), sb)
        wfs = rotating(lambda: cp.asfortranarray(cp.asarray(w_h)), 0.35 * w_h.nbytes)
        wrs = rotating(lambda: cp.asarray(w_h), w_h.nbytes)
        nt, nv, nf = cycle(cts), cycle(cvals), cycle(wfs)
        x_h = rng.standard_normal(in_f, dtype=np.float32).astype(np.float16)
        x = cp.asarray(x_h)
        y = cp.empty(out_f, dtype=cp.float32)
        t_cub = cublas_time(x, wrs, cp.empty(out_f, dtype=cp.float16))
        t_24 = graph_bench(lambda: nmref_gpu.gemv_24_packed(x, *nv(), out=y.reshape(1, -1)))
        del wrs
        for p in (0.25, 0.40, 0.50, 0.65):
            t = nmref.exact_threshold(x_h, p)
            kept = (np.abs(x_h) > t).reshape(-1, 4)
            n0, n1 = kept[:, :3].any(1), kept[:, 1:].any(1)
            need = out_f * (2 * (int(n0.sum()) + int(n1.sum())) + 0.5 * int((n0 | n1).sum()))
            ref = nmref.sparsify(x_h, t).astype(np.float64) @ ws_h.astype(np.float64).T
            err = 0.0
            for det in (False, True):
                y.fill(np.nan)
                yg = nmref_gpu.gemv_input_sparse_24_packed_t(x, *cts[0], t, out=y, deterministic=det).get()
                err = max(err, np.linalg.norm(yg - ref) / np.linalg.norm(ref))
            tu = {u: graph_bench(lambda: nmref_gpu.gemv_input_sparse_24_packed_t(x, *nt(), t, out=y, variant=u))
                  for u in (4, 8)}
            bu = min(tu, key=tu.get)
            tt = tu[bu]
            tb = graph_bench(lambda: nmref_gpu.gemv_input_sparse(x, nf(), t, out=y))
            tdet = graph_bench(lambda: nmref_gpu.gemv_input_sparse_24_packed_t(x, *nt(), t, out=y, deterministic=True))
            with nmref_gpu.programmatic_launch(False):
                tnp = graph_bench(lambda: nmref_gpu.gemv_input_sparse_24_packed_t(x, *nt(), t, out=y, variant=bu))
            lines.append(f"| {out_f}×{in_f} | {p:.2f} | {t_cub * 1e6:.1f} | {tb * 1e6:.1f} | {t_24 * 1e6:.1f} | {tt * 1e6:.1f} [U={bu}] "
                         f"| {t_cub / tt:.2f}× | {tb / tt:.2f}× | {t_24 / tt:.2f}× | {need / w_h.nbytes:.3f} "
                         f"| {need / tt / 1e9:.0f} ({100 * need / tt / 1e9 / read_gbs:.0f}%) | {tdet * 1e6:.1f} | {tnp * 1e6:.1f} | {err:.1e} |")
        print("\n".join(lines[-4:]), flush=True)
        del cts, cvals, wfs
    if args.teal_only:
        return finish(lines, args.out)
    # mask + compress and fused optimizer steps
    lines += ["", "### Mask+compress and fused optimizer steps (bytes moved / time, % of copy bandwidth)", "",
              "| operation | size | µs | GB/s (%) | baseline | ratio |", "|---|---|---|---|---|---|"]
    w_h = rng.standard_normal((8192, 8192), dtype=np.float32).astype(np.float16)
    wd = cp.asarray(w_h)
    v, m = nmref_gpu.compress_24_packed(wd)
    rv, rm = nmref.compress_24_packed(w_h)
    ok = bool((v.get().view(np.uint16) == rv.view(np.uint16)).all() and (m.get() == rm).all())
    tmc = bench(lambda: nmref_gpu.compress_24_packed(wd), reps=30)
    by = w_h.nbytes + v.nbytes + m.nbytes
    # the kernel alone (no allocation, no NaN-flag readback), replayed from a CUDA graph
    from nmref_gpu import masks as gm
    kern = gm._mod().get_function("compress_24_packed_kernel<__half,2>")
    flag = cp.zeros(1, dtype=cp.int32)
    tk = graph_bench(lambda: kern((gm.blocks(4 * m.size, 512),), (256,), (wd, v, m, np.int64(4 * m.size), flag)), k=10)
    lines.append(f"| mask+compress 2:4 fp16, kernel (graph) (equal to nmref: {ok}) | 8192×8192 | {tk * 1e6:.0f} | {by / tk / 1e9:.0f} ({100 * by / tk / 1e9 / copy_gbs:.0f}%) | — | — |")
    lines.append(f"| mask+compress 2:4 fp16, `compress_24_packed` call (allocations + NaN-flag readback) | 8192×8192 | {tmc * 1e6:.0f} | {by / tmc / 1e9:.0f} ({100 * by / tmc / 1e9 / copy_gbs:.0f}%) | kernel | {tmc / tk:.2f} |")
    n = 64 << 20
    p = cp.random.standard_normal(n, dtype=cp.float32)
    g = cp.random.standard_normal(n, dtype=cp.float32)
    st = nmref.AdamState(3, cp.random.standard_normal(n, dtype=cp.float32) * 0.1, cp.abs(cp.random.standard_normal(n, dtype=cp.float32)) * 0.01)
    mask = nmref_gpu.nm_mask(p.reshape(-1, 4096), 2, 4).reshape(-1)
    h = nmref.AdamHyper(lr=1e-4, beta1=0.9, beta2=0.95, weight_decay=0.1)
    tp = torch.nn.Parameter(torch.randn(n, device="cuda"))
    tp.grad = torch.randn(n, device="cuda")
    opt = torch.optim.AdamW([tp], lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    opt.step()
    t_torch = bench(lambda: opt.step(), reps=20)
    opt_bytes = n * (4 * 4 + 1 + 3 * 4)
    torch_bytes = n * (4 * 4 + 3 * 4)
    lines.append(f"| torch AdamW fused (baseline) | {n >> 20}M fp32 | {t_torch * 1e6:.0f} | {torch_bytes / t_torch / 1e9:.0f} ({100 * torch_bytes / t_torch / 1e9 / copy_gbs:.0f}%) | — | 1.00 |")
    for name, fn in [("ast_adamw_step (update)", lambda: nmref_gpu.ast_adamw_step(p, g, st, h, mask=mask, lam=1e-4)),
                     ("ast_adamw_step (gradient)", lambda: nmref_gpu.ast_adamw_step(p, g, st, h, mask=mask, lam=1e-4, second_moment="gradient")),
                     ("adams_step", lambda: nmref_gpu.adams_step(p, g, st, h, mask=mask, lam=1e-4, ramp_steps=10))]:
        t = bench(fn, reps=20)
        lines.append(f"| {name} | {n >> 20}M fp32 | {t * 1e6:.0f} | {opt_bytes / t / 1e9:.0f} ({100 * opt_bytes / t / 1e9 / copy_gbs:.0f}%) | torch AdamW fused | {t / t_torch:.2f} |")
    finish(lines, args.out)


def finish(lines, out):
    text = "\n".join(lines)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main()
