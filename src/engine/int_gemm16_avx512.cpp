// AVX-512 VNNI int16 GEMM of the engine's attention (engine_ops.h): vpdpwssd adds two int16 x int16
// products into each int32 lane (no saturation: the non-"s" form), 4 rows x 32 columns per tile.
// Same integers as gemm16_ref. Chosen with the int8 GEMM's path (qgemm_isa() == avx512vnni).
#include <immintrin.h>

#include <cstdint>

#include "engine/engine_ops.h"
#include "qvit/error.h"

namespace qvit::engine {

namespace {

inline __m512i pair(const int16_t* a) {
  int32_t v;
  __builtin_memcpy(&v, a, 4);
  return _mm512_set1_epi32(v);
}

inline void store(int32_t* c, __m512i v, int64_t n) {
  if (n >= 16)
    _mm512_storeu_si512(c, v);
  else if (n > 0)
    _mm512_mask_storeu_epi32(c, static_cast<__mmask16>((1u << n) - 1), v);
}

template <int R, bool Two>
void tile(const int16_t* A, int64_t lda, int64_t K, const int16_t* Bp, int64_t Np, int64_t n0,
          int64_t nvalid, int32_t* C, int64_t ldc) {
  __m512i acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  const int16_t* b = Bp + 2 * n0;
  for (int64_t k = 0; k < K; k += 2, b += 2 * Np) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = Two ? _mm512_loadu_si512(b + 32) : b0;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i a = pair(A + r * lda + k);
      acc[r][0] = _mm512_dpwssd_epi32(acc[r][0], a, b0);
      if (Two) acc[r][1] = _mm512_dpwssd_epi32(acc[r][1], a, b1);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    store(C + r * ldc + n0, acc[r][0], nvalid);
    if (Two) store(C + r * ldc + n0 + 16, acc[r][1], nvalid - 16);
  }
}

template <int R>
void rows(const int16_t* A, int64_t lda, int64_t K, const int16_t* Bp, int64_t N, int32_t* C, int64_t ldc) {
  const int64_t Np = gemm16_np(N);  // a multiple of 16
  int64_t n = 0;
  for (; n + 32 <= Np; n += 32) tile<R, true>(A, lda, K, Bp, Np, n, N - n, C, ldc);
  if (n < Np) tile<R, false>(A, lda, K, Bp, Np, n, N - n, C, ldc);
}

}  // namespace

void gemm16_vnni(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
                 int32_t* C, int64_t ldc) {
  if (K % 2) fail("engine", "gemm16: K = {} must be even", K);
  int64_t i = 0;
  for (; i + 4 <= M; i += 4) rows<4>(A + i * lda, lda, K, Bp, N, C + i * ldc, ldc);
  switch (M - i) {
    case 3: rows<3>(A + i * lda, lda, K, Bp, N, C + i * ldc, ldc); break;
    case 2: rows<2>(A + i * lda, lda, K, Bp, N, C + i * ldc, ldc); break;
    case 1: rows<1>(A + i * lda, lda, K, Bp, N, C + i * ldc, ldc); break;
    default: break;
  }
}

}  // namespace qvit::engine
