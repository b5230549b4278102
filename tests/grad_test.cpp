// Backward pass: each op against central finite differences of a double-precision forward
// written here; the model-level gradients against PyTorch autograd (tools/make_golden_grad.py,
// float64) and against finite differences of the loss in bias directions; pseudo-labels,
// thread-count independence and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "golden.h"
#include "qvit/error.h"
#include "qvit/grad.h"
#include "qvit/model.h"
#include "qvit/parallel.h"

namespace qvit {
namespace {

using test::random_floats;
auto rnd = [](size_t n, uint32_t seed, float lo = -1, float hi = 1) { return random_floats(n, seed, lo, hi); };

// Checks analytic dx against central differences of f (a scalar function of x, in double):
// L(x) = sum(dy * y(x)) so dL/dx is what the backward returns.
void expect_fd(const std::vector<float>& x, const std::vector<float>& dx,
               const std::function<double(const std::vector<double>&)>& L, double h, double tol) {
  std::vector<double> xd(x.begin(), x.end());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = xd[i];
    xd[i] = keep + h;
    const double lp = L(xd);
    xd[i] = keep - h;
    const double lm = L(xd);
    xd[i] = keep;
    const double fd = (lp - lm) / (2 * h);
    ASSERT_NEAR(dx[i], fd, tol * (1 + std::fabs(fd))) << "element " << i;
  }
}

TEST(GradOps, LinearMatchesReference) {
  for (int64_t M : {1, 7, 197})
    for (int64_t N : {5, 33})
      for (int64_t K : {3, 64}) {
        auto dy = rnd(M * N, 1), w = rnd(N * K, 2);
        std::vector<float> a(M * K), b(M * K);
        linear_backward_input(dy.data(), w.data(), a.data(), M, N, K);
        linear_backward_input_ref(dy.data(), w.data(), b.data(), M, N, K);
        for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << M << " " << N << " " << K;
      }
  // The reference is dY W: one hand case. dy = [1, 2], W = [[1, 0, 3], [0, 1, -1]] -> [1, 2, 1].
  const float dy[2] = {1, 2}, w[6] = {1, 0, 3, 0, 1, -1};
  float dx[3];
  linear_backward_input_ref(dy, w, dx, 1, 2, 3);
  EXPECT_EQ(std::vector<float>(dx, dx + 3), (std::vector<float>{1, 2, 1}));
}

TEST(GradOps, LayerNormFiniteDifferences) {
  const int64_t rows = 3, C = 7;
  auto x = rnd(rows * C, 3), dy = rnd(rows * C, 4), gamma = rnd(C, 5, 0.5f, 1.5f);
  std::vector<float> dx(x.size());
  layernorm_backward(dy.data(), x.data(), gamma.data(), dx.data(), rows, C, 1e-6f);
  expect_fd(x, dx, [&](const std::vector<double>& xd) {
    double L = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double mu = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mu += xd[r * C + c] / C;
      for (int64_t c = 0; c < C; ++c) var += (xd[r * C + c] - mu) * (xd[r * C + c] - mu) / C;
      for (int64_t c = 0; c < C; ++c) L += dy[r * C + c] * gamma[c] * (xd[r * C + c] - mu) / std::sqrt(var + 1e-6);
    }
    return L;
  }, 1e-5, 1e-4);
  // In place (dx aliasing dy) gives the same.
  std::vector<float> inplace = dy;
  layernorm_backward(inplace.data(), x.data(), gamma.data(), inplace.data(), rows, C, 1e-6f);
  EXPECT_EQ(inplace, dx);
}

TEST(GradOps, GeluFiniteDifferences) {
  auto x = rnd(40, 6, -4, 4), dy = rnd(40, 7);
  std::vector<float> dx(x.size());
  gelu_backward(dy.data(), x.data(), dx.data(), 40);
  expect_fd(x, dx, [&](const std::vector<double>& xd) {
    double L = 0;
    for (size_t i = 0; i < xd.size(); ++i) L += dy[i] * xd[i] * 0.5 * (1 + std::erf(xd[i] / std::sqrt(2.0)));
    return L;
  }, 1e-5, 1e-4);
}

