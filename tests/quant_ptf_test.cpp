// PTF observer: per-channel power-of-two factors by hand (zero point from the 8x scale, ties to
// the smallest alpha, other K), and the PTF layout in fake_quant.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "qvit/quant.h"

namespace qvit {
namespace {

// rows x 3 channels: small values, the full [-10, 10] range, and zeros.
std::vector<float> three_channels(int rows) {
  std::vector<float> x;
  for (int r = 0; r < rows; ++r) {
    const float t = static_cast<float>(r) / static_cast<float>(rows - 1);  // 0..1
    x.push_back(-0.1f + 0.2f * t);
    x.push_back(-10.0f + 20.0f * t);
    x.push_back(0.0f);
  }
  return x;
}

TEST(QuantPtf, FactorsByHand) {
  const std::vector<float> x = three_channels(101);
  auto obs = make_observer(ObserverKind::ptf, ObserverOptions{});
  obs->observe(x.data(), 101, 3, true);
  const QuantParams p = obs->params();
  const float s8 = 20.0f / 255.0f;
  EXPECT_EQ(p.kind, QuantKind::ptf);
  ASSERT_EQ(p.zero_point.size(), 1u);
  // 0 - round(-10 / s8): float32 -10 / s8 = -127.49999, so 127.
  EXPECT_EQ(p.zero_point[0], 127.0f);
  ASSERT_EQ(p.alpha.size(), 3u);
  EXPECT_EQ(p.alpha[0], 0);  // fine scale s8 / 8 covers [-0.1, 0.1]
  EXPECT_EQ(p.alpha[1], 3);  // only s8 covers [-10, 10]
  EXPECT_EQ(p.alpha[2], 0);  // zeros: every alpha is exact -> the smallest
  EXPECT_EQ(p.scale[0], s8 / 8);
  EXPECT_EQ(p.scale[1], s8);
  EXPECT_EQ(p.scale[2], s8 / 8);
  EXPECT_EQ(p.observed_min, -10.0f);
  EXPECT_EQ(p.observed_max, 10.0f);

  // The zero point comes from s8 even though a channel uses s8 / 8.
  std::vector<float> y = x;
  fake_quant(y.data(), 101, 3, p);
  for (int r = 0; r < 101; ++r) {
    const float v = x[3 * r];
    const float q = std::clamp(std::nearbyint(v / (s8 / 8) + 127.0f), 0.0f, 255.0f);
    EXPECT_EQ(y[3 * r], (q - 127.0f) * (s8 / 8));
  }
}

TEST(QuantPtf, SearchUsesOnlyTheLastBatchButRangeOfAll) {
  // Batch 1 sets the range [-10, 10]; in the last batch channel 1 is small, so it gets alpha 0.
  const std::vector<float> first = three_channels(101);
  std::vector<float> last = three_channels(101);
  for (size_t i = 1; i < last.size(); i += 3) last[i] *= 0.01f;
  auto obs = make_observer(ObserverKind::ptf, ObserverOptions{});
  obs->observe(first.data(), 101, 3, false);
  obs->observe(last.data(), 101, 3, true);
  const QuantParams p = obs->params();
  EXPECT_EQ(p.alpha, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(p.zero_point[0], 127.0f);
}

TEST(QuantPtf, OtherK) {
  const std::vector<float> x = three_channels(101);
  ObserverOptions opt;
  opt.ptf_k = 1;  // alpha in {0, 1}: scales s/2 and s
  auto obs = make_observer(ObserverKind::ptf, opt);
  obs->observe(x.data(), 101, 3, true);
  const QuantParams p = obs->params();
  const float s = 20.0f / 255.0f;
  EXPECT_EQ(p.alpha, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(p.scale[0], s / 2);
  EXPECT_EQ(p.scale[1], s);
}

}  // namespace
}  // namespace qvit
