// Backward of one attention head, S = scale q k^T, P = softmax(S), ctx = P v:
//   dP = dctx v^T;  dv = P^T dctx;  dS = softmax_backward(dP, P);
//   dq = scale dS k;  dk = scale dS^T q.
// Single-threaded (called per (image, head) from a parallel loop); GEMMs via gemm_f32.
#include "qvit/grad.h"
#include "qvit/kernels.h"

namespace qvit {

namespace grad_detail {
void softmax_backward_row(const float* dp, const float* p, float* ds, int64_t cols);
}

void attention_backward_head(const float* dctx, int64_t ldc, const float* q, const float* k,
                             const float* v, int64_t ld, const float* p, int64_t T, int64_t d,
                             float scale, float* ds, float* dq, float* dk, float* dv) {
  gemm_f32(false, true, T, T, d, 1.0f, dctx, ldc, v, ld, 0.0f, ds, T);   // dP (in ds)
  gemm_f32(true, false, T, d, T, 1.0f, p, T, dctx, ldc, 0.0f, dv, ld);   // dv
  for (int64_t i = 0; i < T; ++i) grad_detail::softmax_backward_row(ds + i * T, p + i * T, ds + i * T, T);
  gemm_f32(false, false, T, d, T, scale, ds, T, k, ld, 0.0f, dq, ld);    // dq
  gemm_f32(true, false, T, d, T, scale, ds, T, q, ld, 0.0f, dk, ld);     // dk
}

}  // namespace qvit
