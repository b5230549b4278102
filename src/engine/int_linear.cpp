// Integer Linear: int8 per-channel weights x uint8 activations (zero point), exact int32
// accumulation, int32 bias at scale s_a s_w[n], then either the dyadic requantization to uint8
// (y = clamp(requant(acc + bias_q, s_a s_w[n] / s_out) + z_out)) or a float output
// acc * s_a s_w[n] for the steps that stay float (fc1 before GELU, the classifier).
// The zero point is folded: sum_k (x - z) w = sum_k x w - z sum_k w.
#include <algorithm>

#include "engine/engine_ops.h"
#include "qvit/parallel.h"

namespace qvit::engine {

void IntLinear::init_sums() {
  row_sums.assign(static_cast<size_t>(N), 0);
  for (int64_t n = 0; n < N; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += w[n * K + k];
    row_sums[n] = s;
  }
}

// acc[m, n] = sum_k x[m,k] w[n,k] - a_zero rowsum[n] + bias_q[n]; a scalar loop (placeholder for
// the packed int8 GEMM of include/qvit/qkernels.h).
void IntLinear::accumulate(const uint8_t* x, int64_t M, int32_t a_zero, int32_t* acc) const {
  parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const uint8_t* xr = x + m * K;
      for (int64_t n = 0; n < N; ++n) {
        const int8_t* wr = w + n * K;
        int32_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += static_cast<int32_t>(xr[k]) * wr[k];
        acc[m * N + n] = s - a_zero * row_sums[n] + bias_q[n];
      }
    }
  });
}

void IntLinear::forward_u8(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y,
                           int32_t out_zero, int32_t* acc) const {
  accumulate(x, M, a_zero, acc);
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n)
        y[m * N + n] = clamp_u8(apply_mult(acc[m * N + n], mult[n]) + out_zero);
  });
}

void IntLinear::forward_f32(const uint8_t* x, int64_t M, int32_t a_zero, float* y,
                            int32_t* acc) const {
  accumulate(x, M, a_zero, acc);
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = static_cast<float>(acc[m * N + n]) * deq[n];
  });
}

}  // namespace qvit::engine
