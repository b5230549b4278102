// AVX-512 row of the residual add (IntAdd, residual.cpp), taken with the int8 GEMM's AVX-512 path:
// 8 channels per step in channel-ordered 64-bit lanes (sign-extended codes minus zero points,
// vpmuldq), the floor division by 2^k as an arithmetic shift (vpsraq), clamp in 64 bits
// (vpmaxsq / vpminsq), narrowing by vpmovqb. Same integers as the scalar row (tested).
#include <immintrin.h>

// GCC 12 reports its own _mm512_undefined_* placeholders inside the conversion intrinsics as
// (maybe) uninitialized (a false positive: those lanes are fully written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cstdint>
#include <cstring>

#include "engine/engine_ops.h"

namespace qvit::engine {

void int_add_row_avx512(const IntAdd& p, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  const int64_t C = p.C;
  const __m512i half = _mm512_set1_epi64(p.k > 0 ? int64_t{1} << (p.k - 1) : 0);
  const __m128i sh = _mm_cvtsi32_si128(p.k);
  const __m512i lo = _mm512_set1_epi64(-p.zo), hi = _mm512_set1_epi64(int64_t{p.qmax} - p.zo);
  const __m512i za = _mm512_set1_epi64(p.za), zb = _mm512_set1_epi64(p.zb), zo = _mm512_set1_epi64(p.zo);
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    int64_t wa, wb;
    std::memcpy(&wa, a + c, 8);
    std::memcpy(&wb, b + c, 8);
    const __m512i x = _mm512_sub_epi64(_mm512_cvtepu8_epi64(_mm_cvtsi64_si128(wa)), za);
    const __m512i w = _mm512_sub_epi64(_mm512_cvtepu8_epi64(_mm_cvtsi64_si128(wb)), zb);
    const __m512i ma = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.ma.data() + c)));
    const __m512i mb = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.mb.data() + c)));
    __m512i v = _mm512_add_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, ma), _mm512_mul_epi32(w, mb)), half);
    v = _mm512_sra_epi64(v, sh);
    v = _mm512_add_epi64(_mm512_min_epi64(_mm512_max_epi64(v, lo), hi), zo);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + c), _mm512_cvtepi64_epi8(v));
  }
  for (; c < C; ++c) y[c] = p.one(a[c], b[c], c);
}

}  // namespace qvit::engine
