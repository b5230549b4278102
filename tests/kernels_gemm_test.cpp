// gemm_f32 and LinearF32 against their double-accumulating references, on both kernel paths.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/tensor.h"

namespace qvit {
namespace {

// Float GEMM error relative to sum_k |a_k b_k| (the scale the rounding errors live on).
constexpr double kGemmTol = 1e-5;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

Tensor random_tensor(Shape shape, uint32_t seed) {
  Tensor t(std::move(shape));
  auto v = random_vec(static_cast<size_t>(t.numel()), seed);
  std::copy(v.begin(), v.end(), t.f32());
  return t;
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

// ---- gemm_f32 --------------------------------------------------------------------------------

using GemmCase = std::tuple<int64_t, int64_t, int64_t>;  // M, N, K

class GemmTest : public PathTest {};

using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                        const float*, int64_t, float, float*, int64_t);

void check_gemm_against_ref(GemmFn gemm) {
  const std::vector<GemmCase> cases = {{1, 1, 1},    {7, 15, 31},   {15, 7, 1},   {31, 33, 64},
                                       {197, 197, 64}, {197, 64, 197}, {49, 49, 32}, {49, 32, 49},
                                       {64, 100, 13}, {3, 257, 129},
                                       {5, 8, 9},     {6, 24, 3},    {12, 16, 40}};
  uint32_t seed = 1;
  for (const auto& [M, N, K] : cases) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      for (const auto& [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{0.125f, 1.0f},
                                        std::pair{-2.0f, 0.5f}}) {
        // Padded leading dimensions, as in attention (row stride 3C).
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
        auto A = random_vec(static_cast<size_t>((ta ? K : M) * lda), seed++);
        auto B = random_vec(static_cast<size_t>((tb ? N : K) * ldb), seed++);
        auto C0 = random_vec(static_cast<size_t>(M * ldc), seed++);
        if (beta == 0.0f) std::fill(C0.begin(), C0.end(), NAN);  // must not be read
        auto C = C0, R = C0;
        gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        gemm_f32_ref(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
        for (int64_t i = 0; i < M; ++i) {
          for (int64_t j = 0; j < N; ++j) {
            double mag = 0.0;
            for (int64_t k = 0; k < K; ++k) {
              mag += std::abs(double(ta ? A[k * lda + i] : A[i * lda + k]) *
                              double(tb ? B[j * ldb + k] : B[k * ldb + j]));
            }
            mag = std::abs(alpha) * mag + (beta == 0.0f ? 0.0 : std::abs(beta * C0[i * ldc + j]));
            ASSERT_NEAR(C[i * ldc + j], R[i * ldc + j], kGemmTol * mag + 1e-30)
                << "M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb
                << " alpha=" << alpha << " beta=" << beta << " at (" << i << "," << j << ")";
          }
          for (int64_t j = N; j < ldc; ++j) {  // padding untouched
            ASSERT_TRUE(std::isnan(C0[i * ldc + j]) ? std::isnan(C[i * ldc + j])
                                                    : C[i * ldc + j] == C0[i * ldc + j]);
          }
        }
      }
    }
  }
}

TEST_P(GemmTest, MatchesReferenceAllTransposesAndScalars) { check_gemm_against_ref(gemm_f32); }

// The AVX2 tile kernel directly: gemm_f32 routes to oneDNN's sgemm on AVX-512 machines, so the
// dispatching test alone would not cover it there.
TEST_P(GemmTest, Avx2TileKernelMatchesReference) {
  if (GetParam() != KernelPath::avx2) GTEST_SKIP() << "avx2 kernel";
  check_gemm_against_ref(kernels_detail::gemm_f32_avx2);
}

TEST_P(GemmTest, KZeroScalesC) {
  std::vector<float> C = {1, 2, 3, 4}, A(1), B(1);
  gemm_f32(false, false, 2, 2, 0, 1.0f, A.data(), 1, B.data(), 2, 0.5f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{0.5f, 1, 1.5f, 2}));
}

TEST_P(GemmTest, RejectsBadLeadingDimension) {
  std::vector<float> A(64), B(64), C(64);
  EXPECT_THROW(gemm_f32(false, false, 4, 4, 4, 1.0f, A.data(), 3, B.data(), 4, 0.0f, C.data(), 4),
               Error);
  EXPECT_THROW(gemm_f32(false, false, -1, 4, 4, 1.0f, A.data(), 4, B.data(), 4, 0.0f, C.data(), 4),
               Error);
}

INSTANTIATE_TEST_SUITE_P(Paths, GemmTest, ::testing::Values(KernelPath::ref, KernelPath::avx2),
                         path_name);

// ---- LinearF32 -------------------------------------------------------------------------------

class LinearTest : public PathTest {};

