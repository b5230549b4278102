// Residual add with requantization to the next quantizer (the PTF input of the next LayerNorm):
//   y_c = clamp(floor(((a - za) ma_c + (b - zb) mb_c + 2^(k-1)) / 2^k) + zo)
// with ma_c = round(sa_c / so_c 2^k), mb_c = round(sb_c / so_c 2^k) (int32) and one k per add,
// the largest with every multiplier below 2^30 (k <= 40). The simulation computes the same sum from
// the codes in double and rounds half to even (models/sim_exact.cpp): results can differ only
// within ~255 2^-29 of a rounding boundary (the multipliers' rounding), where ties also lie.
#include <algorithm>
#include <cmath>

#include "engine/engine_ops.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/qkernels.h"

namespace qvit::engine {

void IntAdd::init(int64_t channels, const std::vector<float>& sa, int32_t za_, const std::vector<float>& sb,
                  int32_t zb_, const std::vector<float>& so, int32_t zo_, int32_t qmax_) {
  qmax = qmax_;
  C = channels;
  za = za_;
  zb = zb_;
  zo = zo_;
  auto at = [](const std::vector<float>& v, int64_t c) { return double(v.size() == 1 ? v[0] : v[c]); };
  double mx = 0;
  for (int64_t c = 0; c < C; ++c)
    mx = std::max({mx, at(sa, c) / at(so, c), at(sb, c) / at(so, c)});
  if (!(mx > 0) || !std::isfinite(mx)) fail("engine", "residual add: bad scales");
  k = std::clamp(29 - static_cast<int>(std::ceil(std::log2(mx))), 0, 40);
  ma.resize(static_cast<size_t>(C));
  mb.resize(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    ma[c] = static_cast<int32_t>(std::llround(std::ldexp(at(sa, c) / at(so, c), k)));
    mb[c] = static_cast<int32_t>(std::llround(std::ldexp(at(sb, c) / at(so, c), k)));
  }
}

void IntAdd::forward_rows(const uint8_t* a, const uint8_t* b, int64_t b_rows, uint8_t* y, int64_t r0,
                          int64_t r1) const {
  const bool avx2 = kernel_path() == KernelPath::avx2;
  const bool avx512 = avx2 && qgemm_isa() == QgemmIsa::avx512vnni;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* ar = a + r * C;
    const uint8_t* br = b + (b_rows > 0 ? r % b_rows : r) * C;
    uint8_t* yr = y + r * C;
    if (avx512)
      int_add_row_avx512(*this, ar, br, yr);
    else if (avx2)
      int_add_row_avx2(*this, ar, br, yr);
    else
      for (int64_t c = 0; c < C; ++c) yr[c] = one(ar[c], br[c], c);
  }
}

void IntAdd::forward(const uint8_t* a, const uint8_t* b, int64_t b_rows, uint8_t* y,
                     int64_t rows) const {
  parallel_for(rows, std::max<int64_t>(1, 8192 / C),
               [&](int64_t r0, int64_t r1) { forward_rows(a, b, b_rows, y, r0, r1); });
}

}  // namespace qvit::engine
