// AVX2 inner loop of the engine's attention x V (int_attention.cpp): acc[d] = sum_j v[j][d] <<
// (15 - code_j), code 16 skipped; exact int32 like the scalar loop (same sums, any order).
#include <immintrin.h>

#include <cstdint>

namespace qvit::engine {

// Dh a multiple of 8, at most 128.
void shift_add_avx2(const int32_t* v, int64_t Dh, const uint8_t* codes, int64_t N, int32_t* acc) {
  __m256i a[16];
  const int64_t nv = Dh / 8;
  for (int64_t t = 0; t < nv; ++t) a[t] = _mm256_setzero_si256();
  for (int64_t j = 0; j < N; ++j) {
    const int c = codes[j];
    if (c >= 16) continue;
    const __m128i sh = _mm_cvtsi32_si128(15 - c);
    const int32_t* vj = v + j * Dh;
    for (int64_t t = 0; t < nv; ++t)
      a[t] = _mm256_add_epi32(a[t], _mm256_sll_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vj + 8 * t)), sh));
  }
  for (int64_t t = 0; t < nv; ++t) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 8 * t), a[t]);
}

}  // namespace qvit::engine
