// 2:4 sparse GEMM on sparse tensor cores: Y[M, N] = X[M, K] · (W⊙M)[N, K]ᵀ, float32 accumulation.
//
// Operands are nmref's GEMM layout (nmref/compress/gemm.py, docs/formats.md): values[N, K/2] row-major
// (the compressed operand A of the instruction) and meta[Kp/128, 4·Np] uint32, the metadata register of
// every lane in the order a warp reads it. Only operand A may be sparse, so the kernels compute
// Yᵀ = (W⊙M)·Xᵀ: the instruction's M is the output feature n, its N the batch row m, its K the reduction.
//
// * gemm24_wgmma (sm_90a): wgmma.mma_async.sp m64nBNk32 from shared memory. One producer warp loads, per
//   128-column block, the values tile (TMA, 128-byte swizzle), the X tile (TMA, two 64-column boxes)
//   and the metadata slab (one bulk copy: 1 KB per 64 rows) into a ring of STAGES buffers guarded by
//   full/empty mbarriers; WG consumer warpgroups (64 rows each) issue four wgmma.sp per block.
//   Split-K over gridDim.z: each split writes its partial tile to a workspace, and the last split of a
//   tile (an atomic ticket) adds the partials in split order 0, 1, … — the result does not depend on
//   which split finishes last.
// * gemm24_mma (sm_80+): mma.sp m16n8k32 with ldmatrix and a cp.async ring; a block owns 64 rows × 64
//   batch rows. The portable path (and the reference the sm_90a kernel is cross-checked against).
//
// Both need K % 16 == 0 (16-byte aligned rows of values and X); the launcher pads other K.
#include "common.cuh"

// ------------------------------------------------------------------------------------------- helpers
__device__ __forceinline__ uint32_t smem_u32(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

template <typename OUT> __device__ __forceinline__ OUT from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// =========================================================================== sm_90a: wgmma.mma_async.sp
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define NMREF_SM90A 1
#endif

#ifdef NMREF_SM90A
__device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(uint64_t *bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n .reg .pred p;\n"
      " mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      " selp.u32 %0, 1, 0, p;\n}" : "=r"(done) : "r"(smem_u32(bar)), "r"(parity) : "memory");
  return done != 0;
}
// The spin is a C++ loop, so the compiler sees where lanes may leave it at different times, and the
// warp reconverges before what follows (the .aligned wgmma instructions need every lane together).
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity) {
  while (!mbar_try_wait(bar, parity)) {
  }
  __syncwarp();
}
// 2-D tensor-map load of one box at (inner, outer) element coordinates; completes on `bar`.
__device__ __forceinline__ void tma_load_2d(void *dst, const void *tmap, int inner, int outer, uint64_t *bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      ::"r"(smem_u32(dst)), "l"(tmap), "r"(inner), "r"(outer), "r"(smem_u32(bar)) : "memory");
}
// 1-D bulk copy of `bytes` (multiple of 16) contiguous bytes; completes on `bar`.
__device__ __forceinline__ void bulk_load(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar)) : "memory");
}
// Shared-memory matrix descriptor, K-major, 128-byte swizzle: 8-row groups of 128-byte rows 1024 bytes apart.
__device__ __forceinline__ uint64_t sw128_desc(const void *p) {
  const uint64_t addr = smem_u32(p);
  return ((addr & 0x3FFFF) >> 4) | (1ull << 16) | (uint64_t(1024 >> 4) << 32) | (1ull << 62);
}

// One wgmma.mma_async.sp m64nBNk32 (f32 += f16|bf16 · f16|bf16), A and B from shared memory, metadata
// selector 0. The accumulator is BN/2 floats per thread.
template <typename T, int BN> struct WgmmaSp;

#define NMREF_ACC8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])

