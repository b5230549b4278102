// The exact simulation's arithmetic (src/models/sim_exact.cpp, fake_quant_exact) against naive
// computations: int64 sums of codes and long double scaling, hand-computed rounding cases.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "models/qlinear.h"
#include "models/sim_exact.h"
#include "qvit/quant.h"
#include "qvit/quant_session.h"
#include "quant/observer_impl.h"

namespace qvit {
namespace {

QuantParams uparams(std::vector<float> scale, std::vector<float> zero, int bits = 8) {
  QuantParams p;
  p.kind = QuantKind::uniform;
  p.bits = make_bit_type(bits, false);
  p.scale = std::move(scale);
  p.zero_point = std::move(zero);
  return p;
}

TEST(SimExact, FakeQuantExactRoundsTheDoubleHalfToEven) {
  // s = 0.5, z = 3: y = 1.25 -> 2.5 + 3 = 5.5 -> 6 (even); y = 1.75 -> 6.5 -> 6; y = -1.5 -> 0;
  // y = -2 -> -1 -> clamped to 0; y = 200 -> 403 -> 255. Values (q - z) s.
  const QuantParams p = uparams({0.5f}, {3.0f});
  const std::vector<double> y = {1.25, 1.75, -1.5, -2.0, 200.0, 1.2499999999};
  std::vector<float> x(y.size());
  fake_quant_exact(y.data(), x.data(), 1, static_cast<int64_t>(y.size()), p);
  EXPECT_EQ(x, (std::vector<float>{1.5f, 1.5f, -1.5f, -1.5f, 126.0f, 1.0f}));
  // Just below a boundary: 3.5 - 2^-30 rounds to 3 in double, while float32 stores it as 3.5,
  // which rounds to the even 4 (the float rounding the exact simulation avoids).
  const QuantParams q = uparams({1.0f}, {0.0f});
  const double below = 3.5 - std::ldexp(1.0, -30);
  float one = 0;
  fake_quant_exact(&below, &one, 1, 1, q);
  EXPECT_EQ(one, 3.0f);
  float f = static_cast<float>(below);
  fake_quant(&f, 1, 1, q);
  EXPECT_EQ(f, 4.0f);
}

TEST(SimExact, FakeQuantExactPerChannel) {
  const QuantParams p = uparams({0.25f, 1.0f, 4.0f}, {10.0f, 10.0f, 10.0f});
  const std::vector<double> y = {1.0, 1.0, 1.0, -3.0, -3.0, -3.0};  // 2 rows x 3 channels
  std::vector<float> x(6);
  fake_quant_exact(y.data(), x.data(), 2, 3, p);
  // row 0: 4 -> 1.0, 1 -> 1.0, 0.25 -> 0 (code 10) -> 0; row 1: -12 -> -2.5 (code 0), -3, -0.75 -> -1 -> -4.
  EXPECT_EQ(x, (std::vector<float>{1.0f, 1.0f, 0.0f, -2.5f, -3.0f, -4.0f}));
}

TEST(SimExact, CodesOfFakeQuantizedValuesAreExact) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-7.0f, 9.0f);
  const QuantParams p = uparams({0.0623f, 0.0011f, 0.37f}, {131.0f, 7.0f, 250.0f});
  std::vector<float> x(3000);
  for (float& v : x) v = u(rng);
  std::vector<uint8_t> want(x.size()), got(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    want[i] = static_cast<uint8_t>(
        quant_detail::quant_code(x[i], p.scale[i % 3], p.zero_point[i % 3], 0.0f, 255.0f));
  fake_quant(x.data(), 1000, 3, p);
  sim::codes_of(x.data(), 1000, 3, p, got.data());
  EXPECT_EQ(got, want);
}

TEST(SimExact, LinearEqualsNaiveSum) {
  const int64_t M = 7, N = 19, K = 45;
  std::mt19937 rng(1);
  Tensor w({N, K}), b({N});
  std::normal_distribution<float> g(0.0f, 0.2f);
  for (int64_t i = 0; i < N * K; ++i) w.f32()[i] = g(rng);
  for (int64_t i = 0; i < N; ++i) b.f32()[i] = g(rng);
  QuantConfig qc;
  QuantSession session("m", qc);
  session.set_mode(QuantMode::simulate);
  QLinear l{"fc", w, b, {}, {}, {}};
  l.prepare(&session, true);
  const QuantParams& wp = session.params("fc.weight");
  const QuantParams in = uparams({0.031f}, {117.0f});
  std::vector<uint8_t> a(static_cast<size_t>(M * K));
  for (auto& v : a) v = static_cast<uint8_t>(rng() % 256);
  std::vector<int32_t> acc(static_cast<size_t>(M * N));
  std::vector<double> y(static_cast<size_t>(M * N));
  sim::linear(a.data(), M, in, l, acc.data(), y.data());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float code = quant_detail::quant_code(w.f32()[n * K + k], wp.scale[n], 0.0f, -128.0f, 127.0f);
        sum += (int64_t{a[m * K + k]} - 117) * static_cast<int64_t>(code);
      }
      const long double want = static_cast<long double>(0.031f) * wp.scale[n] * sum + b.f32()[n];
      EXPECT_NEAR(static_cast<double>(y[m * N + n]), static_cast<double>(want),
                  1e-15 * std::fabs(static_cast<double>(want)) + 1e-300)
          << m << "," << n;
    }
}

