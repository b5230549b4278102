// AVX2 int16 GEMM of the engine's attention (engine_ops.h): 4 rows x 16 columns of int32
// accumulators; per pair of k one broadcast of (A[i,k], A[i,k+1]) per row and vpmaddwd against
// 8 packed columns. Exact (same integers as gemm16_ref; int32 sums in any order are equal).
#include <immintrin.h>

#include <cstdint>

#include "engine/engine_ops.h"
#include "qvit/error.h"

namespace qvit::engine {

namespace {

inline __m256i pair(const int16_t* a) {
  int32_t v;
  __builtin_memcpy(&v, a, 4);
  return _mm256_set1_epi32(v);
}

inline void store(int32_t* c, __m256i v, int64_t n) {
  if (n >= 8) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), v);
    return;
  }
  alignas(32) int32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), v);
  for (int64_t j = 0; j < n; ++j) c[j] = t[j];
}

// R rows (1..4), 16 columns from n0 (the packed B has them: Np is a multiple of 16).
template <int R, bool Two>
void tile(const int16_t* A, int64_t lda, int64_t K, const int16_t* Bp, int64_t Np, int64_t n0,
          int64_t nvalid, int32_t* C, int64_t ldc) {
  __m256i acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const int16_t* b = Bp + 2 * n0;
  for (int64_t k = 0; k < K; k += 2, b += 2 * Np) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = Two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)) : b0;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256i a = pair(A + r * lda + k);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a, b0));
      if (Two) acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a, b1));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    store(C + r * ldc + n0, acc[r][0], nvalid);
    if (Two && nvalid > 8) store(C + r * ldc + n0 + 8, acc[r][1], nvalid - 8);
  }
}

template <int R>
void rows(const int16_t* A, int64_t lda, int64_t K, const int16_t* Bp, int64_t N, int32_t* C, int64_t ldc) {
  const int64_t Np = gemm16_np(N);
  for (int64_t n = 0; n < Np; n += 16) tile<R, true>(A, lda, K, Bp, Np, n, N - n, C, ldc);
}

}  // namespace

void gemm16_avx2(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
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
