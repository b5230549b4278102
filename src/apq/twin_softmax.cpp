// Twin-uniform post-softmax quantizer (PTQ4ViT): see include/qvit/apq_quant.h for the arithmetic
// of both modes. split = 2^-split_exp, split_exp in 0..19 is PTQ4ViT's search range.
#include <algorithm>
#include <cmath>

#include "qvit/apq_quant.h"
#include "qvit/error.h"

namespace qvit::apq {

float quant_twin_softmax(float x, int bits, int split_exp, TwinSoftmaxMode mode) {
  const float m = static_cast<float>((1 << (bits - 1)) - 1);
  const float split = std::ldexp(1.0f, -split_exp);
  const float d1 = split / m, d2 = 1.0f / m;
  const float low = std::clamp(round_half_even(x / d1), 0.0f, m) * d1;
  if (mode == TwinSoftmaxMode::disjoint) {
    if (x < split) return low;
    return std::clamp(round_half_even(x / d2), 0.0f, m) * d2;
  }
  const float high = std::clamp(round_half_even(x / d2), std::nearbyint(split / d2), m) * d2;
  return low + high;
}

void quant_twin_softmax_inplace(float* x, size_t n, int bits, int split_exp, TwinSoftmaxMode mode) {
  check_bits(bits, "abits");
  if (split_exp < 0 || split_exp > 30) fail("apq", "twin softmax split exponent must be in 0..30, got {}", split_exp);
  for (size_t i = 0; i < n; ++i) x[i] = quant_twin_softmax(x[i], bits, split_exp, mode);
}

}  // namespace qvit::apq
