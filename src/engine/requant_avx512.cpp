// AVX-512 requantization rows and GELU lookup (Requant, GeluLut; engine_ops.h), chosen with the
// int8 GEMM's path (qgemm_isa() == avx512vnni). Same integers as the scalar rows for every input
// (tested). With 64-bit lanes in channel order the 32-bit accumulators are sign-extended
// (vpmovsxdq), multiplied by vpmuldq (m < 2^31 sits in the low half of its lane), c added, and
// the floor division by 2^t is an arithmetic shift (vpsravq) — no sign-flip trick as on AVX2;
// the clamp is vpmaxsq / vpminsq and the narrowing vpmovqb / vpmovqd.
#include <immintrin.h>

// GCC 12 reports its own _mm512_undefined_* placeholders inside the conversion and gather
// intrinsics as (maybe) uninitialized (a false positive: those lanes are fully written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdint>

#include "engine/engine_ops.h"

namespace qvit::engine {

void requant_row_avx512(const Requant& r, const int32_t* acc, int64_t n, int32_t zero, int32_t lo,
                        int32_t hi, uint8_t* y8, int32_t* y32, int64_t ch0) {
  const __m512i lo64 = _mm512_set1_epi64(int64_t{lo} - zero), hi64 = _mm512_set1_epi64(int64_t{hi} - zero);
  const __m512i z = _mm512_set1_epi64(zero);
  const bool bcast = r.N == 1;
  const __m512i mb = _mm512_set1_epi64(r.m[0]), cb = _mm512_set1_epi64(r.c[0]), tb = _mm512_set1_epi64(r.t[0]);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512i a = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)));
    const __m512i m = bcast ? mb : _mm512_loadu_si512(r.m.data() + ch0 + j);
    const __m512i c = bcast ? cb : _mm512_loadu_si512(r.c.data() + ch0 + j);
    const __m512i t = bcast ? tb : _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.t.data() + ch0 + j)));
    __m512i v = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(a, m), c), t);
    v = _mm512_add_epi64(_mm512_min_epi64(_mm512_max_epi64(v, lo64), hi64), z);
    if (y32)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y32 + j), _mm512_cvtepi64_epi32(v));
    else
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y8 + j), _mm512_cvtepi64_epi8(v));
  }
  requant_tail(r, acc, j, n, zero, lo, hi, y32 ? nullptr : y8, y32, ch0);
}

void requant_rows_avx512(const Requant& r, const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n,
                         int32_t zero, int32_t lo, int32_t hi, uint8_t* y8, int32_t* y32, int64_t ldy,
                         int64_t ch0) {
  const __m512i lo64 = _mm512_set1_epi64(int64_t{lo} - zero), hi64 = _mm512_set1_epi64(int64_t{hi} - zero);
  const __m512i z = _mm512_set1_epi64(zero);
  const bool bcast = r.N == 1;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const int64_t ch = bcast ? 0 : ch0 + j;
    const __m512i m = bcast ? _mm512_set1_epi64(r.m[0]) : _mm512_loadu_si512(r.m.data() + ch);
    const __m512i c = bcast ? _mm512_set1_epi64(r.c[0]) : _mm512_loadu_si512(r.c.data() + ch);
    const __m512i t = bcast ? _mm512_set1_epi64(r.t[0])
                            : _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.t.data() + ch)));
    for (int64_t i = 0; i < rows; ++i) {
      const __m512i a = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + i * ldacc + j)));
      __m512i v = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(a, m), c), t);
      v = _mm512_add_epi64(_mm512_min_epi64(_mm512_max_epi64(v, lo64), hi64), z);
      if (y32)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y32 + i * ldy + j), _mm512_cvtepi64_epi32(v));
      else
        _mm_storel_epi64(reinterpret_cast<__m128i*>(y8 + i * ldy + j), _mm512_cvtepi64_epi8(v));
    }
  }
  if (j < n)
    for (int64_t i = 0; i < rows; ++i)
      requant_tail(r, acc + i * ldacc, j, n, zero, lo, hi, y32 ? nullptr : y8 + i * ldy, y32 ? y32 + i * ldy : nullptr, ch0);
}

int64_t gelu_lookup_avx512(const int16_t* table, int32_t u_lo, const int32_t* u, int64_t n, uint8_t* y,
                           int32_t* fix) {
  const __m512i lo = _mm512_set1_epi32(u_lo);
  int64_t nf = 0, j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i idx = _mm512_sub_epi32(_mm512_loadu_si512(u + j), lo);
    // 32 bits at entry idx (the table has a padding entry): the entry is the low half.
    __m512i v = _mm512_i32gather_epi32(idx, table, 2);
    v = _mm512_srai_epi32(_mm512_slli_epi32(v, 16), 16);
    const __mmask16 neg = _mm512_cmplt_epi32_mask(v, _mm512_setzero_si512());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + j), _mm512_cvtepi32_epi8(v));
    for (unsigned b = neg; b; b &= b - 1) fix[nf++] = static_cast<int32_t>(j + __builtin_ctz(b));
  }
  return gelu_lookup_scalar(table, u_lo, u, j, n, y, fix, nf);
}

}  // namespace qvit::engine
