// OMSE: the binned squared-error sums against the direct ones on several distributions, a
// hand case, an independent brute-force search, and golden parameters on regenerated batches.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "golden.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit {
namespace {

using quant_detail::UniformCandidate;

// Same generator as tools/quant_reference.py gen_values() (see quant_percentile_test.cpp).
std::vector<float> gen_values(uint32_t seed, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), 0.0f);
  const uint64_t mask = 0xFFFFFFFFull;
  for (uint64_t k = 0; k < 4; ++k) {
    for (int64_t i = 0; i < n; ++i) {
      uint64_t h = (static_cast<uint64_t>(i) * 0x9E3779B1ull + (seed * 4 + k) * 0x85EBCA77ull) & mask;
      h ^= h >> 15;
      h = (h * 0x2C1B3C6Dull) & mask;
      h ^= h >> 12;
      h = (h * 0x297A2D39ull) & mask;
      h ^= h >> 15;
      out[i] = out[i] + static_cast<float>(h >> 8) * 0x1p-24f;
    }
  }
  for (int64_t i = 0; i < n; ++i) out[i] = out[i] - 2.0f;
  for (int64_t i = 0; i < n; i += 997) out[i] = out[i] * 24.0f;
  return out;
}

// FQ-ViT's candidate list for a per-tensor range.
std::vector<UniformCandidate> candidates(float mn, float mx, BitType bits, int steps = 90) {
  std::vector<UniformCandidate> c(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    const float f = static_cast<float>(1.0 - i * 0.01);
    c[i].scale.resize(1);
    c[i].zero_point.resize(1);
    quant_detail::asymmetric_params(mn * f, mx * f, bits, &c[i].scale[0], &c[i].zero_point[0]);
  }
  return c;
}

size_t first_best(const std::vector<double>& sse) {
  size_t best = 0;
  for (size_t i = 1; i < sse.size(); ++i) {
    if (sse[i] < sse[best]) best = i;
  }
  return best;
}

TEST(QuantOmse, BinnedEqualsNaive) {
  std::mt19937 rng(3);
  const BitType bits{8, false};
  for (int dist = 0; dist < 5; ++dist) {
    for (int64_t n : {1000, 40000, 250000}) {
      std::vector<float> x(static_cast<size_t>(n));
      std::normal_distribution<float> normal(0.3f, 1.0f);
      std::student_t_distribution<float> heavy(2.0f);
      for (float& v : x) {
        v = dist == 0 ? normal(rng) : dist == 1 ? heavy(rng) : dist == 2 ? 1.5f
            : dist == 3 ? (normal(rng) > 0 ? 2.0f : -1.0f) : std::fabs(normal(rng));
      }
      const quant_detail::Range r = quant_detail::tensor_range(x.data(), n, "t");
      const auto cands = candidates(r.min, r.max, bits);
      const auto naive = quant_detail::sse_naive(x.data(), n, 1, cands, bits);
      const auto binned = quant_detail::sse_binned(x.data(), n, cands, bits);
      for (size_t i = 0; i < cands.size(); ++i) {
        EXPECT_NEAR(binned[i], naive[i], 1e-9 * naive[i] + 1e-30) << "dist " << dist << " n " << n << " i " << i;
      }
      EXPECT_EQ(first_best(binned), first_best(naive)) << "dist " << dist << " n " << n;
    }
  }
}

TEST(QuantOmse, ByHand) {
  // Two values {0, 1}: the full range is exact (error 0), so no later step is strictly better.
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 2);
  auto obs = make_observer(ObserverKind::omse, ObserverOptions{});
  obs->observe(x.data(), 16, 4, true);
  QuantParams p = obs->params();
  EXPECT_EQ(p.scale[0], 1.0f / 255.0f);
  EXPECT_EQ(p.zero_point[0], 0.0f);
  // Mostly small values plus one outlier: the search shrinks the range, and the choice equals
  // an independent brute-force search of mean (x - x^)^2.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  std::vector<float> y(40000);
  for (float& v : y) v = normal(rng);
  y[17] = 4.0f;
  auto obs2 = make_observer(ObserverKind::omse, ObserverOptions{});
  obs2->observe(y.data(), 10000, 4, true);
  p = obs2->params();
  const float mn = *std::min_element(y.begin(), y.end()), mx = 4.0f;
  double best = 1e10;
  float best_scale = 0, best_zero = 0;
  for (int i = 0; i < 90; ++i) {
    const float f = static_cast<float>(1.0 - i * 0.01);
    const float lo = mn * f, hi = mx * f;
    float s = (hi - lo) / 255.0f;
    s = std::max(s, 1.1920928955078125e-07f);
    const float z = std::clamp(0.0f - std::nearbyint(lo / s), 0.0f, 255.0f);
    double sum = 0;
    for (float v : y) {
      const float q = std::clamp(std::nearbyint(v / s + z), 0.0f, 255.0f);
      const double d = static_cast<double>(v) - static_cast<double>((q - z) * s);
      sum += d * d;
    }
    if (sum / y.size() < best) {
      best = sum / y.size();
      best_scale = s;
      best_zero = z;
    }
  }
  EXPECT_EQ(p.scale[0], best_scale);
  EXPECT_EQ(p.zero_point[0], best_zero);
  EXPECT_LT(p.scale[0], (mx - mn) / 255.0f);  // shrunk
  EXPECT_EQ(p.observed_max, 4.0f);            // reports the observed range
}

TEST(QuantOmse, GoldenOnRegeneratedBatches) {
  const test::Golden g = test::load_golden(test::fixture("quant/golden"));
  const auto& c = g.meta["omse.generated"];
  const int64_t rows = c["rows"].get<int64_t>(), C = c["C"].get<int64_t>();
  auto obs = make_observer(ObserverKind::omse, ObserverOptions{});
  const auto seeds = c["seeds"].get<std::vector<uint32_t>>();
  for (size_t b = 0; b < seeds.size(); ++b) {
    const std::vector<float> x = gen_values(seeds[b], rows * C);
    obs->observe(x.data(), rows, C, b + 1 == seeds.size());  // n = 48000: binned path
  }
  const QuantParams p = obs->params();
  EXPECT_EQ(p.scale, c["scale"].get<std::vector<float>>());
  EXPECT_EQ(p.zero_point, c["zero_point"].get<std::vector<float>>());
  EXPECT_GT(c["step"].get<int>(), 0);
}

}  // namespace
}  // namespace qvit
