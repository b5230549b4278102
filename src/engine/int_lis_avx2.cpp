// AVX2 row of the engine's LIS (IntLis::row, engine_ops.h): the row maximum and minimum with
// vpmaxub/vpminub, the exact int64 sum of the exp table entries with 64-bit gathers, then the
// float division sum / e, round to nearest even (vroundps, as nearbyint in the default rounding
// mode) and lis_code's bit arithmetic — once per logit code in [min, max] when that range is not
// longer than the row (a byte table), else per column with float gathers. Same codes as
// IntLis::row_ref (tested).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/engine_ops.h"
#include "quant/observer_impl.h"

namespace qvit::engine {

void lis_row_avx2(const IntLis& lis, const uint8_t* l, uint8_t* codes, int64_t cols) {
  int64_t j = 0;
  __m256i mx8 = _mm256_setzero_si256(), mn8 = _mm256_set1_epi8(char(255));
  for (; j + 32 <= cols; j += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(l + j));
    mx8 = _mm256_max_epu8(mx8, v);
    mn8 = _mm256_min_epu8(mn8, v);
  }
  alignas(32) uint8_t mb[32], nb[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(mb), mx8);
  _mm256_store_si256(reinterpret_cast<__m256i*>(nb), mn8);
  uint8_t mx = 0, mn = 255;
  for (int t = 0; t < 32; ++t) {
    mx = std::max(mx, mb[t]);
    mn = std::min(mn, nb[t]);
  }
  for (; j < cols; ++j) {
    mx = std::max(mx, l[j]);
    mn = std::min(mn, l[j]);
  }
  const int64_t* ei = lis.e_row(mx);
  const float* ef = lis.ef_row(mx);

  __m256i s = _mm256_setzero_si256();
  j = 0;
  for (; j + 4 <= cols; j += 4) {
    int32_t w;
    std::memcpy(&w, l + j, 4);
    const __m128i idx = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(w));
    s = _mm256_add_epi64(s, _mm256_i32gather_epi64(reinterpret_cast<const long long*>(ei), idx, 8));
  }
  alignas(32) int64_t sb[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(sb), s);
  int64_t sum = sb[0] + sb[1] + sb[2] + sb[3];
  for (; j < cols; ++j) sum += ei[l[j]];
  if (sum == 0) {
    std::fill(codes, codes + cols, kLisZeroCode);
    return;
  }
  const __m256 sum_f = _mm256_set1_ps(static_cast<float>(sum));
  const __m256 zero_from = _mm256_set1_ps(49152.0f), one = _mm256_set1_ps(1.0f);
  const __m256i bias = _mm256_set1_epi32(127), zcode = _mm256_set1_epi32(kLisZeroCode);
  // The 8 codes of round(sum / e) for 8 table values (lis_code: floor(log2 v) + the top fraction
  // bit, 0 below 1, the zero code from 49152 and for NaN), stored as bytes.
  const auto eight = [&](__m256 e, uint8_t* dst) {
    const __m256 v = _mm256_round_ps(_mm256_div_ps(sum_f, e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i bits = _mm256_castps_si256(v);
    __m256i c = _mm256_add_epi32(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), bias),
                                 _mm256_and_si256(_mm256_srli_epi32(bits, 22), _mm256_set1_epi32(1)));
    c = _mm256_andnot_si256(_mm256_castps_si256(_mm256_cmp_ps(v, one, _CMP_LT_OQ)), c);
    c = _mm256_blendv_epi8(zcode, c, _mm256_castps_si256(_mm256_cmp_ps(v, zero_from, _CMP_LT_OQ)));
    const __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(c, c), _mm256_setzero_si256());
    const uint32_t w0 = static_cast<uint32_t>(_mm256_cvtsi256_si32(p));
    const uint32_t w1 = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(p, 1)));
    const uint64_t out = uint64_t{w0} | (uint64_t{w1} << 32);
    std::memcpy(dst, &out, 8);
  };
  const float sf = static_cast<float>(sum);
  const int64_t range = int64_t{mx} - mn + 1;
  if (range <= cols) {
    // The code depends only on the logit code: one code per value in [mn, mx] from contiguous
    // table entries (no gathers), then a byte lookup per column.
    alignas(32) uint8_t tab[256 + 8];
    int64_t t = 0;
    for (; t + 8 <= range; t += 8) eight(_mm256_loadu_ps(ef + mn + t), tab + t);
    for (; t < range; ++t) tab[t] = quant_detail::lis_code(std::nearbyint(sf / ef[mn + t]));
    for (j = 0; j < cols; ++j) codes[j] = tab[l[j] - mn];
    return;
  }
  j = 0;
  for (; j + 8 <= cols; j += 8) {
    int64_t w;
    std::memcpy(&w, l + j, 8);
    eight(_mm256_i32gather_ps(ef, _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(w)), 4), codes + j);
  }
  for (; j < cols; ++j) codes[j] = quant_detail::lis_code(std::nearbyint(sf / ef[l[j]]));
}

// a[j] = 2^(15 - codes[j]) for codes 1..15, 0 for codes 0 and 16 (kPow2 of int_attention.cpp) with
// byte shuffles (code 16 = 0x10 selects entry 0 like code 0); returns whether any code is 0.
bool lis_pow2_avx2(const uint8_t* codes, int64_t n, int16_t* a) {
  const __m128i lo = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, char(128), 64, 32, 16, 8, 4, 2, 1);
  const __m128i hi = _mm_setr_epi8(0, 64, 32, 16, 8, 4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m128i any0 = _mm_setzero_si128();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + j));
    any0 = _mm_or_si128(any0, _mm_cmpeq_epi8(c, _mm_setzero_si128()));
    const __m128i l = _mm_shuffle_epi8(lo, c), h = _mm_shuffle_epi8(hi, c);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a + j), _mm_unpacklo_epi8(l, h));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a + j + 8), _mm_unpackhi_epi8(l, h));
  }
  bool zero = _mm_movemask_epi8(any0) != 0;
  for (; j < n; ++j) {
    const int c = codes[j];
    a[j] = (c == 0 || c >= kLisZeroCode) ? int16_t{0} : static_cast<int16_t>(1 << (15 - c));
    zero |= c == 0;
  }
  return zero;
}

}  // namespace qvit::engine
