// AVX-512 VNNI micro-kernel of qgemm_u8s8s32: up to 8 rows x 32 output channels, 16 zmm
// accumulators. Per group of 4 k: one broadcast of the row's 4 uint8 activations, vpdpbusd with
// the panel's 32 channels x 4 int8 weights (two registers). vpdpbusd adds the four u8*s8
// products to the int32 accumulator without the int16 saturation of vpmaddubsw, so the sum is
// exact; the activation zero point is folded in by starting the accumulators at -z * (row sums of
// w) (`init`; int32 arithmetic wraps modulo 2^32 in vpdpbusd, and the final sum fits int32).
#include <immintrin.h>

#include <cstring>

#include "qkernels/qgemm_internal.h"

namespace qvit::qkernels_detail {

namespace {

template <int R>
void micro(const uint8_t* a, int64_t lda, const int8_t* panel, int64_t k_quads, int32_t* c,
           int64_t ldc, int cols, const int32_t* init) {
  __m512i acc[R][2];
  const __m512i i0 = _mm512_loadu_si512(init), i1 = _mm512_loadu_si512(init + 16);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc[r][0] = i0;
    acc[r][1] = i1;
  }
  for (int64_t q = 0; q < k_quads; ++q) {
    const __m512i b0 = _mm512_loadu_si512(panel + q * 128);
    const __m512i b1 = _mm512_loadu_si512(panel + q * 128 + 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + 4 * q, 4);
      const __m512i av = _mm512_set1_epi32(quad);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    int32_t* dst = c + r * ldc;
    if (cols == 32) {
      _mm512_storeu_si512(dst, acc[r][0]);
      _mm512_storeu_si512(dst + 16, acc[r][1]);
    } else {
      alignas(64) int32_t tmp[32];
      _mm512_store_si512(tmp, acc[r][0]);
      _mm512_store_si512(tmp + 16, acc[r][1]);
      std::memcpy(dst, tmp, static_cast<size_t>(cols) * 4);
    }
  }
}

}  // namespace

void qgemm_micro_avx512(const uint8_t* a, int64_t lda, int rows, const int8_t* panel,
                        int64_t k_quads, int32_t* c, int64_t ldc, int cols, const int32_t* init) {
  switch (rows) {
    case 8: micro<8>(a, lda, panel, k_quads, c, ldc, cols, init); break;
    case 7: micro<7>(a, lda, panel, k_quads, c, ldc, cols, init); break;
    case 6: micro<6>(a, lda, panel, k_quads, c, ldc, cols, init); break;
    case 5: micro<5>(a, lda, panel, k_quads, c, ldc, cols, init); break;
    case 4: micro<4>(a, lda, panel, k_quads, c, ldc, cols, init); break;
    case 3: micro<3>(a, lda, panel, k_quads, c, ldc, cols, init); break;
    case 2: micro<2>(a, lda, panel, k_quads, c, ldc, cols, init); break;
    default: micro<1>(a, lda, panel, k_quads, c, ldc, cols, init); break;
  }
}

}  // namespace qvit::qkernels_detail
