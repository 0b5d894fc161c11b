// N:M masks and the fused 2:4 mask+compress into nmref's packed layout (nmref/compress/packed.py).
// Tie rule as nmref.nm_mask: rank_i = #{j<i: s_j >= s_i} + #{j>i: s_j > s_i}; keep iff rank_i < n.
#include "common.cuh"

// Magnitudes are compared as integers: for IEEE values that are not NaN, |v| orders exactly as the bit
// pattern with the sign cleared, read as an unsigned integer (+0 and -0 are equal, Inf is largest).
// Float comparisons would not do: CuPy compiles every kernel with -ftz=true (appended unconditionally),
// which flushes float32 (and bfloat16-converted) subnormals to zero, so a subnormal would tie with 0 and
// the mask would differ from nmref's (found by the golden case nm_mask_2_4_edge).
template <typename T> struct MagKey;
template <> struct MagKey<__half> {
  typedef unsigned type;
  static constexpr unsigned inf = 0x7C00u;
  __device__ __forceinline__ static unsigned of(__half v) { return __half_as_ushort(v) & 0x7FFFu; }
};
template <> struct MagKey<__nv_bfloat16> {
  typedef unsigned type;
  static constexpr unsigned inf = 0x7F80u;
  __device__ __forceinline__ static unsigned of(__nv_bfloat16 v) { return __bfloat16_as_ushort(v) & 0x7FFFu; }
};
template <> struct MagKey<float> {
  typedef unsigned type;
  static constexpr unsigned inf = 0x7F800000u;
  __device__ __forceinline__ static unsigned of(float v) { return __float_as_uint(v) & 0x7FFFFFFFu; }
};
template <> struct MagKey<double> {
  typedef unsigned long long type;
  static constexpr unsigned long long inf = 0x7FF0000000000000ull;
  __device__ __forceinline__ static unsigned long long of(double v) {
    return static_cast<unsigned long long>(__double_as_longlong(v)) & 0x7FFFFFFFFFFFFFFFull;
  }
};

template <typename T, int M>
__device__ __forceinline__ unsigned keep_bits(const typename MagKey<T>::type s[M], int n) {
  unsigned bits = 0;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    int rank = 0;
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < i) rank += (s[j] >= s[i]);
      if (j > i) rank += (s[j] > s[i]);
    }
    bits |= (rank < n ? 1u : 0u) << i;
  }
  return bits;
}

// One thread per group of M consecutive elements (the grouped axis is last and contiguous).
// NaN anywhere sets *nan_flag (the launcher raises).
template <typename T, int M>
__global__ void nm_mask_kernel(const T *__restrict__ w, uint8_t *__restrict__ out, long long n_groups, int n,
                               int *__restrict__ nan_flag) {
  long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= n_groups) return;
  typename MagKey<T>::type s[M];
  bool nan = false;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    s[i] = MagKey<T>::of(w[g * M + i]);
    nan |= s[i] > MagKey<T>::inf;
  }
  if (nan) atomicOr(nan_flag, 1);
  unsigned bits = keep_bits<T, M>(s, n);
#pragma unroll
  for (int i = 0; i < M; ++i) out[g * M + i] = (bits >> i) & 1u;
}

// Fused 2:4 mask + compress. A thread handles OCTS octets of 8 elements (two groups each), blockDim
// apart, all loads issued before any math. Each lane reads 8·sizeof(T) contiguous bytes per octet and
// writes its 4 kept values contiguously, so a warp's loads and stores are fully coalesced; the 4 lanes
// covering 32 elements OR their metadata bytes together with shuffles and the first stores the word.
// n_oct = elements / 8 is a multiple of 4 (cols % 32 == 0), so a word's lanes are all live or all past
// the end; every lane reaches the shuffles (no early return).
template <typename T>
__device__ __forceinline__ unsigned compress_octet(const T (&e)[8], T (&kept)[4], bool &nan) {
  unsigned byte = 0;
#pragma unroll
  for (int g = 0; g < 2; ++g) {
    typename MagKey<T>::type s[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      s[i] = MagKey<T>::of(e[4 * g + i]);
      nan |= s[i] > MagKey<T>::inf;
    }
    unsigned bits = keep_bits<T, 4>(s, 2);
    int i0 = __ffs(bits) - 1;
    int i1 = __ffs(bits & (bits - 1)) - 1;
    kept[2 * g] = e[4 * g + i0];
    kept[2 * g + 1] = e[4 * g + i1];
    byte |= (unsigned)(i0 | (i1 << 2)) << (4 * g);
  }
  return byte;
}

