// GELU of the engine as a table on a fine integer grid of fc1's output (see engine_ops.h). The
// table is built once per layer with the reference (scalar) GELU, so the result does not depend on
// the kernel path; at run time GELU is integer (requantize, clamp, look up) except in the ~1/64 of
// cells where the output code changes inside the cell: there the float input is rebuilt and GELU
// computed exactly from the float input the simulation uses (IntLinear::real), so the code is its.
#include <algorithm>
#include <cmath>

#include "engine/engine_ops.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "quant/observer_impl.h"

namespace qvit::engine {

void GeluLut::init(float s_gelu, float z_gelu, int32_t q_max) {
  qmax = static_cast<float>(q_max);
  if (!(s_gelu > 0.0f) || !std::isfinite(s_gelu)) fail("engine", "GELU: bad output scale {}", s_gelu);
  constexpr double kMaxEntries = 65536;
  const double x_hi = (qmax + 1.0 - z_gelu) * double(s_gelu) + 1.0;  // gelu(x) > x - 0.01 beyond 3
  double x_lo = -8.0;
  int j = 6;
  while (j > 0 && (x_hi - x_lo) / std::ldexp(double(s_gelu), -j) > kMaxEntries) --j;
  s_f = std::ldexp(s_gelu, -j);
  if ((x_hi - x_lo) / s_f > kMaxEntries) x_lo = x_hi - kMaxEntries * s_f;
  u_lo = static_cast<int32_t>(std::floor(x_lo / s_f));
  u_hi = static_cast<int32_t>(std::ceil(x_hi / s_f));
  const int64_t n = int64_t(u_hi) - u_lo + 1;
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(double(u_lo + i) * s_f);
  this->s_gelu = s_gelu;
  this->z_gelu = z_gelu;
  // Codes at the cell edges (u +- 1/2) s_f; GELU is monotone except around its minimum at
  // x = -0.7518, whose neighbourhood is always computed exactly.
  std::vector<float> xe(static_cast<size_t>(n + 1)), ge(static_cast<size_t>(n + 1));
  for (int64_t i = 0; i <= n; ++i) xe[i] = static_cast<float>((double(u_lo + i) - 0.5) * s_f);
  gelu_f32_ref(xe.data(), ge.data(), n + 1);
  table.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto lo = quant_detail::quant_code(ge[i], s_gelu, z_gelu, 0.0f, qmax);
    const auto hi = quant_detail::quant_code(ge[i + 1], s_gelu, z_gelu, 0.0f, qmax);
    const bool near_min = std::fabs(x[i] + 0.7518) < 2.0 * s_f + 0.01;
    table[i] = (lo != hi || near_min) ? int16_t{-1} : static_cast<int16_t>(lo);
  }
  table.front() = table.back() = -1;  // clamped inputs: computed exactly
  table.push_back(-1);  // padding: the AVX2 lookup reads 32 bits at each entry
}

int64_t GeluLut::lookup(const int32_t* u, int64_t n, uint8_t* y, int32_t* fix) const {
  switch (qgemm_isa()) {  // the requantization's path (requant.cpp)
    case QgemmIsa::avx512vnni: return gelu_lookup_avx512(table.data(), u_lo, u, n, y, fix);
    case QgemmIsa::avx2: return gelu_lookup_avx2(table.data(), u_lo, u, n, y, fix);
    default: break;
  }
  return gelu_lookup_scalar(table.data(), u_lo, u, 0, n, y, fix, 0);
}

uint8_t GeluLut::exact(float x) const {
  float g;
  gelu_f32_ref(&x, &g, 1);
  return static_cast<uint8_t>(quant_detail::quant_code(g, s_gelu, z_gelu, 0.0f, qmax));
}

}  // namespace qvit::engine
