// Every parallel kernel must give the same bits for any thread count: work is split into
// chunks that depend only on the shape, and oneDNN runs single-threaded inside each chunk.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/tensor.h"

namespace qvit {
namespace {

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

// Runs fn (which fills `out`) with 1 and then 2 threads and requires identical bytes.
void expect_same_bits(const char* what, size_t n, const std::function<void(float*)>& fn) {
  const int saved = num_threads();
  std::vector<float> one(n, 0.0f), two(n, 1.0f);
  set_num_threads(1);
  fn(one.data());
  set_num_threads(2);
  fn(two.data());
  set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), n * sizeof(float))) << what;
}

class DeterminismTest : public ::testing::TestWithParam<KernelPath> {
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

TEST_P(DeterminismTest, LinearF32) {
  struct Shape3 {
    int64_t M, K, N;
  };
  const bool ref = GetParam() == KernelPath::ref;
  std::vector<Shape3> shapes = {{1, 192, 1000}, {197, 192, 576}, {197, 768, 192}, {31, 13, 29},
                                {394, 384, 1536}, {3136, 48, 96}};
  if (!ref) shapes.push_back({32 * 197, 192, 768});  // batch 32: many row chunks
  uint32_t seed = 1;
  for (const auto& s : shapes) {
    for (const bool with_bias : {true, false}) {
      Tensor w = random_tensor({s.N, s.K}, seed++);
      Tensor b = with_bias ? random_tensor({s.N}, seed++) : Tensor();
      LinearF32 lin(w, b);
      auto x = random_vec(static_cast<size_t>(s.M * s.K), seed++);
      expect_same_bits("LinearF32", static_cast<size_t>(s.M * s.N),
                       [&](float* y) { lin.forward(x.data(), y, s.M); });
    }
  }
}

TEST_P(DeterminismTest, Attention) {
  auto qkv = random_vec(2 * 197 * 3 * 192, 3, -2.0f, 2.0f);
  expect_same_bits("attention vit", 2 * 197 * 192, [&](float* out) {
    attention_f32(qkv.data(), out, 2, 197, 3, 64, 0.125f, nullptr, nullptr, 0);
  });
  auto qkv_w = random_vec(16 * 49 * 3 * 96, 4, -2.0f, 2.0f);
  auto bias = random_vec(3 * 49 * 49, 5);
  std::vector<float> mask(4 * 49 * 49);
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i % 5 == 1) ? -100.0f : 0.0f;
  expect_same_bits("attention swin", 16 * 49 * 96, [&](float* out) {
    attention_f32(qkv_w.data(), out, 16, 49, 3, 32, 0.17f, bias.data(), mask.data(), 4);
  });
}

TEST_P(DeterminismTest, AttentionSplitSteps) {
  auto qkv = random_vec(197 * 3 * 192, 11, -2.0f, 2.0f);
  std::vector<float> scores(3 * 197 * 197);
  expect_same_bits("attention_scores", scores.size(), [&](float* s) {
    attention_scores_f32(qkv.data(), s, 1, 197, 3, 64, 0.125f);
  });
  attention_scores_f32(qkv.data(), scores.data(), 1, 197, 3, 64, 0.125f);
  softmax_f32(scores.data(), 3 * 197, 197);
  expect_same_bits("attention_context", 197 * 192, [&](float* out) {
    attention_context_f32(scores.data(), qkv.data(), out, 1, 197, 3, 64);
  });
}

TEST_P(DeterminismTest, LinearInsideParallelRegion) {
  // A forward issued from the workers of an outer parallel region (parallel_for then runs its
  // chunks serially on the calling thread) gives the same bits as a top-level call.
  Tensor w = random_tensor({576, 192}, 12), b = random_tensor({576}, 13);
  LinearF32 lin(w, b);
  auto x = random_vec(197 * 192, 14);
  std::vector<float> top(197 * 576);
  lin.forward(x.data(), top.data(), 197);
  std::vector<std::vector<float>> inner(4, std::vector<float>(197 * 576));
  const int saved = num_threads();
  set_num_threads(2);
  parallel_for(4, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) lin.forward(x.data(), inner[i].data(), 197);
  });
  set_num_threads(saved);
  for (const auto& v : inner) EXPECT_EQ(v, top);
}

TEST_P(DeterminismTest, ElementwiseKernels) {
  const int64_t rows = 394, C = 768, n = rows * C;
  auto x = random_vec(static_cast<size_t>(n), 6, -4.0f, 4.0f);
  auto gamma = random_vec(C, 7), beta = random_vec(C, 8);
  expect_same_bits("layernorm", static_cast<size_t>(n), [&](float* y) {
    layernorm_f32(x.data(), gamma.data(), beta.data(), y, rows, C, 1e-6f);
  });
  expect_same_bits("gelu", static_cast<size_t>(n), [&](float* y) { gelu_f32(x.data(), y, n); });
  expect_same_bits("softmax", static_cast<size_t>(n), [&](float* y) {
    std::memcpy(y, x.data(), static_cast<size_t>(n) * sizeof(float));
    softmax_f32(y, rows, C);
  });
  expect_same_bits("add", static_cast<size_t>(n),
                   [&](float* y) { add_f32(x.data(), x.data(), y, n); });
}

TEST_P(DeterminismTest, GemmOutsideAndInsideParallelRegion) {
  auto A = random_vec(197 * 64, 9), B = random_vec(197 * 64, 10);
  expect_same_bits("gemm_f32", 197 * 197, [&](float* C) {
    gemm_f32(false, true, 197, 197, 64, 0.125f, A.data(), 64, B.data(), 64, 0.0f, C, 197);
  });
  // The same call made from the workers of a parallel region gives the same bits.
  std::vector<float> outside(197 * 197);
  gemm_f32(false, true, 197, 197, 64, 0.125f, A.data(), 64, B.data(), 64, 0.0f, outside.data(),
           197);
  std::vector<std::vector<float>> inside(4, std::vector<float>(197 * 197));
  const int saved = num_threads();
  set_num_threads(2);
  parallel_for(4, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      gemm_f32(false, true, 197, 197, 64, 0.125f, A.data(), 64, B.data(), 64, 0.0f,
               inside[i].data(), 197);
    }
  });
  set_num_threads(saved);
  for (const auto& v : inside) EXPECT_EQ(v, outside);
}

INSTANTIATE_TEST_SUITE_P(Paths, DeterminismTest,
                         ::testing::Values(KernelPath::ref, KernelPath::avx2),
                         [](const ::testing::TestParamInfo<KernelPath>& info) {
                           return std::string(kernel_path_name(info.param));
                         });

}  // namespace
}  // namespace qvit
