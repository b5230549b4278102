// MPQ softmax quantizer: hand-computed quantized values and objectives, and the search against a
// brute-force double-precision scan written independently here.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "qvit/apq_mpq.h"
#include "qvit/error.h"

namespace qvit::apq {
namespace {

TEST(ApqMpq, HandValues) {
  const MpqParams u{MpqKind::uniform, 0.1f};
  EXPECT_FLOAT_EQ(mpq_quant(0.26f, 2, u), 0.3f);   // 2.6 -> 3 (= 2^2-1, top code)
  EXPECT_FLOAT_EQ(mpq_quant(0.9f, 2, u), 0.3f);    // clamp at 3
  EXPECT_FLOAT_EQ(mpq_quant(-0.1f, 2, u), 0.0f);
  const MpqParams l{MpqKind::log2, 0.0f};
  EXPECT_FLOAT_EQ(mpq_quant(0.3f, 2, l), 0.25f);   // -log2 0.3 = 1.737 -> 2
  EXPECT_FLOAT_EQ(mpq_quant(0.9f, 2, l), 1.0f);    // 0.152 -> 0
  EXPECT_FLOAT_EQ(mpq_quant(0.1f, 2, l), 0.125f);  // 3.32 -> 3 (= top code)
  EXPECT_FLOAT_EQ(mpq_quant(0.06f, 2, l), 0.0f);   // 4.06 -> 4 > 3 -> 0
  EXPECT_FLOAT_EQ(mpq_quant(0.0f, 2, l), 0.0f);
  // E with gamma 1 for x = {0.3, 0.9}, log2: 0.3*0.05^2 + 0.9*0.1^2 = 0.00075 + 0.009
  const std::vector<float> x = {0.3f, 0.9f};
  EXPECT_NEAR(mpq_objective(x.data(), 2, 2, l, 1.0f), 0.00975, 1e-7);
  // gamma 0 = plain squared error: 0.05^2 + 0.1^2
  EXPECT_NEAR(mpq_objective(x.data(), 2, 2, l, 0.0f), 0.0125, 1e-7);
}

TEST(ApqMpq, SearchMatchesBruteForce) {
  std::vector<float> p;
  for (int i = 0; i < 64; ++i) p.push_back(std::exp(-0.15f * static_cast<float>(i)) / 6.5f);
  p.push_back(0.7f);  // one dominant probability
  for (float gamma : {0.0f, 1.0f}) {
    MpqSearch s;
    s.kind = MpqKind::uniform;
    s.gamma = gamma;
    s.n = 40;
    const MpqParams got = mpq_search(p.data(), p.size(), 4, s);
    double best = 1e300;
    double best_step = 0;
    for (int i = 0; i < 40; ++i) {
      const float f = 0.5f + static_cast<float>(i) * 0.7f / 40.0f;
      const float step = f * 0.7f / 15.0f;
      double e = 0;
      for (float v : p) {
        double q = std::round(static_cast<double>(v) / step);
        q = std::min(std::max(q, 0.0), 15.0) * step;
        e += (gamma == 0.0f ? 1.0 : v) * (v - q) * (v - q);
      }
      if (e < best) best = e, best_step = step;
    }
    EXPECT_EQ(got.kind, MpqKind::uniform);
    EXPECT_NEAR(got.step, best_step, 1e-7) << "gamma " << gamma;
  }
  MpqSearch both;
  const MpqParams b = mpq_search(p.data(), p.size(), 4, both);
  const MpqParams l{MpqKind::log2, 0.0f};
  MpqSearch uo;
  uo.kind = MpqKind::uniform;
  const MpqParams u = mpq_search(p.data(), p.size(), 4, uo);
  const double el = mpq_objective(p.data(), p.size(), 4, l, 1.0f);
  const double eu = mpq_objective(p.data(), p.size(), 4, u, 1.0f);
  EXPECT_EQ(b.kind, el < eu ? MpqKind::log2 : MpqKind::uniform);
  EXPECT_THROW(mpq_search(p.data(), 0, 4, both), Error);
  EXPECT_THROW(mpq_search(p.data(), p.size(), 9, both), Error);
}

}  // namespace
}  // namespace qvit::apq
