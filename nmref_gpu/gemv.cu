// GEMV / skinny GEMM for decoding: y[b, o] = sum_k x[b, k] W[o, k], float32 accumulation and output.
//  * gemv_dense:  W row-major [out, in] (the baseline of our own)
//  * gemv_24:     W in nmref's packed 2:4 layout (values [out, in/2] + uint32 nibble words [out, in/32])
//  * gemv_teal:   y[o] = sum_k x[k] 1[|x[k]| > t] Wt[k, o], Wt = W column-major [in, out], batch 1,
//                 split-K over input chunks of 32 rows with float32 atomics into a zeroed y.
#include "common.cuh"

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp per output row; each lane reads 16 bytes of W per step. B = compile-time max batch.
template <typename T, int B>
__global__ void gemv_dense(const T *__restrict__ W, const T *__restrict__ x, float *__restrict__ y, int out, int in,
                           int batch) {
  int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= out) return;
  float acc[B];
#pragma unroll
  for (int b = 0; b < B; ++b) acc[b] = 0.f;
  const uint4 *wr = reinterpret_cast<const uint4 *>(W + (size_t)row * in);
  int nvec = in >> 3;
#pragma unroll 4
  for (int k = lane; k < nvec; k += 32) {
    float wf[8];
    unpack8<T>(__ldcs(wr + k), wf);  // weights are streamed once: evict-first
#pragma unroll
    for (int b = 0; b < B; ++b) {
      if (b < batch) {
        float xf[8];
        unpack8<T>(reinterpret_cast<const uint4 *>(x + (size_t)b * in)[k], xf);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[b] += wf[i] * xf[i];
      }
    }
  }
#pragma unroll
  for (int b = 0; b < B; ++b) {
    float s = warp_sum(acc[b]);
    if (lane == 0 && b < batch) y[(size_t)b * out + row] = s;
  }
}

__device__ __forceinline__ float pick4(float a0, float a1, float a2, float a3, int i) {
  return i == 0 ? a0 : (i == 1 ? a1 : (i == 2 ? a2 : a3));
}

// One warp per output row; each lane handles 8 values (4 groups, 16 dense columns) per step.
template <typename T, int B>
__global__ void gemv_24(const T *__restrict__ vals, const uint32_t *__restrict__ meta, const T *__restrict__ x,
                        float *__restrict__ y, int out, int in, int batch) {
  int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= out) return;
  float acc[B];
#pragma unroll
  for (int b = 0; b < B; ++b) acc[b] = 0.f;
  const uint4 *vr = reinterpret_cast<const uint4 *>(vals + (size_t)row * (in >> 1));
  const uint16_t *mr = reinterpret_cast<const uint16_t *>(meta + (size_t)row * (in >> 5));
  int nchunk = in >> 4;
#pragma unroll 2
  for (int c = lane; c < nchunk; c += 32) {
    float vf[8];
    unpack8<T>(__ldcs(vr + c), vf);
    unsigned bits = mr[c];  // little-endian: chunk c's 16 bits are half-word c of the row's words
    int idx[8];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      unsigned nib = (bits >> (4 * q)) & 0xFu;
      idx[2 * q] = nib & 3u;
      idx[2 * q + 1] = nib >> 2;
    }
#pragma unroll
    for (int b = 0; b < B; ++b) {
      if (b < batch) {
        const uint4 *xr = reinterpret_cast<const uint4 *>(x + (size_t)b * in) + 2 * c;
        float xa[8], xb[8];
        unpack8<T>(xr[0], xa);
        unpack8<T>(xr[1], xb);
        float s = 0.f;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const float *g = q < 2 ? xa + 4 * q : xb + 4 * (q - 2);
          s += vf[2 * q] * pick4(g[0], g[1], g[2], g[3], idx[2 * q]);
          s += vf[2 * q + 1] * pick4(g[0], g[1], g[2], g[3], idx[2 * q + 1]);
        }
        acc[b] += s;
      }
    }
  }
