// Linear backward to the input: dX[M,K] = dY[M,N] W[N,K] (gemm_f32 per block of rows).
#include <algorithm>

#include "qvit/grad.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {

void linear_backward_input(const float* dy, const float* w, float* dx, int64_t M, int64_t N, int64_t K) {
  parallel_for(M, 64, [&](int64_t m0, int64_t m1) {
    gemm_f32(false, false, m1 - m0, K, N, 1.0f, dy + m0 * N, N, w, K, 0.0f, dx + m0 * K, K);
  });
}

void linear_backward_input_ref(const float* dy, const float* w, float* dx, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) s += static_cast<double>(dy[m * N + n]) * w[n * K + k];
      dx[m * K + k] = static_cast<float>(s);
    }
}

}  // namespace qvit
