"""Session 9 experiment (throwaway): programmatic dependent launch (PDL) for the GEMV and TEAL kernels,
and gemv_mma with RT = 2 row tiles per warp (x fragments reused for 32 rows) at batch 16.

Modes (compile-time PDLM): 0 = as shipped; 1 = trigger dependents + griddepcontrol.wait at kernel start
(launched with programmatic stream serialization); 2/3 = 1 plus an L2 prefetch of each warp's first
4/16 super-steps of weights before the wait (GEMV only)."""
import ctypes
import os
import statistics
import sys
import time

import numpy as np
import cupy as cp

sys.path.insert(0, "benchmarks")
from bench_gpu import _graph_bench, rotating, cycle, read_bandwidth, SHAPES  # noqa: E402
import nmref  # noqa: E402
import nmref_gpu  # noqa: E402
from nmref_gpu._module import blocks  # noqa: E402

OUT = os.environ.get("OUT", "/tmp")
LOG = open(os.path.join(OUT, "pdl.txt"), "w")


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    LOG.write(s + "\n")
    LOG.flush()


PRELUDE = r'''
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PDL_TRIGGER() asm volatile("griddepcontrol.launch_dependents;" ::: "memory")
#define PDL_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#else
#define PDL_TRIGGER()
#define PDL_WAIT()
#endif
'''

MMA_PRO = r'''
#if PDLM == 1
  PDL_TRIGGER();
  PDL_WAIT();
#elif PDLM == 4
  PDL_WAIT();
  PDL_TRIGGER();
#elif PDLM == 5
  PDL_WAIT();
#elif PDLM >= 2
  PDL_TRIGGER();
  for (int i = 0; i < PFS; ++i) {
    int s = warp + i * KW, k = s * 64 + 16 * t;
    if (s < nsup && k < in) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const char *p = SP ? (const char *)(W + (size_t)rows[r] * (in >> 1) + (k >> 1))
                           : (const char *)(W + (size_t)rows[r] * in + k);
        asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
        if (SP) asm volatile("prefetch.global.L2 [%0];" ::"l"(meta + (size_t)rows[r] * (in >> 5) + (k >> 5)));
      }
    }
  }
  PDL_WAIT();
#endif
'''

