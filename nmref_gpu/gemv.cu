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

// TEAL, block-reduced: a block of 8 warps owns 256 outputs and a chunk of 256 input rows. The kept
// rows of the chunk are compacted in shared memory, the 8 warps split them (each lane: 8 outputs,
// 4 rows' loads in flight), partial sums are reduced in shared memory, and each output gets one
// float32 atomicAdd per block (8x fewer atomics than one per 32-row chunk).
template <typename T>
__global__ void __launch_bounds__(256) gemv_teal_blk(const T *__restrict__ Wt, const T *__restrict__ x, float t,
                                                     float *__restrict__ y, int in, int out) {
  __shared__ int kept_idx[256];
  __shared__ float kept_x[256];
  __shared__ int warp_count[8];
  __shared__ float red[8][256];
  int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  int k = blockIdx.y * 256 + tid;
  float xv = k < in ? Elem<T>::to_f(x[k]) : 0.f;
  bool keep = k < in && fabsf(xv) > t;
  unsigned ball = __ballot_sync(0xffffffffu, keep);
  if (lane == 0) warp_count[warp] = __popc(ball);
  __syncthreads();
  int base = 0, nk = 0;
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
  __syncthreads();
  if (nk == 0) return;  // uniform across the block
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
#pragma unroll
  for (int i = 0; i < 8; ++i) red[warp][lane * 8 + i] = acc[i];
  __syncthreads();
  int oo = blockIdx.x * 256 + tid;
  if (oo < out) {
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < 8; ++w) s += red[w][tid];
    atomicAdd(y + oo, s);
  }
}

#define GEMV_INST(T, B)                                                                                  \
  template __global__ void gemv_dense<T, B>(const T *, const T *, float *, int, int, int);             \
  template __global__ void gemv_24<T, B>(const T *, const uint32_t *, const T *, float *, int, int, int);
#define GEMV_ROWS(T, B, R, U)                                                                               \
  template __global__ void gemv_dense_rows<T, B, R, U>(const T *, const T *, float *, int, int, int);            \
  template __global__ void gemv_24_rows<T, B, R, U>(const T *, const uint32_t *, const T *, float *, int, int, int);
#define GEMV_ROWS_B(T, B) GEMV_ROWS(T, B, 1, 4) GEMV_ROWS(T, B, 2, 2) GEMV_ROWS(T, B, 4, 1)
#define GEMV_ALL(T) GEMV_INST(T, 1) GEMV_INST(T, 2) GEMV_INST(T, 4) GEMV_INST(T, 8) GEMV_INST(T, 16) \
  GEMV_ROWS_B(T, 1) GEMV_ROWS_B(T, 2) GEMV_ROWS_B(T, 4) GEMV_ROWS_B(T, 8) GEMV_ROWS_B(T, 16)         \
  template __global__ void gemv_teal<T>(const T *, const T *, float, float *, int, int);                 \
  template __global__ void gemv_teal_blk<T>(const T *, const T *, float, float *, int, int);
GEMV_ALL(__half)
GEMV_ALL(__nv_bfloat16)
