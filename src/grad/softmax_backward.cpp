// Row softmax backward: dS_j = P_j (dP_j - sum_i dP_i P_i) (sum in double). dS may alias dP.
#include "qvit/grad.h"
#include "qvit/parallel.h"

namespace qvit {

namespace grad_detail {
void softmax_backward_row(const float* dp, const float* p, float* ds, int64_t cols) {
  double dot = 0;
  for (int64_t j = 0; j < cols; ++j) dot += static_cast<double>(dp[j]) * p[j];
  for (int64_t j = 0; j < cols; ++j) ds[j] = static_cast<float>(p[j] * (dp[j] - dot));
}
}  // namespace grad_detail

void softmax_backward(const float* dp, const float* p, float* ds, int64_t rows, int64_t cols) {
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) grad_detail::softmax_backward_row(dp + r * cols, p + r * cols, ds + r * cols, cols);
  });
}

}  // namespace qvit
