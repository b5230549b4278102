// PTQ4ViT/APQ-ViT framework: the simulated quantized ViT against a PyTorch reference
// (tools/make_golden_apq.py: uniform, twin-uniform and MPQ parameter sets), the searches against
// brute-force evaluations of their objective written here, the params file (round trip, errors),
// and thread-count independence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "apq/qsim.h"
#include "golden.h"
#include "qvit/apq_metric.h"
#include "qvit/apq.h"
#include "qvit/error.h"
#include "qvit/grad.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.name = "tiny_vit_test";
  c.family = "vit";
  c.img_size = 32;
  c.patch = 8;
  c.dim = 32;
  c.depth = 2;
  c.heads = 2;
  c.num_classes = 10;
  return c;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

class ApqGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(ApqGolden, LogitsMatchPyTorch) {
  const nlohmann::json j = read_json(test::fixture(std::string("apq/") + GetParam() + ".json"));
  const ModelConfig cfg = tiny();
  const WeightMap w = synthetic_weights(cfg, j["seed"].get<uint32_t>()).tensors;
  const apq::ApqParams p = apq::ApqParams::from_json(j, GetParam());
  p.check(cfg, GetParam());
  const int64_t B = j["batch"].get<int64_t>();
  const Tensor x = synthetic_input({B, 3, 32, 32}, j["input_seed"].get<uint32_t>());
  auto m = apq::create_model(cfg, w, p);
  const Tensor got = m->forward(x);
  const std::vector<float> want = j["logits"].get<std::vector<float>>();
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  // Float32 sums in another order may move a value across a rounding boundary now and then:
  // allow a small fraction of the logit scale, and require most logits to agree closely.
  double scale = 0, worst = 0;
  int close = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(double(want[i])));
    worst = std::max(worst, std::fabs(double(got.f32()[i]) - want[i]));
    close += std::fabs(double(got.f32()[i]) - want[i]) < 1e-4 * (1 + std::fabs(want[i]));
  }
  EXPECT_LT(worst, 0.02 * scale) << GetParam();
  EXPECT_GE(close, static_cast<int>(want.size() * 0.8)) << GetParam();
  // And the quantizers really act: the FP model gives other logits.
  const Tensor fp = create_model(cfg, synthetic_weights(cfg, j["seed"].get<uint32_t>()))->forward(x);
  double diff = 0;
  for (int64_t i = 0; i < fp.numel(); ++i) diff = std::max(diff, std::fabs(double(fp.f32()[i]) - got.f32()[i]));
  EXPECT_GT(diff, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Sets, ApqGolden, ::testing::Values("base_w8a8", "ptq4vit_w6a6", "apq_w8a8"));

struct Tiny {
  ModelConfig cfg = tiny();
  WeightMap w = synthetic_weights(cfg, 11).tensors;
  Tensor x = synthetic_input({4, 3, 32, 32}, 12);
};

apq::ApqConfig small_grid(apq::Method m, int bits) {
  apq::ApqConfig c = apq::ApqConfig::defaults(m);
  c.wbits = c.abits = bits;
  c.grid = 20;
  c.calib_images = 4;
  return c;
}

// patches [B*np, 3*8*8] of the tiny input, as the model's Conv sees them
std::vector<float> patches_of(const Tiny& t) {
  const int64_t np = 16, K = 3 * 64;
  std::vector<float> p(static_cast<size_t>(4 * np * K));
  im2patch_f32(t.x.f32(), p.data(), 4, 3, 32, 32, 8);
  return p;
}

