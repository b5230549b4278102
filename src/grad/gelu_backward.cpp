// Exact GELU backward: d/dx [x Phi(x)] = Phi(x) + x phi(x), Phi the normal CDF, phi its density.
#include <cmath>

#include "qvit/grad.h"
#include "qvit/parallel.h"

namespace qvit {

void gelu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  parallel_for(n, 8192, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double v = x[i];
      const double cdf = 0.5 * (1.0 + std::erf(v * M_SQRT1_2));
      const double pdf = std::exp(-0.5 * v * v) * 0.3989422804014327;  // 1 / sqrt(2 pi)
      dx[i] = static_cast<float>(dy[i] * (cdf + v * pdf));
    }
  });
}

}  // namespace qvit