#define NMREF_WGMMA_SP(T, TNAME, BN, REGS, OPERANDS, OPERANDS_ABE, ...)                                                  \
  template <> struct WgmmaSp<T, BN> {                                                                     \
    __device__ __forceinline__ static void run(float *d, uint64_t da, uint64_t db, uint32_t e) {          \
      asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, " OPERANDS ";\n"                                  \
                   "wgmma.mma_async.sp.sync.aligned.m64n" #BN "k32.f32." TNAME "." TNAME " " REGS ", "   \
                   OPERANDS_ABE ", 0, p, 1, 1, 0, 0;\n}"                                                   \
                   : __VA_ARGS__                                                                          \
                   : "l"(da), "l"(db), "r"(e), "r"(1));                                                  \
    }                                                                                                     \
  };

#define NMREF_R8 "{%0, %1, %2, %3, %4, %5, %6, %7}"
#define NMREF_R16 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"
#define NMREF_R32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
                  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define NMREF_R64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
                  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
                  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
                  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

#define NMREF_R128 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}"

#define NMREF_WGMMA_ALL(T, TNAME)                                                                          \
  NMREF_WGMMA_SP(T, TNAME, 16, NMREF_R8, "%11, 0", "%8, %9, %10", NMREF_ACC8(0))                         \
  NMREF_WGMMA_SP(T, TNAME, 32, NMREF_R16, "%19, 0", "%16, %17, %18", NMREF_ACC8(0), NMREF_ACC8(8))       \
  NMREF_WGMMA_SP(T, TNAME, 64, NMREF_R32, "%35, 0", "%32, %33, %34", NMREF_ACC8(0), NMREF_ACC8(8),       \
                 NMREF_ACC8(16), NMREF_ACC8(24))                                                          \
  NMREF_WGMMA_SP(T, TNAME, 128, NMREF_R64, "%67, 0", "%64, %65, %66", NMREF_ACC8(0), NMREF_ACC8(8),      \
                 NMREF_ACC8(16), NMREF_ACC8(24), NMREF_ACC8(32), NMREF_ACC8(40), NMREF_ACC8(48), NMREF_ACC8(56)) \
  NMREF_WGMMA_SP(T, TNAME, 256, NMREF_R128, "%131, 0", "%128, %129, %130", NMREF_ACC8(0), NMREF_ACC8(8),  \
                 NMREF_ACC8(16), NMREF_ACC8(24), NMREF_ACC8(32), NMREF_ACC8(40), NMREF_ACC8(48), NMREF_ACC8(56), \
                 NMREF_ACC8(64), NMREF_ACC8(72), NMREF_ACC8(80), NMREF_ACC8(88), NMREF_ACC8(96), NMREF_ACC8(104), \
                 NMREF_ACC8(112), NMREF_ACC8(120))

NMREF_WGMMA_ALL(__half, "f16")
NMREF_WGMMA_ALL(__nv_bfloat16, "bf16")

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Keep registers alive (and unchanged) up to this point: the metadata of an in-flight wgmma.
__device__ __forceinline__ void keep4(const uint4 &e) {
  asm volatile("" ::"r"(e.x), "r"(e.y), "r"(e.z), "r"(e.w));
}
#endif  // NMREF_SM90A

// Shared-memory bytes of one pipeline stage of gemm24_wgmma: BM = 64·MSUB·WG weight rows.
template <int BN, int WG, int MSUB> struct WgmmaStage {
  static constexpr int BM = 64 * MSUB * WG;
  static constexpr int A = BM * 128;       // BM rows × 64 compressed values (128 logical columns)
  static constexpr int B = BN * 256;       // BN batch rows × 128 columns, as two 64-column boxes
  static constexpr int E = BM * 16;        // metadata: 1 KB per 64 rows
  static constexpr int BYTES = A + B + E;  // a multiple of 1024: every buffer stays 1024-byte aligned
};

// Block tile = BM weight rows × BN batch rows. Tiles are numbered along blockIdx.x in groups of
// GROUP row tiles: consecutive blocks sweep a group's row tiles, then the next batch tile, so that the
// blocks resident at one time share a few weight and X tiles in L2.
#define RASTER_GROUP 8

template <typename T, typename OUT, int BN, int WG, int MSUB, int STAGES>
__device__ __forceinline__ void gemm24_wgmma_body(const void *tmap_w, const void *tmap_x, const uint32_t *meta,
                                                  OUT *y, float *ws, int *tickets, int M, int N, int Np,
                                                  int ktiles, int ktiles_per_split) {
#ifdef NMREF_SM90A
  typedef WgmmaStage<BN, WG, MSUB> S;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char *smem = reinterpret_cast<unsigned char *>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint64_t *full = reinterpret_cast<uint64_t *>(smem + STAGES * S::BYTES);
  uint64_t *empty = full + STAGES;
  __shared__ int last_split;

  // 0: producer; 1..WG: consumers (read through a shuffle so that the compiler knows it is warp-uniform)
  const int wg = __shfl_sync(0xffffffffu, int(threadIdx.x / 128), 0);
  const int tiles_n = (N + S::BM - 1) / S::BM, tiles_m = (M + BN - 1) / BN;
  const int per_group = RASTER_GROUP * tiles_m, group = blockIdx.x / per_group;
  const int first = group * RASTER_GROUP, rows_in_group = min(RASTER_GROUP, tiles_n - first);
  const int local = blockIdx.x % per_group;
  const int n0 = (first + local % rows_in_group) * S::BM, m0 = (local / rows_in_group) * BN;
  const int kt0 = blockIdx.z * ktiles_per_split;
  const int kt1 = min(ktiles, kt0 + ktiles_per_split);
  // The metadata of a 64-row atom past Np (the last tile when Np is not a multiple of BM) does not
  // exist: its consumer reads the tile's first atom instead (valid nibbles; those rows are not stored).
  const int atoms_here = min(S::BM / 64, (Np - n0) / 64);

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 4 * WG);  // one arrival per consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // ------------------------------------------------------------------------------ producer warp
    if (MSUB * BN >= 256) asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");  // large accumulators
    if (threadIdx.x == 0) {
      asm volatile("prefetch.tensormap [%0];" ::"l"(tmap_w) : "memory");
      asm volatile("prefetch.tensormap [%0];" ::"l"(tmap_x) : "memory");
      const uint32_t tx = S::A + S::B + S::E;
      for (int kt = kt0, it = 0; kt < kt1; ++kt, ++it) {
        const int s = it % STAGES;
        mbar_wait(&empty[s], ((it / STAGES) & 1) ^ 1);
        unsigned char *buf = smem + s * S::BYTES;
        mbar_expect_tx(&full[s], tx);
        tma_load_2d(buf, tmap_w, kt * 64, n0, &full[s]);
        tma_load_2d(buf + S::A, tmap_x, kt * 128, m0, &full[s]);
        tma_load_2d(buf + S::A + BN * 128, tmap_x, kt * 128 + 64, m0, &full[s]);
        const uint32_t *slab = meta + size_t(kt) * 4 * Np + 4 * n0;
        bulk_load(buf + S::A + S::B, slab, atoms_here * 1024, &full[s]);
        for (int a = atoms_here; a < S::BM / 64; ++a) bulk_load(buf + S::A + S::B + a * 1024, slab, 1024, &full[s]);
      }
    }
  } else {
    // ------------------------------------------------------------------------------ consumers
    if (MSUB * BN >= 256) asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
    const int c = wg - 1, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    float d[MSUB][BN / 2];
#pragma unroll
    for (int u = 0; u < MSUB; ++u)
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) d[u][i] = 0.f;
    // this lane's 4 metadata words (steps s = 0..3) of 64-row subtile u inside the stage's slab
    const int e_off = c * MSUB * 1024 + warp * 256 + (lane >> 2) * 32 + (lane & 1) * 16;
    // wgmma reads its metadata register while in flight: two register sets alternate between
    // consecutive blocks, and a set is kept alive (keep4) until the wait that retires its wgmma.
    uint4 ebuf[2][MSUB];
