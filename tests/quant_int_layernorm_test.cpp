// Integer LayerNorm on PTF-quantized input: a hand case, the sigma = 0 guard, in-place use,
// errors, and golden outputs of tools/quant_reference.py (which also records how far FQ-ViT's
// literal float32 version and the float LayerNorm are from it).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "golden.h"
#include "qvit/error.h"
#include "qvit/quant.h"

namespace qvit {
namespace {

QuantParams ptf_params(std::vector<float> scale, float zero) {
  QuantParams p;
  p.kind = QuantKind::ptf;
  p.bits = BitType{8, false};
  p.scale = std::move(scale);
  p.zero_point = {zero};
  return p;
}

TEST(QuantIntLayerNorm, ByHand) {
  // Codes [-1, 1], scale 1: mean 0, D = 2 * 2 - 0 = 4, std = (1 / 2) * 2 = 1.
  // A = 1 / (1/64) = 64 -> N = 7 - 6 = 1, M = 128; B = 0; y = round(+-128 / 2) = +-64 -> +-1.
  const std::vector<float> x = {-1.0f, 1.0f};
  const std::vector<float> gamma = {1.0f, 1.0f}, beta = {0.0f, 0.0f};
  std::vector<float> y(2);
  int_layernorm_ptf(x.data(), y.data(), 1, 2, ptf_params({1.0f}, 0.0f), gamma.data(), beta.data(),
                    1.0f / 64);
  EXPECT_EQ(y, (std::vector<float>{-1.0f, 1.0f}));
  // Channel scales 0.5 and 1: codes round(x / s) * (s / s_min) = [-2, 2] on the grid of 0.5.
  const std::vector<float> x2 = {-1.0f, 1.0f};
  const std::vector<float> beta2 = {0.25f, -0.5f};
  int_layernorm_ptf(x2.data(), y.data(), 1, 2, ptf_params({0.5f, 1.0f}, 0.0f), gamma.data(),
                    beta2.data(), 1.0f / 64);
  EXPECT_EQ(y, (std::vector<float>{-0.75f, 0.5f}));
}

TEST(QuantIntLayerNorm, ConstantTokenGivesBeta) {
  // Equal codes (FQ-ViT: std = 0 -> NaN). qvit: round(beta / s_out) * s_out.
  const std::vector<float> x = {0.5f, 0.5f, 0.5f};
  const std::vector<float> gamma = {1.0f, 2.0f, 0.0f}, beta = {0.3f, -0.2f, 0.01f};
  std::vector<float> y(3);
  const float s_out = 0.1f;
  int_layernorm_ptf(x.data(), y.data(), 1, 3, ptf_params({0.25f}, 10.0f), gamma.data(),
                    beta.data(), s_out);
  for (int c = 0; c < 3; ++c) {
    EXPECT_FALSE(std::isnan(y[c]));
    EXPECT_EQ(y[c], std::nearbyint(beta[c] / s_out) * s_out);
  }
}

TEST(QuantIntLayerNorm, InPlaceAndErrors) {
  std::vector<float> x = {-1.0f, 1.0f, 3.0f, 1.0f};
  const std::vector<float> gamma = {1.0f, 1.0f}, beta = {0.0f, 0.0f};
  std::vector<float> y(4);
  const QuantParams p = ptf_params({1.0f, 1.0f}, 0.0f);
  int_layernorm_ptf(x.data(), y.data(), 2, 2, p, gamma.data(), beta.data(), 1.0f / 64);
  int_layernorm_ptf(x.data(), x.data(), 2, 2, p, gamma.data(), beta.data(), 1.0f / 64);
  EXPECT_EQ(x, y);
  EXPECT_THROW(int_layernorm_ptf(x.data(), y.data(), 2, 2, ptf_params({1, 1, 1}, 0), gamma.data(),
                                 beta.data(), 0.1f), Error);
  EXPECT_THROW(int_layernorm_ptf(x.data(), y.data(), 2, 2, p, gamma.data(), beta.data(), 0.0f), Error);
  std::vector<float> huge = {1e30f, 0.0f};
  EXPECT_THROW(int_layernorm_ptf(huge.data(), y.data(), 1, 2, p, gamma.data(), beta.data(), 0.1f), Error);
}

TEST(QuantIntLayerNorm, Golden) {
  const test::Golden g = test::load_golden(test::fixture("quant/golden"));
  const auto& m = g.meta["ln"];
  QuantParams in = ptf_params(m["scale"].get<std::vector<float>>(), m["zero_point"][0].get<float>());
  in.alpha = m["alpha"].get<std::vector<int32_t>>();
  const std::vector<float> x = g.array("ln.x"), gamma = g.array("ln.gamma"), beta = g.array("ln.beta");
  const float s_out = m["s_out"].get<float>();
  std::vector<float> y(x.size());
  int_layernorm_ptf(x.data(), y.data(), 40, 64, in, gamma.data(), beta.data(), s_out);
  EXPECT_EQ(y, g.array("ln.y"));
  // What the fixture measured: FQ-ViT's float32 sums give NaN on the two constant tokens and
  // the same codes elsewhere; the float LayerNorm is within one output step (except on
  // near-constant tokens, where |A| saturates the 8-bit M).
  EXPECT_EQ(m["literal_nan_rows"].get<std::vector<int>>(), (std::vector<int>{5, 17}));
  EXPECT_EQ(m["literal_max_code_diff"].get<float>(), 0.0f);
  EXPECT_LE(m["float_ln_max_code_diff"].get<float>(), 1.0f);
}

}  // namespace
}  // namespace qvit