EXTRA = r'''
extern "C" __global__ void fill0(float *y, int n) {
#if PDLM == 1
  PDL_TRIGGER();
  PDL_WAIT();
#elif PDLM >= 4
  PDL_WAIT();
  PDL_TRIGGER();
#endif
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = 0.f;
}

extern "C" __global__ void read_bw_pdl(const uint4 *__restrict__ src, long long n_words, uint4 *__restrict__ sink) {
#if PDLM >= 1
  PDL_TRIGGER();
  PDL_WAIT();
#endif
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n_words; i += (long long)gridDim.x * blockDim.x) {
    uint4 v = __ldcs(src + i);
    acc.x ^= v.x; acc.y ^= v.y; acc.z ^= v.z; acc.w ^= v.w;
  }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9e3779b9u) sink[blockIdx.x] = acc;
}

template <int NT, bool SP, int RT> struct RtStep {
  uint4 w[RT][2][SP ? 1 : 2];
  unsigned m[RT][2];
  uint4 x[NT][2];
};

template <typename T, int NT, bool SP, int KW, int D, bool PF, int RT>
__global__ void __launch_bounds__(32 * KW) gemv_mma_rt(const T *__restrict__ W, const uint32_t *__restrict__ meta,
                                                       const T *__restrict__ x, float *__restrict__ y, int out, int in,
                                                       int batch) {
  __shared__ float red[KW][16 * RT][8 * NT];
  __shared__ uint32_t tab[16];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  if constexpr (SP) {
    if (threadIdx.x < 16) tab[threadIdx.x] = expand_entry(threadIdx.x);
    __syncthreads();
  }
  int row0 = blockIdx.x * 16 * RT;
  int rows[RT][2];
#pragma unroll
  for (int q = 0; q < RT; ++q) {
    rows[q][0] = min(row0 + 16 * q + g, out - 1);
    rows[q][1] = min(row0 + 16 * q + g + 8, out - 1);
  }
  float acc[RT][NT][4] = {};
  int nsup = (in + 63) >> 6;
  auto load = [&](RtStep<NT, SP, RT> &st, int s) {
    int k = s * 64 + 16 * t;
    bool ok0 = s < nsup && k < in, ok1 = ok0 && k + 8 < in;
    MmaStep<NT, SP> tmp;
#pragma unroll
    for (int q = 0; q < RT; ++q) {
      load_w<T, NT, SP, PF>(tmp, W, meta, rows[q], in, k, ok0, ok1);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int u = 0; u < (SP ? 1 : 2); ++u) st.w[q][r][u] = tmp.w[r][u];
        st.m[q][r] = tmp.m[r];
      }
    }
    load_x<T, NT, SP, PF>(tmp, x, in, k, batch, g, ok0, ok1);
#pragma unroll
    for (int j = 0; j < NT; ++j) st.x[j][0] = tmp.x[j][0], st.x[j][1] = tmp.x[j][1];
  };
  auto compute = [&](const RtStep<NT, SP, RT> &st) {
#pragma unroll
    for (int q = 0; q < RT; ++q) {
      MmaStep<NT, SP> tmp;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int u = 0; u < (SP ? 1 : 2); ++u) tmp.w[r][u] = st.w[q][r][u];
        tmp.m[r] = st.m[q][r];
      }
#pragma unroll
      for (int j = 0; j < NT; ++j) tmp.x[j][0] = st.x[j][0], tmp.x[j][1] = st.x[j][1];
      mma_step<T, NT, SP>(tmp, tab, acc[q]);
    }
  };
  run_steps<RtStep<NT, SP, RT>, KW, D>(load, compute, warp, nsup);
#pragma unroll
  for (int q = 0; q < RT; ++q)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) red[warp][16 * q + g + 8 * (i >> 1)][8 * j + 2 * t + (i & 1)] = acc[q][j][i];
  __syncthreads();
  for (int idx = threadIdx.x; idx < 16 * RT * 8 * NT; idx += blockDim.x) {
    int r = idx % (16 * RT), b = idx / (16 * RT);
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < KW; ++w) sum += red[w][r][b];
    if (b < batch && row0 + r < out) y[(size_t)b * out + row0 + r] = sum;
  }
}
'''

SRC = open("nmref_gpu/gemv.cu").read()
ANCHOR_MMA = "  int nsup = (in + 63) >> 6;\n  auto load = [&](MmaStep<NT, SP> &st, int s) {"
assert SRC.count(ANCHOR_MMA) == 1
ANCHOR_TEAL = "  __shared__ float red[8][256];\n  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;\n"
assert SRC.count(ANCHOR_TEAL) == 2
SRC = SRC[:SRC.index("#define GEMV_MMA_SP(T, NT, KW, D, OM)")]  # name expressions instantiate what is used
PATCHED = SRC.replace(ANCHOR_MMA, "  int nsup = (in + 63) >> 6;\n" + MMA_PRO + "  auto load = [&](MmaStep<NT, SP> &st, int s) {")
PATCHED = PATCHED.replace(ANCHOR_TEAL, ANCHOR_TEAL + "#if PDLM == 1\n  PDL_TRIGGER();\n  PDL_WAIT();\n#elif PDLM == 4\n  PDL_WAIT();\n  PDL_TRIGGER();\n#elif PDLM == 5\n  PDL_WAIT();\n#endif\n")
LATE = "#if PDLM == 5\n  PDL_TRIGGER();\n#endif\n"
A1 = "  teal_block_reduce<RED>(red, acc, y, out, ws, tick, accum);\n"
assert PATCHED.count(A1) == 2
PATCHED = PATCHED.replace(A1, LATE + A1)
A2 = "  run_steps<MmaStep<NT, SP>, KW, D>(load, compute, warp, nsup);\n"
assert PATCHED.count(A2) == 1
PATCHED = PATCHED.replace(A2, A2 + LATE)

H = "__half"
MMA_NAMES = [f"gemv_mma<{H},{nt},false,{kw},{d},false>" for nt in (1, 2) for kw, d in ((4, 2), (8, 2), (16, 1), (16, 2))] + \
    [f"gemv_mma<{H},{nt},true,{kw},{d},true>" for nt in (1, 2) for kw, d in ((4, 2), (8, 1), (8, 2), (16, 1), (16, 2))]
