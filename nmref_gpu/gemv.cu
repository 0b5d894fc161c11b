// GEMV / skinny GEMM for decoding, float32 accumulation and output; launched by gemv.py, which also
// lists the template instances that exist (one table of configurations; nothing is instantiated here).
//  * gemv_mma:        y[b, o] = sum_k x[b, k] W[o, k] for batch 1..16 on tensor cores (mma.sync m16n8k16),
//                     W dense row-major [out, in] or in nmref's packed 2:4 layout (SP), expanded in registers;
//  * gemv_teal_blk:   TEAL, y[b, o] = sum_k x[b, k] 1[mean_b |x[b, k]| > t] Wt[k, o], Wt = W column-major
//                     [in, out]: only the kept rows of Wt are read; batch 1..16 with one shared mask;
//  * gemv_teal24_blk: TEAL on a 2:4 weight in the transposed packed layout (batch 1).
// docs/gpu.md explains the design; docs/benchmarks.md has the measurements.
#include "common.cuh"

// The zero fill before a fresh atomic TEAL result, keeping the programmatic-dependent-launch protocol
// (common.cuh), so that the TEAL kernel after it may be scheduled while it runs.
extern "C" __global__ void teal_zero(float *__restrict__ y, int n) {
  pdl_wait();
  pdl_launch_dependents();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = 0.f;
}

// How the TEAL block kernels combine the partial sums s_j of a tile's input chunks j = 0..n-1 (n = gridDim.y):
//  * TEAL_ATOMIC: y += s_j by float32 atomicAdd (y is the caller's residual, or was zero-filled);
//    the summation order varies between runs;
//  * TEAL_ORDERED: every block stores s_j to ws[j, :] and takes a ticket from the tile's counter; the
//    block with the tile's last ticket writes y = (y +) ((s_0 + s_1) + ... + s_{n-1}), bitwise
//    reproducible. The counter only grows (64 bits; call c gets tickets c*n .. c*n+n-1), so nothing is
//    reset between calls and a CUDA graph can replay the launch.
enum TealRed { TEAL_ATOMIC = 0, TEAL_ORDERED = 1 };

// The last step of every TEAL kernel: this thread's block sums s[b] of output oo = blockIdx.x * 256 +
// threadIdx.x (batch rows b < batch) are combined across the tile's chunks as RED says (tick: uint64
// [tiles], ws: float32 [n, batch, out]; y: [batch, out]).
template <int RED, int B>
__device__ __forceinline__ void teal_combine(const float (&s)[B], float *__restrict__ y, int out, int batch,
                                             float *__restrict__ ws, unsigned long long *__restrict__ tick,
                                             int accum) {
  __shared__ bool last;
  int tid = threadIdx.x;
  int oo = blockIdx.x * 256 + tid;
  bool live = oo < out;
#pragma unroll
  for (int b = 0; b < B; ++b) {
    if (b >= batch || !live) break;
    if constexpr (RED == TEAL_ATOMIC) atomicAdd(y + (size_t)b * out + oo, s[b]);
    else __stcg(ws + ((size_t)blockIdx.y * batch + b) * out + oo, s[b]);
  }
  if constexpr (RED == TEAL_ORDERED) {
    unsigned long long n = gridDim.y;
    __syncthreads();  // the block's stores happen before thread 0's fence and ticket (cumulative release)
    if (tid == 0) {
      __threadfence();
      last = atomicAdd(tick + blockIdx.x, 1ull) % n == n - 1;
      __threadfence();
    }
    __syncthreads();
    if (!last || !live) return;
    for (int b = 0; b < batch; ++b) {
      float sum = 0.f;  // n independent L2 loads (written by other SMs: bypass L1), added in chunk order
      const float *p = ws + (size_t)b * out + oo;
#pragma unroll 16
      for (int j = 0; j < (int)n; ++j) sum += __ldcg(p + (size_t)j * batch * out);
      float *yo = y + (size_t)b * out + oo;
      *yo = accum ? *yo + sum : sum;
    }
  }
}

// The epilogue of the CUDA-core TEAL kernels: for each batch row b < batch, the 8 warps' partial sums
// of the block's 256 outputs (lane owns 8 consecutive outputs) are added in shared memory in warp
// order, then combined across chunks by teal_combine.
template <int RED, int B>
__device__ __forceinline__ void teal_block_reduce(float (&red)[8][256], const float (&acc)[B][8], float *__restrict__ y,
                                                  int out, int batch, float *__restrict__ ws,
                                                  unsigned long long *__restrict__ tick, int accum) {
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  float s[B];
#pragma unroll
  for (int b = 0; b < B; ++b) {
    s[b] = 0.f;
    if (b >= batch) break;  // uniform across the block
#pragma unroll
    for (int i = 0; i < 8; ++i) red[warp][lane * 8 + i] = acc[b][i];
    __syncthreads();
#pragma unroll
    for (int w = 0; w < 8; ++w) s[b] += red[w][tid];
    __syncthreads();  // red is rewritten for the next batch row
  }
  teal_combine<RED, B>(s, y, out, batch, ws, tick, accum);
}

