// gemm_f32: single-threaded strided GEMM (attention runs one per (batch, head, row block)).
// The avx2 path calls oneDNN's sgemm, pinned to one thread so the bits never depend on where
// or when it runs.
#include <dnnl.h>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"

namespace qvit {

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  if (!kernels_detail::use_avx2()) {
    gemm_f32_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  kernels_detail::check_gemm_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // sgemm leaves C alone here; BLAS semantics say C = beta C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  kernels_detail::SingleThreadScope single_thread;
  const dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A,
                                      lda, B, ldb, beta, C, ldc);
  if (st != dnnl_success) {
    fail("kernels", "gemm_f32: dnnl_sgemm failed with status {} (M={} N={} K={})",
         static_cast<int>(st), M, N, K);
  }
}

}  // namespace qvit
