// Requantization multipliers and the float -> uint8 quantizer of the engine.
//   mult_from_real(r): r = m 2^-shift with m in [2^30, 2^31) (round to nearest of r 2^shift),
//   apply_mult(x) = floor((x m + 2^(shift-1)) / 2^shift), i.e. round half up (engine_ops.h).
#include <cmath>

#include "engine/engine_ops.h"
#include "qvit/error.h"
#include "qvit/parallel.h"
#include "quant/observer_impl.h"

namespace qvit::engine {

Mult mult_from_real(double r) {
  if (!(r >= 0) || !std::isfinite(r) || r >= 2147483648.0)
    fail("engine", "requantization multiplier {} is not in [0, 2^31)", r);
  if (r == 0) return {};
  int e = 0;
  const double f = std::frexp(r, &e);  // r = f 2^e, f in [0.5, 1)
  int64_t m = std::llround(f * 2147483648.0);  // f 2^31 in [2^30, 2^31]
  int shift = 31 - e;
  if (m == (int64_t{1} << 31)) {
    m >>= 1;
    --shift;
  }
  if (shift > 62) {  // tiny r: fewer mantissa bits
    m >>= (shift - 62);
    shift = 62;
  }
  if (shift < 0) fail("engine", "requantization multiplier {} too large", r);
  return {static_cast<int32_t>(m), shift};
}

void quantize_u8(const float* x, uint8_t* q, int64_t n, float s, float z, int32_t qmax) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      q[i] = static_cast<uint8_t>(quant_detail::quant_code(x[i], s, z, 0.0f, static_cast<float>(qmax)));
  });
}

}  // namespace qvit::engine