// The kept rows of this block's chunk of CH input rows (blockIdx.y): input k is kept iff
// mean_b |x[b, k]| > t (a NaN mean counts as kept), computed as nmref.sparsify_batched does (float64: |x_0| + |x_1| + ... added in
// batch order, divided by the batch; for batch 1 that is |x| > t exactly). Compacted by CH/256 rounds
// of a block-wide ballot scan: store(pos, k, xh) is called for the pos-th kept row (its B activations,
// zeros for rows >= batch). Returns the number kept (the same in every thread).
template <typename T, int CH, int B, typename Store>
__device__ __forceinline__ int teal_compact(const T *__restrict__ x, double t, int in, int batch, int (&warp_count)[8],
                                            Store store) {
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  int nk = 0;
#pragma unroll
  for (int c = 0; c < CH / 256; ++c) {
    int k = blockIdx.y * CH + c * 256 + tid;
    T xh[B];
    double s = 0.0;
#pragma unroll
    for (int b = 0; b < B; ++b) {
      xh[b] = (k < in && b < batch) ? x[(size_t)b * in + k] : T(0.f);
      s += fabs((double)Elem<T>::to_f(xh[b]));  // rows >= batch add +0.0: the same sum
    }
    bool keep = k < in && !(s / batch <= t);  // a NaN mean is kept: its NaN reaches the result
    unsigned ball = __ballot_sync(0xffffffffu, keep);
    if (lane == 0) warp_count[warp] = __popc(ball);
    __syncthreads();
    int base = nk;
#pragma unroll
    for (int w = 0; w < 8; ++w) {
      base += w < warp ? warp_count[w] : 0;
      nk += warp_count[w];
    }
    if (keep) store(base + __popc(ball & ((1u << lane) - 1u)), k, xh);
    __syncthreads();  // warp_count is rewritten by the next round
  }
  return nk;
}

// TEAL, block-reduced, batch 1..B with one shared mask: a block of 8 warps owns 256 outputs and a chunk
// of CH input rows. The kept rows of the chunk are compacted in shared memory with their B
// activations (teal_compact), the 8 warps split them (each lane: 8 outputs x B
// batch rows, U rows' loads in flight), and teal_block_reduce<RED> sums the block and combines the
// chunks (TEAL_ATOMIC: one float32 atomicAdd per output and batch row per block).
template <typename T, int CH, int B, int U, int RED>
__global__ void __launch_bounds__(256) gemv_teal_blk(const T *__restrict__ Wt, const T *__restrict__ x, double t,
                                                     float *__restrict__ y, int in, int out, int batch,
                                                     float *__restrict__ ws, unsigned long long *__restrict__ tick,
                                                     int accum) {
  static_assert(CH % 256 == 0 && (B == 1 || B % 2 == 0), "chunks of 256 rows; batch bound 1 or even");
  __shared__ int kept_idx[CH];
  __shared__ __align__(16) float kept_x[CH][B];  // the kept rows' activations, zeros for rows >= batch
  __shared__ int warp_count[8];
  __shared__ float red[8][256];
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  pdl_wait();  // programmatic dependent launch (common.cuh): before any global access
  int nk = teal_compact<T, CH, B>(x, t, in, batch, warp_count, [&](int pos, int k, const T (&xh)[B]) {
    kept_idx[pos] = k;
#pragma unroll
    for (int b = 0; b < B; ++b) kept_x[pos][b] = Elem<T>::to_f(xh[b]);
  });
  if (RED == TEAL_ATOMIC && nk == 0) return;  // uniform across the block (else: still takes its ticket)
  int o = blockIdx.x * 256 + lane * 8;
  bool live = o < out;
  float acc[B][8];
#pragma unroll
  for (int b = 0; b < B; ++b)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[b][i] = 0.f;
  for (int j0 = warp; j0 < nk; j0 += 8 * U) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int j = j0 + 8 * u;
      wv[u] = (live && j < nk) ? __ldcs(reinterpret_cast<const uint4 *>(Wt + (size_t)kept_idx[j] * out + o))
                               : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int j = j0 + 8 * u;
      if (j < nk) {
        float wf[8];
        unpack8<T>(wv[u], wf);
#pragma unroll
        for (int b = 0; b < B; ++b) {
          float s = kept_x[j][b];
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[b][i] += s * wf[i];
        }
      }
    }
  }
  pdl_launch_dependents();
  teal_block_reduce<RED, B>(red, acc, y, out, batch, ws, tick, accum);
}

