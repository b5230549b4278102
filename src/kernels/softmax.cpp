// Row softmax (max-subtracted): reference in double and the parallel dispatcher.
#include <cmath>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {
namespace kernels_detail {

void softmax_rows_f32_ref(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    double mx = xr[0];
    for (int64_t c = 1; c < cols; ++c) mx = xr[c] > mx ? xr[c] : mx;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - mx);
    for (int64_t c = 0; c < cols; ++c) xr[c] = static_cast<float>(std::exp(xr[c] - mx) / sum);
  }
}

}  // namespace kernels_detail

namespace {

void softmax_parallel(void (*fn)(float*, int64_t, int64_t), float* x, int64_t rows, int64_t cols) {
  if (rows < 0 || cols <= 0) fail("kernels", "softmax_f32: bad shape rows={} cols={}", rows, cols);
  parallel_for(rows, kernels_detail::row_grain(cols),
               [&](int64_t r0, int64_t r1) { fn(x + r0 * cols, r1 - r0, cols); });
}

}  // namespace

void softmax_f32_ref(float* x, int64_t rows, int64_t cols) {
  softmax_parallel(kernels_detail::softmax_rows_f32_ref, x, rows, cols);
}

void softmax_f32(float* x, int64_t rows, int64_t cols) {
  softmax_parallel(kernels_detail::use_avx2() ? kernels_detail::softmax_rows_f32_avx2
                                              : kernels_detail::softmax_rows_f32_ref,
                   x, rows, cols);
}

}  // namespace qvit
