// LayerNorm over the last axis: reference (double, two-pass) and the parallel dispatcher.
#include <cmath>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {
namespace kernels_detail {

void layernorm_rows_f32_ref(const float* x, const float* gamma, const float* beta, float* y,
                            int64_t rows, int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double sum = 0.0;
    for (int64_t c = 0; c < C; ++c) sum += xr[c];
    const double mean = sum / static_cast<double>(C);
    double sq = 0.0;
    for (int64_t c = 0; c < C; ++c) sq += (xr[c] - mean) * (xr[c] - mean);
    const double var = sq / static_cast<double>(C);  // biased, like PyTorch
    const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    // y may alias x: element c is read before it is written.
    for (int64_t c = 0; c < C; ++c) {
      yr[c] = static_cast<float>((xr[c] - mean) * rstd * gamma[c] + beta[c]);
    }
  }
}

}  // namespace kernels_detail

namespace {

using RowsFn = void (*)(const float*, const float*, const float*, float*, int64_t, int64_t, float);

void layernorm_parallel(RowsFn fn, const float* x, const float* gamma, const float* beta, float* y,
                        int64_t rows, int64_t C, float eps) {
  if (rows < 0 || C <= 0) fail("kernels", "layernorm_f32: bad shape rows={} C={}", rows, C);
  parallel_for(rows, kernels_detail::row_grain(C), [&](int64_t r0, int64_t r1) {
    fn(x + r0 * C, gamma, beta, y + r0 * C, r1 - r0, C, eps);
  });
}

}  // namespace

void layernorm_f32_ref(const float* x, const float* gamma, const float* beta, float* y,
                       int64_t rows, int64_t C, float eps) {
  layernorm_parallel(kernels_detail::layernorm_rows_f32_ref, x, gamma, beta, y, rows, C, eps);
}

void layernorm_f32(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                   int64_t C, float eps) {
  layernorm_parallel(kernels_detail::use_avx2() ? kernels_detail::layernorm_rows_f32_avx2
                                                : kernels_detail::layernorm_rows_f32_ref,
                     x, gamma, beta, y, rows, C, eps);
}

}  // namespace qvit
