// Every quantizer, observer and search gives the same bits with 1 and 2 threads: work is cut
// into chunks that depend only on the shape, and sums are combined in a fixed order. The data
// is large enough for several chunks on every path (binned OMSE, chunked percentile selection).
// Also: a disabled timing test for the observers on a 100x197x768 tensor
// (--gtest_also_run_disabled_tests --gtest_filter='*ObserverCost*').
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "qvit/parallel.h"
#include "qvit/quant.h"

namespace qvit {
namespace {

std::vector<float> activations(int64_t rows, int64_t C, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * C));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < C; ++c) x[r * C + c] = normal(rng) * (c % 7 == 0 ? 8.0f : 1.0f) + 0.1f * c;
  }
  return x;
}

// Flattens everything observable about params into floats.
std::vector<float> flatten(const QuantParams& p) {
  std::vector<float> v = p.scale;
  v.insert(v.end(), p.zero_point.begin(), p.zero_point.end());
  for (int32_t a : p.alpha) v.push_back(static_cast<float>(a));
  v.push_back(p.observed_min);
  v.push_back(p.observed_max);
  return v;
}

void expect_same_bits_1_2(const char* what, const std::function<std::vector<float>()>& fn) {
  const int saved = num_threads();
  set_num_threads(1);
  const std::vector<float> one = fn();
  set_num_threads(2);
  const std::vector<float> two = fn();
  set_num_threads(saved);
  ASSERT_EQ(one.size(), two.size()) << what;
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0) << what;
}

TEST(QuantThreads, SameBitsForOneAndTwoThreads) {
  const int64_t rows = 6000, C = 100;
  const std::vector<float> b1 = activations(rows, C, 1), b2 = activations(rows, C, 2);
  for (ObserverKind k : {ObserverKind::minmax, ObserverKind::ema, ObserverKind::percentile,
                         ObserverKind::omse, ObserverKind::ptf}) {
    for (bool per_channel : {false, true}) {
      if (k == ObserverKind::percentile && per_channel) continue;
      expect_same_bits_1_2(observer_kind_name(k), [&] {
        ObserverOptions opt;
        opt.per_channel = per_channel;
        auto obs = make_observer(k, opt);
        obs->observe(b1.data(), rows, C, false);
        obs->observe(b2.data(), rows, C, true);
        return flatten(obs->params());
      });
    }
  }
  ObserverOptions ptf_opt;
  auto ptf = make_observer(ObserverKind::ptf, ptf_opt);
  ptf->observe(b1.data(), rows, C, true);
  const QuantParams pp = ptf->params();
  expect_same_bits_1_2("fake_quant ptf", [&] {
    std::vector<float> y = b2;
    fake_quant(y.data(), rows, C, pp);
    return y;
  });
  expect_same_bits_1_2("fake_quant_weight", [&] {
    std::vector<float> w = b1;
    const QuantParams p = weight_params_per_channel(w.data(), rows, C, BitType{8, true});
    fake_quant_weight(w.data(), rows, C, p);
    return w;
  });
  expect_same_bits_1_2("int_layernorm_ptf", [&] {
    std::vector<float> x = b2, y(b2.size());
    fake_quant(x.data(), rows, C, pp);
    std::vector<float> gamma(C, 1.1f), beta(C, 0.05f);
    int_layernorm_ptf(x.data(), y.data(), rows, C, pp, gamma.data(), beta.data(), 0.03f);
    return y;
  });
  expect_same_bits_1_2("lis_softmax", [&] {
    std::vector<float> x = b1, probs(b1.size());
    const float S = 0.05f;
    for (float& v : x) v = S * std::nearbyint(v / S);
    lis_softmax(x.data(), probs.data(), nullptr, rows * C / 197, 197, S);
    return probs;
  });
  expect_same_bits_1_2("percentile, several selection chunks", [&] {
    std::vector<float> big = activations(25000, 100, 4);
    auto obs = make_observer(ObserverKind::percentile, ObserverOptions{});
    obs->observe(big.data(), 25000, 100, true);
    return flatten(obs->params());
  });
  expect_same_bits_1_2("fake_quant_log2", [&] {
    std::vector<float> p = b1;
    for (float& v : p) v = 1.0f / (1.0f + v * v);
    fake_quant_log2(p.data(), static_cast<int64_t>(p.size()), 4);
    return p;
  });
}

TEST(QuantThreads, DISABLED_ObserverCost) {
  const int64_t rows = 100 * 197, C = 768;
  const std::vector<float> x = activations(rows, C, 3);
  const auto ms = [](auto t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  std::printf("observer cost on [%lld, %lld] (%d threads): batch / last batch (with search)\n",
              static_cast<long long>(rows), static_cast<long long>(C), num_threads());
  for (ObserverKind k : {ObserverKind::minmax, ObserverKind::ema, ObserverKind::percentile,
                         ObserverKind::omse, ObserverKind::ptf}) {
    for (bool per_channel : {false, true}) {
      if ((k == ObserverKind::percentile || k == ObserverKind::ptf) && per_channel) continue;
      ObserverOptions opt;
      opt.per_channel = per_channel;
      auto obs = make_observer(k, opt);
      obs->observe(x.data(), rows, C, false);  // warm-up
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 3; ++i) obs->observe(x.data(), rows, C, false);
      const double batch = ms(t0) / 3;
      t0 = std::chrono::steady_clock::now();
      obs->observe(x.data(), rows, C, true);
      const double last = ms(t0);
      std::printf("  %-10s %-11s %8.1f ms %9.1f ms\n", observer_kind_name(k),
                  per_channel || k == ObserverKind::ptf ? "per-channel" : "per-tensor", batch,
                  last);
    }
  }
  std::vector<float> y = x;
  auto obs = make_observer(ObserverKind::minmax, ObserverOptions{});
  obs->observe(x.data(), rows, C, true);
  auto t0 = std::chrono::steady_clock::now();
  fake_quant(y.data(), rows, C, obs->params());
  std::printf("  fake_quant per-tensor %.1f ms\n", ms(t0));
}

}  // namespace
}  // namespace qvit
