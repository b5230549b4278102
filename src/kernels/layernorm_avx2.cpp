// LayerNorm rows, AVX2+FMA: two passes in float with 32 partial sums, then one scale/shift pass.
#include <immintrin.h>

#include <cmath>

#include "kernels/avx2_util.h"
#include "kernels/kernels_internal.h"

namespace qvit::kernels_detail {
namespace {

// Sum of f(x[c]) over a row with 4x8 accumulators; tail lanes contribute f(fill) = 0.
template <typename F>
float row_sum(const float* x, int64_t C, float fill, F f) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t c = 0;
  for (; c + 32 <= C; c += 32) {
    a0 = f(_mm256_loadu_ps(x + c), a0);
    a1 = f(_mm256_loadu_ps(x + c + 8), a1);
    a2 = f(_mm256_loadu_ps(x + c + 16), a2);
    a3 = f(_mm256_loadu_ps(x + c + 24), a3);
  }
  for (; c + 8 <= C; c += 8) a0 = f(_mm256_loadu_ps(x + c), a0);
  if (c < C) a1 = f(avx2_load_tail(x + c, C - c, fill), a1);
  return avx2_hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

}  // namespace

void layernorm_rows_f32_avx2(const float* x, const float* gamma, const float* beta, float* y,
                             int64_t rows, int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    const float sum = row_sum(xr, C, 0.0f, [](__m256 v, __m256 acc) { return _mm256_add_ps(acc, v); });
    const float mean = sum / static_cast<float>(C);
    const __m256 vmean = _mm256_set1_ps(mean);
    const float sq = row_sum(xr, C, mean, [vmean](__m256 v, __m256 acc) {
      const __m256 d = _mm256_sub_ps(v, vmean);
      return _mm256_fmadd_ps(d, d, acc);
    });
    const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(C) + eps);
    const __m256 vrstd = _mm256_set1_ps(rstd);
    int64_t c = 0;
    for (; c + 8 <= C; c += 8) {
      const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vmean), vrstd);
      _mm256_storeu_ps(yr + c, _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + c), _mm256_loadu_ps(beta + c)));
    }
    if (c < C) {
      const __m256i m = avx2_tail_mask(C - c);
      const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + c, m), vmean), vrstd);
      avx2_store_tail(yr + c, C - c,
                      _mm256_fmadd_ps(d, _mm256_maskload_ps(gamma + c, m), _mm256_maskload_ps(beta + c, m)));
    }
  }
}

}  // namespace qvit::kernels_detail
