// Log2 quantizer (log-domain rounding) and Log-Int-Softmax (I-BERT exp, linear-domain log
// rounding, >= 16 -> zero): hand cases, code boundaries, and golden outputs of
// tools/quant_reference.py (ViT-like logits on a uint8 grid, Swin-like with a -100 mask).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "golden.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit {
namespace {

TEST(QuantLog2, ByHand) {
  std::vector<float> p = {1.0f, 0.5f, 0.0f, std::ldexp(1.0f, -15), std::ldexp(1.0f, -16),
                          0.7f, 0.75f, 1.5f, 0.3f};
  fake_quant_log2(p.data(), static_cast<int64_t>(p.size()), 4);
  // 0.7: -log2 = 0.51 -> 1; 0.75: 0.42 -> 0; 1.5: -0.58 -> -1 -> clamped to 0; 0.3: 1.74 -> 2.
  const std::vector<float> want = {1.0f, 0.5f, 0.0f, std::ldexp(1.0f, -15), 0.0f, 0.5f, 1.0f,
                                   1.0f, 0.25f};
  EXPECT_EQ(p, want);
  std::vector<float> q = {std::ldexp(1.0f, -7), std::ldexp(1.0f, -8), NAN};
  fake_quant_log2(q.data(), 3, 3);  // uint3: codes 0..7
  EXPECT_EQ(q[0], std::ldexp(1.0f, -7));
  EXPECT_EQ(q[1], 0.0f);
  EXPECT_TRUE(std::isnan(q[2]));
  EXPECT_THROW(fake_quant_log2(q.data(), 1, 1), Error);
  // Through fake_quant with log2 params.
  QuantParams lp;
  lp.kind = QuantKind::log2;
  lp.bits = BitType{4, false};
  std::vector<float> r = {0.3f, 0.0f};
  fake_quant(r.data(), 1, 2, lp);
  EXPECT_EQ(r, (std::vector<float>{0.25f, 0.0f}));
}

TEST(QuantLis, CodesRoundInTheLinearDomain) {
  using quant_detail::lis_code;
  // k = floor(log2 v), +1 from 1.5 * 2^k on.
  EXPECT_EQ(lis_code(1), 0);
  EXPECT_EQ(lis_code(2), 1);
  EXPECT_EQ(lis_code(3), 2);  // 3 >= 1.5 * 2
  EXPECT_EQ(lis_code(5), 2);  // 5 < 1.5 * 4
  EXPECT_EQ(lis_code(6), 3);
  EXPECT_EQ(lis_code(11), 3);  // log-domain rounding would give 3 as well; 12 differs:
  EXPECT_EQ(lis_code(12), 4);  // log2 12 = 3.58 -> 4 both; 23: log2 = 4.52 -> 5 log, 4 linear
  EXPECT_EQ(lis_code(23), 4);
  EXPECT_EQ(lis_code(24), 5);
  EXPECT_EQ(lis_code(32767), 15);
  EXPECT_EQ(lis_code(49151), 15);
  EXPECT_EQ(lis_code(49152), kLisZeroCode);
  EXPECT_EQ(lis_code(65536), kLisZeroCode);
  EXPECT_EQ(lis_code(INFINITY), kLisZeroCode);
  EXPECT_EQ(lis_code(NAN), kLisZeroCode);
}

TEST(QuantLis, ByHand) {
  const float S = 0.0625f;
  // Row 0: two equal logits -> v = 2 -> code 1 (0.5 each).
  // Row 1: 0 and a logit far below -> 1 and zero; row 2: a single column -> probability 1.
  const std::vector<float> x = {1.0f, 1.0f, 0.0f, -1000.0f};
  std::vector<float> probs(4);
  std::vector<uint8_t> codes(4);
  lis_softmax(x.data(), probs.data(), codes.data(), 2, 2, S);
  EXPECT_EQ(probs, (std::vector<float>{0.5f, 0.5f, 1.0f, 0.0f}));
  EXPECT_EQ(codes, (std::vector<uint8_t>{1, 1, 0, kLisZeroCode}));
  float one = 3.0f, p1 = 0;
  lis_softmax(&one, &p1, nullptr, 1, 1, S);
  EXPECT_EQ(p1, 1.0f);
  EXPECT_THROW(lis_softmax(x.data(), probs.data(), nullptr, 2, 2, 0.0f), Error);
  const std::vector<float> bad = {1.0f, NAN};
  EXPECT_THROW(lis_softmax(bad.data(), probs.data(), nullptr, 1, 2, S), Error);
}

TEST(QuantLis, ApproximatesSoftmax) {
  // 4-bit log codes: every probability within a factor sqrt(2)-ish of the float softmax.
  const float S = 0.05f;
  std::vector<float> x(197);
  for (size_t j = 0; j < x.size(); ++j) x[j] = S * std::nearbyint(40.0f * std::sin(0.37f * j));
  std::vector<float> probs(x.size());
  lis_softmax(x.data(), probs.data(), nullptr, 1, static_cast<int64_t>(x.size()), S);
  double denom = 0;
  for (float v : x) denom += std::exp(static_cast<double>(v) - 2.0);
  for (size_t j = 0; j < x.size(); ++j) {
    const double sm = std::exp(static_cast<double>(x[j]) - 2.0) / denom;
    if (sm > 1e-4) {
      EXPECT_GT(probs[j], sm / 1.6) << j;
      EXPECT_LT(probs[j], sm * 1.6) << j;
    }
  }
}

class QuantGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { g_ = new test::Golden(test::load_golden(test::fixture("quant/golden"))); }
  static void TearDownTestSuite() { delete g_; }
  static test::Golden* g_;
};
test::Golden* QuantGolden::g_ = nullptr;