TEAL_NAMES = [f"gemv_teal_blk<{H},{ch},0>" for ch in (256, 512)] + [f"gemv_teal24_blk<{H},{u},0>" for u in (4, 8)]
RT_V = ((4, 1), (4, 2), (8, 1), (8, 2), (16, 1))
RT_V3 = [(sp, pf, kw, d) for sp, pf in ((False, False), (False, True), (True, True)) for kw, d in RT_V]
RT_NAMES = [f"gemv_mma_rt<{H},2,{str(sp).lower()},{kw},{d},{str(pf).lower()},2>" for sp, pf, kw, d in RT_V3]


MODES = (1, 4, 5)


def build(mode, names):
    t0 = time.time()
    code = PRELUDE + f"#define PDLM {mode}\n#define PFS {16 if mode == 3 else 4}\n" + PATCHED + EXTRA
    m = cp.RawModule(code=code, options=("-std=c++17", "-Inmref_gpu"), name_expressions=names)
    for n in names:
        m.get_function(n)
    log(f"module mode {mode}: {len(names)} kernels, {time.time() - t0:.1f} s")
    return m


# ---- ctypes cuLaunchKernelEx with programmatic stream serialization ----
_cuda = ctypes.CDLL("libcuda.so.1")
u32 = ctypes.c_uint32


class Attr(ctypes.Structure):
    _fields_ = [("id", u32), ("pad", u32), ("val", u32 * 16)]


class Cfg(ctypes.Structure):
    _fields_ = [("gx", u32), ("gy", u32), ("gz", u32), ("bx", u32), ("by", u32), ("bz", u32), ("smem", u32),
                ("stream", ctypes.c_void_p), ("attrs", ctypes.POINTER(Attr)), ("nattrs", u32)]


