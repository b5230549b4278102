// Percentile observer internals: exact order statistics (fast tail selection vs copy +
// nth_element), FQ-ViT's quantile arithmetic by hand, and golden quantiles of torch.quantile
// (n <= 2^24) and numpy.percentile (n > 2^24) on tensors regenerated from a shared hash.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "golden.h"
#include "qvit/error.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit {
namespace {

using quant_detail::percentile_range;
using quant_detail::select_ranks;
using quant_detail::select_ranks_naive;

// tools/quant_reference.py gen_values(): Irwin-Hall(4) - 2 from an integer hash, every 997th
// value times 24; exact float operations only, so both sides produce the same bits.
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

TEST(QuantPercentile, SelectRanksMatchesNthElement) {
  std::mt19937 rng(7);
  for (int64_t n : {1, 2, 7, 100, 1000, 70001, 2500000}) {  // 2.5M: three selection chunks
    for (int dist = 0; dist < 3; ++dist) {
      std::vector<float> x(static_cast<size_t>(n));
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::uniform_int_distribution<int> few(-3, 3);
      for (size_t i = 0; i < x.size(); ++i) {
        x[i] = dist == 0 ? normal(rng) : dist == 1 ? static_cast<float>(few(rng))  // many ties
                                                   : static_cast<float>(i);        // sorted
      }
      if (dist == 2 && n > 1) std::reverse(x.begin(), x.begin() + n / 2);
      std::vector<int64_t> ranks = {0, std::min<int64_t>(1, n - 1), n / 100, n - 1 - n / 100,
                                    std::max<int64_t>(n - 2, 0), n - 1};
      if (n > 10) ranks.push_back(n / 2);  // a middle rank takes the copy path
      for (size_t r = 0; r < 2; ++r) {
        std::vector<int64_t> rk = r == 0 ? std::vector<int64_t>(ranks.begin(), ranks.begin() + 6)
                                         : ranks;
        std::vector<float> fast, naive;
        select_ranks(x.data(), n, rk, fast, "test");
        select_ranks_naive(x.data(), n, rk, naive);
        EXPECT_EQ(fast, naive) << "n=" << n << " dist=" << dist;
      }
    }
  }
}

TEST(QuantPercentile, QuantileArithmeticByHand) {
  // 0..4 with p = 0.75: ranks 1 and 3 are exact.
  const std::vector<float> a = {4, 0, 3, 1, 2};
  quant_detail::Range r = percentile_range(a.data(), 5, 0.75, "t");
  EXPECT_EQ(r.min, 1.0f);
  EXPECT_EQ(r.max, 3.0f);
  // 0, 10, ..., 90 with p = 0.9: rank = float(0.9) * 9 = 8.1 (float32) -> between 80 and 90.
  std::vector<float> b;
  for (int i = 9; i >= 0; --i) b.push_back(10.0f * i);
  r = percentile_range(b.data(), 10, 0.9, "t");
  const float rank = 0.9f * 9.0f, w = rank - 8.0f;
  EXPECT_EQ(r.max, std::fma(w, 10.0f, 80.0f));  // w < 0.5: self + w (end - self)
  EXPECT_NEAR(r.max, 81.0f, 1e-4f);
  const float rank_lo = static_cast<float>(1.0 - 0.9) * 9.0f, w_lo = rank_lo;  // below = 0
  EXPECT_EQ(r.min, std::fma(-10.0f, 1.0f - w_lo, 10.0f));  // w >= 0.5: end - (end - self)(1 - w)
  EXPECT_NEAR(r.min, 9.0f, 1e-4f);
  // FQ-ViT's default on a small tensor: the extremes dominate.
  r = percentile_range(b.data(), 10, 0.99999, "t");
  EXPECT_NEAR(r.max, 90.0f, 1e-3f);
  EXPECT_NEAR(r.min, 0.0f, 1e-3f);
  EXPECT_LE(r.max, 90.0f);
  std::vector<float> bad = {1.0f, NAN, 2.0f};
  EXPECT_THROW(percentile_range(bad.data(), 3, 0.99999, "t"), Error);
}

TEST(QuantPercentile, GoldenTorchAndNumpyQuantiles) {
  const test::Golden g = test::load_golden(test::fixture("quant/golden"));
  for (const auto& c : g.meta["percentile.generated"]) {
    const int64_t n = c["n"].get<int64_t>();
    const std::vector<float> x = gen_values(c["seed"].get<uint32_t>(), n);
    const quant_detail::Range r = percentile_range(x.data(), n, 0.99999, "golden");
    EXPECT_EQ(r.min, c["lo"].get<float>()) << "n=" << n;
    EXPECT_EQ(r.max, c["hi"].get<float>()) << "n=" << n;
  }
}

TEST(QuantPercentile, ObserverAveragesBatchQuantiles) {
  const std::vector<float> b1 = gen_values(21, 5000), b2 = gen_values(22, 5000);
  auto obs = make_observer(ObserverKind::percentile, ObserverOptions{});
  obs->observe(b1.data(), 50, 100, false);
  obs->observe(b2.data(), 50, 100, true);
  const QuantParams p = obs->params();
  const auto r1 = percentile_range(b1.data(), 5000, 0.99999, "t");
  const auto r2 = percentile_range(b2.data(), 5000, 0.99999, "t");
  EXPECT_EQ(p.observed_max, r1.max + 0.01f * (r2.max - r1.max));
  EXPECT_EQ(p.observed_min, r1.min + 0.01f * (r2.min - r1.min));
}

}  // namespace
}  // namespace qvit