#pragma unroll
  for (int b = 0; b < B; ++b) {
    float s = warp_sum(acc[b]);
    if (lane == 0 && b < batch) y[(size_t)b * out + row] = s;
  }
}

// TEAL: blockIdx.y = chunk of 32 input rows, blockIdx.x = tile of 8*blockDim.x outputs.
template <typename T>
__global__ void gemv_teal(const T *__restrict__ Wt, const T *__restrict__ x, float t, float *__restrict__ y, int in,
                          int out) {
  __shared__ int kept_idx[32];
  __shared__ float kept_x[32];
  __shared__ int n_kept;
  int k0 = blockIdx.y * 32;
  if (threadIdx.x < 32) {
    int k = k0 + threadIdx.x;
    float xv = k < in ? Elem<T>::to_f(x[k]) : 0.f;
    bool keep = k < in && fabsf(xv) > t;
    unsigned ball = __ballot_sync(0xffffffffu, keep);
    if (keep) {
      int pos = __popc(ball & ((1u << threadIdx.x) - 1u));
      kept_idx[pos] = k;
      kept_x[pos] = xv;
    }
    if (threadIdx.x == 0) n_kept = __popc(ball);
  }
  __syncthreads();
  int nk = n_kept;
  if (nk == 0) return;
  int o = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (o >= out) return;
  float acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] = 0.f;
#pragma unroll 4
  for (int j = 0; j < nk; ++j) {
    float wf[8];
    unpack8<T>(__ldcs(reinterpret_cast<const uint4 *>(Wt + (size_t)kept_idx[j] * out + o)), wf);
    float xv = kept_x[j];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] += xv * wf[i];
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) atomicAdd(y + o + i, acc[i]);
}


// Warp-reduce each of the R x B partial sums and let lane 0 store those that exist.
template <int R, int B>
__device__ __forceinline__ void store_rows(float (&acc)[R][B], float *__restrict__ y, int row0, int out, int batch,
                                           int lane) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int b = 0; b < B; ++b) {
      float s = warp_sum(acc[r][b]);
      if (lane == 0 && b < batch && row0 + r < out) y[(size_t)b * out + row0 + r] = s;
    }
}

// ---- row-tiled variants: R rows per warp, all of a step's weight loads issued before any math ----
// Each x vector loaded is reused for R rows (x traffic / R), and every lane keeps R*U 16-byte weight
// loads in flight. Rows past `out` are clamped to a valid row (computed, never stored).
template <typename T, int B, int R, int U>
__global__ void gemv_dense_rows(const T *__restrict__ W, const T *__restrict__ x, float *__restrict__ y, int out,
                                int in, int batch) {
  int warp = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  int row0 = warp * R;
  if (row0 >= out) return;
  const uint4 *wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const uint4 *>(W + (size_t)min(row0 + r, out - 1) * in);
  float acc[R][B] = {};
  int nvec = in >> 3;
  for (int k0 = lane; k0 < nvec; k0 += 32 * U) {
    uint4 wv[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r)
        wv[u][r] = (k0 + 32 * u < nvec) ? __ldcs(wr[r] + k0 + 32 * u) : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int k = k0 + 32 * u;
      if (k >= nvec) break;
      float wf[R][8];
#pragma unroll
      for (int r = 0; r < R; ++r) unpack8<T>(wv[u][r], wf[r]);
#pragma unroll
      for (int b = 0; b < B; ++b) {
        if (b < batch) {
          float xf[8];
          unpack8<T>(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)b * in) + k), xf);
#pragma unroll
          for (int r = 0; r < R; ++r)
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[r][b] += wf[r][i] * xf[i];
        }
      }
    }
  }
  store_rows<R, B>(acc, y, row0, out, batch, lane);
}