// The byte selectors that pick output i's pair (x[i0], x[i1]) out of a group's 4 half-precision inputs
// held as 8 bytes (two 32-bit words), for the 8 outputs of one metadata word mw (nibble i = i0 | i1 << 2):
// bytes [2 i0, 2 i0 + 1, 2 i1, 2 i1 + 1] = 0x1010 + 0x22 * (i0 | i1 << 8). They are built two outputs per
// word (bytes [i0, i1, i0', i1'], each <= 3, so the multiply does not carry between bytes): sel[0] holds
// outputs 0 (low half) and 2 (high half), sel[1] 1 and 3, sel[2] 4 and 6, sel[3] 5 and 7. Per output, one
// byte permute replaces two 4-way selects.
__device__ __forceinline__ void pair_selectors(uint32_t mw, unsigned (&sel)[4]) {
  unsigned lo = mw & 0x0F0F0F0Fu, hi = (mw >> 4) & 0x0F0F0F0Fu;  // nibbles of outputs 0,2,4,6 / 1,3,5,7
  unsigned l0 = lo & 0x03030303u, l1 = (lo >> 2) & 0x03030303u;
  unsigned h0 = hi & 0x03030303u, h1 = (hi >> 2) & 0x03030303u;
  sel[0] = __byte_perm(l0, l1, 0x5140) * 0x22u + 0x10101010u;
  sel[1] = __byte_perm(h0, h1, 0x5140) * 0x22u + 0x10101010u;
  sel[2] = __byte_perm(l0, l1, 0x7362) * 0x22u + 0x10101010u;
  sel[3] = __byte_perm(h0, h1, 0x7362) * 0x22u + 0x10101010u;
}

// TEAL on a 2:4 weight in the transposed packed layout (nmref.compress_24_packed_t): values_t
// [in/2, out] (row 2g + s = slot s of group g), meta_t [in/4, out/8] (8 nibbles per word, along out).
// A block of 8 warps owns 256 outputs and 64 groups (256 inputs). Threads 0..63 load their group's 4
// inputs (8 bytes) and zero the dropped ones; a group is compacted into shared memory if any input
// survives, with two flags: slot 0 (i0 <= 2) is needed iff one of inputs 0..2 survives, slot 1 (i1 >= 1)
// iff one of 1..3 does; an unneeded slot is not read (its products would all be with dropped inputs).
// Each lane then owns 8 outputs and keeps U groups' loads in flight; the x pair of each output is picked
// by one byte permute (pair_selectors); warps split the kept groups, partial sums are reduced in
// shared memory and combined across chunks by teal_block_reduce<RED>.
template <typename T, int U, int RED>
__global__ void __launch_bounds__(256) gemv_teal24_blk(const T *__restrict__ Vt, const uint32_t *__restrict__ Mt,
                                                       const T *__restrict__ x, float t, float *__restrict__ y,
                                                       int in, int out, float *__restrict__ ws,
                                                       unsigned long long *__restrict__ tick, int accum) {
  __shared__ int kept_g[64];
  __shared__ unsigned kept_need[64];
  __shared__ uint2 kept_x[64];  // the group's 4 inputs, dropped ones zeroed
  __shared__ int warp_count[2];
  __shared__ float red[8][256];
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  pdl_wait();  // programmatic dependent launch (common.cuh): before any global access
  int groups = in >> 2;
  bool keep = false;
  unsigned need = 0, ball = 0;
  uint2 xm = make_uint2(0u, 0u);
  int gg = blockIdx.y * 64 + tid;
  if (tid < 64) {
    if (gg < groups) {
      uint2 xr = __ldg(reinterpret_cast<const uint2 *>(x) + gg);
      const T *h = reinterpret_cast<const T *>(&xr);
      unsigned kb = 0;  // bit j: input 4 gg + j survives
#pragma unroll
      for (int j = 0; j < 4; ++j) kb |= (unsigned)!(fabsf(Elem<T>::to_f(h[j])) <= t) << j;  // NaN kept
      xm = make_uint2(xr.x & ((kb & 1u ? 0xFFFFu : 0u) | (kb & 2u ? 0xFFFF0000u : 0u)),
                      xr.y & ((kb & 4u ? 0xFFFFu : 0u) | (kb & 8u ? 0xFFFF0000u : 0u)));
      need = (unsigned)((kb & 7u) != 0) | (unsigned)((kb & 14u) != 0) << 1;
      keep = need != 0;
    }
    ball = __ballot_sync(0xffffffffu, keep);
    if (lane == 0) warp_count[warp] = __popc(ball);
  }
  __syncthreads();
  int nk = warp_count[0] + warp_count[1];
  if (keep) {
    int pos = (warp ? warp_count[0] : 0) + __popc(ball & ((1u << lane) - 1u));
    kept_g[pos] = gg;
    kept_need[pos] = need;
    kept_x[pos] = xm;
  }
  __syncthreads();
  if (RED == TEAL_ATOMIC && nk == 0) return;  // uniform across the block (else: still takes its ticket)
  int o = blockIdx.x * 256 + lane * 8;
  bool live = o < out;
  int ow = o >> 3;
  float acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] = 0.f;
  for (int j0 = warp; j0 < nk; j0 += 8 * U) {
    uint4 v0[U], v1[U];
    uint32_t mw[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int j = j0 + 8 * u;
      bool ok = live && j < nk;
      unsigned nd = ok ? kept_need[j] : 0u;
      int g = ok ? kept_g[j] : 0;
      const uint4 *base = reinterpret_cast<const uint4 *>(Vt + (size_t)(2 * g) * out + o);
      v0[u] = (nd & 1u) ? __ldcs(base) : make_uint4(0u, 0u, 0u, 0u);
      v1[u] = (nd & 2u) ? __ldcs(reinterpret_cast<const uint4 *>(Vt + (size_t)(2 * g + 1) * out + o))
                        : make_uint4(0u, 0u, 0u, 0u);
      mw[u] = ok ? __ldcs(Mt + (size_t)g * (out >> 3) + ow) : 0u;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int j = j0 + 8 * u;
      if (j < nk) {
        uint2 xs = kept_x[j];
        float a[8], b[8];
        unpack8<T>(v0[u], a);
        unpack8<T>(v1[u], b);
        unsigned sel[4];
        pair_selectors(mw[u], sel);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          unsigned sw = sel[(i & 1) | (i >> 2) << 1];
          unsigned pr = __byte_perm(xs.x, xs.y, (i & 2) ? sw >> 16 : sw);  // (x[i0], x[i1])
          float xp[2];
          unpack2<T>(pr, xp);
          acc[i] += a[i] * xp[0] + b[i] * xp[1];
        }
      }
    }
  }
  pdl_launch_dependents();
  float accb[1][8];