void check_linear(int64_t M, int64_t K, int64_t N, bool with_bias, uint32_t seed) {
  Tensor w = random_tensor({N, K}, seed);
  Tensor b = with_bias ? random_tensor({N}, seed + 1) : Tensor();
  LinearF32 lin(w, b);
  ASSERT_EQ(lin.in_features(), K);
  ASSERT_EQ(lin.out_features(), N);
  auto x = random_vec(static_cast<size_t>(M * K), seed + 2);
  std::vector<float> y(static_cast<size_t>(M * N), NAN), r(static_cast<size_t>(M * N));
  lin.forward(x.data(), y.data(), M);
  linear_f32_ref(x.data(), w.f32(), with_bias ? b.f32() : nullptr, r.data(), M, N, K);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double mag = with_bias ? std::abs(b.f32()[n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) mag += std::abs(double(x[m * K + k]) * w.f32()[n * K + k]);
      ASSERT_NEAR(y[m * N + n], r[m * N + n], kGemmTol * mag)
          << "M=" << M << " K=" << K << " N=" << N << " bias=" << with_bias << " at (" << m << ","
          << n << ")";
    }
  }
}

TEST_P(LinearTest, MatchesReferenceOverShapes) {
  // (K, N): ViT/DeiT/Swin layers plus awkward sizes (K not a multiple of 8 or 16).
  const std::vector<std::pair<int64_t, int64_t>> kn = {
      {192, 576}, {192, 192}, {768, 192}, {48, 96}, {13, 29}, {100, 1000}, {30, 7}, {17, 450}};
  uint32_t seed = 100;
  for (const int64_t M : {1, 7, 15, 31, 197}) {
    for (const auto& [K, N] : kn) {
      check_linear(M, K, N, true, seed);
      check_linear(M, K, N, false, seed + 10);
      seed += 20;
    }
  }
}

TEST_P(LinearTest, LargeRowCounts) {
  check_linear(394, 192, 768, true, 7);     // DeiT-Tiny fc1, batch 2
  check_linear(3136, 48, 96, true, 8);      // Swin patch embedding
  check_linear(784, 192, 384, false, 9);    // Swin stage-2 width
  check_linear(2 * 197, 768, 1000, true, 10);
}

TEST_P(LinearTest, ReusesPrimitivesAcrossCalls) {
  Tensor w = random_tensor({192, 192}, 3), b = random_tensor({192}, 4);
  LinearF32 lin(w, b);
  auto x = random_vec(197 * 192, 5);
  std::vector<float> y1(197 * 192), y2(197 * 192), y3(50 * 192);
  lin.forward(x.data(), y1.data(), 197);
  lin.forward(x.data(), y3.data(), 50);  // other M in between
  lin.forward(x.data(), y2.data(), 197);
  EXPECT_EQ(y1, y2);
}

TEST_P(LinearTest, ConcurrentForwardsFromSeveralThreads) {
  Tensor w = random_tensor({576, 192}, 11), b = random_tensor({576}, 12);
  const LinearF32 lin(w, b);
  auto x = random_vec(197 * 192, 13);
  std::vector<float> expect(197 * 576);
  lin.forward(x.data(), expect.data(), 197);
  std::vector<std::vector<float>> got(3, std::vector<float>(197 * 576));
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&lin, &x, &g] {
      for (int rep = 0; rep < 5; ++rep) lin.forward(x.data(), g.data(), 197);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, expect);
}

TEST_P(LinearTest, MovedLayerStillWorks) {
  Tensor w = random_tensor({8, 16}, 21);
  LinearF32 a(w, Tensor());
  LinearF32 b = std::move(a);
  auto x = random_vec(3 * 16, 22);
  std::vector<float> y(3 * 8), r(3 * 8);
  b.forward(x.data(), y.data(), 3);
  linear_f32_ref(x.data(), w.f32(), nullptr, r.data(), 3, 8, 16);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], r[i], 1e-5);
}

TEST(LinearErrors, RejectsBadArguments) {
  EXPECT_THROW(LinearF32(Tensor({4}), Tensor()), Error);
  EXPECT_THROW(LinearF32(Tensor({4, 3}), Tensor({5})), Error);
  EXPECT_THROW(LinearF32(Tensor({4, 3}, DType::i32), Tensor()), Error);
  LinearF32 empty;
  float x = 0, y = 0;
  EXPECT_THROW(empty.forward(&x, &y, 1), Error);
  LinearF32 lin(Tensor({4, 3}), Tensor());
  EXPECT_THROW(lin.forward(&x, &y, -1), Error);
  EXPECT_NO_THROW(lin.forward(&x, &y, 0));
}

INSTANTIATE_TEST_SUITE_P(Paths, LinearTest, ::testing::Values(KernelPath::ref, KernelPath::avx2),
                         path_name);

}  // namespace
}  // namespace qvit
