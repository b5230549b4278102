// Row softmax, AVX2+FMA: max, exp(x - max) with the running sum, scale by 1/sum. Row tails go
// through the same vector code with masked loads/stores, so every element sees the same exp.
#include <immintrin.h>

#include <limits>

#include "kernels/avx2_util.h"
#include "kernels/kernels_internal.h"

namespace qvit::kernels_detail {

void softmax_rows_f32_avx2(float* x, int64_t rows, int64_t cols) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    __m256 m0 = _mm256_set1_ps(kNegInf), m1 = m0;
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
      m0 = _mm256_max_ps(m0, _mm256_loadu_ps(xr + c));
      m1 = _mm256_max_ps(m1, _mm256_loadu_ps(xr + c + 8));
    }
    for (; c + 8 <= cols; c += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(xr + c));
    if (c < cols) m1 = _mm256_max_ps(m1, avx2_load_tail(xr + c, cols - c, kNegInf));
    const __m256 vmax = _mm256_set1_ps(avx2_hmax(_mm256_max_ps(m0, m1)));

    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    c = 0;
    for (; c + 16 <= cols; c += 16) {
      const __m256 e0 = avx2_exp(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vmax));
      const __m256 e1 = avx2_exp(_mm256_sub_ps(_mm256_loadu_ps(xr + c + 8), vmax));
      _mm256_storeu_ps(xr + c, e0);
      _mm256_storeu_ps(xr + c + 8, e1);
      s0 = _mm256_add_ps(s0, e0);
      s1 = _mm256_add_ps(s1, e1);
    }
    for (; c + 8 <= cols; c += 8) {
      const __m256 e = avx2_exp(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vmax));
      _mm256_storeu_ps(xr + c, e);
      s0 = _mm256_add_ps(s0, e);
    }
    if (c < cols) {
      const __m256i m = avx2_tail_mask(cols - c);
      // Inactive lanes load -inf so their exp is 0 and they add nothing to the sum.
      const __m256 e = avx2_exp(_mm256_sub_ps(avx2_load_tail(xr + c, cols - c, kNegInf), vmax));
      _mm256_maskstore_ps(xr + c, m, e);
      s1 = _mm256_add_ps(s1, e);
    }
    const __m256 vinv = _mm256_set1_ps(1.0f / avx2_hsum(_mm256_add_ps(s0, s1)));
    c = 0;
    for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(xr + c, _mm256_mul_ps(_mm256_loadu_ps(xr + c), vinv));
    if (c < cols) {
      const __m256i m = avx2_tail_mask(cols - c);
      _mm256_maskstore_ps(xr + c, m, _mm256_mul_ps(_mm256_maskload_ps(xr + c, m), vinv));
    }
  }
}

}  // namespace qvit::kernels_detail