#pragma unroll
  for (int i = 0; i < 8; ++i) accb[0][i] = acc[i];
  teal_block_reduce<RED, 1>(red, accb, y, out, 1, ws, tick, accum);
}

// ---- tensor-core variant for batch 1..16: mma.sync m16n8k16, float32 accumulation ----
// A block owns 16 output rows and all of K; its KW warps split K in super-steps of 64 columns.
// Lane (g = lane/4, t = lane%4) loads 16 consecutive columns [k, k+16) of rows g and g+8 as two
// 16-byte vectors, and the same 16 columns of x for batch rows g (and g+8 when NT = 2). Since a dot
// product may sum its k in any order, the mma's logical k-columns {2t, 2t+1, 2t+8, 2t+9} of each
// k16 step are mapped onto these loaded columns, for A (W) and B (x) alike: 4 mma per super-step,
// and every load is a 16-byte vector. 2:4 weights are read compressed (values + nibbles, 0.5625 of
// the dense bytes) and expanded to dense fragments in registers with byte permutes.
template <typename T> __device__ __forceinline__ void mma_16816(float (&d)[4], uint32_t a0, uint32_t a1,
                                                               uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma_16816<__half>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                              uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1,
                                                                     uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Byte-permute selectors expanding one 2:4 group (values v0 | v1 << 16 in a word, nibble i0 | i1 << 2)
// into its dense positions 0,1 (low 16 bits of the entry) and 2,3 (high 16 bits): selector nibbles
// 0,1 pick v0, 2,3 pick v1, 4 picks a zero byte.
__host__ __device__ constexpr uint32_t expand_sel(int nib, int p) {
  return (p == (nib & 3)) ? 0x10u : (p == (nib >> 2)) ? 0x32u : 0x44u;
}
__host__ __device__ constexpr uint32_t expand_entry(int nib) {
  return expand_sel(nib, 0) | expand_sel(nib, 1) << 8 | expand_sel(nib, 2) << 16 | expand_sel(nib, 3) << 24;
}

__device__ __forceinline__ void expand_24(const uint4 &v, unsigned bits, const uint32_t *tab, uint32_t (&d)[8]) {
  const uint32_t vw[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    uint32_t e = tab[(bits >> (4 * q)) & 0xFu];
    d[2 * q] = __byte_perm(vw[q], 0u, e & 0xFFFFu);
    d[2 * q + 1] = __byte_perm(vw[q], 0u, e >> 16);
  }
}

__device__ __forceinline__ void to_words(const uint4 &a, const uint4 &b, uint32_t (&d)[8]) {
  d[0] = a.x, d[1] = a.y, d[2] = a.z, d[3] = a.w, d[4] = b.x, d[5] = b.y, d[6] = b.z, d[7] = b.w;
}

// Super-steps s = first, first + KW, ... < end of a warp, D of them in flight: the loads of step
// s + (D-1) KW are issued before step s's math (past the end they are predicated off and read
// zeros). D = 1: load, then compute. Where the loads land in the machine code is up to ptxas (see the
// PRED note at the load policies below).
template <typename Step, int KW, int D, typename Load, typename Compute>
__device__ __forceinline__ void run_steps(Load &load, Compute &compute, int first, int end) {
  static_assert(D >= 1 && D <= 3, "1 to 3 super-steps in flight");
  if constexpr (D == 1) {
    for (int s = first; s < end; s += KW) {
      Step st;
      load(st, s);
      compute(st);
    }
  } else if constexpr (D == 2) {
    Step cur, nxt;
    load(cur, first);
    for (int s = first; s < end; s += KW) {
      load(nxt, s + KW);
      compute(cur);
      cur = nxt;
    }
  } else {
    Step cur, nx1, nx2;
    load(cur, first);
    load(nx1, first + KW);
    for (int s = first; s < end; s += KW) {
      load(nx2, s + 2 * KW);
      compute(cur);
      cur = nx1;
      nx1 = nx2;
    }
  }
}

// Sum the KW warps' m16n8 accumulators of a 16-row block in a fixed order and store the rows and batch
// columns that exist. Accumulator (j, i) of lane (g, t): row g + 8 (i >= 2), batch column 8j + 2t + (i & 1).
template <int KW, int NT>
__device__ __forceinline__ void reduce_store(float (&red)[KW][16][8 * NT], const float (&acc)[NT][4],
                                             float *__restrict__ y, int row0, int out, int batch) {
  int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) red[warp][g + 8 * (i >> 1)][8 * j + 2 * t + (i & 1)] = acc[j][i];
  __syncthreads();
  for (int idx = threadIdx.x; idx < 16 * 8 * NT; idx += blockDim.x) {
    int r = idx & 15, b = idx >> 4;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < KW; ++w) sum += red[w][r][b];
    if (b < batch && row0 + r < out) y[(size_t)b * out + row0 + r] = sum;
  }
}

