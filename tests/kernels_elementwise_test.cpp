// LayerNorm, GELU, softmax, add and im2patch against their references on both kernel paths,
// plus the path selection itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "qvit/error.h"
#include "qvit/kernels.h"

namespace qvit {
namespace {

constexpr double kLayerNormAbsTol = 1e-5;  // outputs are O(1) x gamma
constexpr double kLayerNormRelTol = 1e-5;
constexpr double kGeluAbsTol = 1e-6;       // contract in kernels.h
constexpr double kSoftmaxAbsTol = 1e-7;
constexpr double kSoftmaxRelTol = 1e-5;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

class PathTest : public ::testing::TestWithParam<KernelPath> {
 protected:
  void SetUp() override {
    saved_ = kernel_path();
    try {
      set_kernel_path(GetParam());
    } catch (const Error&) {
      GTEST_SKIP() << "path not supported on this CPU";
    }
  }
  void TearDown() override { set_kernel_path(saved_); }
  KernelPath saved_ = KernelPath::ref;
};

std::string path_name(const ::testing::TestParamInfo<KernelPath>& info) {
  return kernel_path_name(info.param);
}

const int64_t kAwkwardSizes[] = {1, 7, 8, 15, 16, 31, 33, 49, 96, 192, 197, 384, 768, 3136};

// ---- layernorm -------------------------------------------------------------------------------

class LayerNormTest : public PathTest {};

TEST_P(LayerNormTest, MatchesReference) {
  uint32_t seed = 1;
  for (const int64_t C : kAwkwardSizes) {
    for (const int64_t rows : {1, 7, 197}) {
      // Offset and spread like transformer activations, plus one outlier channel.
      auto x = random_vec(static_cast<size_t>(rows * C), seed++, -3.0f, 5.0f);
      for (int64_t r = 0; r < rows; ++r) x[r * C + (C / 2)] *= 40.0f;
      auto gamma = random_vec(static_cast<size_t>(C), seed++, 0.5f, 2.0f);
      auto beta = random_vec(static_cast<size_t>(C), seed++);
      std::vector<float> y(x.size()), r(x.size());
      layernorm_f32(x.data(), gamma.data(), beta.data(), y.data(), rows, C, 1e-6f);
      layernorm_f32_ref(x.data(), gamma.data(), beta.data(), r.data(), rows, C, 1e-6f);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], r[i], kLayerNormAbsTol + kLayerNormRelTol * std::abs(r[i]))
            << "C=" << C << " rows=" << rows << " i=" << i;
      }
      // In place (y aliases x) gives the same bits as out of place.
      layernorm_f32(x.data(), gamma.data(), beta.data(), x.data(), rows, C, 1e-6f);
      ASSERT_EQ(x, y) << "C=" << C;
    }
  }
}

TEST_P(LayerNormTest, ConstantRowGivesBeta) {
  std::vector<float> x(50, 3.25f), gamma(50, 2.0f), beta(50), y(50);
  for (int i = 0; i < 50; ++i) beta[i] = 0.1f * i;
  layernorm_f32(x.data(), gamma.data(), beta.data(), y.data(), 1, 50, 1e-5f);
  for (int i = 0; i < 50; ++i) EXPECT_FLOAT_EQ(y[i], beta[i]);
}

TEST_P(LayerNormTest, ReferenceIsTextbook) {
  // mean 2.5, biased var 1.25: y = (x - 2.5) / sqrt(1.25 + eps)
  std::vector<float> x = {1, 2, 3, 4}, g(4, 1.0f), b(4, 0.0f), y(4);
  layernorm_f32(x.data(), g.data(), b.data(), y.data(), 1, 4, 0.0f);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], (x[i] - 2.5) / std::sqrt(1.25), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Paths, LayerNormTest,
                         ::testing::Values(KernelPath::ref, KernelPath::avx2), path_name);

// ---- gelu ------------------------------------------------------------------------------------