#pragma unroll
    for (int p = 0; p < 2; ++p)
#pragma unroll
      for (int u = 0; u < MSUB; ++u) ebuf[p][u] = make_uint4(0, 0, 0, 0);
    auto step = [&](int it, uint4 (&e)[MSUB], uint4 (&e_old)[MSUB]) {
      const int s = it % STAGES;
      mbar_wait(&full[s], (it / STAGES) & 1);
      unsigned char *buf = smem + s * S::BYTES;
#pragma unroll
      for (int u = 0; u < MSUB; ++u) e[u] = *reinterpret_cast<const uint4 *>(buf + S::A + S::B + e_off + u * 1024);
      const unsigned char *b = buf + S::A;
      wgmma_fence();
#pragma unroll
      for (int u = 0; u < MSUB; ++u) {
        const unsigned char *a = buf + (c * MSUB + u) * 64 * 128;
        WgmmaSp<T, BN>::run(d[u], sw128_desc(a + 0), sw128_desc(b + 0), e[u].x);
        WgmmaSp<T, BN>::run(d[u], sw128_desc(a + 32), sw128_desc(b + 64), e[u].y);
        WgmmaSp<T, BN>::run(d[u], sw128_desc(a + 64), sw128_desc(b + BN * 128), e[u].z);
        WgmmaSp<T, BN>::run(d[u], sw128_desc(a + 96), sw128_desc(b + BN * 128 + 64), e[u].w);
      }
      wgmma_commit();
      wgmma_wait<1>();  // the previous block's wgmma are done: its buffer and metadata are free
#pragma unroll
      for (int u = 0; u < MSUB; ++u) keep4(e_old[u]);
      if (it > 0 && lane == 0) mbar_arrive(&empty[(it - 1) % STAGES]);
    };
    const int blocks = kt1 - kt0;
    int it = 0;
    for (; it + 1 < blocks; it += 2) {
      step(it, ebuf[0], ebuf[1]);
      step(it + 1, ebuf[1], ebuf[0]);
    }
    if (it < blocks) {
      step(it, ebuf[0], ebuf[1]);
      ++it;
    }
    wgmma_wait<0>();
