// Observers: MinMax and EMA by hand, every observer against tools/quant_reference.py on three
// calibration batches (bit-exact parameters), and the error cases shared by all observers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "golden.h"
#include "qvit/error.h"
#include "qvit/quant.h"

namespace qvit {
namespace {

QuantParams run(ObserverKind kind, const ObserverOptions& opt,
                const std::vector<std::vector<float>>& batches, int64_t C) {
  auto obs = make_observer(kind, opt);
  for (size_t b = 0; b < batches.size(); ++b) {
    obs->observe(batches[b].data(), static_cast<int64_t>(batches[b].size()) / C, C,
                 b + 1 == batches.size());
  }
  return obs->params();
}

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("[quant] ", 0), 0u) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

const std::vector<std::vector<float>> kBatches = {{1.0f, -2.0f, 3.0f, 0.0f}, {5.0f, -1.0f}};

TEST(QuantObserver, MinMaxByHand) {
  ObserverOptions opt;
  QuantParams p = run(ObserverKind::minmax, opt, kBatches, 2);
  EXPECT_EQ(p.kind, QuantKind::uniform);
  EXPECT_EQ(p.scale, uniform_params({-2.0f}, {5.0f}, opt.bits, false).scale);
  EXPECT_EQ(p.zero_point, uniform_params({-2.0f}, {5.0f}, opt.bits, false).zero_point);
  EXPECT_EQ(p.observed_min, -2.0f);
  EXPECT_EQ(p.observed_max, 5.0f);
  opt.per_channel = true;
  p = run(ObserverKind::minmax, opt, kBatches, 2);
  const QuantParams want = uniform_params({1.0f, -2.0f}, {5.0f, 0.0f}, opt.bits, false);
  EXPECT_EQ(p.scale, want.scale);
  EXPECT_EQ(p.zero_point, want.zero_point);
  opt.bits = BitType{8, true};  // signed -> symmetric: absmax 5 / 127.5
  opt.per_channel = false;
  p = run(ObserverKind::minmax, opt, kBatches, 2);
  EXPECT_EQ(p.scale[0], 5.0f / 127.5f);
  EXPECT_EQ(p.zero_point[0], 0.0f);
}

TEST(QuantObserver, EmaByHand) {
  ObserverOptions opt;
  QuantParams p = run(ObserverKind::ema, opt, kBatches, 2);
  // First batch [-2, 3]; second [-1, 5]: m + 0.01 (b - m) in float32.
  const float mn = -2.0f + 0.01f * (-1.0f - -2.0f);
  const float mx = 3.0f + 0.01f * (5.0f - 3.0f);
  EXPECT_NEAR(mn, -1.99f, 1e-6f);
  EXPECT_EQ(p.observed_min, mn);
  EXPECT_EQ(p.observed_max, mx);
  EXPECT_EQ(p.scale, uniform_params({mn}, {mx}, opt.bits, false).scale);
  opt.per_channel = true;
  p = run(ObserverKind::ema, opt, kBatches, 2);
  // Channel 0: [1, 3] then [5, 5]; channel 1: [-2, 0] then [-1, -1].
  const QuantParams want = uniform_params({1.0f + 0.01f * (5.0f - 1.0f), -2.0f + 0.01f * (-1.0f - -2.0f)},
                                          {3.0f + 0.01f * (5.0f - 3.0f), 0.0f + 0.01f * (-1.0f - 0.0f)},
                                          opt.bits, false);
  EXPECT_EQ(p.scale, want.scale);
  EXPECT_EQ(p.zero_point, want.zero_point);
  // A single batch is its own min/max.
  p = run(ObserverKind::ema, ObserverOptions{}, {kBatches[0]}, 2);
  EXPECT_EQ(p.observed_min, -2.0f);
  EXPECT_EQ(p.observed_max, 3.0f);
}

TEST(QuantObserver, Names) {
  for (ObserverKind k : {ObserverKind::minmax, ObserverKind::ema, ObserverKind::percentile,
                         ObserverKind::omse, ObserverKind::ptf}) {
    EXPECT_EQ(parse_observer_kind(observer_kind_name(k)), k);
    EXPECT_EQ(make_observer(k, ObserverOptions{})->kind(), k);
  }
  expect_error([] { parse_observer_kind("kl"); }, "unknown observer 'kl'");
}

TEST(QuantObserver, Errors) {
  ObserverOptions opt;
  opt.name = "blocks.3.qact2";
  for (ObserverKind k : {ObserverKind::minmax, ObserverKind::ema, ObserverKind::percentile,
                         ObserverKind::omse, ObserverKind::ptf}) {
    SCOPED_TRACE(observer_kind_name(k));
    auto obs = make_observer(k, opt);
    expect_error([&] { obs->params(); }, "observer 'blocks.3.qact2'");
    expect_error([&] { obs->params(); }, "before any batch");
    const std::vector<float> x(12, 1.0f);
    obs->observe(x.data(), 3, 4, false);
    expect_error([&] { obs->observe(x.data(), 4, 3, false); }, "C = 3 but earlier batches had C = 4");
    std::vector<float> bad = x;
    bad[5] = std::numeric_limits<float>::quiet_NaN();
    expect_error([&] { obs->observe(bad.data(), 3, 4, false); }, "NaN or Inf");
    bad[5] = -std::numeric_limits<float>::infinity();
    expect_error([&] { obs->observe(bad.data(), 3, 4, false); }, "NaN or Inf");
    expect_error([&] { obs->observe(x.data(), 0, 4, false); }, "non-empty");
    // A batch that threw leaves no trace.
    auto fresh = make_observer(k, opt);
    expect_error([&] { fresh->observe(bad.data(), 3, 4, true); }, "NaN or Inf");
    expect_error([&] { fresh->params(); }, "before any batch");
    fresh->observe(x.data(), 4, 3, true);  // C = 3 is fine: the failed batch did not count
    EXPECT_NO_THROW(fresh->params());
    obs->observe(x.data(), 3, 4, true);
    EXPECT_NO_THROW(obs->params());
    expect_error([&] { obs->observe(x.data(), 3, 4, false); }, "after the batch marked last");
  }
  // OMSE and PTF search on the last batch: params() needs it.
  for (ObserverKind k : {ObserverKind::omse, ObserverKind::ptf}) {
    auto obs = make_observer(k, opt);
    const std::vector<float> x(8, 2.0f);
    obs->observe(x.data(), 2, 4, false);
    expect_error([&] { obs->params(); }, "needs the batch marked last");
  }
  opt.per_channel = true;
  expect_error([&] { make_observer(ObserverKind::percentile, opt); }, "per-tensor only");
  ObserverOptions bad_bits;
  bad_bits.bits = BitType{1, false};
  expect_error([&] { make_observer(ObserverKind::minmax, bad_bits); }, "impossible bit type 'uint1'");
  ObserverOptions bad_k;
  bad_k.ptf_k = 9;
  expect_error([&] { make_observer(ObserverKind::ptf, bad_k); }, "ptf_k");
  ObserverOptions bad_steps;
  bad_steps.omse_steps = 101;
  expect_error([&] { make_observer(ObserverKind::omse, bad_steps); }, "omse_steps");
}

// ---- Golden: all observers on three batches [96, 32] ----

class QuantObserverGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_ = new test::Golden(test::load_golden(test::fixture("quant/golden")));
    for (int b = 0; b < 3; ++b) batches_.push_back(g_->array("obs.batch" + std::to_string(b)));
  }
  static void TearDownTestSuite() {
    delete g_;
    batches_.clear();
  }
  static void check(const char* key, ObserverKind kind, BitType bits, bool per_channel) {
    SCOPED_TRACE(key);
    ObserverOptions opt;
    opt.bits = bits;
    opt.per_channel = per_channel;
    const QuantParams p = run(kind, opt, batches_, 32);
    const auto& want = g_->meta[key];
    EXPECT_EQ(p.scale, want["scale"].get<std::vector<float>>());
    EXPECT_EQ(p.zero_point, want["zero_point"].get<std::vector<float>>());
    if (want.contains("min") && want["min"].size() == 1) {
      EXPECT_EQ(p.observed_min, want["min"][0].get<float>());
      EXPECT_EQ(p.observed_max, want["max"][0].get<float>());
    }
    if (want.contains("alpha")) {
      EXPECT_EQ(p.alpha, want["alpha"].get<std::vector<int32_t>>());
      EXPECT_EQ(p.kind, QuantKind::ptf);
    }
  }
  static test::Golden* g_;
  static std::vector<std::vector<float>> batches_;
};
test::Golden* QuantObserverGolden::g_ = nullptr;
std::vector<std::vector<float>> QuantObserverGolden::batches_;

TEST_F(QuantObserverGolden, MinMax) {
  check("obs.minmax", ObserverKind::minmax, {8, false}, false);
  check("obs.minmax_pc", ObserverKind::minmax, {8, false}, true);
  check("obs.minmax_int8", ObserverKind::minmax, {8, true}, false);
}

TEST_F(QuantObserverGolden, Ema) {
  check("obs.ema", ObserverKind::ema, {8, false}, false);
  check("obs.ema_pc", ObserverKind::ema, {8, false}, true);
}

TEST_F(QuantObserverGolden, Percentile) {
  check("obs.percentile", ObserverKind::percentile, {8, false}, false);
  check("obs.percentile_int8", ObserverKind::percentile, {8, true}, false);
}

TEST_F(QuantObserverGolden, Omse) {
  check("obs.omse", ObserverKind::omse, {8, false}, false);
  check("obs.omse_pc", ObserverKind::omse, {8, false}, true);
  check("obs.omse_int8", ObserverKind::omse, {8, true}, false);  // asymmetric even if signed
}

TEST_F(QuantObserverGolden, Ptf) { check("obs.ptf", ObserverKind::ptf, {8, false}, true); }

}  // namespace
}  // namespace qvit