TEST(GradOps, SoftmaxFiniteDifferences) {
  const int64_t rows = 2, cols = 9;
  auto s = rnd(rows * cols, 8, -3, 3), dp = rnd(rows * cols, 9);
  std::vector<float> p(s.size()), ds(s.size());
  auto softmax = [&](const std::vector<double>& sd, int64_t r, std::vector<double>& out) {
    double mx = -1e300, z = 0;
    for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, sd[r * cols + j]);
    for (int64_t j = 0; j < cols; ++j) z += std::exp(sd[r * cols + j] - mx);
    out.resize(cols);
    for (int64_t j = 0; j < cols; ++j) out[j] = std::exp(sd[r * cols + j] - mx) / z;
  };
  std::vector<double> sd(s.begin(), s.end()), row;
  for (int64_t r = 0; r < rows; ++r) {
    softmax(sd, r, row);
    for (int64_t j = 0; j < cols; ++j) p[r * cols + j] = static_cast<float>(row[j]);
  }
  softmax_backward(dp.data(), p.data(), ds.data(), rows, cols);
  expect_fd(s, ds, [&](const std::vector<double>& x) {
    double L = 0;
    std::vector<double> pr;
    for (int64_t r = 0; r < rows; ++r) {
      softmax(x, r, pr);
      for (int64_t j = 0; j < cols; ++j) L += dp[r * cols + j] * pr[j];
    }
    return L;
  }, 1e-5, 1e-4);
}

TEST(GradOps, AttentionHeadFiniteDifferences) {
  const int64_t T = 5, d = 4, ld = 3 * d;  // q, k, v interleaved like the fused qkv layout
  auto qkv = rnd(T * ld, 10), dctx = rnd(T * d, 11);
  const float scale = 0.5f;
  // forward in double from a flat qkv, returning sum(dctx * ctx)
  auto L = [&](const std::vector<double>& x) {
    double total = 0;
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> srow(T);
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j < T; ++j) {
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += x[i * ld + c] * x[j * ld + d + c];
        srow[j] = s * scale;
        mx = std::max(mx, srow[j]);
      }
      for (auto& v : srow) z += (v = std::exp(v - mx));
      for (int64_t c = 0; c < d; ++c) {
        double ctx = 0;
        for (int64_t j = 0; j < T; ++j) ctx += srow[j] / z * x[j * ld + 2 * d + c];
        total += dctx[i * d + c] * ctx;
      }
    }
    return total;
  };
  // probabilities in float for the backward
  std::vector<float> p(T * T);
  for (int64_t i = 0; i < T; ++i) {
    double mx = -1e300, z = 0;
    std::vector<double> srow(T);
    for (int64_t j = 0; j < T; ++j) {
      double s = 0;
      for (int64_t c = 0; c < d; ++c) s += double(qkv[i * ld + c]) * qkv[j * ld + d + c];
      srow[j] = s * scale;
      mx = std::max(mx, srow[j]);
    }
    for (auto& v : srow) z += (v = std::exp(v - mx));
    for (int64_t j = 0; j < T; ++j) p[i * T + j] = static_cast<float>(srow[j] / z);
  }
  std::vector<float> ds(T * T), g(T * ld);
  attention_backward_head(dctx.data(), d, qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld, p.data(), T, d,
                          scale, ds.data(), g.data(), g.data() + d, g.data() + 2 * d);
  expect_fd(qkv, g, L, 1e-5, 1e-4);
}

ModelConfig tiny_config(const nlohmann::json& m) {
  ModelConfig c;
  c.name = "tiny_vit_test";
  c.family = "vit";
  c.img_size = m["img"].get<int>();
  c.patch = m["patch"].get<int>();
  c.dim = m["dim"].get<int>();
  c.depth = m["depth"].get<int>();
  c.heads = m["heads"].get<int>();
  c.num_classes = m["classes"].get<int>();
  return c;
}

class GradModel : public ::testing::Test {
 protected:
  void SetUp() override {
    g_ = test::load_golden(test::fixture("grad/tiny_vit"));
    cfg_ = tiny_config(g_.meta);
    w_ = synthetic_weights(cfg_, g_.meta["seed"].get<uint32_t>()).tensors;
    x_ = synthetic_input({2, 3, cfg_.img_size, cfg_.img_size}, g_.meta["input_seed"].get<uint32_t>());
    labels_ = g_.meta["labels"].get<std::vector<int>>();
    for (auto& [k, v] : g_.meta["arrays"].items()) names_.push_back(k);
  }
  test::Golden g_;
  ModelConfig cfg_;
  WeightMap w_;
  Tensor x_;
  std::vector<int> labels_;
  std::vector<std::string> names_;
};

TEST_F(GradModel, MatchesPyTorchAutograd) {
  const WeightMap got = output_gradients(cfg_, w_, x_, names_, labels_);
  for (const std::string& n : names_) {
    SCOPED_TRACE(n);
    const std::vector<float> want = g_.array(n);
    ASSERT_EQ(got.at(n).numel(), static_cast<int64_t>(want.size()));
    EXPECT_LT(test::rel_error(got.at(n).f32(), want), 1e-4);
  }
}