// Brute force of the patch-embedding weight search: the candidate factor maximising the metric
// computed here in double (cosine over the whole output for base; per output channel Hessian
// with the real gradient for ptq4vit), compared with what calibrate() chose.
TEST(ApqSearch, PatchEmbeddingMatchesBruteForce) {
  Tiny t;
  const std::vector<float> P = patches_of(t);
  const int64_t M = 64, N = 32, K = 192;
  const float* W = t.w.at("patch_embed.proj.weight").f32();
  const float* bias = t.w.at("patch_embed.proj.bias").f32();
  auto out = [&](const std::vector<float>& wq, int64_t n, std::vector<double>& y) {
    y.assign(static_cast<size_t>(M), 0.0);
    for (int64_t r = 0; r < M; ++r) {
      double s = bias[n];
      for (int64_t k = 0; k < K; ++k) s += double(P[r * K + k]) * wq[n * K + k];
      y[r] = s;
    }
  };
  for (apq::Method m : {apq::Method::base, apq::Method::ptq4vit}) {
    const apq::ApqConfig c = small_grid(m, 4);
    const apq::ApqParams p = apq::calibrate(t.cfg, t.w, t.x, {}, c);
    const std::vector<float>& chosen = p.layers.at("patch_embed.proj").w;
    Tensor g;
    if (m == apq::Method::ptq4vit) g = output_gradients(t.cfg, t.w, t.x, {"patch_embed"}).at("patch_embed");
    const bool per_channel = c.patch_weights == apq::Granularity::channel;
    ASSERT_EQ(chosen.size(), per_channel ? size_t(N) : size_t(1));
    // initial intervals
    std::vector<float> w0(static_cast<size_t>(per_channel ? N : 1), 0.0f);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        float& a = w0[per_channel ? n : 0];
        a = std::max(a, std::fabs(W[n * K + k]));
      }
    for (float& a : w0) a = a / 7.5f;
    const int G = static_cast<int>(w0.size());
    std::vector<double> best(static_cast<size_t>(G), -1e300);
    std::vector<int> arg(static_cast<size_t>(G), -1);
    for (int i = 0; i < c.grid; ++i) {
      const float f = c.alpha + float(i) * (c.beta - c.alpha) / float(c.grid);
      std::vector<float> wq(static_cast<size_t>(N * K));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          const float d = w0[per_channel ? n : 0] * f;
          wq[n * K + k] = std::clamp(std::nearbyint(W[n * K + k] / d), -8.0f, 7.0f) * d;
        }
      std::vector<double> sc(static_cast<size_t>(G), 0.0), oo(static_cast<size_t>(G), 0.0), qq(static_cast<size_t>(G), 0.0);
      std::vector<double> yq;
      for (int64_t n = 0; n < N; ++n) {
        out(wq, n, yq);
        const int gi = per_channel ? int(n) : 0;
        for (int64_t r = 0; r < M; ++r) {
          double yf = bias[n];
          for (int64_t k = 0; k < K; ++k) yf += double(P[r * K + k]) * W[n * K + k];
          if (m == apq::Method::base) {
            sc[gi] += yf * yq[r], oo[gi] += yf * yf, qq[gi] += yq[r] * yq[r];
          } else {
            const double e = g.f32()[r * N + n] * (yf - yq[r]);
            sc[gi] -= e * e;
          }
        }
      }
      for (int gi = 0; gi < G; ++gi) {
        const double s = m == apq::Method::base ? sc[gi] / std::sqrt(oo[gi] * qq[gi]) : sc[gi];
        if (s > best[gi] + 1e-12 * std::fabs(best[gi])) best[gi] = s, arg[gi] = i;
      }
    }
    int agree = 0;
    for (int gi = 0; gi < G; ++gi) {
      const float want = w0[gi] * (c.alpha + float(arg[gi]) * (c.beta - c.alpha) / float(c.grid));
      agree += std::fabs(chosen[gi] - want) <= 1e-6f * want;
    }
    // float vs double evaluation may swap near-ties; nearly all choices must be the same.
    EXPECT_GE(agree, G - std::max(1, G / 10)) << apq::method_name(m);
  }
}

TEST(ApqSearch, EveryMethodRunsAndIsThreadIndependent) {
  Tiny t;
  const int saved = num_threads();
  for (apq::Method m : {apq::Method::base, apq::Method::ptq4vit, apq::Method::apq}) {
    apq::ApqConfig c = small_grid(m, 4);
    c.rounds = 2;
    set_num_threads(1);
    const apq::ApqParams one = apq::calibrate(t.cfg, t.w, t.x, {}, c);
    set_num_threads(2);
    const apq::ApqParams two = apq::calibrate(t.cfg, t.w, t.x, {}, c);
    one.check(t.cfg, "one");
    EXPECT_EQ(one.to_json()["layers"], two.to_json()["layers"]) << apq::method_name(m);
    // The calibrated model is closer to FP than a naive one (every interval at 1/100 of its
    // calibrated value would wipe the signal out).
    const Tensor fp = create_model(t.cfg, synthetic_weights(t.cfg, 11))->forward(t.x);
    const Tensor q = apq::create_model(t.cfg, t.w, one)->forward(t.x);
    double cos_num = 0, a = 0, b = 0;
    for (int64_t i = 0; i < fp.numel(); ++i)
      cos_num += double(fp.f32()[i]) * q.f32()[i], a += double(fp.f32()[i]) * fp.f32()[i], b += double(q.f32()[i]) * q.f32()[i];
    EXPECT_GT(cos_num / std::sqrt(a * b), 0.5) << apq::method_name(m);
  }
  set_num_threads(saved);
}