template <typename T, int B, int R, int U>
__global__ void gemv_24_rows(const T *__restrict__ vals, const uint32_t *__restrict__ meta, const T *__restrict__ x,
                             float *__restrict__ y, int out, int in, int batch) {
  int warp = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  int row0 = warp * R;
  if (row0 >= out) return;
  const uint4 *vr[R];
  const uint16_t *mr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    int row = min(row0 + r, out - 1);
    vr[r] = reinterpret_cast<const uint4 *>(vals + (size_t)row * (in >> 1));
    mr[r] = reinterpret_cast<const uint16_t *>(meta + (size_t)row * (in >> 5));
  }
  float acc[R][B] = {};
  int nchunk = in >> 4;
  for (int c0 = lane; c0 < nchunk; c0 += 32 * U) {
    uint4 vv[U][R];
    unsigned mb[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) {
        bool ok = c0 + 32 * u < nchunk;
        vv[u][r] = ok ? __ldcs(vr[r] + c0 + 32 * u) : make_uint4(0u, 0u, 0u, 0u);
        mb[u][r] = ok ? (unsigned)__ldcs(mr[r] + c0 + 32 * u) : 0u;
      }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int c = c0 + 32 * u;
      if (c >= nchunk) break;
      float vf[R][8];
#pragma unroll
      for (int r = 0; r < R; ++r) unpack8<T>(vv[u][r], vf[r]);
#pragma unroll
      for (int b = 0; b < B; ++b) {
        if (b < batch) {
          const uint4 *xr = reinterpret_cast<const uint4 *>(x + (size_t)b * in) + 2 * c;
          float xs[16];
          unpack8<T>(__ldg(xr), xs);
          unpack8<T>(__ldg(xr + 1), xs + 8);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            unsigned bits = mb[u][r];
            float s = 0.f;
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              unsigned nib = (bits >> (4 * q)) & 0xFu;
              const float *g = xs + 4 * q;
              s += vf[r][2 * q] * pick4(g[0], g[1], g[2], g[3], nib & 3u);
              s += vf[r][2 * q + 1] * pick4(g[0], g[1], g[2], g[3], nib >> 2);
            }
            acc[r][b] += s;
          }
        }
      }
    }
  }
  store_rows<R, B>(acc, y, row0, out, batch, lane);
}

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

// The epilogue of the TEAL block kernels: the 8 warps' partial sums of the block's 256 outputs (lane
// owns 8 consecutive outputs) are added in shared memory in warp order, then combined across the
// tile's chunks as RED says (tick: uint64 [tiles], ws: float32 [n, out]).
template <int RED>
__device__ __forceinline__ void teal_block_reduce(float (&red)[8][256], const float (&acc)[8], float *__restrict__ y,
                                                  int out, float *__restrict__ ws,
                                                  unsigned long long *__restrict__ tick, int accum) {
  __shared__ bool last;
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
#pragma unroll
  for (int i = 0; i < 8; ++i) red[warp][lane * 8 + i] = acc[i];
  __syncthreads();
  int oo = blockIdx.x * 256 + tid;
  bool live = oo < out;
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < 8; ++w) s += red[w][tid];
  if constexpr (RED == TEAL_ATOMIC) {
    if (live) atomicAdd(y + oo, s);
  } else {
    unsigned long long n = gridDim.y;
    if (live) __stcg(ws + (size_t)blockIdx.y * out + oo, s);
    __syncthreads();  // the block's stores happen before thread 0's fence and ticket (cumulative release)
    if (tid == 0) {
      __threadfence();
      last = atomicAdd(tick + blockIdx.x, 1ull) % n == n - 1;
      __threadfence();
    }
    __syncthreads();
    if (!last || !live) return;
    float sum = 0.f;  // n independent L2 loads (written by other SMs: bypass L1), added in chunk order
    const float *p = ws + oo;
#pragma unroll 16
    for (int j = 0; j < (int)n; ++j) sum += __ldcg(p + (size_t)j * out);
    y[oo] = accum ? y[oo] + sum : sum;
  }
}

