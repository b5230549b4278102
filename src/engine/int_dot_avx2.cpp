// AVX2 dot products of the engine's attention logits (int_attention.cpp): int16 x int16 -> int32
// with vpmaddwd, exact for codes minus zero points (|q - z|, |k - z| <= 255: a pair sum < 2^18).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace qvit::engine {

// out[r] = sum_k x_r[k] w[k] for r < 4 (the attention logits; K a multiple of 16 vectorised).
void dot4_s16_avx2(const int16_t* x0, const int16_t* x1, const int16_t* x2, const int16_t* x3,
                   const int16_t* w, int64_t K, int32_t* out) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x0 + k))));
    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x1 + k))));
    a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x2 + k))));
    a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x3 + k))));
  }
  const __m256i* acc[4] = {&a0, &a1, &a2, &a3};
  const int16_t* xs[4] = {x0, x1, x2, x3};
  for (int r = 0; r < 4; ++r) {
    alignas(32) int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), *acc[r]);
    int32_t s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    for (int64_t j = k; j < K; ++j) s += int32_t(xs[r][j]) * w[j];
    out[r] = s;
  }
}

}  // namespace qvit::engine