// Bad options and inputs are refused with errors, before any work.
TEST(ApqSearch, OptionsAreValidated) {
  apq::ApqConfig c = apq::ApqConfig::defaults(apq::Method::apq);
  c.wbits = 9;
  EXPECT_THROW(c.validate(), Error);
  c = apq::ApqConfig::defaults(apq::Method::apq);
  c.abits = 1;
  EXPECT_THROW(c.validate(), Error);
  c = apq::ApqConfig::defaults(apq::Method::apq);
  c.keep = 0.0;
  EXPECT_THROW(c.validate(), Error);
  c.keep = 1.5;
  EXPECT_THROW(c.validate(), Error);
  c = apq::ApqConfig::defaults(apq::Method::apq);
  c.stride = 0;
  EXPECT_THROW(c.validate(), Error);
  EXPECT_THROW(apq::parse_method("gptq"), Error);
  Tiny t;
  const ModelConfig swin = model_config("swin_tiny");
  EXPECT_THROW(apq::calibrate(swin, t.w, t.x, {}, small_grid(apq::Method::base, 8)), Error);
  apq::ApqConfig lab = small_grid(apq::Method::apq, 8);
  lab.use_labels = true;
  EXPECT_THROW(apq::calibrate(t.cfg, t.w, t.x, {1, 2}, lab), Error);  // 2 labels, 4 images
}