template <typename T, int OCTS>
__global__ void compress_24_packed_kernel(const T *__restrict__ w, T *__restrict__ values,
                                          uint32_t *__restrict__ meta, long long n_oct, int *__restrict__ nan_flag) {
  constexpr int NV = 8 * sizeof(T) / 16;  // 16-byte vectors per octet
  union Oct {
    uint4 v[NV];
    T e[8];
  };
  union Kept {
    T e[4];
    uint32_t u[sizeof(T)];
  };
  long long q0 = (long long)blockIdx.x * blockDim.x * OCTS + threadIdx.x;
  Oct in[OCTS];
#pragma unroll
  for (int j = 0; j < OCTS; ++j) {
    long long q = q0 + (long long)j * blockDim.x;
    if (q < n_oct) {
      const uint4 *src = reinterpret_cast<const uint4 *>(w + q * 8);
#pragma unroll
      for (int v = 0; v < NV; ++v) in[j].v[v] = __ldcs(src + v);
    }
  }
  unsigned lane = threadIdx.x & 31u;
  bool nan = false;
#pragma unroll
  for (int j = 0; j < OCTS; ++j) {
    long long q = q0 + (long long)j * blockDim.x;
    bool live = q < n_oct;
    unsigned byte = 0;
    if (live) {
      Kept k;
      byte = compress_octet<T>(in[j].e, k.e, nan);
      if constexpr (sizeof(T) == 2) {
        __stcs(reinterpret_cast<uint2 *>(values + q * 4), make_uint2(k.u[0], k.u[1]));
      } else {
        uint4 *dst = reinterpret_cast<uint4 *>(values + q * 4);
#pragma unroll
        for (int v = 0; v < (int)sizeof(T) / 4; ++v)
          __stcs(dst + v, make_uint4(k.u[4 * v], k.u[4 * v + 1], k.u[4 * v + 2], k.u[4 * v + 3]));
      }
    }
    unsigned word = byte << (8 * (lane & 3u));
    word |= __shfl_xor_sync(0xffffffffu, word, 1);
    word |= __shfl_xor_sync(0xffffffffu, word, 2);
    if (live && (lane & 3u) == 0) meta[q >> 2] = word;
  }
  if (nan) atomicOr(nan_flag, 1);
}

// 2:4 mask refresh of float32 parameters with the flip count ||m_new - m_old||_1 (AST's flip rate numerator).
__global__ void refresh_mask_24_kernel(const float *__restrict__ w, const uint8_t *__restrict__ old_mask,
                                       uint8_t *__restrict__ new_mask, long long n_groups,
                                       unsigned long long *__restrict__ flips, int *__restrict__ nan_flag) {
  long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  unsigned f = 0;
  if (g < n_groups) {
    float4 v = reinterpret_cast<const float4 *>(w)[g];
    unsigned s[4] = {MagKey<float>::of(v.x), MagKey<float>::of(v.y), MagKey<float>::of(v.z), MagKey<float>::of(v.w)};
    if (s[0] > MagKey<float>::inf || s[1] > MagKey<float>::inf || s[2] > MagKey<float>::inf || s[3] > MagKey<float>::inf)
      atomicOr(nan_flag, 1);
    unsigned bits = keep_bits<float, 4>(s, 2);
    uint32_t oldw = reinterpret_cast<const uint32_t *>(old_mask)[g];
    uint32_t neww = (bits & 1u) | ((bits >> 1) & 1u) << 8 | ((bits >> 2) & 1u) << 16 | ((bits >> 3) & 1u) << 24;
    reinterpret_cast<uint32_t *>(new_mask)[g] = neww;
    f = __popc(oldw ^ neww);
  }
  for (int o = 16; o > 0; o >>= 1) f += __shfl_down_sync(0xffffffffu, f, o);
  if ((threadIdx.x & 31) == 0 && f) atomicAdd(flips, (unsigned long long)f);
}

#define NM_INST(T)                                                                                    \
  template __global__ void nm_mask_kernel<T, 1>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void nm_mask_kernel<T, 2>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void nm_mask_kernel<T, 3>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void nm_mask_kernel<T, 4>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void nm_mask_kernel<T, 5>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void nm_mask_kernel<T, 6>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void nm_mask_kernel<T, 7>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void nm_mask_kernel<T, 8>(const T *, uint8_t *, long long, int, int *);         \
  template __global__ void compress_24_packed_kernel<T, 2>(const T *, T *, uint32_t *, long long, int *);
NM_INST(float)
NM_INST(double)
NM_INST(__half)
NM_INST(__nv_bfloat16)
