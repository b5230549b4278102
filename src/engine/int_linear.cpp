// Integer Linear: int8 per-channel weights x uint8 activations (zero point), exact int32
// accumulation, int32 bias at scale s_a s_w[n] 2^-8, then either the dyadic requantization to uint8
// (y = clamp(requant(acc 2^8 + bias_q, s_a s_w[n] 2^-8 / s_out) + z_out)), the GELU table (fc1), or
// a float output (acc + bias_q 2^-8) s_a s_w[n] (the classifier).
// The zero point is folded: sum_k (x - z) w = sum_k x w - z sum_k w.
#include <algorithm>

#include "engine/engine_ops.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit::engine {

void dot4_s16_avx2(const int16_t* x0, const int16_t* x1, const int16_t* x2, const int16_t* x3,
                   const int16_t* w, int64_t K, int32_t* out);

void IntLinear::init_sums() {
  w16.assign(w, w + N * K);
  row_sums.assign(static_cast<size_t>(N), 0);
  for (int64_t n = 0; n < N; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += w[n * K + k];
    row_sums[n] = s;
  }
}

// acc[m, n] = sum_k x[m,k] w[n,k] - a_zero rowsum[n]; a scalar loop (placeholder for
// the packed int8 GEMM of include/qvit/qkernels.h).
void IntLinear::accumulate(const uint8_t* x, int64_t M, int32_t a_zero, int32_t* acc) const {
  const bool avx2 = kernel_path() == KernelPath::avx2;
  parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
    std::vector<int16_t> xr(static_cast<size_t>(4 * K), 0);
    const int64_t rows = m1 - m0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < K; ++k) xr[r * K + k] = x[(m0 + r) * K + k];
    for (int64_t n = 0; n < N; ++n) {
      const int16_t* wr = w16.data() + n * K;
      int32_t s[4] = {0, 0, 0, 0};
      if (avx2) {
        dot4_s16_avx2(xr.data(), xr.data() + K, xr.data() + 2 * K, xr.data() + 3 * K, wr, K, s);
      } else {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < K; ++k) s[r] += static_cast<int32_t>(xr[r * K + k]) * wr[k];
      }
      for (int64_t r = 0; r < rows; ++r) acc[(m0 + r) * N + n] = s[r] - a_zero * row_sums[n];
    }
  });
}

void IntLinear::forward_u8(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y,
                           int32_t out_zero, int32_t* acc) const {
  accumulate(x, M, a_zero, acc);
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n)
        y[m * N + n] = clamp_u8(apply_mult(biased(acc[m * N + n], n), mult[n]) + out_zero);
  });
}

void IntLinear::forward_f32(const uint8_t* x, int64_t M, int32_t a_zero, float* y,
                            int32_t* acc) const {
  accumulate(x, M, a_zero, acc);
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = real(acc[m * N + n], n);
  });
}

void IntLinear::forward_lut(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y,
                            const GeluLut& lut, int32_t* acc) const {
  accumulate(x, M, a_zero, acc);
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t u = std::clamp<int64_t>(apply_mult(biased(acc[m * N + n], n), lut_mult[n]), lut.u_lo, lut.u_hi);
        const int16_t c = lut.table[u - lut.u_lo];
        y[m * N + n] = c >= 0 ? static_cast<uint8_t>(c) : lut.exact(real(acc[m * N + n], n));
      }
  });
}

}  // namespace qvit::engine
