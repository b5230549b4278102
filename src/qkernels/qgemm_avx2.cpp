// AVX2 micro-kernel of qgemm_u8s8s32: up to 6 rows x 16 output channels, 12 int32 accumulators.
// Per pair of k: one broadcast of the row's two int16 activations, vpmaddwd with the panel's 16
// channels x 2 int16 weights (two registers), added into int32. Exact (qvit/qkernels.h).
#include <immintrin.h>

#include <cstring>

#include "qkernels/qgemm_internal.h"

namespace qvit::qkernels_detail {

namespace {

template <int R>
void micro(const int16_t* a16, int64_t lda16, const int16_t* panel, int64_t k_pairs, int32_t* c,
           int64_t ldc, int cols) {
  __m256i acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int64_t p = 0; p < k_pairs; ++p) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + p * 32));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + p * 32 + 16));
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      // vpbroadcastd straight from memory: the row's two int16 activations of this k pair
      const __m256i av = _mm256_castps_si256(
          _mm256_broadcast_ss(reinterpret_cast<const float*>(a16 + r * lda16 + 2 * p)));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    int32_t* dst = c + r * ldc;
    if (cols == 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8), acc[r][1]);
    } else {
      alignas(32) int32_t tmp[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[r][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc[r][1]);
      std::memcpy(dst, tmp, static_cast<size_t>(cols) * 4);
    }
  }
}

}  // namespace

void widen_u8_avx2(const uint8_t* src, int64_t K, int32_t zero, int16_t* dst) {
  const __m256i z = _mm256_set1_epi16(static_cast<short>(zero));
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), z));
  }
  for (; k < K; ++k) dst[k] = static_cast<int16_t>(src[k] - zero);
}

void qgemm_micro_avx2(const int16_t* a16, int64_t lda16, int rows, const int16_t* panel,
                      int64_t k_pairs, int32_t* c, int64_t ldc, int cols) {
  switch (rows) {
    case 6: micro<6>(a16, lda16, panel, k_pairs, c, ldc, cols); break;
    case 5: micro<5>(a16, lda16, panel, k_pairs, c, ldc, cols); break;
    case 4: micro<4>(a16, lda16, panel, k_pairs, c, ldc, cols); break;
    case 3: micro<3>(a16, lda16, panel, k_pairs, c, ldc, cols); break;
    case 2: micro<2>(a16, lda16, panel, k_pairs, c, ldc, cols); break;
    default: micro<1>(a16, lda16, panel, k_pairs, c, ldc, cols); break;
  }
}

}  // namespace qvit::qkernels_detail