// dL/d(bias of a Linear)[c] = sum over images and tokens of dL/d(its output)[..., c]: checks the
// recorded gradients against central differences of the loss itself.
TEST_F(GradModel, FiniteDifferencesOfTheLoss) {
  auto loss = [&](const WeightMap& w) {
    const Tensor logits = output_gradients(cfg_, w, x_, {"logits"}, labels_).at("logits");
    double L = 0;
    for (int64_t b = 0; b < 2; ++b) {
      const float* l = logits.f32() + b * cfg_.num_classes;
      double mx = *std::max_element(l, l + cfg_.num_classes), z = 0;
      for (int c = 0; c < cfg_.num_classes; ++c) z += std::exp(l[c] - mx);
      L += std::log(z) + mx - l[labels_[b]];
    }
    return L;
  };
  const WeightMap g = output_gradients(cfg_, w_, x_, {"blocks.0.mlp.fc1", "blocks.1.attn.qkv", "blocks.0.attn.proj", "head", "patch_embed"}, labels_);
  for (const auto& [out, bias] : std::vector<std::pair<std::string, std::string>>{
           {"blocks.0.mlp.fc1", "blocks.0.mlp.fc1.bias"}, {"blocks.1.attn.qkv", "blocks.1.attn.qkv.bias"},
           {"blocks.0.attn.proj", "blocks.0.attn.proj.bias"}, {"head", "head.bias"},
           {"patch_embed", "patch_embed.proj.bias"}}) {
    const Tensor& gt = g.at(out);
    const int64_t C = gt.dim(-1), rows = gt.numel() / C;
    for (int64_t c : {int64_t{0}, C / 2, C - 1}) {
      double analytic = 0;
      for (int64_t r = 0; r < rows; ++r) analytic += gt.f32()[r * C + c];
      const float h = 1e-2f;
      WeightMap wp = w_, wm = w_;
      wp[bias] = w_.at(bias).clone();
      wm[bias] = w_.at(bias).clone();
      wp[bias].f32()[c] += h;
      wm[bias].f32()[c] -= h;
      const double fd = (loss(wp) - loss(wm)) / (2 * h);
      EXPECT_NEAR(analytic, fd, 2e-3 + 2e-2 * std::fabs(fd)) << out << " channel " << c;
    }
  }
}

TEST_F(GradModel, PseudoLabelsThreadsAndErrors) {
  const WeightMap g = output_gradients(cfg_, w_, x_, {"head", "logits", "blocks.0"});
  const Tensor& logits = g.at("logits");
  for (int64_t b = 0; b < 2; ++b) {  // softmax - onehot(argmax): the arg-max entry is negative
    const float* l = logits.f32() + b * cfg_.num_classes;
    const int64_t am = std::max_element(l, l + cfg_.num_classes) - l;
    double sum = 0;
    for (int c = 0; c < cfg_.num_classes; ++c) {
      const float v = g.at("head").f32()[b * cfg_.num_classes + c];
      sum += v;
      EXPECT_EQ(v < 0, c == am);
    }
    EXPECT_NEAR(sum, 0.0, 1e-6);
  }
  const int saved = num_threads();
  set_num_threads(1);
  const WeightMap one = output_gradients(cfg_, w_, x_, {"blocks.0", "blocks.1.attn.matmul1"}, labels_);
  set_num_threads(2);
  const WeightMap two = output_gradients(cfg_, w_, x_, {"blocks.0", "blocks.1.attn.matmul1"}, labels_);
  set_num_threads(saved);
  for (const char* n : {"blocks.0", "blocks.1.attn.matmul1"}) {
    EXPECT_EQ(std::vector<float>(one.at(n).f32(), one.at(n).f32() + one.at(n).numel()),
              std::vector<float>(two.at(n).f32(), two.at(n).f32() + two.at(n).numel()));
  }
  EXPECT_THROW(output_gradients(cfg_, w_, x_, {"blocks.9"}), Error);
  EXPECT_THROW(output_gradients(cfg_, w_, x_, {"head"}, {1}), Error);       // one label, two images
  EXPECT_THROW(output_gradients(cfg_, w_, x_, {"head"}, {1, 10}), Error);   // out of range
  const ModelConfig& swin = model_config("swin_tiny");
  EXPECT_THROW(output_gradients(swin, w_, x_, {"head"}), Error);
}

}  // namespace
}  // namespace qvit
