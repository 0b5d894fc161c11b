"""Sweep of GEMV and TEAL kernel configurations on the GPU at hand: the measurement the rules in
nmref_gpu/kernels.py are read from (run on the GPU machine).

    python benchmarks/dev/sweep_gemv.py [--out results.json]

For each LLaMA projection shape and batch 1/2/4/8/16 it times every candidate ``MmaConfig`` for the
dense and the 2:4 GEMV (each checked against a float64 product first), every ``TealConfig`` for
batched TEAL at p = 0.5 (and batch 1 at p = 0.25), every 2:4 TEAL ``loads`` at p = 0.25/0.5/0.65, and
a pure read of the same bytes under the same timing (the bound). CUDA-graph replay of 20 launches,
weights rotated among copies that exceed 3x the L2, medians. Candidates are compiled on demand
(``variant=`` hook); nothing here is part of the shipped kernel set.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import cupy as cp  # noqa: E402

import nmref  # noqa: E402
import nmref_gpu  # noqa: E402
from nmref_gpu import gemv as G  # noqa: E402
from nmref_gpu.kernels import MmaConfig, TealConfig  # noqa: E402
from bench_gpu import SHAPES, cycle, graph_bench, read_ceiling, rotating  # noqa: E402

BATCHES = (1, 2, 4, 8, 16)
DENSE = [MmaConfig(kw, d, pf, 1, pr) for kw, d, pf, pr in itertools.product((4, 8, 16), (1, 2, 3), (False, True), (False, True))]
SPARSE = [MmaConfig(kw, d, True, c, pr) for kw, d, c, pr in itertools.product((4, 8, 16), (1, 2, 3), (1, 2), (False, True))]
TEAL = [TealConfig(ch, u) for ch in (256, 512) for u in (2, 4, 8)] + \
    [TealConfig(ch, d, mma=True) for ch in (256, 512) for d in (1, 2)]


def precompile(names):
    """Compile every candidate into one module and route the launchers' kernel lookup to it (one NVRTC
    run instead of one per candidate)."""
    t0 = time.time()
    mod = nmref_gpu._module.module("gemv", (), tuple(names))
    G._function = mod.get_function  # the launchers look _function up at call time
    print(f"compiled {len(names)} instances in {time.time() - t0:.0f} s", flush=True)


def rel(y, ref):
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="sweep.json")
    ap.add_argument("--shapes", type=int, default=len(SHAPES))
    ap.add_argument("--teal-only", action="store_true", help="skip the GEMV candidates")
    args = ap.parse_args()
    names = set() if args.teal_only else {c.kernel("__half", 1 if b <= 8 else 2, sp) for b in BATCHES
                                          for sp, cs in ((False, DENSE), (True, SPARSE)) for c in cs}
    names |= {c.kernel("__half", b, r) for b in BATCHES for c in TEAL for r in (0, 1)}
    names |= {c.kernel24("__half", r) for c in TEAL[:3] for r in (0, 1)} | {"teal_zero"}
    precompile(sorted(names))
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    res = {"device": dev, "date": time.strftime("%Y-%m-%d"), "gemv": [], "teal": [], "teal24": [], "ceiling": []}
    rng = np.random.default_rng(0)
    for out_f, in_f in SHAPES[:args.shapes]:
        w_h = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        vals_h, meta_h = nmref.compress_24_packed(w_h)
        ws64 = nmref.decompress_24_packed(vals_h, meta_h).astype(np.float64)
        ws = rotating(lambda: cp.asarray(w_h), w_h.nbytes)
        cv = rotating(lambda: (cp.asarray(vals_h), cp.asarray(meta_h)), vals_h.nbytes + meta_h.nbytes)
        nw, nv = cycle(ws), cycle(cv)
        sb = vals_h.nbytes + meta_h.nbytes
        res["ceiling"].append({"shape": [out_f, in_f]} if args.teal_only else
                              {"shape": [out_f, in_f], "dense_bytes": w_h.nbytes, "dense_s": read_ceiling(w_h.nbytes),
                               "sparse_bytes": sb, "sparse_s": read_ceiling(sb)})
        for b in (() if args.teal_only else BATCHES):
            x_h = rng.standard_normal((b, in_f), dtype=np.float32).astype(np.float16)
            x = cp.asarray(x_h)
            y = cp.empty((b, out_f), dtype=cp.float32)
            ref = x_h.astype(np.float64) @ w_h.astype(np.float64).T
            ref24 = x_h.astype(np.float64) @ ws64.T
            for kind, cands in (("dense", DENSE), ("24", SPARSE)):
                for c in cands:
                    call = ((lambda: nmref_gpu.gemv(x, nw(), out=y, variant=c)) if kind == "dense" else
                            (lambda: nmref_gpu.gemv_24_packed(x, *nv(), out=y, variant=c)))
                    y.fill(np.nan)
                    if kind == "dense":
                        err = rel(nmref_gpu.gemv(x, ws[0], out=y, variant=c).get(), ref)
                    else:
                        err = rel(nmref_gpu.gemv_24_packed(x, *cv[0], out=y, variant=c).get(), ref24)
                    assert err < 1e-5, (kind, c, err)
                    res["gemv"].append({"shape": [out_f, in_f], "batch": b, "kind": kind, "config": c.__dict__,
                                        "s": graph_bench(call)})
            print(out_f, in_f, b, flush=True)
        del ws, cv
        # TEAL (dense column-major W): every configuration per batch bound at p = 0.5
        wfs = rotating(lambda: cp.asfortranarray(cp.asarray(w_h)), 0.5 * w_h.nbytes)
        nf = cycle(wfs)
        for b, p in [(1, 0.25)] + [(b, 0.5) for b in BATCHES]:
            x_h = rng.standard_normal((b, in_f), dtype=np.float32).astype(np.float16)
            m = np.abs(x_h.astype(np.float64)).mean(0)
            t = float(np.quantile(m, p))
            kept = int((m > t).sum())
            x = cp.asarray(x_h)
            y = cp.empty((b, out_f), dtype=cp.float32)
            ref = nmref.gemv_input_sparse_batched(x_h.astype(np.float64), w_h.astype(np.float64), t)
            for c in TEAL:
                y.fill(np.nan)
                assert rel(nmref_gpu.gemv_input_sparse_batched(x, wfs[0], t, out=y, variant=c).get(), ref) < 1e-5
                res["teal"].append({"shape": [out_f, in_f], "batch": b, "p": p, "config": c.__dict__, "kept": kept,
                                    "needed_bytes": kept * out_f * 2,
                                    "s": graph_bench(lambda: nmref_gpu.gemv_input_sparse_batched(x, nf(), t, out=y, variant=c))})
        res["ceiling"][-1]["teal50_s"] = read_ceiling(in_f // 2 * out_f * 2)
        del wfs
        vt_h, mt_h = nmref.compress_24_packed_t(w_h)
        cts = rotating(lambda: (cp.asarray(vt_h), cp.asarray(mt_h)), 0.4 * w_h.nbytes)
        nt = cycle(cts)
        x_h = rng.standard_normal(in_f, dtype=np.float32).astype(np.float16)
        x = cp.asarray(x_h)
        y = cp.empty(out_f, dtype=cp.float32)
        w24 = nmref.decompress_24_packed_t(vt_h, mt_h).astype(np.float64)
        for p in (0.25, 0.5, 0.65):
            t = nmref.exact_threshold(x_h, p)
            k4 = (np.abs(x_h) > t).reshape(-1, 4)
            n0, n1 = k4[:, :3].any(1), k4[:, 1:].any(1)
            need = out_f * (2 * (int(n0.sum()) + int(n1.sum())) + 0.5 * int((n0 | n1).sum()))
            ref = nmref.sparsify(x_h, t).astype(np.float64) @ w24.T
            for c in TEAL[:3]:
                y.fill(np.nan)
                assert rel(nmref_gpu.gemv_input_sparse_24_packed_t(x, *cts[0], t, out=y, variant=c).get(), ref) < 1e-5
                res["teal24"].append({"shape": [out_f, in_f], "p": p, "config": c.__dict__, "needed_bytes": need,
                                      "s": graph_bench(lambda: nmref_gpu.gemv_input_sparse_24_packed_t(x, *nt(), t, out=y, variant=c))})
        del cts
        print("teal", out_f, in_f, flush=True)
        Path(args.out).write_text(json.dumps(res))
    Path(args.out).write_text(json.dumps(res))


if __name__ == "__main__":
    main()
