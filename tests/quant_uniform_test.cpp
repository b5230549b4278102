// Uniform quantizer: hand-computed cases (formulas, half-to-even, the 127.5 weight divisor and
// its 128 -> 127 clamp, the eps clamp) and bit-exact golden outputs of tools/quant_reference.py.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "golden.h"
#include "qvit/error.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit {
namespace {

// Exact equality of float arrays (+0 == -0: PyTorch's clamp may flip the sign of a zero code),
// reporting the first difference.
void expect_same_floats(const float* got, const std::vector<float>& want, const char* what) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const bool same = got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]));
    if (!same && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": first mismatch at " << first << ": " << got[first] << " vs "
                     << want[first];
}

std::vector<float> json_floats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

QuantParams make_params(std::vector<float> scale, std::vector<float> zero, BitType bits) {
  QuantParams p;
  p.kind = QuantKind::uniform;
  p.bits = bits;
  p.scale = std::move(scale);
  p.zero_point = std::move(zero);
  return p;
}

TEST(QuantUniform, AsymmetricParamsByHand) {
  // min -1, max 3, uint8: scale = 4 / 255, zero = 0 - round(-1 / scale) = round(63.75) = 64.
  const QuantParams p = uniform_params({-1.0f}, {3.0f}, BitType{8, false}, false);
  EXPECT_EQ(p.scale[0], 4.0f / 255.0f);
  EXPECT_EQ(p.zero_point[0], 64.0f);
  std::vector<float> x = {0.0f, 3.0f, -1.0f, 1.0f};
  fake_quant(x.data(), 1, 4, p);
  const float s = p.scale[0];
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[1], 191.0f * s);  // 3 / s + 64 = 255.25 -> 255
  EXPECT_EQ(x[2], -64.0f * s);  // -63.75 + 64 = 0.25 -> 0
  EXPECT_EQ(x[3], std::nearbyint(1.0f / s + 64.0f - 64.0f) * s);
  // A range that excludes 0 clamps the zero point: [2, 4] -> zero = clamp(-round(255), 0) = 0.
  const QuantParams q = uniform_params({2.0f}, {4.0f}, BitType{8, false}, false);
  EXPECT_EQ(q.zero_point[0], 0.0f);
  const QuantParams r = uniform_params({-4.0f}, {-2.0f}, BitType{8, false}, false);
  EXPECT_EQ(r.zero_point[0], 255.0f);
}

TEST(QuantUniform, RoundsHalfToEven) {
  const QuantParams p = make_params({1.0f}, {0.0f}, BitType{8, false});
  std::vector<float> x = {0.5f, 1.5f, 2.5f, 3.5f, -0.5f, 254.5f, 255.5f, 300.0f, -7.0f, 127.49999f};
  fake_quant(x.data(), 1, static_cast<int64_t>(x.size()), p);
  const std::vector<float> want = {0, 2, 2, 4, 0, 254, 255, 255, 0, 127};
  expect_same_floats(x.data(), want, "half to even");
  // The vectorisable rounding equals nearbyint on halves and near-halves.
  for (float v = -300.0f; v <= 300.0f; v += 0.25f) {
    EXPECT_EQ(quant_detail::round_half_even_small(v), std::nearbyint(v)) << v;
    const float up = std::nextafter(v, 1e9f), down = std::nextafter(v, -1e9f);
    EXPECT_EQ(quant_detail::round_half_even_small(up), std::nearbyint(up)) << up;
    EXPECT_EQ(quant_detail::round_half_even_small(down), std::nearbyint(down)) << down;
  }
}

TEST(QuantUniform, SymmetricWeightDivisorAndClamp) {
  // Row 0: absmax 127.5 -> scale exactly 1; 127.5 rounds to 128 and is clamped to 127.
  // Row 1: -127.5 rounds to -128, which int8 keeps.
  const std::vector<float> w = {127.5f, -3.2f, 0.5f, 1.5f, -127.5f, 1.0f, 2.5f, 0.0f};
  const QuantParams p = weight_params_per_channel(w.data(), 2, 4, BitType{8, true});
  ASSERT_EQ(p.scale.size(), 2u);
  EXPECT_EQ(p.scale[0], 1.0f);
  EXPECT_EQ(p.scale[1], 1.0f);
  EXPECT_EQ(p.zero_point[0], 0.0f);
  std::vector<float> q = w;
  fake_quant_weight(q.data(), 2, 4, p);
  expect_same_floats(q.data(), {127.0f, -3.0f, 0.0f, 2.0f, -128.0f, 1.0f, 2.0f, 0.0f}, "int8");
  // int4: divisor (7 - (-8)) / 2 = 7.5.
  const QuantParams p4 = weight_params_per_channel(w.data(), 2, 4, BitType{4, true});
  EXPECT_EQ(p4.scale[0], 127.5f / 7.5f);
  // Unsigned weight types follow FQ-ViT's MinMax: asymmetric per row.
  const QuantParams pu = weight_params_per_channel(w.data(), 2, 4, BitType{8, false});
  EXPECT_EQ(pu.scale[0], (127.5f - -3.2f) / 255.0f);
  EXPECT_NE(pu.zero_point[0], 0.0f);
}

