// Read-bandwidth probe for benchmarks/bench_gpu.py: every thread streams 16-byte words and folds them
// with XOR; one word per block is written so the reads cannot be optimised away.


extern "C" __global__ void read_bw(const uint4 *__restrict__ src, long long n_words, uint4 *__restrict__ sink) {
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n_words; i += (long long)gridDim.x * blockDim.x) {
    uint4 v = __ldcs(src + i);
    acc.x ^= v.x; acc.y ^= v.y; acc.z ^= v.z; acc.w ^= v.w;
  }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9e3779b9u) sink[blockIdx.x] = acc;  // practically never taken
}
