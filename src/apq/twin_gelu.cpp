// Twin-uniform post-GELU quantizer (PTQ4ViT): fixed negative interval covering GELU's minimum
// (~ -0.17), searched positive interval. Arithmetic in include/qvit/apq_quant.h.
#include <algorithm>
#include <cmath>

#include "qvit/apq_quant.h"
#include "qvit/error.h"

namespace qvit::apq {

float gelu_neg_interval(int bits) { return kGeluNegRange / static_cast<float>(1 << (bits - 1)); }

float quant_twin_gelu(float x, int bits, float pos_interval) {
  const float qmax = static_cast<float>(1 << (bits - 1));
  if (x < 0.0f) {
    const float dn = gelu_neg_interval(bits);
    return std::clamp(std::nearbyint(x / dn), -qmax, 0.0f) * dn;
  }
  return std::clamp(std::nearbyint(x / pos_interval), 0.0f, qmax - 1.0f) * pos_interval;
}

void quant_twin_gelu_inplace(float* x, size_t n, int bits, float pos_interval) {
  check_bits(bits, "abits");
  if (!(pos_interval > 0.0f)) fail("apq", "post-GELU interval must be > 0, got {}", pos_interval);
  for (size_t i = 0; i < n; ++i) x[i] = quant_twin_gelu(x[i], bits, pos_interval);
}

}  // namespace qvit::apq
