// Calibration metrics: hand-computed values and BBC bottom elimination against a brute force
// (full sort of all terms).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "qvit/apq_metric.h"
#include "qvit/error.h"

namespace qvit::apq {
namespace {

TEST(ApqMetric, HandValues) {
  const std::vector<float> o = {1, 2, 3, 4}, q = {1, 2.5f, 2, 4}, g = {5, 2, 1, 0};
  // terms: 0, (2*0.5)^2 = 1, (1*1)^2 = 1, 0 -> hessian = -2/4
  EXPECT_DOUBLE_EQ(metric_hessian(o.data(), q.data(), g.data(), 4), -0.5);
  // keep 1/4 -> 1 element; by term: tie between index 1 and 2 -> index 1 (1.0) -> -1/4
  EXPECT_DOUBLE_EQ(metric_bbc(o.data(), q.data(), g.data(), 4, 0.25, BbcRank::term), -0.25);
  // by g^2: index 0 (g=5, term 0) -> 0
  EXPECT_DOUBLE_EQ(metric_bbc(o.data(), q.data(), g.data(), 4, 0.25, BbcRank::grad), 0.0);
  // cosine of (1,0) and (1,1) = 1/sqrt(2)
  const std::vector<float> a = {1, 0}, b = {1, 1};
  EXPECT_NEAR(metric_cosine(a.data(), b.data(), 2), 1.0 / std::sqrt(2.0), 1e-12);
  EXPECT_THROW(metric_bbc(o.data(), q.data(), g.data(), 4, 0.0, BbcRank::term), Error);
  EXPECT_THROW(metric_bbc(o.data(), q.data(), g.data(), 0, 1.0, BbcRank::term), Error);
}

TEST(ApqMetric, BbcMatchesBruteForce) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t n = 301;
  std::vector<float> o(n), q(n), g(n);
  for (size_t i = 0; i < n; ++i) o[i] = nd(rng), q[i] = o[i] + 0.1f * nd(rng), g[i] = nd(rng);
  for (double keep : {0.1, 0.5, 0.9, 1.0}) {
    for (BbcRank r : {BbcRank::term, BbcRank::error, BbcRank::grad}) {
      std::vector<std::pair<double, double>> kt;  // (key, term)
      for (size_t i = 0; i < n; ++i) {
        const double e = static_cast<double>(o[i]) - q[i], t = (g[i] * e) * (g[i] * e);
        const double k = r == BbcRank::term ? t : r == BbcRank::error ? std::fabs(e) : double(g[i]) * g[i];
        kt.push_back({k, t});
      }
      std::sort(kt.begin(), kt.end(), [](auto& a, auto& b) { return a.first > b.first; });
      const size_t kept = static_cast<size_t>(std::ceil(keep * n - 1e-9));
      double s = 0;
      for (size_t i = 0; i < kept; ++i) s += kt[i].second;
      EXPECT_NEAR(metric_bbc(o.data(), q.data(), g.data(), n, keep, r), -s / n, 1e-12) << keep;
    }
  }
}

// Many chunks (the selection counts octaves per 65536-term chunk), heavy ties (terms from a
// few values), zero terms, and a keep fraction below 1/n (one term kept).
TEST(ApqMetric, BbcSelectionOnLargeTiedInputs) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> pick(0, 6);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t n = 200003;
  std::vector<float> o(n), q(n), g(n);
  const float steps[7] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.5f, 3.0f};
  for (size_t i = 0; i < n; ++i) {
    o[i] = nd(rng), q[i] = o[i] - steps[pick(rng)] * (i % 5 == 0 ? nd(rng) : 1.0f), g[i] = steps[pick(rng)];
  }
  std::vector<double> t(n);
  for (size_t i = 0; i < n; ++i) {
    const double ge = static_cast<double>(g[i]) * (static_cast<double>(o[i]) - q[i]);
    t[i] = ge * ge;
  }
  std::sort(t.begin(), t.end(), std::greater<double>());
  for (double keep : {1e-9, 0.01, 0.3, 0.5, 0.77, 0.999}) {
    const size_t kept = std::max<size_t>(1, static_cast<size_t>(std::ceil(keep * n - 1e-9)));
    double s = 0;
    for (size_t i = 0; i < kept; ++i) s += t[i];
    const double got = metric_bbc(o.data(), q.data(), g.data(), n, keep, BbcRank::term);
    EXPECT_NEAR(got, -s / n, 1e-12 * std::fabs(s / n)) << keep;
  }
}

}  // namespace
}  // namespace qvit::apq