// TEAL, block-reduced: a block of 8 warps owns 256 outputs and a chunk of CH input rows. The kept
// rows of the chunk are compacted in shared memory (CH/256 rounds of a block-wide ballot scan), the 8
// warps split them (each lane: 8 outputs, 4 rows' loads in flight), partial sums are reduced in shared
// memory, and combined across chunks by teal_block_reduce<RED> (TEAL_ATOMIC: one float32 atomicAdd per
// output per block, CH/32 times fewer atomics than one per 32-row chunk).
template <typename T, int CH, int RED>
__global__ void __launch_bounds__(256) gemv_teal_blk(const T *__restrict__ Wt, const T *__restrict__ x, float t,
                                                     float *__restrict__ y, int in, int out, float *__restrict__ ws,
                                                     unsigned long long *__restrict__ tick, int accum) {
  __shared__ int kept_idx[CH];
  __shared__ float kept_x[CH];
  __shared__ int warp_count[8];
  __shared__ float red[8][256];
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  pdl_wait();  // programmatic dependent launch (common.cuh): before any global access
  int nk = 0;
#pragma unroll
  for (int c = 0; c < CH / 256; ++c) {
    int k = blockIdx.y * CH + c * 256 + tid;
    float xv = k < in ? Elem<T>::to_f(x[k]) : 0.f;
    bool keep = k < in && fabsf(xv) > t;
    unsigned ball = __ballot_sync(0xffffffffu, keep);
    if (lane == 0) warp_count[warp] = __popc(ball);
    __syncthreads();
    int base = nk;
#pragma unroll
    for (int w = 0; w < 8; ++w) {
      base += w < warp ? warp_count[w] : 0;
      nk += warp_count[w];
    }
    if (keep) {
      int pos = base + __popc(ball & ((1u << lane) - 1u));
      kept_idx[pos] = k;
      kept_x[pos] = xv;
    }
    __syncthreads();  // warp_count is rewritten by the next round
  }
  if (RED == TEAL_ATOMIC && nk == 0) return;  // uniform across the block (else: still takes its ticket)
  int o = blockIdx.x * 256 + lane * 8;
  bool live = o < out;
  float acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] = 0.f;
  for (int j0 = warp; j0 < nk; j0 += 32) {
    uint4 wv[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      int j = j0 + 8 * u;
      wv[u] = (live && j < nk) ? __ldcs(reinterpret_cast<const uint4 *>(Wt + (size_t)kept_idx[j] * out + o))
                               : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      int j = j0 + 8 * u;
      if (j < nk) {
        float wf[8];
        unpack8<T>(wv[u], wf);
        float s = kept_x[j];
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] += s * wf[i];
      }
    }
  }
  pdl_launch_dependents();
  teal_block_reduce<RED>(red, acc, y, out, ws, tick, accum);
}

// The byte selectors that pick output i's pair (x[i0], x[i1]) out of a group's 4 half-precision inputs
// held as 8 bytes (two 32-bit words), for the 8 outputs of one metadata word mw (nibble i = i0 | i1 << 2):
// bytes [2 i0, 2 i0 + 1, 2 i1, 2 i1 + 1] = 0x1010 + 0x22 * (i0 | i1 << 8). They are built two outputs per
// word (bytes [i0, i1, i0', i1'], each <= 3, so the multiply does not carry between bytes): sel[0] holds
// outputs 0 (low half) and 2 (high half), sel[1] 1 and 3, sel[2] 4 and 6, sel[3] 5 and 7. Per output, one
// byte permute replaces two 4-way selects (1.11-1.25x less time for the kernel on the H100, docs/benchmarks.md).
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
      for (int j = 0; j < 4; ++j) kb |= (unsigned)(fabsf(Elem<T>::to_f(h[j])) > t) << j;
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
  teal_block_reduce<RED>(red, acc, y, out, ws, tick, accum);
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
// warp of the SM reads all of it). Measured on the H100: 2:4 faster at every batch, dense not
// (docs/benchmarks.md), hence a per-variant choice. Each load reads zeros where !ok.
// PRED = true (ld_w_pred, ld_x_pred, ld_meta_pred): the same loads written as one predicated PTX
// instruction each (asm volatile) instead of a branch around a load. In the SASS of the plain D = 2
// kernels, ptxas had put every load of the next super-step after all of this step's mma, so run_steps'
// pipeline was not in the machine code; with the predicated forms it issues part of them (2:4: the
// nibbles first, the values mid-step) before the step's last mma, using more registers. Measured
// faster on some shapes and slower on others (docs/benchmarks.md, session 11), hence a variant.
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
// 8 values and 16 nibble bits), zeros where !ok0 / !ok1 (as load_x). The plain forms keep the address
// inside the conditional, as they were written before PRED existed: hoisting it changed their registers
// and code, and these are the variants whose timings are recorded.
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
// warp issues in order: with C = 1 each mma waits for the one before; C = 2 measured up to 1.14x faster
// for 2:4 at batch 1-4, and slower at batch 16 on some shapes (docs/benchmarks.md), hence a variant.
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

