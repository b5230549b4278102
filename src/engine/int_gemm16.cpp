// int16 x int16 -> int32 GEMM on a pair-packed B (engine_ops.h): the scalar reference, packing and
// dispatch. Used by the integer attention (q k^T and the shifted-probability x V products).
#include "engine/engine_ops.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/qkernels.h"

namespace qvit::engine {

int64_t gemm16_np(int64_t N) { return (N + 15) / 16 * 16; }

void gemm16_pack(const int16_t* B, int64_t ldb, bool trans, int64_t K, int64_t N, int16_t* Bp) {
  const int64_t Np = gemm16_np(N), Kp = (K + 1) / 2;
  for (int64_t kp = 0; kp < Kp; ++kp) {
    int16_t* row = Bp + kp * 2 * Np;
    for (int64_t n = 0; n < Np; ++n)
      for (int64_t h = 0; h < 2; ++h) {
        const int64_t k = 2 * kp + h;
        row[2 * n + h] = (n < N && k < K) ? (trans ? B[n * ldb + k] : B[k * ldb + n]) : int16_t{0};
      }
  }
}

void gemm16_ref(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
                int32_t* C, int64_t ldc) {
  if (K % 2) fail("engine", "gemm16: K = {} must be even", K);
  const int64_t Np = gemm16_np(N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t n = 0; n < N; ++n) {
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += int32_t{A[i * lda + k]} * Bp[(k / 2) * 2 * Np + 2 * n + k % 2];
      C[i * ldc + n] = s;
    }
}

void gemm16(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
            int32_t* C, int64_t ldc) {
  switch (qgemm_isa()) {
    case QgemmIsa::avx512vnni: gemm16_vnni(A, lda, M, K, Bp, N, C, ldc); break;
    case QgemmIsa::avx2: gemm16_avx2(A, lda, M, K, Bp, N, C, ldc); break;
    default: gemm16_ref(A, lda, M, K, Bp, N, C, ldc); break;
  }
}

}  // namespace qvit::engine