_cuda.cuLaunchKernelEx.argtypes = [ctypes.POINTER(Cfg), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
_cuda.cuLaunchKernelEx.restype = ctypes.c_int


def launch(func, grid, block, args, pdl=True):
    vals = []
    for a in args:
        if isinstance(a, cp.ndarray):
            vals.append(ctypes.c_uint64(a.data.ptr))
        elif isinstance(a, np.float32):
            vals.append(ctypes.c_float(float(a)))
        elif isinstance(a, np.int32):
            vals.append(ctypes.c_int32(int(a)))
        elif isinstance(a, np.int64):
            vals.append(ctypes.c_int64(int(a)))
        else:
            raise TypeError(type(a))
    params = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
    attr = Attr()
    attr.id = 6  # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    attr.val[0] = 1
    g = tuple(grid) + (1,) * (3 - len(grid))
    b = tuple(block) + (1,) * (3 - len(block))
    cfg = Cfg(*g, *b, 0, cp.cuda.get_current_stream().ptr, ctypes.pointer(attr), 1 if pdl else 0)
    r = _cuda.cuLaunchKernelEx(ctypes.byref(cfg), getattr(func, "kernel", func).ptr, params, None)
    if r:
        raise RuntimeError(f"cuLaunchKernelEx returned {r}")


def gb(fn):
    return _graph_bench(fn, 20, 30)


def relerr(a, ref):
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def chain_check(fn_i, n, expect_last):
    """Graph of 20 calls fn_i(i) (alternating-sign weight copies, one output): after replay the output must be
    the last call's result (a missing wait would let an earlier call's late stores land)."""
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        for i in range(n):
            y = fn_i(i)
        g = stream.end_capture()
        errs = []
        for _ in range(5):
            y.fill(np.nan)
            g.launch(stream)
            stream.synchronize()
            errs.append(relerr(y.get().astype(np.float64), expect_last))
    return max(errs)


def main():
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    rbw, cbw = read_bandwidth()
    log(f"device {dev}; read BW {rbw:.0f} GB/s, copy {cbw:.0f} GB/s")
    m0 = build(0, RT_NAMES + ["fill0", "read_bw_pdl"])
    mods = {mode: build(mode, MMA_NAMES + TEAL_NAMES + ["fill0", "read_bw_pdl"]) for mode in MODES}
    rng = np.random.default_rng(9)

    parts = sys.argv[1:] or ["read", "rt", "gemv", "teal"]
    if "read" in parts:
        read_part(m0, mods, rbw)
    if "rt" in parts:
        rt_part(m0, rng)
    if "gemv" in parts:
        gemv_part(m0, mods, rng, rbw)
    if "teal" in parts:
        teal_part(mods, rng, rbw)


def read_part(m0, mods, rbw):
    # ---- read ceiling, plain vs PDL, at the GEMV byte counts ----
    log("\n## read ceiling (graph of 20): bytes, plain µs, PDL µs")
    for out_f, in_f in SHAPES:
        for label, nbytes in (("dense", out_f * in_f * 2), ("2:4", out_f * in_f * 9 // 8)):
            words = nbytes // 16
            bufs = rotating(lambda: cp.random.randint(0, 2**31, size=words * 4, dtype=cp.int32), nbytes)
            sink = cp.empty((132 * 8 * 4, 4), dtype=cp.uint32)
            nb = cycle(bufs)
            res = []
            for mod, pdl in ((m0, False), (mods[1], True)):
                f = mod.get_function("read_bw_pdl")
                best = min(gb(lambda: launch(f, (132 * k,), (512,), (nb(), np.int64(words), sink), pdl=pdl))
                           for k in (2, 4, 8))
                res.append(best)
            log(f"{out_f}x{in_f} {label}: {nbytes / 1e6:.1f} MB  plain {res[0] * 1e6:.2f} ({nbytes / res[0] / 1e9:.0f} GB/s)"
                f"  pdl {res[1] * 1e6:.2f} ({nbytes / res[1] / 1e9:.0f} GB/s)")
            del bufs



def rt_part(m0, rng):
    log("\n## RT=2 batch 16: correctness")
    for out_f, in_f, batch in ((40, 640, 13), (11008, 4096, 16), (4096, 4096, 9)):
        w = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        v, mt = nmref.compress_24_packed(w)
        wsd = nmref.decompress_24_packed(v, mt)
        x = rng.standard_normal((batch, in_f), dtype=np.float32).astype(np.float16)
        ref = x.astype(np.float64) @ w.astype(np.float64).T
        ref24 = x.astype(np.float64) @ wsd.astype(np.float64).T
        xd, wd, vd, md = cp.asarray(x), cp.asarray(w), cp.asarray(v), cp.asarray(mt)
        for n, (sp, pf, kw, d) in zip(RT_NAMES, RT_V3):
            y = cp.full((batch, out_f), np.nan, dtype=cp.float32)
            args = (vd, md) if sp else (wd, wd)
            launch(m0.get_function(n), (blocks(out_f, 32),), (32 * kw,),
                   args + (xd, y, np.int32(out_f), np.int32(in_f), np.int32(batch)), pdl=False)
            e = relerr(y.get().astype(np.float64), ref24 if sp else ref)
            log(f"  {out_f}x{in_f} b{batch} {n}: {e:.2e} {'OK' if e < 1e-6 else 'FAIL'}")



def gemv_part(m0, mods, rng, rbw):
    log("\n## GEMV: per variant µs — plain (shipped) | PDL mode 1 | mode 2 (pf 4) | mode 3 (pf 16); RT=2 rows at batch 16")
    summary = []
    for out_f, in_f in SHAPES:
        w = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        v, mt = nmref.compress_24_packed(w)
        wsd = nmref.decompress_24_packed(v, mt)
        dense_b, sp_b = w.nbytes, v.nbytes + mt.nbytes
        ncopy = len(rotating(lambda: 0, dense_b))
        ncopy += ncopy % 2
        sgn = [1 if c % 2 == 0 else -1 for c in range(ncopy)]
        wds = [cp.asarray(w) * s for s in sgn]
        ncs = len(rotating(lambda: 0, sp_b))
        ncs += ncs % 2
        vds = [(cp.asarray(v) * (1 if c % 2 == 0 else -1), cp.asarray(mt)) for c in range(ncs)]
        for batch in (1, 16):
            x = rng.standard_normal((batch, in_f), dtype=np.float32).astype(np.float16)
            xd = cp.asarray(x)
            ref = x.astype(np.float64) @ w.astype(np.float64).T
            ref24 = x.astype(np.float64) @ wsd.astype(np.float64).T
            y = cp.empty((batch, out_f), dtype=cp.float32)
            nt = 1 if batch <= 8 else 2
            for kind, nbytes, bufs, refk in (("dense", dense_b, [(a, a) for a in wds], ref), ("2:4", sp_b, vds, ref24)):
                spk = kind == "2:4"
                variants = [(4, 2), (8, 1), (8, 2), (16, 1), (16, 2)] if spk else [(4, 2), (8, 2), (16, 1), (16, 2)]
                best = {}
                for kw, d in variants:
                    tag = "mma+pf" if spk else "mma"
                    nb = cycle(bufs)
                    if spk:
                        t0 = gb(lambda: nmref_gpu.gemv_24_packed(xd, *nb(), out=y, variant=(tag, kw, d)))
                    else:
                        t0 = gb(lambda: nmref_gpu.gemv(xd, nb()[0], out=y, variant=(tag, kw, d)))
                    row = [t0]
                    name = f"gemv_mma<{H},{nt},{str(spk).lower()},{kw},{d},{str(spk).lower()}>"
                    errs = []
                    for mode in MODES:
                        f = mods[mode].get_function(name)
                        grid, block = (blocks(out_f, 16),), (32 * kw,)

                        def call(buf, f=f, grid=grid, block=block):
                            launch(f, grid, block, (buf[0], buf[1], xd, y, np.int32(out_f), np.int32(in_f), np.int32(batch)))
                            return y
                        errs.append(chain_check(lambda i: call(bufs[i % len(bufs)]), 20, refk * (1 if (19 % len(bufs)) % 2 == 0 else -1)))
                        nb = cycle(bufs)
                        row.append(gb(lambda: call(nb())))
                    best[(kw, d)] = row
                    log(f"{out_f}x{in_f} b{batch} {kind} {tag} {kw}x{d}: " + " | ".join(f"{r * 1e6:.1f}" for r in row)
                        + "   chain err " + " ".join(f"{e:.1e}" for e in errs))
                if batch == 16 and "rt" in sys.argv:
                    for n, (sp, pf, kw, d) in zip(RT_NAMES, RT_V3):
                        if sp != spk:
                            continue
                        f = m0.get_function(n)
                        nb = cycle(bufs)
                        tr = gb(lambda: launch(f, (blocks(out_f, 32),), (32 * kw,),
                                                        (*nb(), xd, y, np.int32(out_f), np.int32(in_f), np.int32(batch)), pdl=False))
                        best[("rt", n)] = [tr]
                        log(f"{out_f}x{in_f} b{batch} {kind} RT2 {n}: {tr * 1e6:.1f}")
                b0 = min(r[0] for k, r in best.items() if k[0] != "rt")
                brt = min((r[0] for k, r in best.items() if k[0] == "rt"), default=float("nan"))
                bp = [min(r[m] for k, r in best.items() if k[0] != "rt") for m in (1, 2, 3)]
                summary.append(f"| {out_f}×{in_f} | {batch} | {kind} | {b0 * 1e6:.1f} ({nbytes / b0 / rbw / 1e7:.0f}%) | "
                               + " | ".join(f"{t * 1e6:.1f} ({nbytes / t / rbw / 1e7:.0f}%)" for t in bp)
                               + f" | {brt * 1e6:.1f} |")
    log("\n| shape | batch | kind | best plain µs (% read) | best PDL modes " + "/".join(map(str, MODES)) + " | best RT2 plain |")
    for s in summary:
        log(s)



def teal_part(mods, rng, rbw):
    log("\n## TEAL batch 1: µs plain | PDL (fill0 + kernel both PDL-launched); % of read BW on needed bytes")
    tsum = []
    for out_f, in_f in SHAPES:
        w = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        x = rng.standard_normal(in_f, dtype=np.float32).astype(np.float16)
        vt, mtt = nmref.compress_24_packed_t(w)
        wsd = nmref.decompress_24_packed(*nmref.compress_24_packed(w))
        xd = cp.asarray(x)
        y = cp.empty(out_f, dtype=cp.float32)
        nc = len(rotating(lambda: 0, 0.35 * w.nbytes))
        nc += nc % 2
        wts = [cp.ascontiguousarray(cp.asarray(w).T) * (1 if c % 2 == 0 else -1) for c in range(nc)]  # [in, out]
        v24 = [(cp.asarray(vt) * (1 if c % 2 == 0 else -1), cp.asarray(mtt)) for c in range(nc)]
        for p in (0.25, 0.5, 0.65):
            t = float(np.quantile(np.abs(x.astype(np.float32)), p))
            xm = np.where(np.abs(x.astype(np.float32)) > t, x.astype(np.float64), 0.0)
            ref = xm @ w.astype(np.float64).T
            ref24 = xm @ wsd.astype(np.float64).T
            kept = int((np.abs(x.astype(np.float32)) > t).sum())
            need = kept * out_f * 2
            for kname, ch_or_u, bufs, refk in (("teal256", 256, [(a,) for a in wts], ref), ("teal512", 512, [(a,) for a in wts], ref),
                                              ("teal24u4", 4, v24, ref24), ("teal24u8", 8, v24, ref24)):
                is24 = kname.startswith("teal24")
                for accum in (0, 1):
                    nb = cycle(bufs)
                    if is24:
                        plain = lambda: nmref_gpu.gemv_input_sparse_24_packed_t(xd, *nb(), t, out=y, variant=ch_or_u, accumulate=bool(accum))
                        fname = f"gemv_teal24_blk<{H},{ch_or_u},0>"
                        grid = (blocks(out_f, 256), blocks(in_f // 4, 64))
                    else:
                        plain = lambda: nmref_gpu.gemv_input_sparse(xd, nb()[0].T, t, out=y, variant="block512" if ch_or_u == 512 else "block", accumulate=bool(accum))
                        fname = f"gemv_teal_blk<{H},{ch_or_u},0>"
                        grid = (blocks(out_f, 256), blocks(in_f, ch_or_u))
                    y.fill(0)
                    tp = gb(plain)
                    tqs, errs = [], []
                    for mode in MODES:
                        f = mods[mode].get_function(fname)
                        fz = mods[mode].get_function("fill0")

                        def call(buf, f=f, fz=fz, grid=grid, accum=accum, is24=is24):
                            if not accum:
                                launch(fz, (blocks(out_f, 256),), (256,), (y, np.int32(out_f)))
                            a = (buf[0], buf[1], xd) if is24 else (buf[0], xd)
                            launch(f, grid, (256,), a + (np.float32(t), y, np.int32(in_f), np.int32(out_f), y, y, np.int32(accum)))
                            return y
                        if not accum:
                            errs.append(chain_check(lambda i: call(bufs[i % len(bufs)]), 20,
                                                    refk * (1 if (19 % len(bufs)) % 2 == 0 else -1)))
                        y.fill(0)
                        nb = cycle(bufs)
                        tqs.append(gb(lambda: call(nb())))
                    log(f"{out_f}x{in_f} p={p} {kname} {'acc' if accum else 'fresh'}: {tp * 1e6:.2f} | "
                        + " | ".join(f"{q * 1e6:.2f}" for q in tqs) + "  chain err " + " ".join(f"{e:.1e}" for e in errs))
                    tsum.append((out_f, in_f, p, kname, accum, tp, tqs, need))
    log("\n| shape | p | kernel | mode | plain µs | PDL modes " + "/".join(map(str, MODES)) + " µs | ratios | % read (dense W) |")
    for out_f, in_f, p, kname, accum, tp, tqs, need in tsum:
        pct = "" if kname.startswith("teal24") else " / ".join(f"{need / q / rbw / 1e7:.0f}" for q in [tp] + tqs)
        log(f"| {out_f}×{in_f} | {p} | {kname} | {'acc' if accum else 'fresh'} | {tp * 1e6:.2f} | "
            + " / ".join(f"{q * 1e6:.2f}" for q in tqs) + " | " + " / ".join(f"{tp / q:.2f}" for q in tqs) + f" | {pct} |")


if __name__ == "__main__":
    main()