// ---- sparse tensor cores: mma.sp m16n8k32 on nmref's mma 2:4 layout (nmref.compress_24_mma) ----
// OM: the ::ordered_metadata form (PTX 8.5; requires i0 < i1, which the layout guarantees) that ptxas
// recommends for newer architectures; both forms are kept to measure them side by side.
#define MMA_SP_ASM(MOD, TY)                                                                                    \
  asm volatile("mma" MOD ".sync.aligned.m16n8k32.row.col.f32." TY "." TY ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, " \
               "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;"                                                      \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                                \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e))
template <typename T, bool OM>
__device__ __forceinline__ void mma_sp_16832(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e) {
  if constexpr (sizeof(T) == 2 && OM) {
    if constexpr (Elem<T>::is_bf16) MMA_SP_ASM(".sp::ordered_metadata", "bf16");
    else MMA_SP_ASM(".sp::ordered_metadata", "f16");
  } else {
    if constexpr (Elem<T>::is_bf16) MMA_SP_ASM(".sp", "bf16");
    else MMA_SP_ASM(".sp", "f16");
  }
}

template <int NT> struct SpStep {
  uint4 w[2];      // values of groups 4t..4t+3 of rows g, g+8
  uint2 e;         // metadata words of chunks 0, 1 (lanes t < 2)
  uint4 x[NT][4];  // columns [16a, 16a+16) and [16a+32, 16a+48) of the super-step, a = t / 2
};

// Block: 16 rows × all of K, KW warps splitting K in super-steps of 64 columns, D in flight per warp
// (as gemv_mma). Per super-step a lane loads 16 bytes of values per row (groups 4t..4t+3) and feeds
// them as logical groups t, t+4 of two mma.sp (chunk c: actual groups 4t+2c, 4t+2c+1); lanes t = 0, 1
// load the two metadata words the hardware reads from them (layout: nmref.meta_mma_from_nibbles); for
// B, logical group L of chunk c is actual 4L + 2c (L < 4) or 4(L-4) + 2c + 1, so lane (g, t) reads x
// columns 16a..16a+15 and 16a+32..16a+47 of batch row g, half of whose words it uses (a = t/2).
// Half the mma of gemv_mma<SP = true> and no register expansion, yet measured 1.3-2.1x slower than it on an
// H100 (docs/benchmarks.md): kept as the tested consumer of the mma.sp layout, not as the default. in % 64 == 0.
template <typename T, int NT, int KW, int D, bool OM>
__global__ void __launch_bounds__(32 * KW) gemv_mma_sp(const T *__restrict__ vals, const uint32_t *__restrict__ meta,
                                                       const T *__restrict__ x, float *__restrict__ y, int out,
                                                       int in, int batch) {
  __shared__ float red[KW][16][8 * NT];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, a = t >> 1, h = t & 1;
  int row0 = blockIdx.x * 16;
  int rows[2] = {min(row0 + g, out - 1), min(row0 + g + 8, out - 1)};
  const uint32_t *mtile = meta + (size_t)blockIdx.x * (in >> 1);
  float acc[NT][4] = {};
  int nsup = in >> 6;
  auto load = [&](SpStep<NT> &st, int s) {
    bool ok = s < nsup;
#pragma unroll
    for (int r = 0; r < 2; ++r)
      st.w[r] = ok ? __ldcs(reinterpret_cast<const uint4 *>(vals + (size_t)rows[r] * (in >> 1) + s * 32 + 8 * t))
                   : make_uint4(0u, 0u, 0u, 0u);
    st.e = (ok && t < 2) ? __ldcs(reinterpret_cast<const uint2 *>(mtile + s * 32 + 4 * g + 2 * t)) : make_uint2(0u, 0u);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      int b = g + 8 * j;
      const uint4 *p = reinterpret_cast<const uint4 *>(x + (size_t)b * in + s * 64 + 16 * a);
      bool okb = ok && b < batch;
#pragma unroll
      for (int q = 0; q < 4; ++q)  // q: 0,1 -> columns 16a + 8q; 2,3 -> 16a + 32 + 8(q-2)
        st.x[j][q] = okb ? __ldg(p + (q & 1) + 4 * (q >> 1)) : make_uint4(0u, 0u, 0u, 0u);
    }
  };
  auto compute = [&](const SpStep<NT> &st) {
    const uint32_t w0[4] = {st.w[0].x, st.w[0].y, st.w[0].z, st.w[0].w};
    const uint32_t w1[4] = {st.w[1].x, st.w[1].y, st.w[1].z, st.w[1].w};
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t r1[8], r2[8];  // words of columns [16a, 16a+16) and [16a+32, 16a+48)
      to_words(st.x[j][0], st.x[j][1], r1);
      to_words(st.x[j][2], st.x[j][3], r2);
      float part[4] = {0.f, 0.f, 0.f, 0.f};  // fresh per super-step, as in gemv_mma (truncating tensor-core sums)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const uint32_t av[4] = {w0[2 * c], w1[2 * c], w0[2 * c + 1], w1[2 * c + 1]};
        const uint32_t bv[4] = {r1[4 * c + h], r2[4 * c + h], r1[4 * c + 2 + h], r2[4 * c + 2 + h]};
        mma_sp_16832<T, OM>(part, av, bv, c ? st.e.y : st.e.x);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] += part[i];
    }
  };
  run_steps<SpStep<NT>, KW, D>(load, compute, warp, nsup);
  reduce_store<KW, NT>(red, acc, y, row0, out, batch);
}