// Load policies of gemv_mma. PF = false: weights streamed with evict-first loads (__ldcs), x through L1
// (__ldg). PF = true: each weight load also asks L2 to fetch the whole 256-byte block around it
// (a 2:4 row reads 64 bytes of values per super-step, so one DRAM request serves this warp's and the
// next three super-steps) and does not allocate in L1, while x is kept in L1 with evict_last (every
// warp of the SM reads all of it). Each load reads zeros where !ok.
// PRED = true (ld_w_pred, ld_x_pred, ld_meta_pred): the same loads written as one predicated PTX
// instruction each (asm volatile) instead of a branch around a load. In the SASS of the plain D = 2
// kernels, ptxas had put every load of the next super-step after all of this step's mma, so run_steps'
// pipeline was not in the machine code; with the predicated forms it issues part of them (2:4: the
// nibbles first, the values mid-step) before the step's last mma, using more registers.
#define NMREF_LD_V4(QUAL, r, p) \
  asm("ld.global" QUAL ".v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p))
#define NMREF_LD_V4_PRED(QUAL, r, p, ok)                                                                 \
  asm volatile("{\n\t.reg .pred q;\n\tsetp.ne.b32 q, %4, 0;\n\tmov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\t" \
               "mov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t@q ld.global" QUAL ".v4.u32 {%0,%1,%2,%3}, [%5];\n\t}" \
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)                                              \
               : "r"((int)(ok)), "l"(p))
template <bool PF> __device__ __forceinline__ uint4 ld_w(const uint4 *p) {
  uint4 r;
  if constexpr (PF) NMREF_LD_V4(".nc.L1::no_allocate.L2::256B", r, p);
  else r = __ldcs(p);
  return r;
}
template <bool PF> __device__ __forceinline__ uint4 ld_x(const uint4 *p) {
  uint4 r;
  if constexpr (PF) NMREF_LD_V4(".nc.L1::evict_last", r, p);
  else r = __ldg(p);
  return r;
}
// The predicated forms: zeros where !ok.
template <bool PF> __device__ __forceinline__ uint4 ld_w_pred(const uint4 *p, bool ok) {
  uint4 r;
  if constexpr (PF) NMREF_LD_V4_PRED(".nc.L1::no_allocate.L2::256B", r, p, ok);
  else NMREF_LD_V4_PRED(".cs", r, p, ok);
  return r;
}
template <bool PF> __device__ __forceinline__ uint4 ld_x_pred(const uint4 *p, bool ok) {
  uint4 r;
  if constexpr (PF) NMREF_LD_V4_PRED(".nc.L1::evict_last", r, p, ok);
  else NMREF_LD_V4_PRED(".nc", r, p, ok);
  return r;
}
__device__ __forceinline__ unsigned ld_meta_pred(const uint16_t *p, bool ok) {
  unsigned r;
  asm volatile("{\n\t.reg .pred q;\n\tsetp.ne.b32 q, %1, 0;\n\tmov.b32 %0, 0;\n\t@q ld.global.nc.u16 %0, [%2];\n\t}"
               : "=r"(r) : "r"((int)ok), "l"(p));
  return r;
}

// One super-step's loads of a lane: weights of rows g and g+8 (and their nibbles) and x of its batch rows.
template <int NT, bool SP> struct MmaStep {
  uint4 w[2][SP ? 1 : 2];
  unsigned m[2];
  uint4 x[NT][2];
};