class GeluTest : public PathTest {};

TEST_P(GeluTest, DenseSweepWithinContract) {
  // 4M evenly spaced points over [-10, 10] plus the neighbourhood of 0.
  const int64_t n = 1 << 22;
  std::vector<float> x(static_cast<size_t>(n + 2000));
  for (int64_t i = 0; i < n; ++i) x[i] = -10.0f + 20.0f * static_cast<float>(i) / (n - 1);
  for (int64_t i = 0; i < 2000; ++i) x[n + i] = (i - 1000) * 1e-6f;
  std::vector<float> y(x.size()), r(x.size());
  gelu_f32(x.data(), y.data(), static_cast<int64_t>(x.size()));
  gelu_f32_ref(x.data(), r.data(), static_cast<int64_t>(x.size()));
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = std::abs(double(y[i]) - r[i]);
    if (e > worst) worst = e, worst_i = i;
  }
  EXPECT_LT(worst, kGeluAbsTol) << "at x=" << x[worst_i];
  // The erff-based single-precision formula stays within the same contract.
  double worst_erff = 0.0;
  for (size_t i = 0; i < x.size(); i += 7) {
    const float ef = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678f));
    worst_erff = std::max(worst_erff, std::abs(double(y[i]) - ef));
  }
  EXPECT_LT(worst_erff, kGeluAbsTol);
}

TEST_P(GeluTest, EveryFloatWhereErrorIsLargest) {
  // Where erf(x/sqrt2) is close to +-1 and |x|/2 magnifies its error: every float in
  // +-[4.5, 5.7] (the saturation threshold is 5.6).
  std::vector<float> x;
  for (float v = 4.5f; v <= 5.7f; v = std::nextafter(v, 10.0f)) {
    x.push_back(v);
    x.push_back(-v);
  }
  std::vector<float> y(x.size()), r(x.size());
  gelu_f32(x.data(), y.data(), static_cast<int64_t>(x.size()));
  gelu_f32_ref(x.data(), r.data(), static_cast<int64_t>(x.size()));
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(double(y[i]) - r[i]));
  EXPECT_LT(worst, kGeluAbsTol);
}

TEST_P(GeluTest, TailsAndInPlace) {
  for (const int64_t n : kAwkwardSizes) {
    auto x = random_vec(static_cast<size_t>(n), static_cast<uint32_t>(n), -6.0f, 6.0f);
    std::vector<float> y(x.size()), r(x.size());
    gelu_f32(x.data(), y.data(), n);
    gelu_f32_ref(x.data(), r.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], r[i], kGeluAbsTol) << "n=" << n;
    gelu_f32(x.data(), x.data(), n);
    ASSERT_EQ(x, y);
  }
}

TEST_P(GeluTest, SpecialValues) {
  std::vector<float> x = {0.0f, -0.0f, 1e-30f, -1e-30f, 20.0f, -20.0f, 1e30f, -1e30f}, y(8);
  gelu_f32(x.data(), y.data(), 8);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_NEAR(y[2], 0.5e-30f, 1e-36f);
  EXPECT_EQ(y[4], 20.0f);
  EXPECT_NEAR(y[5], 0.0f, 1e-30f);
  EXPECT_EQ(y[6], 1e30f);
  EXPECT_NEAR(y[7], 0.0f, 1e-30f);
}

INSTANTIATE_TEST_SUITE_P(Paths, GeluTest, ::testing::Values(KernelPath::ref, KernelPath::avx2),
                         path_name);

// ---- softmax ---------------------------------------------------------------------------------

class SoftmaxTest : public PathTest {};