#define GEMV_MMA_SP(T, NT, KW, D, OM) \
  template __global__ void gemv_mma_sp<T, NT, KW, D, OM>(const T *, const uint32_t *, const T *, float *, int, int, int);
#define GEMV_MMA_SP_T(T) GEMV_MMA_SP(T, 1, 16, 2, false) GEMV_MMA_SP(T, 1, 16, 2, true) \
  GEMV_MMA_SP(T, 2, 16, 2, false) GEMV_MMA_SP(T, 2, 16, 2, true)
GEMV_MMA_SP_T(__half)
GEMV_MMA_SP_T(__nv_bfloat16)

// The variants nmref_gpu/gemv.py lists (_MMA): every load policy and chain count on _MMA_SHAPES, and the
// predicated-load variants (_PRED) on the shapes where they were measured faster.
#define GEMV_MMA_V(T, NT, KW, D, PF, C, PRED)                                                                          \
  template __global__ void gemv_mma<T, NT, false, KW, D, PF, C, PRED>(const T *, const uint32_t *, const T *, float *, int, int, int); \
  template __global__ void gemv_mma<T, NT, true, KW, D, PF, C, PRED>(const T *, const uint32_t *, const T *, float *, int, int, int);
#define GEMV_MMA(T, NT, KW, D) GEMV_MMA_V(T, NT, KW, D, false, 1, false) GEMV_MMA_V(T, NT, KW, D, true, 1, false) \
  GEMV_MMA_V(T, NT, KW, D, true, 2, false)