TEST(ApqParamsFile, RoundTripAndErrors) {
  Tiny t;
  apq::ApqConfig c = small_grid(apq::Method::ptq4vit, 6);
  c.rounds = 1;
  const apq::ApqParams p = apq::calibrate(t.cfg, t.w, t.x, {}, c);
  const std::string path = ::testing::TempDir() + "apq_params_roundtrip.json";
  p.save(path);
  const apq::ApqParams back = apq::ApqParams::load(path);
  EXPECT_EQ(back.config.to_json(), p.config.to_json());
  const Tensor a = apq::create_model(t.cfg, t.w, p)->forward(t.x);
  const Tensor b = apq::create_model(t.cfg, t.w, back)->forward(t.x);
  EXPECT_EQ(std::vector<float>(a.f32(), a.f32() + a.numel()), std::vector<float>(b.f32(), b.f32() + b.numel()));

  auto expect_error = [&](nlohmann::json j, const std::string& what) {
    try {
      apq::ApqParams q = apq::ApqParams::from_json(j, "bad.json");
      q.check(t.cfg, "bad.json");
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  nlohmann::json j = p.to_json();
  auto v = j;
  // A file from before the refinement option was calibrated without it, even for apq (default 1).
  v["config"]["method"] = "apq";
  v["config"]["refine"] = 2;
  EXPECT_EQ(apq::ApqConfig::from_json(v["config"]).refine, 2);  // present: kept
  v["config"].erase("refine");
  EXPECT_EQ(apq::ApqConfig::from_json(v["config"]).refine, 0);
  v = j;
  v["version"] = 2;
  expect_error(v, "version 2");
  v = j;
  v["model"] = "deit_small_patch16_224";
  expect_error(v, "deit_small");
  v = j;
  v["layers"].erase("blocks.1.mlp.fc2");
  expect_error(v, "blocks.1.mlp.fc2");
  v = j;
  v["layers"]["blocks.0.attn.qkv"]["w"] = {0.1};
  expect_error(v, "expected 3");
  v = j;
  v["layers"]["head"]["a"] = -1.0;
  expect_error(v, "head");
  v = j;
  v["config"]["wbits"] = 12;
  expect_error(v, "wbits");
  v = j;
  v["format"] = "qvit-qparams";
  expect_error(v, "not a qvit-apq-params");
  std::remove(path.c_str());
}


// The per-bit-width defaults: apq's post-softmax quantizer is MPQ up to 5 activation bits and twin
// uniform from 6; the other methods keep theirs; the bits are set; apq refines each block once.
TEST(ApqSearch, DefaultsFollowActivationBits) {
  using apq::ApqConfig;
  using apq::Method;
  using apq::SoftmaxQuant;
  EXPECT_EQ(ApqConfig::defaults(Method::apq, 4, 4).softmax, SoftmaxQuant::mpq);
  EXPECT_EQ(ApqConfig::defaults(Method::apq, 8, 5).softmax, SoftmaxQuant::mpq);
  EXPECT_EQ(ApqConfig::defaults(Method::apq, 6, 6).softmax, SoftmaxQuant::twin);
  EXPECT_EQ(ApqConfig::defaults(Method::apq, 4, 8).softmax, SoftmaxQuant::twin);
  EXPECT_EQ(ApqConfig::defaults(Method::base, 8, 8).softmax, SoftmaxQuant::uniform);
  EXPECT_EQ(ApqConfig::defaults(Method::ptq4vit, 4, 4).softmax, SoftmaxQuant::twin);
  const ApqConfig c = ApqConfig::defaults(Method::apq, 3, 7);
  EXPECT_EQ(c.wbits, 3);
  EXPECT_EQ(c.abits, 7);
  EXPECT_EQ(c.metric, apq::MetricKind::bbc);
  // one refinement pass for apq (decision 6b); the layer-metric methods have nothing to refine
  EXPECT_EQ(c.refine, 1);
  EXPECT_EQ(ApqConfig::defaults(Method::ptq4vit, 4, 4).refine, 0);
  EXPECT_EQ(ApqConfig::defaults(Method::base, 4, 4).refine, 0);
}


// A refinement pass (ApqConfig::refine) is coordinate descent on each block's BBC score with every
// quantizer of the block on: the current value is always one of the candidates, so the score of
// the fully quantized block (recomputed here from the FP block input) never goes down, with a
// windowed search and with the whole grid (the default); and on this model some parameters move.
TEST(ApqSearch, RefinementNeverLowersTheBlockScore) {
  using namespace apq::detail;
  Tiny t;
  apq::ApqConfig c = small_grid(apq::Method::apq, 3);  // (at 4 bits this model's first pass is already optimal)
  c.stride = 4;
  c.refine = 0;  // p0: the first pass alone
  const apq::ApqParams p0 = apq::calibrate(t.cfg, t.w, t.x, {}, c);
  std::vector<std::string> names;
  for (int i = 0; i < t.cfg.depth; ++i) names.push_back("blocks." + std::to_string(i));
  const WeightMap g = output_gradients(t.cfg, t.w, t.x, names);
  const Dims d = vit_dims(t.cfg, t.x.dim(0));
  BlockState F, Q;
  Scratch sc;
  F.allocate(d), Q.allocate(d), sc.allocate(d);
  for (int window : {4, 0}) {
    c.refine = 1;
    c.refine_window = window;
    const apq::ApqParams p1 = apq::calibrate(t.cfg, t.w, t.x, {}, c);
    Tensor patches({d.B * d.np, d.patch_k}), emb({d.B * d.np, d.D}), x({d.R(), d.D});
    im2patch_f32(t.x.f32(), patches.f32(), d.B, 3, 32, 32, 8);
    linear_nt(patches.f32(), t.w.at("patch_embed.proj.weight").f32(), t.w.at("patch_embed.proj.bias").f32(),
              emb.f32(), d.B * d.np, d.D, d.patch_k);
    embed(d, t.w, emb.f32(), x.f32());
    int moved = 0;
    for (int i = 0; i < t.cfg.depth; ++i) {
      const BlockWeights bw = block_weights(t.w, i);
      F.x_in = x.f32();
      run_stages(c, d, bw, BlockQuant{}, F, sc, kQkv);
      double score[2];
      for (int r = 0; r < 2; ++r) {
        const apq::ApqParams& p = r == 0 ? p0 : p1;
        BlockQuant q;
        for (int k = 0; k < kStages; ++k) {
          const std::string n = names[i] + "." + kStageNames[k];
          q.p[k] = &p.layers.at(n);
          const apq::LayerParams &a = p0.layers.at(n), &b = p1.layers.at(n);
          if (r == 1)
            moved += !(a == b);
        }
        Q.x_in = x.f32();
        run_stages(c, d, bw, q, Q, sc, kQkv);
        score[r] = apq::metric_bbc(F.x_out.f32(), Q.x_out.f32(), g.at(names[i]).f32(),
                                   static_cast<size_t>(d.R() * d.D), c.keep, c.rank);
      }
      EXPECT_GE(score[1], score[0] - 1e-12 * std::fabs(score[0])) << "block " << i << " window " << window;
      std::memcpy(x.f32(), F.x_out.f32(), x.nbytes());
    }
    EXPECT_GT(moved, 0) << "window " << window;
  }
  c.refine_window = c.grid + 1;
  EXPECT_THROW(c.validate(), Error);
  c.refine_window = 4;
  c.refine = -1;
  EXPECT_THROW(c.validate(), Error);
}

}  // namespace
}  // namespace qvit
