// Fused optimizer steps over flat float32 buffers, operation for operation as nmref.optim: every
// product, sum, quotient and root rounded once, as NumPy rounds it (the f_* helpers below).
// Scalars arrive already rounded to float32 exactly as NumPy casts Python floats.
#include "nm_types.cuh"

struct AdamScalars {
  float wd_factor;     // 1 - lr*wd
  float omb1, omb2;    // 1 - beta1, 1 - beta2
  float beta2;
  float neg_step;      // -(lr / (1 - beta1^t))
  float sqrt_bc2;      // sqrt(1 - beta2^t)
  float eps;
  float beta1_w;       // 1 - omb1 (exact): the weight of lerp's upper form
};

// IEEE float32 arithmetic written as PTX without .ftz: subnormal inputs and results are kept whatever
// the compiler's flags (CuPy compiles with -ftz=true after any option given, cupy/cupy#9576), and no
// product is contracted into an FMA. Each is one correctly rounded operation, as NumPy's.
__device__ __forceinline__ float f_add(float a, float b) { float r; asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
__device__ __forceinline__ float f_sub(float a, float b) { float r; asm("sub.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
__device__ __forceinline__ float f_mul(float a, float b) { float r; asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
__device__ __forceinline__ float f_div(float a, float b) { float r; asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
__device__ __forceinline__ float f_sqrt(float a) { float r; asm("sqrt.rn.f32 %0, %1;" : "=f"(r) : "f"(a)); return r; }
// zero and sign tests on the bits (a flushed compare would call a subnormal 0)
__device__ __forceinline__ bool is_zero(float a) { return (__float_as_uint(a) << 1) == 0u; }
__device__ __forceinline__ float sign_of(float a) {  // NumPy's sign: -1, 0 (either zero), 1
  return is_zero(a) ? 0.f : ((__float_as_uint(a) >> 31) ? -1.f : 1.f);
}

// u <- lerp(u, g, omb1) as PyTorch (and nmref) compute it: exact at both ends of the weight
__device__ __forceinline__ float lerp_moment(float ui, float gi, const AdamScalars &s) {
  float d = f_sub(gi, ui);
  if (s.omb1 < 0.5f) return f_add(f_mul(d, s.omb1), ui);
  return f_sub(gi, f_mul(d, s.beta1_w));
}

__device__ __forceinline__ void adam_tail(float pw, float numer, float sig, float v, const AdamScalars &s,
                                          float *p_out, float *v_out) {
  float vn = f_add(f_mul(f_mul(sig, s.omb2), sig), f_mul(v, s.beta2));
  float den = f_add(f_div(f_sqrt(vn), s.sqrt_bc2), s.eps);
  *p_out = f_add(f_div(f_mul(s.neg_step, numer), den), pw);
  *v_out = vn;
}

// AST variant 3. mode 0: second moment of u~ (paper eq. 22); mode 1: of the decayed gradient.
extern "C" __global__ void ast_adamw_kernel(const float *__restrict__ p, const float *__restrict__ g, const float *__restrict__ u,
                                 const float *__restrict__ v, const uint8_t *__restrict__ mask, float *__restrict__ p_out,
                                 float *__restrict__ u_out, float *__restrict__ v_out, long long n, AdamScalars s,
                                 float lam, int mode) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float pw = f_mul(p[i], s.wd_factor);
  float gi = g[i], ui = u[i];
  float un = lerp_moment(ui, gi, s);
  bool kept = mask[i] != 0;
  float decay = f_mul(pw, lam);
  bool add = !kept && !is_zero(lam);  // a zero coefficient adds no term (-0.0 + 0.0 would be +0.0), as nmref
  float ut = add ? f_add(decay, un) : un;
  float sig = mode == 0 ? ut : (add ? f_add(decay, gi) : gi);
  adam_tail(pw, ut, sig, v[i], s, p_out + i, v_out + i);
  u_out[i] = un;
}

// AdamS. placement 0: after the momentum, 1: in the gradient; mode as above (0 update, 1 gradient).
extern "C" __global__ void adams_kernel(const float *__restrict__ p, const float *__restrict__ g, const float *__restrict__ u,
                             const float *__restrict__ v, const uint8_t *__restrict__ mask, float *__restrict__ p_out,
                             float *__restrict__ u_out, float *__restrict__ v_out, long long n, AdamScalars s,
                             float alpha_lam, float one_minus_alpha, int placement, int mode) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float pw = f_mul(p[i], s.wd_factor);
  float l1 = f_mul(sign_of(pw), alpha_lam);
  bool kept = mask[i] != 0;
  float gi = g[i], ui = u[i];
  // pruned entries: (1 - a) x + l1, with no l1 term when a*lam is 0 and no product when 1 - a is 1 (as nmref)
  auto mix = [&](float x) {
    float sx = one_minus_alpha == 1.f ? x : f_mul(one_minus_alpha, x);
    return is_zero(alpha_lam) ? sx : f_add(l1, sx);
  };
  if (placement == 1) gi = kept ? gi : mix(gi);
  float un = lerp_moment(ui, gi, s);
  float ut, sig;
  if (placement == 1) {
    ut = un;
    sig = gi;
  } else {
    ut = kept ? un : mix(un);
    sig = mode == 0 ? ut : (kept ? gi : mix(gi));
  }
  adam_tail(pw, ut, sig, v[i], s, p_out + i, v_out + i);
  u_out[i] = un;
}
