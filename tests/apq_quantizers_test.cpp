// PTQ4ViT / APQ-ViT quantizers against hand-computed values (arithmetic in qvit/apq_quant.h).
#include <gtest/gtest.h>

#include <cstring>

#include <string>
#include <vector>

#include "qvit/apq_quant.h"
#include "qvit/error.h"

namespace qvit::apq {
namespace {

TEST(ApqQuant, BitRangeIsChecked) {
  EXPECT_EQ(check_bits(2, "wbits"), 2);
  EXPECT_EQ(check_bits(8, "abits"), 8);
  for (int bad : {0, 1, 9, 16}) {
    try {
      check_bits(bad, "wbits");
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--wbits must be an integer in 2..8"), std::string::npos);
    }
  }
}

TEST(ApqQuant, SymmetricUniformHandValues) {
  // 4 bits: codes -8..7, interval 0.5.
  EXPECT_FLOAT_EQ(quant_sym(1.3f, 0.5f, 4), 1.5f);     // 2.6 -> 3
  EXPECT_FLOAT_EQ(quant_sym(1.25f, 0.5f, 4), 1.0f);    // 2.5 -> 2 (half to even)
  EXPECT_FLOAT_EQ(quant_sym(0.75f, 0.5f, 4), 1.0f);    // 1.5 -> 2
  EXPECT_FLOAT_EQ(quant_sym(10.0f, 0.5f, 4), 3.5f);    // clamp at 7
  EXPECT_FLOAT_EQ(quant_sym(-10.0f, 0.5f, 4), -4.0f);  // clamp at -8
  // 2 bits: codes -2..1.
  EXPECT_FLOAT_EQ(quant_sym(5.0f, 1.0f, 2), 1.0f);
  EXPECT_FLOAT_EQ(quant_sym(-5.0f, 1.0f, 2), -2.0f);
  EXPECT_FLOAT_EQ(initial_interval(7.5f, 4), 1.0f);    // 7.5 / (8 - 0.5)
  EXPECT_FLOAT_EQ(initial_interval(127.5f, 8), 1.0f);  // 127.5 / (128 - 0.5)
  std::vector<float> v = {1.3f, -10.0f};
  quant_sym_inplace(v.data(), v.size(), 0.5f, 4);
  EXPECT_FLOAT_EQ(v[0], 1.5f);
  EXPECT_FLOAT_EQ(v[1], -4.0f);
  EXPECT_THROW(quant_sym_inplace(v.data(), v.size(), 0.0f, 4), Error);
}

TEST(ApqQuant, WeightRowGroups) {
  // 6 rows x 2 cols, 3 intervals (qkv): rows 0-1 interval 1, rows 2-3 0.5, rows 4-5 0.25.
  const std::vector<float> w = {1.4f, -9.0f, 1.4f, -9.0f, 0.3f, 0.8f, 0.3f, 0.8f, 0.3f, 3.0f, 0.3f, 3.0f};
  std::vector<float> out(w.size());
  quant_weight_rows(w.data(), out.data(), 6, 2, {1.0f, 0.5f, 0.25f}, 4);
  const std::vector<float> want = {1.0f, -8.0f, 1.0f, -8.0f, 0.5f, 1.0f,
                                   0.5f, 1.0f,  0.25f, 1.75f, 0.25f, 1.75f};
  for (size_t i = 0; i < w.size(); ++i) EXPECT_FLOAT_EQ(out[i], want[i]) << i;
  // Per tensor: one interval for all rows.
  quant_weight_rows(w.data(), out.data(), 6, 2, {0.5f}, 4);
  EXPECT_FLOAT_EQ(out[0], 1.5f);
  EXPECT_FLOAT_EQ(out[1], -4.0f);
  EXPECT_THROW(quant_weight_rows(w.data(), out.data(), 6, 2, {1.0f, 1.0f, 1.0f, 1.0f}, 4), Error);
  EXPECT_THROW(quant_weight_rows(w.data(), out.data(), 6, 2, {1.0f}, 9), Error);
}

TEST(ApqQuant, TwinSoftmaxDisjoint) {
  // 4 bits: m = 7; split 2^-2 = 0.25: d1 = 0.25/7, d2 = 1/7.
  const auto D = TwinSoftmaxMode::disjoint;
  EXPECT_FLOAT_EQ(quant_twin_softmax(0.1f, 4, 2, D), 3.0f * 0.25f / 7.0f);  // 2.8 -> 3
  EXPECT_FLOAT_EQ(quant_twin_softmax(0.2499f, 4, 2, D), 0.25f);            // 6.997 -> 7
  EXPECT_FLOAT_EQ(quant_twin_softmax(0.25f, 4, 2, D), 2.0f / 7.0f);         // 1.75 -> 2
  EXPECT_FLOAT_EQ(quant_twin_softmax(0.6f, 4, 2, D), 4.0f / 7.0f);          // 4.2 -> 4
  EXPECT_FLOAT_EQ(quant_twin_softmax(1.0f, 4, 2, D), 1.0f);
  EXPECT_FLOAT_EQ(quant_twin_softmax(0.0f, 4, 2, D), 0.0f);
}

TEST(ApqQuant, TwinSoftmaxAddedQuirk) {
  const auto A = TwinSoftmaxMode::added;
  // 4 bits, split 0.25: the high part is clamped below at round(0.25*7) = 2 codes.
  EXPECT_FLOAT_EQ(quant_twin_softmax(0.1f, 4, 2, A), 3.0f * 0.25f / 7.0f + 2.0f / 7.0f);
  EXPECT_FLOAT_EQ(quant_twin_softmax(0.6f, 4, 2, A), 0.25f + 4.0f / 7.0f);  // ~split added
  // 8 bits, split 2^-8 < 2^-7: round(127/256) = 0, so small values get nothing added and the
  // result equals the disjoint quantizer.
  const float x = 0.001f;
  EXPECT_FLOAT_EQ(quant_twin_softmax(x, 8, 8, A), 33.0f / (256.0f * 127.0f));  // 32.512 -> 33
  EXPECT_FLOAT_EQ(quant_twin_softmax(x, 8, 8, A), quant_twin_softmax(x, 8, 8, TwinSoftmaxMode::disjoint));
  std::vector<float> v = {0.1f};
  EXPECT_THROW(quant_twin_softmax_inplace(v.data(), 1, 4, -1, A), Error);
  EXPECT_THROW(quant_twin_softmax_inplace(v.data(), 1, 1, 2, A), Error);
}

TEST(ApqQuant, TwinGelu) {
  // 4 bits: negative interval 0.16997/8, codes -8..0; positive interval 0.5, codes 0..7.
  const float dn = 0.16997f / 8.0f;
  EXPECT_FLOAT_EQ(gelu_neg_interval(4), dn);
  EXPECT_FLOAT_EQ(quant_twin_gelu(-0.17f, 4, 0.5f), -8.0f * dn);
  EXPECT_FLOAT_EQ(quant_twin_gelu(-0.05f, 4, 0.5f), -2.0f * dn);  // -2.353 -> -2
  EXPECT_FLOAT_EQ(quant_twin_gelu(-1.0f, 4, 0.5f), -8.0f * dn);   // clamp
  EXPECT_FLOAT_EQ(quant_twin_gelu(2.2f, 4, 0.5f), 2.0f);           // 4.4 -> 4
  EXPECT_FLOAT_EQ(quant_twin_gelu(100.0f, 4, 0.5f), 3.5f);         // clamp at 7
  EXPECT_FLOAT_EQ(quant_twin_gelu(0.0f, 4, 0.5f), 0.0f);
  std::vector<float> v = {1.0f};
  EXPECT_THROW(quant_twin_gelu_inplace(v.data(), 1, 4, 0.0f), Error);
}

// round_half_even (the quantizers' inline rounding) is bit for bit std::nearbyint: halves, the
// edges of its fast range (2^22), large and tiny values, signed zeros, infinities and NaN, and a
// sweep of random floats over many binades.
TEST(ApqQuant, RoundHalfEvenIsNearbyint) {
  std::vector<float> v = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 0.49999997f, -0.3f, 1e-40f, -1e-40f,
                          0x1p22f - 0.5f, 0x1p22f, 0x1p22f + 0.5f, -(0x1p22f + 0.5f), 0x1p23f - 0.5f, 0x1p23f + 1.0f,
                          -0x1p23f + 0.5f, 3e38f, -3e38f, INFINITY, -INFINITY};
  for (int k = -1000; k <= 1000; ++k) v.push_back(float(k) + 0.5f);
  uint32_t state = 12345;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    const int e = static_cast<int>(state >> 27) - 8;  // 2^-8 .. 2^23
    const float m = static_cast<float>(state & 0xffffff) / float(1 << 24);
    v.push_back(std::ldexp(1.0f + m, e) * ((state >> 26) & 1 ? -1.0f : 1.0f));
  }
  for (float x : v) {
    const float want = std::nearbyint(x), got = apq::round_half_even(x);
    uint32_t a, b;
    std::memcpy(&a, &want, 4), std::memcpy(&b, &got, 4);
    ASSERT_EQ(a, b) << x;
  }
  EXPECT_TRUE(std::isnan(apq::round_half_even(NAN)));
}

}  // namespace
}  // namespace qvit::apq
