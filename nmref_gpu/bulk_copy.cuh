// Hopper (sm_90) bulk copies into shared memory, completed on an mbarrier: thin PTX wrappers.
// The copy engine moves `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared
// memory and counts them off the barrier's transaction count; a phase of the barrier completes when its
// expected arrivals have arrived and all expected bytes have landed. Everything here is sm_90+; on older
// targets the wrappers trap (the Python side never launches their kernels there).
#pragma once
#include "nm_types.cuh"  // fixed-width integers (NVRTC has no <cstdint>)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define NMREF_HAS_BULK 1
#else
#define NMREF_HAS_BULK 0
#endif

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count) {
#if NMREF_HAS_BULK
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
#else
  __trap();
#endif
}

// Make the initialised barriers visible to the copy engine (the async proxy) before first use.
__device__ __forceinline__ void mbar_init_fence() {
#if NMREF_HAS_BULK
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

// One arrival that also raises the phase's expected transaction count by `bytes`.
__device__ __forceinline__ void mbar_arrive_expect(uint64_t *bar, uint32_t bytes) {
#if NMREF_HAS_BULK
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
#if NMREF_HAS_BULK
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
#else
  __trap();
#endif
}

// Spin until the phase with parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity) {
#if NMREF_HAS_BULK
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "NMREF_MBAR_WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra NMREF_MBAR_WAIT;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
#else
  __trap();
#endif
}

// L2 policy for data read exactly once (streamed weights): evict first.
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t pol = 0;
#if NMREF_HAS_BULK
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
#endif
  return pol;
}

// Global -> shared bulk copy of `bytes`, completing on `bar`; EF: with the evict-first L2 policy `pol`.
template <bool EF>
__device__ __forceinline__ void bulk_g2s(void *dst, const void *src, uint32_t bytes, uint64_t *bar, uint64_t pol) {
#if NMREF_HAS_BULK
  if constexpr (EF)
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::
            "r"(smem_addr(dst)),
        "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(pol)
        : "memory");
  else
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(smem_addr(bar))
                 : "memory");
#else
  __trap();
#endif
}
