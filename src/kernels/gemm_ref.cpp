// Reference GEMM and Linear: scalar loops with double accumulation. Slow and obviously correct;
// every optimised path is tested against these.
#include "kernels/kernels_internal.h"
#include "qvit/kernels.h"

namespace qvit {

void gemm_f32_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc) {
  kernels_detail::check_gemm_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      float& c = C[i * ldc + j];
      // BLAS convention: with beta == 0, C is not read (it may hold garbage or NaN).
      const double prior = beta == 0.0f ? 0.0 : static_cast<double>(beta) * c;
      c = static_cast<float>(static_cast<double>(alpha) * acc + prior);
    }
  }
}

void linear_f32_ref(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t N,
                    int64_t K) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = b ? static_cast<double>(b[n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = static_cast<float>(acc);
    }
  }
}

}  // namespace qvit
