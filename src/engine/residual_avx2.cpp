// AVX2 row of the residual add (IntAdd, residual.cpp): 8 channels per step in 64-bit lanes
// (vpmuldq on the even and the odd channels), floor division by 2^k as a logical shift of the
// value offset by 2^62 (|v| < 2^40), clamp in 64 bits. Same integers as the scalar row (tested).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "engine/engine_ops.h"

namespace qvit::engine {

void int_add_row_avx2(const IntAdd& p, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  const int64_t C = p.C;
  const int64_t half = p.k > 0 ? int64_t{1} << (p.k - 1) : 0;
  const int64_t off = int64_t{1} << 62;
  const __m256i add = _mm256_set1_epi64x(half + off), sub = _mm256_set1_epi64x(off >> p.k);
  const __m128i sh = _mm_cvtsi32_si128(p.k);
  const __m256i lo = _mm256_set1_epi64x(-p.zo), hi = _mm256_set1_epi64x(int64_t{p.qmax} - p.zo);
  const __m256i za = _mm256_set1_epi32(p.za), zb = _mm256_set1_epi32(p.zb), zo = _mm256_set1_epi32(p.zo);
  const auto lanes = [&](__m256i x, __m256i mx, __m256i w, __m256i mw) {
    __m256i v = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, mx), _mm256_mul_epi32(w, mw)), add);
    v = _mm256_sub_epi64(_mm256_srl_epi64(v, sh), sub);
    v = _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
    return _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
  };
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    int64_t wa, wb;
    std::memcpy(&wa, a + c, 8);
    std::memcpy(&wb, b + c, 8);
    const __m256i x = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(wa)), za);
    const __m256i w = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(wb)), zb);
    const __m256i ma = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.ma.data() + c));
    const __m256i mb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.mb.data() + c));
    const __m256i e = lanes(x, ma, w, mb);
    const __m256i o = lanes(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(ma, 32), _mm256_srli_epi64(w, 32),
                            _mm256_srli_epi64(mb, 32));
    const __m256i v = _mm256_add_epi32(_mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA), zo);
    const __m256i q = _mm256_packus_epi16(_mm256_packs_epi32(v, v), _mm256_setzero_si256());
    const uint32_t w0 = static_cast<uint32_t>(_mm256_cvtsi256_si32(q));
    const uint32_t w1 = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(q, 1)));
    const uint64_t out = uint64_t{w0} | (uint64_t{w1} << 32);
    std::memcpy(y + c, &out, 8);
  }
  for (; c < C; ++c) y[c] = p.one(a[c], b[c], c);
}

}  // namespace qvit::engine
