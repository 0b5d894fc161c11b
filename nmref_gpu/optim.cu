// Fused optimizer steps over flat float32 buffers, operation for operation as nmref.optim
// (compiled with --fmad=false so every product and sum is rounded as NumPy rounds it).
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

// u <- lerp(u, g, omb1) as PyTorch (and nmref) compute it: exact at both ends of the weight
__device__ __forceinline__ float lerp_moment(float ui, float gi, const AdamScalars &s) {
  float d = gi - ui;
  if (s.omb1 < 0.5f) {
    d = d * s.omb1;
    return d + ui;
  }
  d = d * s.beta1_w;
  return gi - d;
}

__device__ __forceinline__ void adam_tail(float pw, float numer, float sig, float v, const AdamScalars &s,
                                          float *p_out, float *v_out) {
  float vn = sig * s.omb2;
  vn = vn * sig;
  vn = vn + v * s.beta2;
  float den = sqrtf(vn);
  den = den / s.sqrt_bc2;
  den = den + s.eps;
  float upd = s.neg_step * numer;
  upd = upd / den;
  *p_out = upd + pw;
  *v_out = vn;
}

// AST variant 3. mode 0: second moment of u~ (paper eq. 22); mode 1: of the decayed gradient.
extern "C" __global__ void ast_adamw_kernel(const float *__restrict__ p, const float *__restrict__ g, const float *__restrict__ u,
                                 const float *__restrict__ v, const uint8_t *__restrict__ mask, float *__restrict__ p_out,
                                 float *__restrict__ u_out, float *__restrict__ v_out, long long n, AdamScalars s,
                                 float lam, int mode) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float pw = p[i] * s.wd_factor;
  float gi = g[i], ui = u[i];
  float un = lerp_moment(ui, gi, s);
  bool kept = mask[i] != 0;
  float decay = pw * lam;
  bool add = !kept && lam != 0.f;  // a zero coefficient adds no term (-0.0 + 0.0 would be +0.0), as nmref
  float ut = add ? decay + un : un;
  float sig = mode == 0 ? ut : (add ? decay + gi : gi);
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
  float pw = p[i] * s.wd_factor;
  float sg = (float)((pw > 0.f) - (pw < 0.f));
  float l1 = sg * alpha_lam;
  bool kept = mask[i] != 0;
  float gi = g[i], ui = u[i];
  // pruned entries: (1 - a) x + l1, with no l1 term when a*lam is 0 and no product when 1 - a is 1 (as nmref)
  auto mix = [&](float x) {
    float sx = one_minus_alpha == 1.f ? x : one_minus_alpha * x;
    return alpha_lam == 0.f ? sx : l1 + sx;
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
