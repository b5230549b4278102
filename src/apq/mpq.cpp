// MPQ softmax quantizer (interim design, see include/qvit/apq_mpq.h for the arithmetic).
#include "qvit/apq_mpq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qvit/apq_quant.h"
#include "qvit/error.h"

namespace qvit::apq {

float mpq_quant(float x, int bits, const MpqParams& p) {
  const int levels = (1 << bits) - 1;
  if (p.kind == MpqKind::log2) {
    if (!(x > 0.0f)) return 0.0f;
    const float c = std::nearbyint(-std::log2(x));
    if (c > static_cast<float>(levels)) return 0.0f;
    return std::ldexp(1.0f, -static_cast<int>(std::max(c, 0.0f)));
  }
  return std::clamp(round_half_even(x / p.step), 0.0f, static_cast<float>(levels)) * p.step;
}

double mpq_objective(const float* x, size_t n, int bits, const MpqParams& p, float gamma) {
  double e = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mpq_quant(x[i], bits, p);
    const double w = gamma == 0.0f ? 1.0 : std::pow(std::max(0.0, static_cast<double>(x[i])), gamma);
    e += w * d * d;
  }
  return e;
}

MpqParams mpq_search(const float* x, size_t n, int bits, const MpqSearch& s) {
  check_bits(bits, "abits");
  if (n == 0) fail("apq", "MPQ search on an empty softmax tensor");
  if (s.n < 1 || !(s.alpha > 0.0f) || !(s.beta >= s.alpha))
    fail("apq", "MPQ search grid needs n >= 1 and 0 < alpha <= beta, got n={} alpha={} beta={}", s.n, s.alpha, s.beta);
  float mx = 0.0f;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!(mx > 0.0f)) mx = 1.0f;
  MpqParams best;
  double best_e = std::numeric_limits<double>::infinity();
  if (s.kind != MpqKind::log2) {
    for (int i = 0; i < s.n; ++i) {
      const float f = s.alpha + static_cast<float>(i) * (s.beta - s.alpha) / static_cast<float>(s.n);
      const MpqParams p{MpqKind::uniform, f * mx / static_cast<float>((1 << bits) - 1)};
      const double e = mpq_objective(x, n, bits, p, s.gamma);
      if (e < best_e) best_e = e, best = p;  // first minimum wins (deterministic)
    }
  }
  if (s.kind != MpqKind::uniform) {
    const MpqParams p{MpqKind::log2, 0.0f};
    if (mpq_objective(x, n, bits, p, s.gamma) < best_e) best = p;
  }
  return best;
}

}  // namespace qvit::apq