TEST_F(QuantGolden, Log2) {
  const std::vector<float> p = g_->array("log2.p");
  for (int bits : {4, 3}) {
    std::vector<float> q = p;
    fake_quant_log2(q.data(), static_cast<int64_t>(q.size()), bits);
    EXPECT_EQ(q, g_->array("log2.uint" + std::to_string(bits) + ".out")) << bits;
  }
}

TEST_F(QuantGolden, LisVitAndSwin) {
  struct Case {
    const char* name;
    int64_t rows, cols;
  };
  const KernelPath saved = kernel_path();
  for (const Case& c : {Case{"lis.vit", 48, 197}, Case{"lis.swin", 49, 49}})
  for (KernelPath path : {KernelPath::ref, KernelPath::avx2}) {
    if (path == KernelPath::avx2 && !__builtin_cpu_supports("avx2")) continue;
    set_kernel_path(path);
    SCOPED_TRACE(std::string(c.name) + " " + kernel_path_name(path));
    const std::string key = c.name;
    const std::vector<float> x = g_->array(key + ".x");
    const float S = g_->meta[key]["S"].get<float>();
    std::vector<float> probs(x.size());
    std::vector<uint8_t> codes(x.size());
    lis_softmax(x.data(), probs.data(), codes.data(), c.rows, c.cols, S);
    EXPECT_EQ(probs, g_->array(key + ".probs"));
    const std::vector<float> want_codes = g_->array(key + ".codes");
    size_t bad = 0;
    for (size_t i = 0; i < codes.size(); ++i) bad += codes[i] != static_cast<uint8_t>(want_codes[i]);
    EXPECT_EQ(bad, 0u);
    // The fixture also checked FQ-ViT's float32 row sums: no code differs on this data.
    EXPECT_EQ(g_->meta[key]["literal_code_mismatches"].get<int>(), 0);
  }
  set_kernel_path(saved);
}

// The AVX2 row (double row sums, vector divisions) against the scalar row (exact 128-bit sums):
// bit-identical probabilities and codes over random integer-grid logits, many scales and row
// lengths (tails of 0..7), rows with -inf (masked), constant rows, and scales so small that the
// exp values exceed the double-exact range and the AVX2 row must hand over to the scalar one.
TEST(QuantLis, Avx2RowMatchesScalarRow) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2";
  const KernelPath saved = kernel_path();
  std::mt19937 rng(7);
  int64_t checked = 0;
  for (float S : {2e-4f, 1e-3f, 0.0123f, 0.05f, 0.1f, 0.37f, 1.0f, 2.5f}) {
    for (int64_t cols : {1, 7, 8, 9, 49, 64, 197}) {
      const int64_t rows = 6;
      std::vector<float> x(rows * cols);
      std::uniform_int_distribution<int> code(-255, 255);
      for (auto& v : x) v = S * static_cast<float>(code(rng));
      for (int64_t j = 1; j < cols; j += 3) x[1 * cols + j] = -INFINITY;   // a masked row
      for (int64_t j = 0; j < cols; ++j) x[2 * cols + j] = 3 * S;          // a constant row
      for (int64_t j = 0; j < cols; ++j) x[3 * cols + j] -= 100.0f;        // Swin's mask value
      std::vector<float> p_ref(x.size()), p_avx(x.size());
      std::vector<uint8_t> c_ref(x.size()), c_avx(x.size());
      set_kernel_path(KernelPath::ref);
      lis_softmax(x.data(), p_ref.data(), c_ref.data(), rows, cols, S);
      set_kernel_path(KernelPath::avx2);
      lis_softmax(x.data(), p_avx.data(), c_avx.data(), rows, cols, S);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(p_ref[i]), std::bit_cast<uint32_t>(p_avx[i]))
            << "S " << S << " cols " << cols << " i " << i;
        ASSERT_EQ(c_ref[i], c_avx[i]) << "S " << S << " cols " << cols << " i " << i;
      }
      checked += static_cast<int64_t>(x.size());
    }
  }
  // NaN / +inf logits are an error on both paths.
  std::vector<float> bad = {0.1f, NAN, 0.2f, 0.3f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
  std::vector<float> out(bad.size());
  for (KernelPath path : {KernelPath::ref, KernelPath::avx2}) {
    set_kernel_path(path);
    EXPECT_THROW(lis_softmax(bad.data(), out.data(), nullptr, 1, 9, 0.1f), Error);
    bad[1] = INFINITY;
    EXPECT_THROW(lis_softmax(bad.data(), out.data(), nullptr, 1, 9, 0.1f), Error);
    bad[1] = NAN;
  }
  set_kernel_path(saved);
  EXPECT_GT(checked, 5000);
}

}  // namespace
}  // namespace qvit