TEST(QuantUniform, EpsClampOnConstantTensors) {
  const float eps = 1.1920928955078125e-07f;
  const QuantParams zero = uniform_params({0.0f}, {0.0f}, BitType{8, false}, false);
  EXPECT_EQ(zero.scale[0], eps);
  EXPECT_EQ(zero.zero_point[0], 0.0f);
  // A constant 5: scale eps, zero clamped to 0, so 5 saturates at 255 * eps (FQ-ViT's result).
  const QuantParams five = uniform_params({5.0f}, {5.0f}, BitType{8, false}, false);
  EXPECT_EQ(five.scale[0], eps);
  EXPECT_EQ(five.zero_point[0], 0.0f);
  float x = 5.0f;
  fake_quant(&x, 1, 1, five);
  EXPECT_EQ(x, 255.0f * eps);
  const QuantParams sym = uniform_params({0.0f}, {0.0f}, BitType{8, true}, true);
  EXPECT_EQ(sym.scale[0], eps);
}

TEST(QuantUniform, PerChannelAndPtfLayouts) {
  // Per channel: column c uses scale[c], zero[c]. PTF: per-channel scale, one zero point.
  const QuantParams pc = make_params({0.5f, 2.0f}, {3.0f, 10.0f}, BitType{8, false});
  std::vector<float> x = {1.0f, 1.2f, -1.6f, 5.0f};
  fake_quant(x.data(), 2, 2, pc);
  expect_same_floats(x.data(), {1.0f, 2.0f, -1.5f, 4.0f}, "per channel");
  QuantParams ptf = make_params({0.25f, 1.0f}, {2.0f}, BitType{8, false});
  ptf.kind = QuantKind::ptf;
  std::vector<float> y = {1.1f, 1.6f, -0.6f, -3.0f};
  fake_quant(y.data(), 2, 2, ptf);
  expect_same_floats(y.data(), {1.0f, 2.0f, -0.5f, -2.0f}, "ptf");  // -3 -> code -1 -> 0
  QuantParams none;
  std::vector<float> z = {1.234f};
  fake_quant(z.data(), 1, 1, none);
  EXPECT_EQ(z[0], 1.234f);
}

TEST(QuantUniform, RejectsMismatchedParams) {
  const QuantParams p = make_params({1.0f, 1.0f, 1.0f}, {0.0f}, BitType{8, false});
  std::vector<float> x(8, 0.0f);
  EXPECT_THROW(fake_quant(x.data(), 2, 4, p), Error);
  EXPECT_THROW(fake_quant_weight(x.data(), 4, 2, p), Error);
  EXPECT_THROW(weight_params_per_channel(x.data(), 0, 2, BitType{8, true}), Error);
  EXPECT_THROW(uniform_params({0.0f}, {}, BitType{8, true}, true), Error);
  std::vector<float> bad = {1.0f, NAN};
  EXPECT_THROW(weight_params_per_channel(bad.data(), 1, 2, BitType{8, true}), Error);
}

// ---- Golden outputs of tools/quant_reference.py (bit-exact) ----

class QuantUniformGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { g_ = new test::Golden(test::load_golden(test::fixture("quant/golden"))); }
  static void TearDownTestSuite() { delete g_; }
  static test::Golden* g_;
};
test::Golden* QuantUniformGolden::g_ = nullptr;

TEST_F(QuantUniformGolden, ActivationsPerTensorPerChannelUint4) {
  const std::vector<float> x = g_->array("uniform.x");
  const int64_t rows = 64, C = 24;
  struct Case {
    const char* key;
    BitType bits;
    bool per_channel;
  };
  for (const Case& c : {Case{"uniform.per_tensor", {8, false}, false},
                        Case{"uniform.per_channel", {8, false}, true},
                        Case{"uniform.uint4", {4, false}, false}}) {
    ObserverOptions opt;
    opt.bits = c.bits;
    opt.per_channel = c.per_channel;
    auto obs = make_observer(ObserverKind::minmax, opt);
    obs->observe(x.data(), rows, C, true);
    const QuantParams p = obs->params();
    expect_same_floats(p.scale.data(), json_floats(g_->meta[c.key]["scale"]), c.key);
    expect_same_floats(p.zero_point.data(), json_floats(g_->meta[c.key]["zero_point"]), c.key);
    std::vector<float> y = x;
    fake_quant(y.data(), rows, C, p);
    expect_same_floats(y.data(), g_->array(std::string(c.key) + ".out"), c.key);
  }
}

TEST_F(QuantUniformGolden, WeightsPerOutputChannel) {
  const std::vector<float> w = g_->array("weight.w");
  const int64_t N = 16, K = 40;
  for (const char* name : {"int8", "int4", "uint8"}) {
    const BitType bits = parse_bit_type(name);
    const QuantParams p = weight_params_per_channel(w.data(), N, K, bits);
    const std::string key = std::string("weight.") + name;
    expect_same_floats(p.scale.data(), json_floats(g_->meta[key]["scale"]), key.c_str());
    expect_same_floats(p.zero_point.data(), json_floats(g_->meta[key]["zero_point"]), key.c_str());
    std::vector<float> q = w;
    fake_quant_weight(q.data(), N, K, p);
    expect_same_floats(q.data(), g_->array(key + ".out"), key.c_str());
    if (bits == BitType{8, true}) {
      // The quirk: +absmax of row 2 lands on code 127, -absmax of row 3 on -128.
      EXPECT_EQ(q[2 * K + 7], 127.0f * p.scale[2]);
      EXPECT_EQ(q[3 * K + 9], -128.0f * p.scale[3]);
    }
  }
}

}  // namespace
}  // namespace qvit