TEST_P(SoftmaxTest, MatchesReference) {
  uint32_t seed = 7;
  for (const int64_t cols : kAwkwardSizes) {
    for (const float spread : {1.0f, 30.0f}) {
      const int64_t rows = cols > 1000 ? 3 : 17;
      auto x = random_vec(static_cast<size_t>(rows * cols), seed++, -spread, spread);
      x[0] = -1e30f;        // far below the max: exp underflows to 0
      x.back() += 100.0f;   // large positive values must not overflow
      auto y = x, r = x;
      softmax_f32(y.data(), rows, cols);
      softmax_f32_ref(r.data(), rows, cols);
      for (int64_t row = 0; row < rows; ++row) {
        double sum = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          const size_t i = static_cast<size_t>(row * cols + c);
          ASSERT_NEAR(y[i], r[i], kSoftmaxAbsTol + kSoftmaxRelTol * r[i])
              << "cols=" << cols << " spread=" << spread << " row=" << row << " c=" << c;
          sum += y[i];
        }
        ASSERT_NEAR(sum, 1.0, 1e-5);
      }
    }
  }
}

TEST_P(SoftmaxTest, MaskedEntriesGetZero) {
  std::vector<float> x = {0.0f, -100.0f, 0.0f, -100.0f, 1.0f};  // Swin's -100 mask
  softmax_f32(x.data(), 1, 5);
  EXPECT_LT(x[1], 1e-40f);
  EXPECT_NEAR(x[0] + x[2] + x[4], 1.0, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Paths, SoftmaxTest, ::testing::Values(KernelPath::ref, KernelPath::avx2),
                         path_name);

// ---- add, im2patch ---------------------------------------------------------------------------

TEST(AddTest, ElementwiseAndAliasing) {
  for (const int64_t n : {1, 7, 197 * 192, 100003}) {
    auto a = random_vec(static_cast<size_t>(n), 1), b = random_vec(static_cast<size_t>(n), 2);
    std::vector<float> y(a.size());
    add_f32(a.data(), b.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], a[i] + b[i]);
    add_f32(a.data(), b.data(), a.data(), n);
    ASSERT_EQ(a, y);
  }
}

TEST(Im2PatchTest, MatchesConvWeightOrder) {
  const int64_t B = 2, Cin = 3, H = 8, W = 12, p = 4;
  std::vector<float> img(B * Cin * H * W);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>(i);
  const int64_t hp = H / p, wp = W / p, row = Cin * p * p;
  std::vector<float> out(B * hp * wp * row, -1.0f);
  im2patch_f32(img.data(), out.data(), B, Cin, H, W, p);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ph = 0; ph < hp; ++ph)
      for (int64_t pw = 0; pw < wp; ++pw)
        for (int64_t c = 0; c < Cin; ++c)
          for (int64_t kh = 0; kh < p; ++kh)
            for (int64_t kw = 0; kw < p; ++kw) {
              const float want = img[((b * Cin + c) * H + ph * p + kh) * W + pw * p + kw];
              const float got = out[((b * hp + ph) * wp + pw) * row + (c * p + kh) * p + kw];
              ASSERT_EQ(got, want);
            }
}

TEST(Im2PatchTest, RejectsIndivisibleImage) {
  std::vector<float> img(3 * 10 * 10), out(3 * 10 * 10);
  EXPECT_THROW(im2patch_f32(img.data(), out.data(), 1, 3, 10, 10, 4), Error);
}

// ---- path selection --------------------------------------------------------------------------

TEST(KernelPathTest, NamesAndOverride) {
  EXPECT_STREQ(kernel_path_name(KernelPath::ref), "ref");
  EXPECT_STREQ(kernel_path_name(KernelPath::avx2), "avx2");
  const KernelPath saved = kernel_path();
  set_kernel_path(KernelPath::ref);
  EXPECT_EQ(kernel_path(), KernelPath::ref);
  set_kernel_path(saved);
  EXPECT_EQ(kernel_path(), saved);
  // Without QVIT_KERNELS the default is the fastest path the CPU has.
  if (std::getenv("QVIT_KERNELS") == nullptr && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    EXPECT_EQ(saved, KernelPath::avx2);
  }
}

}  // namespace
}  // namespace qvit
