// Integer Linear: int8 per-channel weights x uint8 activations (zero point), exact int32
// accumulation, then the real output y = s_a s_w[n] acc + b[n] either requantized to uint8 by the
// dyadic multiplier with the bias folded into the rounding constant
// (y = clamp(floor((acc m + c) / 2^t) + z_out), Requant::init_affine), looked up in the GELU table
// (fc1), or returned as float (the classifier) exactly as the simulation computes it.
// The zero point is folded: sum_k (x - z) w = sum_k x w - z sum_k w.
#include <algorithm>
#include <string>
#include <vector>

#include "engine/engine_ops.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit::engine {


void IntLinear::init_sums(const std::string& what) {
  packed = QWeight::pack(w, N, K);
  if (!mult.empty()) rq.init_affine(mult, out_beta.data(), what);
}

void IntLinear::init_lut(const std::string& what) { rq_lut.init_affine(lut_mult, lut_beta.data(), what); }

// acc[m, n] = sum_k (x[m,k] - a_zero) w[n,k]: qkern's packed int8 GEMM (include/qvit/qkernels.h),
// exact int32 on every path.
void IntLinear::accumulate(const uint8_t* x, int64_t M, int32_t a_zero, int32_t* acc) const {
  qgemm_u8s8s32(x, M, K, a_zero, packed, acc, N);
}

// The requantization / GELU lookup / float conversion runs as the GEMM's epilogue on each finished
// tile (rows m0..m1, channels n0..n1), in the GEMM's parallel region.
void IntLinear::forward_u8(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y,
                           int32_t out_zero, int32_t out_max, int32_t* acc) const {
  qgemm_u8s8s32(x, M, K, a_zero, packed, acc, N, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    rq.rows_u8(acc + m0 * N + n0, N, m1 - m0, n1 - n0, out_zero, 0, out_max, y + m0 * N + n0, N, n0);
  });
}

void IntLinear::forward_f32(const uint8_t* x, int64_t M, int32_t a_zero, float* y,
                            int32_t* acc) const {
  qgemm_u8s8s32(x, M, K, a_zero, packed, acc, N, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = n0; n < n1; ++n) y[m * N + n] = real(acc[m * N + n], n);
  });
}

void IntLinear::forward_lut(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y,
                            const GeluLut& lut, int32_t* acc) const {
  qgemm_u8s8s32(x, M, K, a_zero, packed, acc, N, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    thread_local std::vector<int32_t> u, fix;
    const int64_t w = n1 - n0, rows = m1 - m0;
    if (u.size() < static_cast<size_t>(rows * w)) u.resize(static_cast<size_t>(rows * w));
    if (fix.size() < static_cast<size_t>(w)) fix.resize(static_cast<size_t>(w));
    rq_lut.rows_i32(acc + m0 * N + n0, N, rows, w, lut.u_lo, lut.u_hi, u.data(), w, n0);
    for (int64_t m = m0; m < m1; ++m) {
      const int64_t nf = lut.lookup(u.data() + (m - m0) * w, w, y + m * N + n0, fix.data());
      for (int64_t f = 0; f < nf; ++f) {
        const int64_t n = n0 + fix[f];
        y[m * N + n] = lut.exact(real(acc[m * N + n], n));
      }
    }
  });
}

}  // namespace qvit::engine