#pragma unroll
    for (int u = 0; u < MSUB; ++u) {
      keep4(ebuf[0][u]);
      keep4(ebuf[1][u]);
    }
    if (it > 0 && lane == 0) mbar_arrive(&empty[(it - 1) % STAGES]);

    // ------------------------------------------------------------------------------ epilogue
    // accumulator d[u][4j + 2hi + b]: row (64u + 16·warp + g + 8·hi) of this warpgroup's rows,
    // batch column (8j + 2t + b)
    const int g = lane >> 2, t = lane & 3;
    const int row0 = n0 + 64 * MSUB * c + 16 * warp + g;
    const int splits = gridDim.z;
    if (splits > 1) {
      const int ctid = threadIdx.x - 128;  // 0 .. 128·WG - 1
      const size_t tile = blockIdx.x;
      float *mine = ws + ((tile * splits + blockIdx.z) * (MSUB * BN / 2)) * (128 * WG);
#pragma unroll
      for (int u = 0; u < MSUB; ++u)
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) mine[(u * BN / 2 + i) * 128 * WG + ctid] = d[u][i];
      __threadfence();
      asm volatile("bar.sync 1, %0;" ::"n"(128 * WG));
      if (ctid == 0) {
        const int ticket = atomicAdd(&tickets[tile], 1);
        last_split = ticket == splits - 1;
        if (last_split) tickets[tile] = 0;  // ready for the next launch
      }
      asm volatile("bar.sync 1, %0;" ::"n"(128 * WG));
      if (!last_split) return;
      __threadfence();
#pragma unroll
      for (int u = 0; u < MSUB; ++u)
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) d[u][i] = 0.f;
      for (int z = 0; z < splits; ++z) {
        const volatile float *part = ws + ((tile * splits + z) * (MSUB * BN / 2)) * (128 * WG);
#pragma unroll
        for (int u = 0; u < MSUB; ++u)
#pragma unroll
          for (int i = 0; i < BN / 2; ++i) d[u][i] += part[(u * BN / 2 + i) * 128 * WG + ctid];
      }
    }
