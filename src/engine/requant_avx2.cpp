// AVX2 requantization rows (Requant, engine_ops.h): 8 accumulators per step in two sets of 64-bit
// lanes (even / odd channels). Same integers as Requant::row_*_ref for every input (tested).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "engine/engine_ops.h"

namespace qvit::engine {

namespace {

inline __m256i ld(const int64_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

// floor((a m + c) / 2^t) clamped to [lo, hi], 64-bit lanes (a: the low 32 bits of each lane).
inline __m256i lanes(__m256i a, const int64_t* m, const int64_t* c, const int64_t* t, const int64_t* o,
                     __m256i lo, __m256i hi) {
  const __m256i sign = _mm256_set1_epi64x(INT64_MIN);
  __m256i v = _mm256_add_epi64(_mm256_mul_epi32(a, ld(m)), ld(c));
  v = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(v, sign), ld(t)), ld(o));
  v = _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
  return _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
}

}  // namespace

void requant_row_avx2(const Requant& r, const int32_t* acc, int64_t n, int32_t zero, int32_t lo,
                      int32_t hi, uint8_t* y8, int32_t* y32, int64_t ch0) {
  const __m256i lo64 = _mm256_set1_epi64x(int64_t{lo} - zero), hi64 = _mm256_set1_epi64x(int64_t{hi} - zero);
  const __m256i z = _mm256_set1_epi32(zero);
  const bool bcast = r.N == 1;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const Requant::Group& g = r.groups[bcast ? 0 : (ch0 + j) / 8];
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j));
    const __m256i e = lanes(a, g.me, g.ce, g.te, g.oe, lo64, hi64);
    const __m256i o = lanes(_mm256_srli_epi64(a, 32), g.mo, g.co, g.to, g.oo, lo64, hi64);
    const __m256i v = _mm256_add_epi32(_mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA), z);
    if (y32) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y32 + j), v);
    } else {
      const __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(v, v), _mm256_setzero_si256());
      const uint32_t w0 = static_cast<uint32_t>(_mm256_cvtsi256_si32(p));
      const uint32_t w1 = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(p, 1)));
      const uint64_t w = uint64_t{w0} | (uint64_t{w1} << 32);
      __builtin_memcpy(y8 + j, &w, 8);
    }
  }
  requant_tail(r, acc, j, n, zero, lo, hi, y32 ? nullptr : y8, y32, ch0);
}

void requant_rows_avx2(const Requant& r, const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n,
                       int32_t zero, int32_t lo, int32_t hi, uint8_t* y8, int32_t* y32, int64_t ldy,
                       int64_t ch0) {
  for (int64_t i = 0; i < rows; ++i)
    requant_row_avx2(r, acc + i * ldacc, n, zero, lo, hi, y32 ? nullptr : y8 + i * ldy, y32 ? y32 + i * ldy : nullptr, ch0);
}

int64_t gelu_lookup_avx2(const int16_t* table, int32_t u_lo, const int32_t* u, int64_t n, uint8_t* y,
                         int32_t* fix) {
  const __m256i lo = _mm256_set1_epi32(u_lo);
  int64_t nf = 0, j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i idx = _mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + j)), lo);
    // 32 bits at entry idx (the table has a padding entry): the entry is the low half.
    __m256i v = _mm256_i32gather_epi32(reinterpret_cast<const int*>(table), idx, 2);
    v = _mm256_srai_epi32(_mm256_slli_epi32(v, 16), 16);
    const int neg = _mm256_movemask_ps(_mm256_castsi256_ps(v));
    const __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(v, v), _mm256_setzero_si256());
    const uint32_t w0 = static_cast<uint32_t>(_mm256_cvtsi256_si32(p));
    const uint32_t w1 = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(p, 1)));
    const uint64_t w = uint64_t{w0} | (uint64_t{w1} << 32);
    __builtin_memcpy(y + j, &w, 8);
    for (int b = neg; b; b &= b - 1) fix[nf++] = static_cast<int32_t>(j + __builtin_ctz(b));
  }
  return gelu_lookup_scalar(table, u_lo, u, j, n, y, fix, nf);
}

}  // namespace qvit::engine
