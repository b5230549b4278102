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

void pack_w16_panels(const int8_t* w, int64_t N, int64_t K, int16_t* packed);
void gemm4x16_s16_avx2(const int16_t* x16, int64_t Kp, const int16_t* panels, int64_t n0, int64_t nn,
                       int32_t* acc, int64_t ldacc, int64_t rows);

void IntLinear::init_sums() {
  row_sums.assign(static_cast<size_t>(N), 0);
  for (int64_t n = 0; n < N; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += w[n * K + k];
    row_sums[n] = s;
  }
  const int64_t Kp = (K + 1) & ~int64_t{1};
  w16.assign(static_cast<size_t>((N + 7) / 8 * Kp * 8), 0);
  pack_w16_panels(w, N, K, w16.data());
}

// acc[m, n] = sum_k x[m,k] w[n,k] - a_zero rowsum[n]; the ref path is the plain scalar loop.
void IntLinear::accumulate(const uint8_t* x, int64_t M, int32_t a_zero, int32_t* acc) const {
  const bool avx2 = kernel_path() == KernelPath::avx2;
  const int64_t Kp = (K + 1) & ~int64_t{1};
  constexpr int64_t kRows = 16;
  parallel_for(M, kRows, [&](int64_t m0, int64_t m1) {
    if (!avx2) {
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t n = 0; n < N; ++n) {
          int32_t s = 0;
          for (int64_t k = 0; k < K; ++k) s += static_cast<int32_t>(x[m * K + k]) * w[n * K + k];
          acc[m * N + n] = s - a_zero * row_sums[n];
        }
      return;
    }
    std::vector<int16_t> x16(static_cast<size_t>(kRows * Kp), 0);
    const int64_t rows = m1 - m0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < K; ++k) x16[r * Kp + k] = x[(m0 + r) * K + k];
    for (int64_t n0 = 0; n0 < N; n0 += 16) {
      const int64_t nn = std::min<int64_t>(16, N - n0);
      for (int64_t r = 0; r < rows; r += 4)
        gemm4x16_s16_avx2(x16.data() + r * Kp, Kp, w16.data(), n0, nn, acc + (m0 + r) * N, N,
                          std::min<int64_t>(4, rows - r));
    }
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n) acc[m * N + n] -= a_zero * row_sums[n];
  });
}

void IntLinear::forward_u8(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y,
                           int32_t out_zero, int32_t out_max, int32_t* acc) const {
  accumulate(x, M, a_zero, acc);
  parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n)
        y[m * N + n] = clamp_q(apply_mult(biased(acc[m * N + n], n), mult[n]) + out_zero, out_max);
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
