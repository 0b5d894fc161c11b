"""Establish the register layout of `mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32` on the GPU.

The PTX ISA gives the sparse metadata layout only as figures. This probe feeds every lane explicit
registers (A values, B, metadata) built on the host under a hypothesis, runs one mma.sp, and compares
D with the NumPy product: the hypothesis that matches exactly (integer-valued data) is the layout.
Run: python benchmarks/probe_mma_sp.py
Result on an H100 (2026-11-22): the first hypothesis matches exactly for both selectors (thread 2·sel
of a quad: bits 0-15 = row g, logical groups 0-3, bits 16-31 = row g+8, groups 0-3; thread 2·sel+1: the
same for groups 4-7; nibble = i0 | i1 << 2), with the A fragment of the dense m16n8k16 layout applied
to the compressed 16×16 values and B register r holding k = 2t + 8r, 2t + 8r + 1. The others differ.
nmref's `compress_24_mma` layout is built on it.
"""
import numpy as np
import cupy as cp

SRC = r'''
extern "C" __global__ void probe(const unsigned *a, const unsigned *b, const unsigned *e, float *d, int sel) {
  int l = threadIdx.x;
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  if (sel == 0)
    asm volatile("mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[4*l]), "r"(a[4*l+1]), "r"(a[4*l+2]), "r"(a[4*l+3]), "r"(b[4*l]), "r"(b[4*l+1]), "r"(b[4*l+2]), "r"(b[4*l+3]), "r"(e[l]));
  else
    asm volatile("mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x1;"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[4*l]), "r"(a[4*l+1]), "r"(a[4*l+2]), "r"(a[4*l+3]), "r"(b[4*l]), "r"(b[4*l+1]), "r"(b[4*l+2]), "r"(b[4*l+3]), "r"(e[l]));
  for (int i = 0; i < 4; ++i) d[4*l+i] = c[i];
}
'''


def pack2(lo, hi):
    return np.array([lo, hi], np.float16).view(np.uint32)[0]


def main():
    rng = np.random.default_rng(0)
    A = rng.integers(-3, 4, size=(16, 32)).astype(np.float16)
    A[A == 0] = 1
    pos = np.sort(np.argsort(rng.random((16, 8, 4)), axis=-1)[..., :2], axis=-1)  # kept positions per group
    vals = np.take_along_axis(A.reshape(16, 8, 4), pos, axis=-1)                  # [16, 8, 2]
    dense = np.zeros((16, 8, 4), np.float16)
    np.put_along_axis(dense, pos, vals, axis=-1)
    dense = dense.reshape(16, 32)
    B = rng.integers(-3, 4, size=(32, 8)).astype(np.float16)
    ref = dense.astype(np.float64) @ B.astype(np.float64)
    comp = vals.reshape(16, 16)                                  # compressed A [16, 16]
    nib = (pos[..., 0] | pos[..., 1] << 2).astype(np.uint32)     # [16, 8]
    a = np.zeros((32, 4), np.uint32)
    b = np.zeros((32, 4), np.uint32)
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        a[lane] = [pack2(comp[g, 2 * t], comp[g, 2 * t + 1]), pack2(comp[g + 8, 2 * t], comp[g + 8, 2 * t + 1]),
                   pack2(comp[g, 2 * t + 8], comp[g, 2 * t + 9]), pack2(comp[g + 8, 2 * t + 8], comp[g + 8, 2 * t + 9])]
        b[lane] = [pack2(B[2 * t + 8 * r, g], B[2 * t + 8 * r + 1, g]) for r in range(4)]

    def word(row, groups):
        return sum(int(nib[row, q]) << (4 * i) for i, q in enumerate(groups))

    hyps = {
        "T0: row g groups 0-3 | row g+8 groups 0-3 <<16; T1: groups 4-7 likewise":
            lambda g, t: word(g, range(4)) | word(g + 8, range(4)) << 16 if t == 0 else word(g, range(4, 8)) | word(g + 8, range(4, 8)) << 16,
        "T0: row g all groups; T1: row g+8 all groups":
            lambda g, t: word(g, range(8)) if t == 0 else word(g + 8, range(8)),
        "T0: row g groups 0-3 | row g+8 groups 0-3 <<16 (rows interleaved per 16 bits), T1: cols 16-31 with rows swapped":
            lambda g, t: word(g, range(4)) | word(g + 8, range(4)) << 16 if t == 0 else word(g + 8, range(4, 8)) | word(g, range(4, 8)) << 16,
    }
    mod = cp.RawModule(code=SRC, options=("-std=c++17",))
    k = mod.get_function("probe")
    for name, f in hyps.items():
        for sel in (0, 1):
            e = np.zeros(32, np.uint32)
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                if t - 2 * sel in (0, 1):
                    e[lane] = f(g, t - 2 * sel)
            d = cp.zeros((32, 4), cp.float32)
            k((1,), (32,), (cp.asarray(a), cp.asarray(b), cp.asarray(e), d, np.int32(sel)))
            d = d.get()
            D = np.zeros((16, 8))
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                D[g, 2 * t], D[g, 2 * t + 1], D[g + 8, 2 * t], D[g + 8, 2 * t + 1] = d[lane]
            print(f"selector {sel}: {'MATCH' if np.array_equal(D, ref) else 'no    '} max|diff| {np.abs(D - ref).max():6.1f}  {name}")


if __name__ == "__main__":
    main()