#define GEMV_MMA_PRED(T, NT) GEMV_MMA_V(T, NT, 4, 3, false, 1, true) GEMV_MMA_V(T, NT, 8, 2, false, 1, true)        \
  GEMV_MMA_V(T, NT, 8, 3, false, 1, true) GEMV_MMA_V(T, NT, 16, 3, false, 1, true)                                \
  GEMV_MMA_V(T, NT, 4, 2, true, 1, true) GEMV_MMA_V(T, NT, 8, 2, true, 1, true)                                   \
  GEMV_MMA_V(T, NT, 4, 1, true, 2, true) GEMV_MMA_V(T, NT, 4, 2, true, 2, true) GEMV_MMA_V(T, NT, 16, 1, true, 2, true)
#define GEMV_MMA_NT(T, NT) GEMV_MMA(T, NT, 4, 2) GEMV_MMA(T, NT, 8, 1) GEMV_MMA(T, NT, 8, 2) \
  GEMV_MMA(T, NT, 16, 1) GEMV_MMA(T, NT, 16, 2) GEMV_MMA_PRED(T, NT)
#define GEMV_MMA_T(T) GEMV_MMA_NT(T, 1) GEMV_MMA_NT(T, 2)
#define GEMV_INST(T, B)                                                                                  \
  template __global__ void gemv_dense<T, B>(const T *, const T *, float *, int, int, int);             \
  template __global__ void gemv_24<T, B>(const T *, const uint32_t *, const T *, float *, int, int, int);
#define GEMV_ROWS(T, B, R, U)                                                                               \
  template __global__ void gemv_dense_rows<T, B, R, U>(const T *, const T *, float *, int, int, int);            \
  template __global__ void gemv_24_rows<T, B, R, U>(const T *, const uint32_t *, const T *, float *, int, int, int);
#define GEMV_ROWS_B(T, B) GEMV_ROWS(T, B, 1, 4) GEMV_ROWS(T, B, 2, 2) GEMV_ROWS(T, B, 4, 1)
#define GEMV_TEAL_BLK(T, RED)                                                                                   \
  template __global__ void gemv_teal_blk<T, 256, RED>(const T *, const T *, float, float *, int, int, float *,       \
                                                      unsigned long long *, int);                                  \
  template __global__ void gemv_teal_blk<T, 512, RED>(const T *, const T *, float, float *, int, int, float *,       \
                                                      unsigned long long *, int);                                  \
  template __global__ void gemv_teal24_blk<T, 4, RED>(const T *, const uint32_t *, const T *, float, float *, int,    \
                                                      int, float *, unsigned long long *, int);                    \
  template __global__ void gemv_teal24_blk<T, 8, RED>(const T *, const uint32_t *, const T *, float, float *, int,    \
                                                      int, float *, unsigned long long *, int);
#define GEMV_ALL(T) GEMV_INST(T, 1) GEMV_INST(T, 2) GEMV_INST(T, 4) GEMV_INST(T, 8) GEMV_INST(T, 16) \
  GEMV_ROWS_B(T, 1) GEMV_ROWS_B(T, 2) GEMV_ROWS_B(T, 4) GEMV_ROWS_B(T, 8) GEMV_ROWS_B(T, 16)         \
  template __global__ void gemv_teal<T>(const T *, const T *, float, float *, int, int);                 \
  GEMV_TEAL_BLK(T, 0) GEMV_TEAL_BLK(T, 1)
GEMV_ALL(__half)
GEMV_ALL(__nv_bfloat16)
GEMV_MMA_T(__half)
GEMV_MMA_T(__nv_bfloat16)
