// AVX2 row of lis_softmax, bit-identical to the scalar row in lis.cpp: the same float32
// operations in the same order per element (divisions stay divisions, no FMA contraction), the
// row maximum is exact in any order, and the integer exp values are summed in double, which is
// exact while each is below 2^53 / cols (checked; otherwise the scalar row runs).
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "quant/lis_impl.h"
#include "quant/observer_impl.h"
#include "qvit/quant.h"

namespace qvit::quant_detail {

namespace {

constexpr float kZeroFromV = 49152.0f;  // 1.5 * 2^15: first v whose code is >= 16

// Scalar helpers identical to lis.cpp's, for the tail of a row.
inline float pow2s(int n) {
  uint32_t b = static_cast<uint32_t>(n + 127) << 23;
  float f;
  __builtin_memcpy(&f, &b, 4);
  return f;
}
inline float round_even(float v) {
  const float a = std::fabs(v);
  const float r = std::copysign((a + 12582912.0f) - 12582912.0f, v);
  return a < 8388608.0f ? r : v;
}

// 2^(30 - q) for integer-valued q in [0, 30] (lanes of q as int32).
inline __m256 pow2_30_minus(__m256i qi) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(157), qi), 23));
}

}  // namespace

bool lis_row_avx2(const float* x, float* p, uint8_t* codes, int64_t cols, const LisConsts& k, float* e) {
  const __m256 vS = _mm256_set1_ps(k.S);
  const int64_t n8 = cols & ~int64_t{7};
  // Row maximum of x / S (exact: max does not round). NaN/Inf rows go to the scalar path.
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j < n8; j += 8) vmax = _mm256_max_ps(_mm256_div_ps(_mm256_loadu_ps(x + j), vS), vmax);
  float t_max = -INFINITY;
  {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    for (float v : lanes) t_max = v > t_max ? v : t_max;
    for (; j < cols; ++j) {
      const float v = x[j] / k.S;
      t_max = v > t_max ? v : t_max;
    }
  }
  if (!std::isfinite(t_max)) return false;

  const double limit = 9007199254740992.0 / static_cast<double>(cols);  // 2^53 / cols
  const __m256 vtmax = _mm256_set1_ps(t_max), vtmin = _mm256_set1_ps(k.t_min);
  const __m256 vx0 = _mm256_set1_ps(k.x0), vb = _mm256_set1_ps(k.b_int), vc = _mm256_set1_ps(k.c_int);
  const __m256 vzero = _mm256_setzero_ps();
  const __m256 vlimit = _mm256_set1_ps(static_cast<float>(limit));
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  __m256 bad = _mm256_setzero_ps();  // lanes with NaN t or a value at/over the limit
  for (j = 0; j < n8; j += 8) {
    __m256 t = _mm256_sub_ps(_mm256_div_ps(_mm256_loadu_ps(x + j), vS), vtmax);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(t, t, _CMP_UNORD_Q));
    t = _mm256_blendv_ps(t, vtmin, _mm256_cmp_ps(t, vtmin, _CMP_LT_OQ));  // t < t_min ? t_min : t
    const __m256i qi = _mm256_cvttps_epi32(_mm256_div_ps(t, vx0));
    const __m256 q = _mm256_cvtepi32_ps(qi);
    const __m256 rem = _mm256_sub_ps(t, _mm256_mul_ps(vx0, q));
    __m256 poly = _mm256_add_ps(rem, vb);
    poly = _mm256_mul_ps(rem, poly);
    poly = _mm256_add_ps(poly, vc);
    __m256 ej = _mm256_floor_ps(_mm256_mul_ps(poly, pow2_30_minus(qi)));
    ej = _mm256_max_ps(ej, vzero);  // std::max(v, 0): NaN cannot occur once t is not NaN
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(ej, vlimit, _CMP_NLT_UQ));
    _mm256_storeu_ps(e + j, ej);
    sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(ej)));
    sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(ej, 1)));
  }
  if (_mm256_movemask_ps(bad) != 0) return false;
  double sum = 0;
  {
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(sum_lo, sum_hi));
    sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);  // exact: integers below 2^53
  }
  for (; j < cols; ++j) {
    float t = x[j] / k.S - t_max;
    if (std::isnan(t)) return false;
    t = t < k.t_min ? k.t_min : t;
    const float q = static_cast<float>(static_cast<int>(t / k.x0));
    const float rem = t - k.x0 * q;
    float poly = rem + k.b_int;
    poly = rem * poly;
    poly = poly + k.c_int;
    const float ej = std::max(std::floor(poly * pow2s(30 - static_cast<int>(q))), 0.0f);
    if (!(static_cast<double>(ej) < limit)) return false;
    e[j] = ej;
    sum += ej;
  }

  if (sum == 0) {
    for (j = 0; j < cols; ++j) {
      p[j] = 0.0f;
      if (codes) codes[j] = kLisZeroCode;
    }
    return true;
  }
  const float sum_f = static_cast<float>(sum);  // the exact integer sum, rounded once
  const __m256 vsum = _mm256_set1_ps(sum_f);
  const __m256 vzero_from = _mm256_set1_ps(kZeroFromV), vone = _mm256_set1_ps(1.0f);
  const __m256i v16 = _mm256_set1_epi32(kLisZeroCode), v127 = _mm256_set1_epi32(127);
  const __m256i vone_i = _mm256_set1_epi32(1);
  for (j = 0; j < n8; j += 8) {
    // v = round(sum / e), inf for e = 0; code = floor(log2 v) + (v >= 1.5 2^k), 16 from 49152.
    const __m256 v = _mm256_round_ps(_mm256_div_ps(vsum, _mm256_loadu_ps(e + j)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i bits = _mm256_castps_si256(v);
    __m256i code = _mm256_add_epi32(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), v127),
                                    _mm256_and_si256(_mm256_srli_epi32(bits, 22), vone_i));
    code = _mm256_andnot_si256(_mm256_castps_si256(_mm256_cmp_ps(v, vone, _CMP_LT_OQ)), code);  // v < 1 -> 0
    const __m256i is_zero = _mm256_castps_si256(_mm256_cmp_ps(v, vzero_from, _CMP_NLT_UQ));
    code = _mm256_blendv_epi8(code, v16, is_zero);
    // probability 2^-code, or 0 for the zero code
    const __m256i pbits = _mm256_slli_epi32(_mm256_sub_epi32(v127, code), 23);
    _mm256_storeu_ps(p + j, _mm256_castsi256_ps(_mm256_andnot_si256(is_zero, pbits)));
    if (codes) {
      alignas(32) int32_t c[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(c), code);
      for (int i = 0; i < 8; ++i) codes[j + i] = static_cast<uint8_t>(c[i]);
    }
  }
  for (; j < cols; ++j) {
    const uint8_t code = lis_code(round_even(sum_f / e[j]));
    p[j] = code == kLisZeroCode ? 0.0f : pow2s(-static_cast<int>(code));
    if (codes) codes[j] = code;
  }
  return true;
}

}  // namespace qvit::quant_detail
