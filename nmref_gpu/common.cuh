// Shared device helpers for nmref_gpu kernels: element conversion and 16- and 4-byte vector unpacking.
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include "nm_types.cuh"

template <typename T> struct Elem;
template <> struct Elem<float> {
  typedef float cmp_t;
  __device__ __forceinline__ static float to_f(float v) { return v; }
};
template <> struct Elem<double> {
  typedef double cmp_t;
  __device__ __forceinline__ static double to_f(double v) { return v; }
};
template <> struct Elem<__half> {
  typedef float cmp_t;
  static constexpr bool is_bf16 = false;
  __device__ __forceinline__ static float to_f(__half v) { return __half2float(v); }
};
template <> struct Elem<__nv_bfloat16> {
  typedef float cmp_t;
  static constexpr bool is_bf16 = true;
  __device__ __forceinline__ static float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
};

// 8 half-precision values in one 16-byte word -> 8 floats.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4 &v, float f[8]) {
  const T *h = reinterpret_cast<const T *>(&v);
#pragma unroll
  for (int i = 0; i < 8; ++i) f[i] = Elem<T>::to_f(h[i]);
}

// 2 half-precision values in one 32-bit word -> 2 floats (low half first).
template <typename T>
__device__ __forceinline__ void unpack2(uint32_t v, float f[2]) {
  const T *h = reinterpret_cast<const T *>(&v);
  f[0] = Elem<T>::to_f(h[0]);
  f[1] = Elem<T>::to_f(h[1]);
}

// Programmatic dependent launch (sm_90+; no-ops below, and when the kernel was launched without the
// attribute): the protocol of the kernels nmref_gpu/_launch.py launches with it. pdl_wait() comes
// before a block's first global-memory access (it returns once the preceding kernel has completed and
// its writes are visible); pdl_launch_dependents() after its main loop, so that at most the next kernel
// is scheduled early.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
