// FQ-ViT's plain Log2Quantizer (log2.py) for probabilities, rounding in the log domain:
//   r = round(-log2(p)) (float32 log2, half to even); value = 2^-clamp(r, 0, 2^b - 1), or 0
//   when r >= 2^b (p = 0 gives r = +inf -> 0).
// The boundary between codes k and k+1 is p = 2^-(k + 1/2); LIS (lis.cpp) rounds differently.
// log2f is glibc's; PyTorch's may differ by an ulp, which matters only for p within ~1e-7
// relative of a boundary.
#include <cmath>

#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"

namespace qvit {

void fake_quant_log2(float* p, int64_t n, int bits) {
  if (bits < 2 || bits > 16) fail("quant", "fake_quant_log2: bits must be in [2, 16], got {}", bits);
  if (n < 0) fail("quant", "fake_quant_log2: negative size {}", n);
  const float levels = static_cast<float>(1 << bits);  // codes >= levels mean 0
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float r = std::nearbyint(-std::log2(p[i]));
      if (r >= levels) {
        p[i] = 0.0f;
      } else if (std::isnan(r)) {
        p[i] = r;  // p < 0 or NaN: PyTorch propagates NaN
      } else {
        const float code = r < 0.0f ? 0.0f : r;
        p[i] = std::ldexp(1.0f, -static_cast<int>(code));
      }
    }
  });
}

}  // namespace qvit