#pragma unroll
    for (int u = 0; u < MSUB; ++u)
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int hi = 0; hi < 2; ++hi)
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            const int n = row0 + 64 * u + 8 * hi, m = m0 + 8 * j + 2 * t + b;
            if (n < N && m < M) y[size_t(m) * N + n] = from_f32<OUT>(d[u][4 * j + 2 * hi + b]);
          }
  }
#endif  // NMREF_SM90A
}

// =========================================================================== sm_80+: mma.sp.m16n8k32
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
#endif
}
template <typename T> __device__ __forceinline__ void mma_sp(float d[4], const uint32_t a[4], const uint32_t b[4], uint32_t e);
#define NMREF_MMA_SP(T, TNAME)                                                                                \
  template <> __device__ __forceinline__ void mma_sp<T>(float d[4], const uint32_t a[4], const uint32_t b[4], \
                                                        uint32_t e) {                                          \
    asm volatile("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32." TNAME "." TNAME ".f32 "         \
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9, %10, %11}, {%0, %1, %2, %3}, %12, 0x0;"        \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                               \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]),     \
                   "r"(e));                                                                                    \
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
NMREF_MMA_SP(__half, "f16")
NMREF_MMA_SP(__nv_bfloat16, "bf16")
#else
template <> __device__ __forceinline__ void mma_sp<__half>(float *, const uint32_t *, const uint32_t *, uint32_t) {}
template <> __device__ __forceinline__ void mma_sp<__nv_bfloat16>(float *, const uint32_t *, const uint32_t *, uint32_t) {}
#endif

// Block: 4 warps, 64 rows (warp w: rows 16w..16w+15) × 64 batch rows; per stage 128 logical columns.
// Shared memory per stage: values 64 × 128 B, X 64 × 256 B, metadata 1 KB; 16-byte chunks are XOR-swizzled
// by (row mod 8) so that ldmatrix reads are free of bank conflicts.
constexpr int MMA_STAGES = 3, MMA_BN = 64;
constexpr int MMA_STAGE_BYTES = 64 * 128 + MMA_BN * 256 + 1024;

template <typename T, typename OUT>
__device__ __forceinline__ void gemm24_mma_body(const T *values, const T *x, const uint32_t *meta, OUT *y,
                                                int M, int N, int K, int Np) {
  extern __shared__ __align__(128) unsigned char smem_mma[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int n0 = blockIdx.x * 64, m0 = blockIdx.y * MMA_BN;
  const int ktiles = (K + 127) / 128;
  const int vrow = K / 2 * 2, xrow = K * 2;  // bytes per row of values and of X

  auto load = [&](int kt, int s) {
    unsigned char *buf = smem_mma + s * MMA_STAGE_BYTES;
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // values: 64 rows × 8 chunks
      const int idx = tid + 128 * i, r = idx / 8, ch = idx % 8;
      const int byte = kt * 128 + ch * 16;
      const bool ok = n0 + r < N && byte < vrow;
      const unsigned char *src = reinterpret_cast<const unsigned char *>(values) + (ok ? size_t(n0 + r) * vrow + byte : 0);
      cp_async16(buf + r * 128 + ((ch ^ (r & 7)) * 16), src, ok ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {  // X: 64 rows × 16 chunks
      const int idx = tid + 128 * i, r = idx / 16, ch = idx % 16;
      const int byte = kt * 256 + ch * 16;
      const bool ok = m0 + r < M && byte < xrow;
      const unsigned char *src = reinterpret_cast<const unsigned char *>(x) + (ok ? size_t(m0 + r) * xrow + byte : 0);
      cp_async16(buf + 64 * 128 + r * 256 + ((ch ^ (r & 7)) * 16), src, ok ? 16 : 0);
    }
    if (tid < 64)  // metadata: the 1 KB atom of rows n0..n0+63, block kt
      cp_async16(buf + 64 * 128 + MMA_BN * 256 + tid * 16, meta + size_t(kt) * 4 * Np + 4 * n0 + tid * 4, 16);
  };

  float d[MMA_BN / 8][4];
#pragma unroll
  for (int j = 0; j < MMA_BN / 8; ++j) d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.f;

#pragma unroll
  for (int s = 0; s < MMA_STAGES - 1; ++s) {
    if (s < ktiles) load(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<MMA_STAGES - 2>();
    __syncthreads();  // stage kt has landed for every thread; stage kt-1 is no longer read
    if (kt + MMA_STAGES - 1 < ktiles) load(kt + MMA_STAGES - 1, (kt + MMA_STAGES - 1) % MMA_STAGES);
    cp_async_commit();
    const unsigned char *buf = smem_mma + (kt % MMA_STAGES) * MMA_STAGE_BYTES;
    const uint4 e4 = *reinterpret_cast<const uint4 *>(buf + 64 * 128 + MMA_BN * 256 + warp * 256 + (lane >> 2) * 32 + (lane & 1) * 16);
    const uint32_t e[4] = {e4.x, e4.y, e4.z, e4.w};
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      uint32_t a[4];
      {  // compressed 16×16 of rows 16·warp.., chunks 2s, 2s+1: matrices (rows 0-7|8-15) × (chunk 2s|2s+1)
        const int mi = lane >> 3, r = 16 * warp + (mi & 1) * 8 + (lane & 7), ch = 2 * s + (mi >> 1);
        ldmatrix_x4(a, buf + r * 128 + ((ch ^ (r & 7)) * 16));
      }
#pragma unroll
      for (int j = 0; j < MMA_BN / 8; ++j) {
        uint32_t b[4];  // batch rows 8j..8j+7, chunks 4s..4s+3 of the 256-byte row
        const int r = 8 * j + (lane & 7), ch = 4 * s + (lane >> 3);
        ldmatrix_x4(b, buf + 64 * 128 + r * 256 + ((ch ^ (r & 7)) * 16));
        mma_sp<T>(d[j], a, b, e[s]);
      }
    }
  }
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < MMA_BN / 8; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int n = n0 + 16 * warp + g + 8 * (i >> 1), m = m0 + 8 * j + 2 * t + (i & 1);
      if (n < N && m < M) y[size_t(m) * N + n] = from_f32<OUT>(d[j][i]);
    }
}

// =========================================================================== instances
// extern "C" names: gemm24_wgmma_<in>_<out>_<BN>x<WG>x<MSUB>x<STAGES> and gemm24_mma_<in>_<out>. Which
// exist is one table, nmref_gpu/kernels.py (GEMM_CONFIGS): it appends these macros' instances to this
// file when the module is built, and prints the same unit for CI (python3 nmref_gpu/kernels.py gemm.cu).
#define NMREF_WGMMA_KERNEL(TN, T, ON, OUT, BN, WG, MSUB, ST)                                                  \
  extern "C" __global__ void __launch_bounds__(128 * (WG + 1), 1)                                            \
      gemm24_wgmma_##TN##_##ON##_##BN##x##WG##x##MSUB##x##ST(const void *tmap_w, const void *tmap_x,            \
                                                              const uint32_t *meta, OUT *y, float *ws,        \
                                                              int *tickets, int M, int N, int Np, int ktiles, \
                                                              int ktiles_per_split) {                         \
    gemm24_wgmma_body<T, OUT, BN, WG, MSUB, ST>(tmap_w, tmap_x, meta, y, ws, tickets, M, N, Np, ktiles,        \
                                                ktiles_per_split);                                            \
  }
#define NMREF_MMA_KERNEL(TN, T, ON, OUT)                                                                      \
  extern "C" __global__ void __launch_bounds__(128)                                                           \
      gemm24_mma_##TN##_##ON(const T *values, const T *x, const uint32_t *meta, OUT *y, int M, int N, int K, int Np) { \
    gemm24_mma_body<T, OUT>(values, x, meta, y, M, N, K, Np);                                                 \
  }
