// Exact (erf) GELU: reference in double and the parallel dispatcher.
#include <cmath>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {
namespace kernels_detail {

void gelu_span_f32_ref(const float* x, float* y, int64_t n) {
  constexpr double kInvSqrt2 = 0.70710678118654752440;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    y[i] = static_cast<float>(0.5 * v * (1.0 + std::erf(v * kInvSqrt2)));
  }
}

}  // namespace kernels_detail

namespace {

void gelu_parallel(void (*fn)(const float*, float*, int64_t), const float* x, float* y, int64_t n) {
  if (n < 0) fail("kernels", "gelu_f32: negative size {}", n);
  parallel_for(n, kernels_detail::kElementGrain,
               [&](int64_t i0, int64_t i1) { fn(x + i0, y + i0, i1 - i0); });
}

}  // namespace

void gelu_f32_ref(const float* x, float* y, int64_t n) {
  gelu_parallel(kernels_detail::gelu_span_f32_ref, x, y, n);
}

void gelu_f32(const float* x, float* y, int64_t n) {
  gelu_parallel(kernels_detail::use_avx2() ? kernels_detail::gelu_span_f32_avx2
                                           : kernels_detail::gelu_span_f32_ref,
                x, y, n);
}

}  // namespace qvit
