// AVX-512 row of the engine's LIS (IntLis::row, engine_ops.h), chosen with the int8 GEMM's path
// (qgemm_isa() == avx512vnni). The steps of lis_row_avx2 on wider vectors: row max / min over 64
// bytes, the exact int64 sum with 8-lane gathers, 16 divisions at a time, and — when the CPU has
// AVX-512 VBMI — the per-column byte lookup of the codes with two vpermi2b (128 entries each)
// chosen by the top bit of the index. Same codes as IntLis::row_ref (tested).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/engine_ops.h"
#include "quant/observer_impl.h"

// GCC 12 reports its own _mm512_undefined_* placeholders inside the conversion and gather
// intrinsics as (maybe) uninitialized (a false positive: those lanes are fully written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace qvit::engine {

namespace {

// codes[j] = tab[l[j] - mn] for j < cols, tab padded to 256 entries.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void lookup_vbmi(const uint8_t* tab, const uint8_t* l,
                                                                          uint8_t mn, uint8_t* codes,
                                                                          int64_t cols) {
  const __m512i t0 = _mm512_loadu_si512(tab), t1 = _mm512_loadu_si512(tab + 64);
  const __m512i t2 = _mm512_loadu_si512(tab + 128), t3 = _mm512_loadu_si512(tab + 192);
  const __m512i base = _mm512_set1_epi8(static_cast<char>(mn));
  for (int64_t j = 0; j < cols; j += 64) {
    const __mmask64 k = cols - j >= 64 ? ~__mmask64{0} : (__mmask64{1} << (cols - j)) - 1;
    const __m512i idx = _mm512_sub_epi8(_mm512_maskz_loadu_epi8(k, l + j), base);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);  // entries 0..127 (bit 6 picks t1)
    const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);  // entries 128..255
    const __m512i v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
    _mm512_mask_storeu_epi8(codes + j, k, v);
  }
}

bool has_vbmi() {
  static const bool v = __builtin_cpu_supports("avx512vbmi");
  return v;
}

}  // namespace

void lis_row_avx512(const IntLis& lis, const uint8_t* l, uint8_t* codes, int64_t cols) {
  int64_t j = 0;
  __m512i mx8 = _mm512_setzero_si512(), mn8 = _mm512_set1_epi8(char(255));
  for (; j + 64 <= cols; j += 64) {
    const __m512i v = _mm512_loadu_si512(l + j);
    mx8 = _mm512_max_epu8(mx8, v);
    mn8 = _mm512_min_epu8(mn8, v);
  }
  if (j < cols) {  // masked tail: max ignores the zeros, min sees 255 in the masked-off lanes
    const __mmask64 k = (__mmask64{1} << (cols - j)) - 1;
    mx8 = _mm512_max_epu8(mx8, _mm512_maskz_loadu_epi8(k, l + j));
    mn8 = _mm512_min_epu8(mn8, _mm512_mask_loadu_epi8(_mm512_set1_epi8(char(255)), k, l + j));
  }
  // Horizontal max / min of the 64 bytes: halve the width down to 16 bytes, then byte shifts.
  __m256i mx32 = _mm256_max_epu8(_mm512_castsi512_si256(mx8), _mm512_extracti64x4_epi64(mx8, 1));
  __m256i mn32 = _mm256_min_epu8(_mm512_castsi512_si256(mn8), _mm512_extracti64x4_epi64(mn8, 1));
  __m128i mx16 = _mm_max_epu8(_mm256_castsi256_si128(mx32), _mm256_extracti128_si256(mx32, 1));
  __m128i mn16 = _mm_min_epu8(_mm256_castsi256_si128(mn32), _mm256_extracti128_si256(mn32, 1));
  mx16 = _mm_max_epu8(mx16, _mm_srli_si128(mx16, 8));
  mn16 = _mm_min_epu8(mn16, _mm_srli_si128(mn16, 8));
  mx16 = _mm_max_epu8(mx16, _mm_srli_si128(mx16, 4));
  mn16 = _mm_min_epu8(mn16, _mm_srli_si128(mn16, 4));
  mx16 = _mm_max_epu8(mx16, _mm_srli_si128(mx16, 2));
  mn16 = _mm_min_epu8(mn16, _mm_srli_si128(mn16, 2));
  mx16 = _mm_max_epu8(mx16, _mm_srli_si128(mx16, 1));
  mn16 = _mm_min_epu8(mn16, _mm_srli_si128(mn16, 1));
  const uint8_t mx = static_cast<uint8_t>(_mm_cvtsi128_si32(mx16));
  const uint8_t mn = static_cast<uint8_t>(_mm_cvtsi128_si32(mn16));
  const int64_t* ei = lis.e_row(mx);
  const float* ef = lis.ef_row(mx);

  __m512i s = _mm512_setzero_si512();
  for (j = 0; j + 8 <= cols; j += 8) {
    int64_t w;
    std::memcpy(&w, l + j, 8);
    const __m256i idx = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(w));
    s = _mm512_add_epi64(s, _mm512_i32gather_epi64(idx, ei, 8));
  }
  int64_t sum = _mm512_reduce_add_epi64(s);
  for (; j < cols; ++j) sum += ei[l[j]];
  if (sum == 0) {
    std::fill(codes, codes + cols, kLisZeroCode);
    return;
  }
  const __m512 sum_f = _mm512_set1_ps(static_cast<float>(sum));
  const __m512 zero_from = _mm512_set1_ps(49152.0f), one = _mm512_set1_ps(1.0f);
  const __m512i bias = _mm512_set1_epi32(127), zcode = _mm512_set1_epi32(kLisZeroCode);
  // The 16 codes of round(sum / e) for 16 table values (lis_code: floor(log2 v) + the top fraction
  // bit, 0 below 1, the zero code from 49152 and for NaN), stored as bytes.
  const auto sixteen = [&](__m512 e, uint8_t* dst) {
    const __m512 v = _mm512_roundscale_ps(_mm512_div_ps(sum_f, e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i bits = _mm512_castps_si512(v);
    __m512i c = _mm512_add_epi32(_mm512_sub_epi32(_mm512_srli_epi32(bits, 23), bias),
                                 _mm512_and_si512(_mm512_srli_epi32(bits, 22), _mm512_set1_epi32(1)));
    c = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(v, one, _CMP_NLT_UQ), c);        // 0 below 1
    c = _mm512_mask_mov_epi32(zcode, _mm512_cmp_ps_mask(v, zero_from, _CMP_LT_OQ), c);  // zero code
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(c));
  };
  const float sf = static_cast<float>(sum);
  const int64_t range = int64_t{mx} - mn + 1;
  if (range <= cols) {
    alignas(64) uint8_t tab[256 + 16] = {};
    int64_t t = 0;
    for (; t + 16 <= range; t += 16) sixteen(_mm512_loadu_ps(ef + mn + t), tab + t);
    for (; t < range; ++t) tab[t] = quant_detail::lis_code(std::nearbyint(sf / ef[mn + t]));
    if (has_vbmi()) {
      lookup_vbmi(tab, l, mn, codes, cols);
    } else {
      for (j = 0; j < cols; ++j) codes[j] = tab[l[j] - mn];
    }
    return;
  }
  for (j = 0; j + 16 <= cols; j += 16) {
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(l + j)));
    sixteen(_mm512_i32gather_ps(idx, ef, 4), codes + j);
  }
  for (; j < cols; ++j) codes[j] = quant_detail::lis_code(std::nearbyint(sf / ef[l[j]]));
}

}  // namespace qvit::engine
