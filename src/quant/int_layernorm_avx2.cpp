// AVX2 token of int_layernorm_ptf, bit-identical to the scalar row in int_layernorm.cpp: the
// same float32 operations per value in the same order (divisions stay divisions, no FMA), code
// sums in double (exact under the checked bounds), and the rare channels whose |A_c| lies within
// 2^-10 of a power of two (where floor(log2) needs the libm call) recomputed by the scalar
// int_ln_channel.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "quant/int_layernorm_impl.h"

namespace qvit::quant_detail {

bool int_ln_row_avx2(const float* xr, float* yr, const IntLnRow& k, float* xq) {
  const int64_t C = k.C;
  if (C > (int64_t{1} << 14)) return false;
  const int64_t n8 = C & ~int64_t{7};
  const __m256 vlimit = _mm256_set1_ps(524288.0f);  // 2^19: sums of squares stay below 2^53
  __m256d s1_lo = _mm256_setzero_pd(), s1_hi = _mm256_setzero_pd();
  __m256d s2_lo = _mm256_setzero_pd(), s2_hi = _mm256_setzero_pd();
  __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  int64_t c = 0;
  for (; c < n8; c += 8) {
    const __m256 v = _mm256_div_ps(_mm256_loadu_ps(xr + c), _mm256_loadu_ps(k.s_in + c));
    const __m256 q = _mm256_mul_ps(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                   _mm256_loadu_ps(k.shift + c));
    ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_and_ps(q, abs_mask), vlimit, _CMP_LE_OQ));  // NaN: not ok
    _mm256_storeu_ps(xq + c, q);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(q));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(q, 1));
    s1_lo = _mm256_add_pd(s1_lo, lo);
    s1_hi = _mm256_add_pd(s1_hi, hi);
    s2_lo = _mm256_add_pd(s2_lo, _mm256_mul_pd(lo, lo));
    s2_hi = _mm256_add_pd(s2_hi, _mm256_mul_pd(hi, hi));
  }
  if (_mm256_movemask_ps(ok) != 0xff) return false;
  alignas(32) double l1[4], l2[4];
  _mm256_store_pd(l1, _mm256_add_pd(s1_lo, s1_hi));
  _mm256_store_pd(l2, _mm256_add_pd(s2_lo, s2_hi));
  double d1 = (l1[0] + l1[1]) + (l1[2] + l1[3]);  // exact: integers below 2^53
  double d2 = (l2[0] + l2[1]) + (l2[2] + l2[3]);
  if (!int_ln_codes_tail(xr, k, c, xq, &d1, &d2)) return false;
  const int64_t s1 = static_cast<int64_t>(d1);
  const __int128 s2 = static_cast<int64_t>(d2);
  float a_base, mean_over_std;
  if (!int_ln_token(s1, s2, k, &a_base, &mean_over_std)) {
    int_ln_constant_token(yr, k);
    return true;
  }

  const __m256 va_base = _mm256_set1_ps(a_base), vmos = _mm256_set1_ps(mean_over_std);
  const __m256 vs_out = _mm256_set1_ps(k.s_out), vzero = _mm256_setzero_ps();
  const __m256 vone = _mm256_set1_ps(1.0f), vminus_one = _mm256_set1_ps(-1.0f);
  const __m256 v256 = _mm256_set1_ps(256.0f), v255 = _mm256_set1_ps(255.0f);
  const __m256i vff = _mm256_set1_epi32(0xff), vfrac = _mm256_set1_epi32(0x7fffff);
  const __m256i edge_lo = _mm256_set1_epi32((1 << 13) - 1);            // frac >= 2^13
  const __m256i edge_hi = _mm256_set1_epi32(0x800000 - (1 << 13) + 1);  // frac <= 2^23 - 2^13
  for (c = 0; c < n8; c += 8) {
    const __m256 gamma = _mm256_loadu_ps(k.gamma + c), beta = _mm256_loadu_ps(k.beta + c);
    const __m256 a = _mm256_div_ps(_mm256_mul_ps(va_base, gamma), vs_out);
    const __m256 a_abs = _mm256_and_ps(a, abs_mask);
    const __m256 sign = _mm256_or_ps(_mm256_and_ps(_mm256_cmp_ps(a, vzero, _CMP_GT_OQ), vone),
                                     _mm256_and_ps(_mm256_cmp_ps(a, vzero, _CMP_LT_OQ), vminus_one));
    const __m256i bits = _mm256_castps_si256(a_abs);
    const __m256i exp_field = _mm256_and_si256(_mm256_srli_epi32(bits, 23), vff);
    const __m256i frac = _mm256_and_si256(bits, vfrac);
    // fast lanes: normal (exponent field 1..254) and frac in [2^13, 2^23 - 2^13]
    const __m256i normal = _mm256_andnot_si256(
        _mm256_or_si256(_mm256_cmpeq_epi32(exp_field, _mm256_setzero_si256()), _mm256_cmpeq_epi32(exp_field, vff)),
        _mm256_set1_epi32(-1));
    const __m256i fast = _mm256_and_si256(
        normal, _mm256_and_si256(_mm256_cmpgt_epi32(frac, edge_lo), _mm256_cmpgt_epi32(edge_hi, frac)));
    // n = clamp(7 - e, 0, 31) with e = exp_field - 127, i.e. clamp(134 - exp_field, 0, 31)
    __m256i n = _mm256_sub_epi32(_mm256_set1_epi32(134), exp_field);
    n = _mm256_min_epi32(_mm256_max_epi32(n, _mm256_setzero_si256()), _mm256_set1_epi32(31));
    const __m256 pow_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    const __m256 v = _mm256_mul_ps(a_abs, pow_n);
    const __m256 m = _mm256_blendv_ps(v255, _mm256_cvtepi32_ps(_mm256_cvttps_epi32(v)),
                                      _mm256_cmp_ps(v, v256, _CMP_LT_OQ));
    const __m256 b = _mm256_round_ps(
        _mm256_mul_ps(_mm256_div_ps(_mm256_sub_ps(beta, _mm256_mul_ps(vmos, gamma)), vs_out), pow_n),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 num = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(sign, m), _mm256_loadu_ps(xq + c)), b);
    const __m256 code = _mm256_round_ps(_mm256_div_ps(num, pow_n), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(yr + c, _mm256_mul_ps(code, vs_out));
    const int fast_bits = _mm256_movemask_ps(_mm256_castsi256_ps(fast));
    if (fast_bits != 0xff) {
      for (int i = 0; i < 8; ++i) {
        if (!((fast_bits >> i) & 1)) yr[c + i] = int_ln_channel(c + i, xq[c + i], a_base, mean_over_std, k);
      }
    }
  }
  for (; c < C; ++c) yr[c] = int_ln_channel(c, xq[c], a_base, mean_over_std, k);
  return true;
}

}  // namespace qvit::quant_detail
