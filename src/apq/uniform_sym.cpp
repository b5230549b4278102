// Symmetric signed uniform quantizer with an interval (PTQ4ViT): see include/qvit/apq_quant.h.
#include <algorithm>
#include <cmath>

#include "qvit/apq_quant.h"
#include "qvit/error.h"

namespace qvit::apq {

float initial_interval(float absmax, int bits) {
  return absmax / (static_cast<float>(1 << (bits - 1)) - 0.5f);
}

void quant_sym_inplace(float* x, size_t n, float interval, int bits) {
  check_bits(bits, "bits");
  if (!(interval > 0.0f)) fail("apq", "quantizer interval must be > 0, got {}", interval);
  for (size_t i = 0; i < n; ++i) x[i] = quant_sym(x[i], interval, bits);
}

void quant_weight_rows(const float* w, float* out, size_t rows, size_t cols,
                       const std::vector<float>& intervals, int bits) {
  check_bits(bits, "wbits");
  const size_t groups = intervals.size();
  if (groups == 0 || rows % groups != 0)
    fail("apq", "weight with {} rows cannot be split into {} interval groups", rows, groups);
  const size_t per = rows / groups;
  for (size_t r = 0; r < rows; ++r) {
    const float d = intervals[r / per];
    if (!(d > 0.0f)) fail("apq", "weight interval {} must be > 0, got {}", r / per, d);
    for (size_t c = 0; c < cols; ++c) out[r * cols + c] = quant_sym(w[r * cols + c], d, bits);
  }
}

}  // namespace qvit::apq
