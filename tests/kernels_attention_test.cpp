// attention_f32 against attention_f32_ref: ViT shapes, Swin window shapes with relative
// position bias and shifted-window masks, awkward token counts; both kernel paths.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "qvit/error.h"
#include "qvit/kernels.h"

namespace qvit {
namespace {

// Outputs are convex combinations of v in [-1, 1]: an absolute tolerance fits.
constexpr double kAttentionAbsTol = 2e-5;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

class AttentionTest : public ::testing::TestWithParam<KernelPath> {
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

struct Case {
  int64_t B, N, heads, head_dim;
  bool bias, mask;
  int64_t n_mask;
};

void run_case(const Case& c, uint32_t seed) {
  const int64_t C = c.heads * c.head_dim;
  // Scores with a spread like trained models (q.k / sqrt(d) up to ~10).
  auto qkv = random_vec(static_cast<size_t>(c.B * c.N * 3 * C), seed, -2.0f, 2.0f);
  std::vector<float> bias, mask;
  if (c.bias) bias = random_vec(static_cast<size_t>(c.heads * c.N * c.N), seed + 1, -3.0f, 3.0f);
  if (c.mask) {
    mask.resize(static_cast<size_t>(c.n_mask * c.N * c.N));
    std::mt19937 gen(seed + 2);
    for (int64_t w = 0; w < c.n_mask; ++w)
      for (int64_t i = 0; i < c.N; ++i)
        for (int64_t j = 0; j < c.N; ++j)  // block pattern as in shifted windows; diagonal open
          mask[(w * c.N + i) * c.N + j] = (i != j && (gen() % 3 == 0)) ? -100.0f : 0.0f;
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> out(static_cast<size_t>(c.B * c.N * C), NAN), ref(out.size());
  attention_f32(qkv.data(), out.data(), c.B, c.N, c.heads, c.head_dim, scale,
                c.bias ? bias.data() : nullptr, c.mask ? mask.data() : nullptr, c.n_mask);
  attention_f32_ref(qkv.data(), ref.data(), c.B, c.N, c.heads, c.head_dim, scale,
                    c.bias ? bias.data() : nullptr, c.mask ? mask.data() : nullptr, c.n_mask);
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_NEAR(out[i], ref[i], kAttentionAbsTol)
        << "B=" << c.B << " N=" << c.N << " heads=" << c.heads << " head_dim=" << c.head_dim
        << " bias=" << c.bias << " mask=" << c.mask << " i=" << i;
  }
}

TEST_P(AttentionTest, VitShapes) {
  run_case({1, 197, 3, 64, false, false, 0}, 1);   // DeiT-Tiny
  run_case({2, 197, 6, 64, false, false, 0}, 2);   // DeiT-Small, batch 2
  run_case({1, 197, 12, 64, false, false, 0}, 3);  // DeiT-Base
}

TEST_P(AttentionTest, SwinWindowsWithBiasAndMask) {
  run_case({8, 49, 3, 32, true, false, 0}, 4);  // regular windows
  run_case({8, 49, 3, 32, true, true, 4}, 5);   // shifted windows: mask[b % 4]
  run_case({4, 49, 6, 32, false, true, 4}, 6);  // mask only
}

TEST_P(AttentionTest, AwkwardSizes) {
  run_case({1, 1, 1, 1, false, false, 0}, 7);
  run_case({3, 7, 2, 5, true, true, 2}, 8);
  run_case({1, 15, 1, 31, false, false, 0}, 9);
  run_case({2, 31, 2, 16, true, false, 0}, 10);
  run_case({1, 65, 2, 8, false, true, 1}, 11);  // just over one query block
  run_case({1, 130, 1, 24, true, false, 0}, 12);
}

// attention_scores_f32 -> (+ bias + mask, softmax) -> attention_context_f32 is attention_f32.
TEST_P(AttentionTest, SplitStepsMatchFused) {
  struct Split {
    int64_t B, N, heads, head_dim;
    bool swin;
  };
  uint32_t seed = 40;
  for (const Split& c : {Split{1, 197, 3, 64, false}, Split{2, 65, 2, 8, false},
                         Split{3, 7, 2, 5, false}, Split{8, 49, 3, 32, true}}) {
    const int64_t C = c.heads * c.head_dim, NN = c.N * c.N;
    auto qkv = random_vec(static_cast<size_t>(c.B * c.N * 3 * C), seed++, -2.0f, 2.0f);
    auto bias = random_vec(static_cast<size_t>(c.heads * NN), seed++, -3.0f, 3.0f);
    std::vector<float> mask(static_cast<size_t>(2 * NN), 0.0f);
    for (size_t i = 0; i < mask.size(); i += 3) mask[i] = -100.0f;
    for (int64_t i = 0; i < c.N; ++i) mask[i * c.N + i] = mask[NN + i * c.N + i] = 0.0f;
    const float scale = 0.3f;
    std::vector<float> scores(static_cast<size_t>(c.B * c.heads * NN));
    attention_scores_f32(qkv.data(), scores.data(), c.B, c.N, c.heads, c.head_dim, scale);
    if (c.swin) {
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.heads; ++h)
          for (int64_t e = 0; e < NN; ++e)
            scores[(b * c.heads + h) * NN + e] += bias[h * NN + e] + mask[(b % 2) * NN + e];
    }
    softmax_f32(scores.data(), c.B * c.heads * c.N, c.N);
    std::vector<float> out(static_cast<size_t>(c.B * c.N * C)), ref(out.size());
    attention_context_f32(scores.data(), qkv.data(), out.data(), c.B, c.N, c.heads, c.head_dim);
    attention_f32_ref(qkv.data(), ref.data(), c.B, c.N, c.heads, c.head_dim, scale,
                      c.swin ? bias.data() : nullptr, c.swin ? mask.data() : nullptr, 2);
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_NEAR(out[i], ref[i], kAttentionAbsTol) << "N=" << c.N << " i=" << i;
    }
  }
}

TEST_P(AttentionTest, RejectsBadArguments) {
  std::vector<float> qkv(3 * 4), out(4), mask(1);
  EXPECT_THROW(attention_f32(qkv.data(), out.data(), 1, 0, 1, 4, 1.0f, nullptr, nullptr, 0), Error);
  EXPECT_THROW(attention_f32(qkv.data(), out.data(), 1, 1, 1, 4, 1.0f, nullptr, mask.data(), 0),
               Error);
}

INSTANTIATE_TEST_SUITE_P(Paths, AttentionTest,
                         ::testing::Values(KernelPath::ref, KernelPath::avx2),
                         [](const ::testing::TestParamInfo<KernelPath>& info) {
                           return std::string(kernel_path_name(info.param));
                         });

}  // namespace
}  // namespace qvit