TEST(SimExact, AttentionLogitsAndContextEqualNaiveSums) {
  const int64_t B = 2, N = 9, H = 2, Dh = 64, D = H * Dh;
  std::mt19937 rng(2);
  std::vector<uint8_t> qkv(static_cast<size_t>(B * N * 3 * D));
  for (auto& v : qkv) v = static_cast<uint8_t>(rng() % 256);
  qkv[0] = 255;  // extremes: 255 - z and 0 - z
  qkv[2 * D] = 0;
  const QuantParams qp = uparams({0.0417f}, {121.0f});
  const float scale = 0.125f;
  std::vector<float> work(static_cast<size_t>(B * N * 3 * D + B * H * N * N));
  std::vector<double> lg(static_cast<size_t>(B * H * N * N));
  sim::logits(qkv.data(), qp, B, N, H, Dh, scale, work.data(), lg.data());
  std::vector<float> p(lg.size());
  for (auto& v : p) v = (rng() % 5 == 0) ? 0.0f : std::ldexp(1.0f, -static_cast<int>(rng() % 16));
  std::vector<double> ctx(static_cast<size_t>(B * N * D));
  sim::context(p.data(), qkv.data(), qp, B, N, H, Dh, ctx.data());
  const double s2 = double(qp.scale[0]) * qp.scale[0] * scale;
  auto at = [&](int64_t b, int64_t t, int64_t part, int64_t h, int64_t d) {
    return int64_t{qkv[(b * N + t) * 3 * D + part * D + h * Dh + d]} - 121;
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          int64_t sum = 0;
          for (int64_t d = 0; d < Dh; ++d) sum += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          EXPECT_EQ(lg[((b * H + h) * N + i) * N + j], s2 * double(sum));  // one rounding
        }
        for (int64_t d = 0; d < Dh; ++d) {
          long double sum = 0;  // dyadic terms: exact
          for (int64_t j = 0; j < N; ++j) sum += static_cast<long double>(p[((b * H + h) * N + i) * N + j]) * at(b, j, 2, h, d);
          EXPECT_EQ(ctx[(b * N + i) * D + h * Dh + d], double(qp.scale[0]) * static_cast<double>(sum));
        }
      }
}

TEST(SimExact, ResidualAddOnCodes) {
  const QuantParams pa = uparams({0.5f, 0.25f}, {10.0f, 10.0f});
  const QuantParams pb = uparams({0.1f}, {100.0f});
  const std::vector<uint8_t> a = {12, 9, 0, 255};
  const std::vector<uint8_t> b = {101, 99};  // one row, broadcast (b_rows = 1)
  std::vector<double> y(4);
  sim::add(a.data(), pa, b.data(), pb, 1, 2, 2, y.data());
  EXPECT_EQ(y[0], 2 * 0.5 + 1 * double(0.1f));
  EXPECT_EQ(y[1], -1 * 0.25 - 1 * double(0.1f));
  EXPECT_EQ(y[2], -10 * 0.5 + 1 * double(0.1f));
  EXPECT_EQ(y[3], 245 * 0.25 - 1 * double(0.1f));
}

}  // namespace
}  // namespace qvit