// A lane's weights of a super-step starting at column k: rows[0] and rows[1], columns k..k+15 (2:4: their
// 8 values and 16 nibble bits), zeros where !ok0 / !ok1 (as load_x).
template <typename T, int NT, bool SP, bool PF, bool PRED>
__device__ __forceinline__ void load_w(MmaStep<NT, SP> &st, const T *__restrict__ W, const uint32_t *__restrict__ meta,
                                       const int (&rows)[2], int in, int k, bool ok0, bool ok1) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if constexpr (SP) {
      if constexpr (PRED) {
        st.w[r][0] = ld_w_pred<PF>(reinterpret_cast<const uint4 *>(W + (size_t)rows[r] * (in >> 1) + (k >> 1)), ok0);
        st.m[r] = ld_meta_pred(reinterpret_cast<const uint16_t *>(meta + (size_t)rows[r] * (in >> 5)) + (k >> 4), ok0);
      } else {
        st.w[r][0] = ok0 ? ld_w<PF>(reinterpret_cast<const uint4 *>(W + (size_t)rows[r] * (in >> 1) + (k >> 1)))
                         : make_uint4(0u, 0u, 0u, 0u);
        st.m[r] = ok0 ? (unsigned)__ldg(reinterpret_cast<const uint16_t *>(meta + (size_t)rows[r] * (in >> 5)) + (k >> 4))
                      : 0u;
      }
    } else {
      const uint4 *p = reinterpret_cast<const uint4 *>(W + (size_t)rows[r] * in + k);
      if constexpr (PRED) {
        st.w[r][0] = ld_w_pred<PF>(p, ok0);
        st.w[r][1] = ld_w_pred<PF>(p + 1, ok1);
      } else {
        st.w[r][0] = ok0 ? ld_w<PF>(p) : make_uint4(0u, 0u, 0u, 0u);
        st.w[r][1] = ok1 ? ld_w<PF>(p + 1) : make_uint4(0u, 0u, 0u, 0u);
      }
    }
  }
}

// A lane's x of a super-step starting at column k: batch rows g and g + 8 (NT = 2), columns k..k+15,
// zeros past `in` (ok0: k < in, ok1: k + 8 < in) and past `batch`.
template <typename T, int NT, bool SP, bool PF, bool PRED>
__device__ __forceinline__ void load_x(MmaStep<NT, SP> &st, const T *__restrict__ x, int in, int k, int batch, int g,
                                       bool ok0, bool ok1) {
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    int b = g + 8 * j;
    const uint4 *p = reinterpret_cast<const uint4 *>(x + (size_t)b * in + k);
    if constexpr (PRED) {
      st.x[j][0] = ld_x_pred<PF>(p, ok0 && b < batch);
      st.x[j][1] = ld_x_pred<PF>(p + 1, ok1 && b < batch);
    } else {
      st.x[j][0] = (ok0 && b < batch) ? ld_x<PF>(p) : make_uint4(0u, 0u, 0u, 0u);
      st.x[j][1] = (ok1 && b < batch) ? ld_x<PF>(p + 1) : make_uint4(0u, 0u, 0u, 0u);
    }
  }
}

// One super-step's math: A = 16 rows x 64 columns (2:4: expanded to dense in registers), B = x^T,
// four m16n8k16 mma per 8-wide batch tile into fresh accumulators, added to acc in IEEE float32.
// C = accumulator chains per batch tile. C = 1: the tile's 4 mma chain into one accumulator, tile after
// tile. C = 2: k16 steps 0, 2 and 1, 3 go into two accumulators, and consecutive mma are independent
// (step outer, tile inner). mma_16816 is asm volatile, so this program order is the issue order, and a
// warp issues in order: with C = 1 each mma waits for the one before.
template <typename T, int NT, bool SP, int C>
__device__ __forceinline__ void mma_step(const MmaStep<NT, SP> &st, const uint32_t *tab, float (&acc)[NT][4]) {
  static_assert(C == 1 || C == 2, "one or two accumulator chains");
  uint32_t a[2][8];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if constexpr (SP) expand_24(st.w[r][0], st.m[r], tab, a[r]);
    else to_words(st.w[r][0], st.w[r][1], a[r]);
  }
  uint32_t b[NT][8];
#pragma unroll
  for (int j = 0; j < NT; ++j) to_words(st.x[j][0], st.x[j][1], b[j]);
  // The tensor core aligns the products to the largest exponent and truncates: chaining the whole
  // K into one accumulator biases the sum (measured 1-4e-6 relative error at K = 4k-14k). Each
  // super-step's 64 (C = 2: twice 32) products go into fresh accumulators, added to the running sum
  // in IEEE fp32.
  float part[NT][C][4] = {};
  if constexpr (C == 1) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int s = 0; s < 4; ++s)
        mma_16816<T>(part[j][0], a[0][2 * s], a[1][2 * s], a[0][2 * s + 1], a[1][2 * s + 1], b[j][2 * s], b[j][2 * s + 1]);
  } else {
#pragma unroll
    for (int s = 0; s < 4; ++s)
#pragma unroll
      for (int j = 0; j < NT; ++j)
        mma_16816<T>(part[j][s & 1], a[0][2 * s], a[1][2 * s], a[0][2 * s + 1], a[1][2 * s + 1], b[j][2 * s], b[j][2 * s + 1]);
  }
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] += part[j][c][i];
}

