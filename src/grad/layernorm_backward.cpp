// LayerNorm backward. With x_hat = (x - mu) / sigma, sigma = sqrt(var + eps), g = dY * gamma:
//   dX = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma        (per row, means over C)
// Reductions in double.
#include <cmath>

#include "qvit/grad.h"
#include "qvit/parallel.h"

namespace qvit {

void layernorm_backward(const float* dy, const float* x, const float* gamma, float* dx, int64_t rows,
                        int64_t C, float eps) {
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
      const float* gr = dy + r * C;
      double mu = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mu += xr[c];
      mu /= static_cast<double>(C);
      for (int64_t c = 0; c < C; ++c) var += (xr[c] - mu) * (xr[c] - mu);
      var /= static_cast<double>(C);
      const double inv = 1.0 / std::sqrt(var + eps);
      double mg = 0, mgx = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double g = static_cast<double>(gr[c]) * gamma[c];
        mg += g;
        mgx += g * (xr[c] - mu) * inv;
      }
      mg /= static_cast<double>(C);
      mgx /= static_cast<double>(C);
      for (int64_t c = 0; c < C; ++c) {
        const double g = static_cast<double>(gr[c]) * gamma[c];
        dx[r * C + c] = static_cast<float>((g - mg - (xr[c] - mu) * inv * mgx) * inv);
      }
    }
  });
}

}  // namespace qvit
