// Twin-uniform post-GELU quantizer (PTQ4ViT): fixed negative interval covering GELU's minimum
// (~ -0.17), searched positive interval. Arithmetic in include/qvit/apq_quant.h.
#include <algorithm>
#include <cmath>

#include "qvit/apq_quant.h"
#include "qvit/error.h"

namespace qvit::apq {

void quant_twin_gelu_inplace(float* x, size_t n, int bits, float pos_interval) {
  check_bits(bits, "abits");
  if (!(pos_interval > 0.0f)) fail("apq", "post-GELU interval must be > 0, got {}", pos_interval);
  for (size_t i = 0; i < n; ++i) x[i] = quant_twin_gelu(x[i], bits, pos_interval);
}

}  // namespace qvit::apq