// SP = false: W is dense [out, in] (in % 8 == 0); SP = true: W = values [out, in/2], meta [out, in/32].
// NT = number of 8-wide batch tiles (1: batch <= 8, 2: batch <= 16). D = super-steps in flight per warp:
// 1 = load, then compute; 2 = software-pipelined, the next super-step's loads are issued before this
// one's math, so memory latency overlaps the expansion and the mma; 3 = two steps ahead. PF, PRED: the load
// policy (ld_w, ld_x; PRED: ld_w_pred). C: accumulator chains per batch tile (mma_step).
template <typename T, int NT, bool SP, int KW, int D, bool PF, int C, bool PRED>
__global__ void __launch_bounds__(32 * KW) gemv_mma(const T *__restrict__ W, const uint32_t *__restrict__ meta,
                                                    const T *__restrict__ x, float *__restrict__ y, int out, int in,
                                                    int batch) {
  __shared__ float red[KW][16][8 * NT];
  __shared__ uint32_t tab[16];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  if constexpr (SP) {
    if (threadIdx.x < 16) tab[threadIdx.x] = expand_entry(threadIdx.x);
    __syncthreads();
  }
  int row0 = blockIdx.x * 16;
  int rows[2] = {min(row0 + g, out - 1), min(row0 + g + 8, out - 1)};
  float acc[NT][4] = {};
  int nsup = (in + 63) >> 6;
  pdl_wait();  // programmatic dependent launch (common.cuh): before any global access
  auto load = [&](MmaStep<NT, SP> &st, int s) {
    int k = s * 64 + 16 * t;
    bool ok0 = s < nsup && k < in, ok1 = ok0 && k + 8 < in;
    load_w<T, NT, SP, PF, PRED>(st, W, meta, rows, in, k, ok0, ok1);
    load_x<T, NT, SP, PF, PRED>(st, x, in, k, batch, g, ok0, ok1);
  };
  auto compute = [&](const MmaStep<NT, SP> &st) { mma_step<T, NT, SP, C>(st, tab, acc); };
  run_steps<MmaStep<NT, SP>, KW, D>(load, compute, warp, nsup);
  pdl_launch_dependents();
  reduce_store<KW, NT>(red, acc, y, row0, out, batch);
}

// ---- TEAL on tensor cores, batch 1..16 with one shared mask: mma.sync m16n8k16 over the kept rows ----
// The product y[b, o] = sum_j x[b, k_j] Wt[k_j, o] over a chunk's kept rows k_j is a small GEMM: the
// outputs are the mma's M, the batch its N, the kept rows its K. A block of 8 warps owns 256 outputs and
// a chunk of CH input rows; the mask and the compaction are those of gemv_teal_blk (kept rows' indices
// and their activations, as half pairs (j, j+1) per batch row, in shared memory; the kept count padded
// to a multiple of 16 with rows that read nothing and multiply zeros). Warp w owns the 64 outputs
// o0 = 64 (w % 4) .. o0 + 63 of the tile and every other k16 step of kept rows (w / 4). Lane (g, t)
// loads, per step, 16 bytes of each of 4 kept rows j0 + {2t, 2t+1, 2t+8, 2t+9}: outputs o0 + 8g .. +7.
// A dot product may sum its k in any order and an output may sit in any row of a tile, so these 64 bytes
// are the A fragments of 4 m16 tiles: tile q has output o0 + 8g + 2q in row g and o0 + 8g + 2q + 1 in
// row g + 8, and each fragment register pairs two kept rows of one output (one byte permute). B is the
// activations (kept row pairs of batch row g, and g + 8 when NT = 2). Every step's products go into fresh
// accumulators that are added in IEEE float32 (the tensor core truncates its sums). The two warps of an
// output group meet in shared memory (k-halves in order) and teal_combine combines the chunks.
template <int NT> struct TealStep {
  uint4 v[4];  // rows j0 + 2t, 2t+1, 2t+8, 2t+9; outputs o0 + 8g .. o0 + 8g + 7
};

