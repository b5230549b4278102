// AVX-512 token of int_layernorm_ptf: int_ln_row_avx2 (int_layernorm_avx2.cpp) on 16 lanes, the
// same float32 operations per value in the same order (divisions stay divisions, no FMA), code
// sums in double (exact under the same bounds), and the lanes whose |A_c| lies within 2^-10 of a
// power of two recomputed by the scalar int_ln_channel. Bit-identical to the AVX2 and scalar rows
// (tested). The integer engine takes it with its AVX-512 path (qgemm_isa() == avx512vnni).
#include <immintrin.h>

// GCC 12 reports its own _mm512_undefined_* placeholders inside the rounding and extraction
// intrinsics as (maybe) uninitialized (a false positive: those lanes are fully written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cmath>
#include <cstdint>

#include "quant/int_layernorm_impl.h"

namespace qvit::quant_detail {

namespace {
inline __m512 abs_ps(__m512 v) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}
}  // namespace

bool int_ln_row_avx512(const float* xr, float* yr, const IntLnRow& k, float* xq) {
  const int64_t C = k.C;
  if (C > (int64_t{1} << 14)) return false;
  const int64_t n16 = C & ~int64_t{15};
  const __m512 vlimit = _mm512_set1_ps(524288.0f);  // 2^19: sums of squares stay below 2^53
  __m512d s1_lo = _mm512_setzero_pd(), s1_hi = _mm512_setzero_pd();
  __m512d s2_lo = _mm512_setzero_pd(), s2_hi = _mm512_setzero_pd();
  __mmask16 ok = 0xffff;
  int64_t c = 0;
  for (; c < n16; c += 16) {
    const __m512 v = _mm512_div_ps(_mm512_loadu_ps(xr + c), _mm512_loadu_ps(k.s_in + c));
    const __m512 q = _mm512_mul_ps(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                   _mm512_loadu_ps(k.shift + c));
    ok &= _mm512_cmp_ps_mask(abs_ps(q), vlimit, _CMP_LE_OQ);  // NaN: not ok
    _mm512_storeu_ps(xq + c, q);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(q));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(q), 1)));
    s1_lo = _mm512_add_pd(s1_lo, lo);
    s1_hi = _mm512_add_pd(s1_hi, hi);
    s2_lo = _mm512_add_pd(s2_lo, _mm512_mul_pd(lo, lo));
    s2_hi = _mm512_add_pd(s2_hi, _mm512_mul_pd(hi, hi));
  }
  if (ok != 0xffff) return false;
  // Exact: integers below 2^53, so any order of the additions gives the same sums.
  double d1 = _mm512_reduce_add_pd(_mm512_add_pd(s1_lo, s1_hi));
  double d2 = _mm512_reduce_add_pd(_mm512_add_pd(s2_lo, s2_hi));
  if (!int_ln_codes_tail(xr, k, c, xq, &d1, &d2)) return false;
  const int64_t s1 = static_cast<int64_t>(d1);
  const __int128 s2 = static_cast<int64_t>(d2);
  float a_base, mean_over_std;
  if (!int_ln_token(s1, s2, k, &a_base, &mean_over_std)) {
    int_ln_constant_token(yr, k);
    return true;
  }

  const __m512 va_base = _mm512_set1_ps(a_base), vmos = _mm512_set1_ps(mean_over_std);
  const __m512 vs_out = _mm512_set1_ps(k.s_out), vzero = _mm512_setzero_ps();
  const __m512 vone = _mm512_set1_ps(1.0f), vminus_one = _mm512_set1_ps(-1.0f);
  const __m512 v256 = _mm512_set1_ps(256.0f), v255 = _mm512_set1_ps(255.0f);
  const __m512i vff = _mm512_set1_epi32(0xff), vfrac = _mm512_set1_epi32(0x7fffff);
  const __m512i edge_lo = _mm512_set1_epi32((1 << 13) - 1);            // frac >= 2^13
  const __m512i edge_hi = _mm512_set1_epi32(0x800000 - (1 << 13) + 1);  // frac <= 2^23 - 2^13
  for (c = 0; c < n16; c += 16) {
    const __m512 gamma = _mm512_loadu_ps(k.gamma + c), beta = _mm512_loadu_ps(k.beta + c);
    const __m512 a = _mm512_div_ps(_mm512_mul_ps(va_base, gamma), vs_out);
    const __m512 a_abs = abs_ps(a);
    // sign(A): 1, -1, or 0 (for 0 and NaN), as the AVX2 row's two compares
    __m512 sign = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, vzero, _CMP_GT_OQ), vzero, vone);
    sign = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, vzero, _CMP_LT_OQ), sign, vminus_one);
    const __m512i bits = _mm512_castps_si512(a_abs);
    const __m512i exp_field = _mm512_and_si512(_mm512_srli_epi32(bits, 23), vff);
    const __m512i frac = _mm512_and_si512(bits, vfrac);
    // fast lanes: normal (exponent field 1..254) and frac in [2^13, 2^23 - 2^13]
    const __mmask16 normal = _mm512_cmpneq_epi32_mask(exp_field, _mm512_setzero_si512()) &
                             _mm512_cmpneq_epi32_mask(exp_field, vff);
    const __mmask16 fast = normal & _mm512_cmpgt_epi32_mask(frac, edge_lo) & _mm512_cmpgt_epi32_mask(edge_hi, frac);
    // n = clamp(7 - e, 0, 31) with e = exp_field - 127, i.e. clamp(134 - exp_field, 0, 31)
    __m512i n = _mm512_sub_epi32(_mm512_set1_epi32(134), exp_field);
    n = _mm512_min_epi32(_mm512_max_epi32(n, _mm512_setzero_si512()), _mm512_set1_epi32(31));
    const __m512 pow_n = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
    const __m512 v = _mm512_mul_ps(a_abs, pow_n);
    const __m512 m = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v256, _CMP_LT_OQ), v255,
                                          _mm512_cvtepi32_ps(_mm512_cvttps_epi32(v)));
    const __m512 b = _mm512_roundscale_ps(
        _mm512_mul_ps(_mm512_div_ps(_mm512_sub_ps(beta, _mm512_mul_ps(vmos, gamma)), vs_out), pow_n),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 num = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(sign, m), _mm512_loadu_ps(xq + c)), b);
    const __m512 code =
        _mm512_roundscale_ps(_mm512_div_ps(num, pow_n), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_storeu_ps(yr + c, _mm512_mul_ps(code, vs_out));
    if (fast != 0xffff) {
      for (int i = 0; i < 16; ++i) {
        if (!((fast >> i) & 1)) yr[c + i] = int_ln_channel(c + i, xq[c + i], a_base, mean_over_std, k);
      }
    }
  }
  for (; c < C; ++c) yr[c] = int_ln_channel(c, xq[c], a_base, mean_over_std, k);
  return true;
}

}  // namespace qvit::quant_detail
