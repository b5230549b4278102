// Row softmax, AVX2+FMA: max, exp(x - max) with the running sum, scale by 1/sum. Row tails go
// through the same vector code (partial loads/stores), so every element sees the same exp.
// Attention's variant first adds up to two [rows, cols] terms (relative position bias, window
// mask) in the max pass, saving a pass over the scores.
#include <immintrin.h>

#include <limits>

#include "kernels/avx2_util.h"
#include "kernels/kernels_internal.h"

namespace qvit::kernels_detail {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// x[c] (+= a[c] + b[c] when present, written back); returns the row max.
template <bool kAddA, bool kAddB>
float add_and_max(float* xr, const float* a, const float* b, int64_t cols) {
  auto term = [&](int64_t c) {
    __m256 v = _mm256_loadu_ps(xr + c);
    if (kAddA) v = _mm256_add_ps(v, _mm256_loadu_ps(a + c));
    if (kAddB) v = _mm256_add_ps(v, _mm256_loadu_ps(b + c));
    if (kAddA || kAddB) _mm256_storeu_ps(xr + c, v);
    return v;
  };
  __m256 m0 = _mm256_set1_ps(kNegInf), m1 = m0;
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    m0 = _mm256_max_ps(m0, term(c));
    m1 = _mm256_max_ps(m1, term(c + 8));
  }
  for (; c + 8 <= cols; c += 8) m0 = _mm256_max_ps(m0, term(c));
  if (c < cols) {
    const int64_t n = cols - c;
    __m256 v = avx2_load_tail(xr + c, n, kNegInf);
    if (kAddA) v = _mm256_add_ps(v, avx2_load_tail(a + c, n, 0.0f));
    if (kAddB) v = _mm256_add_ps(v, avx2_load_tail(b + c, n, 0.0f));
    if (kAddA || kAddB) avx2_store_tail(xr + c, n, v);
    m1 = _mm256_max_ps(m1, v);
  }
  return avx2_hmax(_mm256_max_ps(m0, m1));
}

}  // namespace

void softmax_rows_f32_avx2(float* x, int64_t rows, int64_t cols) {
  softmax_add_rows_f32_avx2(x, rows, cols, nullptr, nullptr);
}

void softmax_add_rows_f32_avx2(float* x, int64_t rows, int64_t cols, const float* a,
                               const float* b) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    const float* ar = a ? a + r * cols : nullptr;
    const float* br = b ? b + r * cols : nullptr;
    const float row_max = a ? (b ? add_and_max<true, true>(xr, ar, br, cols)
                                 : add_and_max<true, false>(xr, ar, br, cols))
                            : (b ? add_and_max<false, true>(xr, ar, br, cols)
                                 : add_and_max<false, false>(xr, ar, br, cols));
    const __m256 vmax = _mm256_set1_ps(row_max);
    int64_t c = 0;

    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
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
      // Inactive lanes load -inf so their exp is 0 and they add nothing to the sum.
      const __m256 e = avx2_exp(_mm256_sub_ps(avx2_load_tail(xr + c, cols - c, kNegInf), vmax));
      avx2_store_tail(xr + c, cols - c, e);
      s1 = _mm256_add_ps(s1, e);
    }
    const __m256 vinv = _mm256_set1_ps(1.0f / avx2_hsum(_mm256_add_ps(s0, s1)));
    c = 0;
    for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(xr + c, _mm256_mul_ps(_mm256_loadu_ps(xr + c), vinv));
    if (c < cols) {
      avx2_store_tail(xr + c, cols - c, _mm256_mul_ps(avx2_load_tail(xr + c, cols - c, 0.0f), vinv));
    }
  }
}

}  // namespace qvit::kernels_detail