template <typename T, int CH, int NT, int D, int RED>
__global__ void __launch_bounds__(256) gemv_teal_mma(const T *__restrict__ Wt, const T *__restrict__ x, double t,
                                                     float *__restrict__ y, int in, int out, int batch,
                                                     float *__restrict__ ws, unsigned long long *__restrict__ tick,
                                                     int accum) {
  static_assert(CH % 256 == 0, "chunks of 256 rows");
  constexpr int BB = 8 * NT, KW = CH / 2 + 4;  // batch rows held; words per batch row (padded: banks)
  constexpr int MAIN = CH * 4 + BB * KW * 4, EPI = 2 * BB * 256 * 4;
  __shared__ __align__(16) unsigned char smem[MAIN > EPI ? MAIN : EPI];
  __shared__ int warp_count[8];
  int *kept_idx = reinterpret_cast<int *>(smem);
  uint32_t *kx = reinterpret_cast<uint32_t *>(smem + CH * 4);  // [BB][KW]: halves (j, j + 1) of batch row b
  T *kxh = reinterpret_cast<T *>(kx);
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
  pdl_wait();  // programmatic dependent launch (common.cuh): before any global access
  int nk = teal_compact<T, CH, BB>(x, t, in, batch, warp_count, [&](int pos, int k, const T (&xh)[BB]) {
    kept_idx[pos] = k;
#pragma unroll
    for (int b = 0; b < BB; ++b) kxh[b * 2 * KW + pos] = xh[b];
  });
  if (RED == TEAL_ATOMIC && nk == 0) return;  // uniform across the block (else: still takes its ticket)
  int nk16 = (nk + 15) & ~15;
  for (int i = tid; i < (nk16 - nk) * BB; i += 256) {  // padding rows: no weights, zero activations
    int pos = nk + i / BB, b = i % BB;
    kxh[b * 2 * KW + pos] = T(0.f);
    if (b == 0) kept_idx[pos] = -1;
  }
  __syncthreads();
  int og = warp & 3, kh = warp >> 2;
  int o = blockIdx.x * 256 + og * 64 + 8 * g;
  bool live = o < out;  // out % 8 == 0: a lane's 8 outputs exist together
  float acc[4][NT][4] = {};
  auto load = [&](TealStep<NT> &st, int s) {
    int j0 = 16 * s;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int j = j0 + 2 * tq + (i & 1) + 8 * (i >> 1);
      int r = (j < nk16 && live) ? kept_idx[j] : -1;
      st.v[i] = r >= 0 ? __ldcs(reinterpret_cast<const uint4 *>(Wt + (size_t)r * out + o)) : make_uint4(0u, 0u, 0u, 0u);
    }
  };
  int nsteps = nk16 >> 4;
  auto step = [&](const TealStep<NT> &st, int s) {
    int w0 = 8 * s + tq;  // word of kept rows (j0 + 2t, j0 + 2t + 1); + 4: (j0 + 2t + 8, + 9)
    uint32_t bf[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      bf[nt][0] = kx[(g + 8 * nt) * KW + w0];
      bf[nt][1] = kx[(g + 8 * nt) * KW + w0 + 4];
    }
    const uint32_t *v0 = &st.v[0].x, *v1 = &st.v[1].x, *v2 = &st.v[2].x, *v3 = &st.v[3].x;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      uint32_t a0 = __byte_perm(v0[q], v1[q], 0x5410), a1 = __byte_perm(v0[q], v1[q], 0x7632);
      uint32_t a2 = __byte_perm(v2[q], v3[q], 0x5410), a3 = __byte_perm(v2[q], v3[q], 0x7632);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        float part[4] = {0.f, 0.f, 0.f, 0.f};
        mma_16816<T>(part, a0, a1, a2, a3, bf[nt][0], bf[nt][1]);
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[q][nt][i] += part[i];
      }
    }
  };
  // steps s = kh, kh + 2, ...: D of them in flight (as run_steps; the step index travels with the loads)
  static_assert(D == 1 || D == 2, "1 or 2 steps in flight");
  if constexpr (D == 1) {
    for (int s = kh; s < nsteps; s += 2) {
      TealStep<NT> st;
      load(st, s);
      step(st, s);
    }
  } else {
    TealStep<NT> cur, nxt;
    load(cur, kh);
    for (int s = kh; s < nsteps; s += 2) {
      load(nxt, s + 2);
      step(cur, s);
      cur = nxt;
    }
  }
  pdl_launch_dependents();
  __syncthreads();  // the main loop's shared memory becomes the epilogue's
  float *red = reinterpret_cast<float *>(smem);  // [2][BB][256]: k-half, batch row, output of the tile
  int ol = og * 64 + 8 * g;
#pragma unroll
  for (int q = 0; q < 4; ++q)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i)  // d0: (row g, col 2t), d1: (g, 2t+1), d2: (g+8, 2t), d3: (g+8, 2t+1)
        red[(kh * BB + 8 * nt + 2 * tq + (i & 1)) * 256 + ol + 2 * q + (i >> 1)] = acc[q][nt][i];
  __syncthreads();
  float s[BB];
#pragma unroll
  for (int b = 0; b < BB; ++b) s[b] = red[b * 256 + tid] + red[(BB + b) * 256 + tid];
  teal_combine<RED, BB>(s, y, out, batch, ws, tick, accum);
}
