// FQ-ViT simulation on Swin (swin_tiny, synthetic weights): every FQ-ViT configuration calibrates
// and stays close to FP32, the quantization points follow swin_quant.py (the patch-embedding
// quantizers, the relative-position-table point, the patch-merging LayerNorm reusing the previous
// stage's residual point), the parameter file round trip, thread-count independence, and the
// FP32 path being untouched by an attached session.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "qvit/eval.h"
#include "qvit/model.h"
#include "qvit/parallel.h"
#include "qvit/quant_session.h"
#include "test_util.h"

namespace qvit {
namespace {

constexpr uint32_t kWeightSeed = 1;

// swin_tiny with synthetic weights and its FP32 logits on the evaluation input, built once.
struct Shared {
  const ModelConfig& cfg = model_config("swin_tiny");
  std::unique_ptr<Model> model = create_model(cfg, synthetic_weights(cfg, kWeightSeed));
  Tensor input = synthetic_input({1, 3, 224, 224}, 7);
  Tensor fp = model->forward(input);
};

Shared& shared() {
  static Shared s;
  return s;
}

// FQ-ViT's configurations: observer x {W8A8 attn8, +PTF, +PTF +LIS attn4}.
QuantConfig fqvit_config(ObserverKind observer, int variant) {
  QuantConfig qc;
  qc.observer = observer;
  qc.ptf = variant >= 1;
  qc.lis = variant == 2;
  qc.attn_bits = qc.lis ? 4 : 8;
  return qc;
}

// FQ-ViT's protocol on synthetic images: `batches` calibration batches of `batch` images, the
// last one marked (OMSE/PTF searches), then simulate mode with fake-quantized weights.
std::unique_ptr<QuantSession> calibrate_synthetic(Model& m, const QuantConfig& qc, int batches = 2,
                                                  int64_t batch = 1) {
  auto s = std::make_unique<QuantSession>(m.config().name, qc);
  m.set_quant(s.get());
  s->set_mode(QuantMode::calibrate);
  for (int k = 0; k < batches; ++k) {
    s->set_last_batch(k == batches - 1);
    m.forward(synthetic_input({batch, 3, 224, 224}, 100 + k));
  }
  s->set_last_batch(false);
  s->finalize();
  s->set_mode(QuantMode::simulate);
  m.sync_quant();
  return s;
}

double cosine(const Tensor& a, const Tensor& b) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    ab += double(a.f32()[i]) * b.f32()[i];
    aa += double(a.f32()[i]) * a.f32()[i];
    bb += double(b.f32()[i]) * b.f32()[i];
  }
  return ab / std::sqrt(aa * bb);
}

bool all_finite(const Tensor& t) {
  return std::all_of(t.f32(), t.f32() + t.numel(), [](float v) { return std::isfinite(v); });
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// The names of the session's points that start with `prefix`, in forward order, prefix removed.
std::vector<std::string> points_under(const QuantSession& s, const std::string& prefix) {
  std::vector<std::string> out;
  for (const std::string& n : s.names())
    if (n.rfind(prefix, 0) == 0) out.push_back(n.substr(prefix.size()));
  return out;
}

struct ConfigCase {
  ObserverKind observer;
  int variant;
};

std::string case_name(const ::testing::TestParamInfo<ConfigCase>& info) {
  static const char* variants[] = {"w8a8", "ptf", "ptf_lis"};
  return std::string(observer_kind_name(info.param.observer)) + "_" + variants[info.param.variant];
}

std::vector<ConfigCase> all_configs() {
  std::vector<ConfigCase> v;
  for (ObserverKind o :
       {ObserverKind::minmax, ObserverKind::ema, ObserverKind::percentile, ObserverKind::omse})
    for (int variant = 0; variant < 3; ++variant) v.push_back({o, variant});
  return v;
}

class SwinQuantConfigs : public ::testing::TestWithParam<ConfigCase> {};

TEST_P(SwinQuantConfigs, CalibratesAndStaysCloseToFp32) {
  Shared& sh = shared();
  const QuantConfig qc = fqvit_config(GetParam().observer, GetParam().variant);
  auto s = calibrate_synthetic(*sh.model, qc);
  const Tensor q = sh.model->forward(sh.input);
  sh.model->set_quant(nullptr);
  ASSERT_EQ(q.shape(), sh.fp.shape());
  EXPECT_TRUE(all_finite(q)) << qc.label();
  EXPECT_FALSE(same_bits(q, sh.fp)) << "nothing was quantized";
  const double cos = cosine(q, sh.fp);
  std::printf("[ %s ] cosine to FP32 %.4f\n", qc.label().c_str(), cos);
  // 4-bit LIS attention costs more than 8-bit uniform softmax on these random weights.
  EXPECT_GT(cos, qc.lis ? 0.98 : 0.99) << qc.label();
}

INSTANTIATE_TEST_SUITE_P(Fqvit, SwinQuantConfigs, ::testing::ValuesIn(all_configs()), case_name);

TEST(SwinQuant, PointsFollowFqvitPlacement) {
  Shared& sh = shared();
  auto s = calibrate_synthetic(*sh.model, fqvit_config(ObserverKind::minmax, 2), 1);
  sh.model->set_quant(nullptr);

  // Patch embedding: the input, qact_before_norm (per tensor, not PTF) and the norm output, which
  // is also the first block's norm1 input quantizer.
  const std::vector<std::string> embed = {"embed.input", "patch_embed.norm.in",
                                          "patch_embed.norm.out"};
  const std::vector<std::string> names = s->names();
  ASSERT_GE(names.size(), 3u);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 3), embed);
  EXPECT_FALSE(s->has("layers.0.blocks.0.norm1.in"));
  for (const char* n : {"patch_embed.norm.in", "patch_embed.norm.out"}) {
    EXPECT_EQ(s->params(n).kind, QuantKind::uniform) << n;
    EXPECT_EQ(s->params(n).scale.size(), 1u) << n;
  }

  // One block (stage 0, shifted windows), in forward order; the weights are registered after
  // calibration. With LIS there is no softmax point. The residual point after the block belongs
  // to the LayerNorm it feeds (here the patch merging's: layers.1.downsample.norm.in).
  EXPECT_EQ(points_under(*s, "layers.0.blocks.1."),
            (std::vector<std::string>{
                "norm1.in", "norm1.out", "attn.qkv", "attn.scores", "attn.table", "attn.logits",
                "attn.context", "attn.proj", "norm2.in", "norm2.out", "mlp.gelu", "mlp.fc2",
                "attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"}));
  EXPECT_EQ(s->params("layers.0.blocks.1.attn.table").scale.size(), 1u);
  EXPECT_EQ(s->params("layers.0.blocks.1.norm1.in").kind, QuantKind::ptf);
  EXPECT_EQ(s->params("layers.0.blocks.1.norm1.in").scale.size(), 96u);
  EXPECT_EQ(s->params("layers.0.blocks.1.norm2.in").kind, QuantKind::ptf);
  EXPECT_FALSE(s->has("layers.0.blocks.1.attn.softmax"));

  // Patch merging: its LayerNorm input is the previous stage's last residual point (PTF over
  // C = 96 channels, tiled 4x for the 384-channel LayerNorm); the reduction output (FQ-ViT
  // PatchMerging.qact2, PTF) is the stage's first norm1 input.
  EXPECT_EQ(points_under(*s, "layers.1.downsample."),
            (std::vector<std::string>{"norm.in", "norm.out", "reduction.weight"}));
  const QuantParams& merge_in = s->params("layers.1.downsample.norm.in");
  EXPECT_EQ(merge_in.kind, QuantKind::ptf);
  EXPECT_EQ(merge_in.scale.size(), 96u);
  EXPECT_EQ(merge_in.alpha.size(), 96u);
  const auto pos = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) - names.begin();
  };
  EXPECT_EQ(pos("layers.1.downsample.norm.in"), pos("layers.0.blocks.1.mlp.fc2") + 1);
  EXPECT_EQ(s->params("layers.1.blocks.0.norm1.in").kind, QuantKind::ptf);
  EXPECT_EQ(s->params("layers.1.blocks.0.norm1.in").scale.size(), 192u);
  EXPECT_EQ(s->params("layers.1.downsample.reduction.weight").scale.size(), 192u);

  // Final norm, pooling and head.
  EXPECT_EQ(s->params("norm.in").kind, QuantKind::ptf);
  EXPECT_EQ(s->params("norm.in").scale.size(), 768u);
  for (const char* n : {"norm.out", "avgpool", "head.out", "head.fc.weight",
                        "patch_embed.proj.weight", "layers.3.blocks.1.mlp.fc2"})
    EXPECT_TRUE(s->has(n)) << n;
  const auto last_act = std::find_if(names.rbegin(), names.rend(), [](const std::string& n) {
    return n.find(".weight") == std::string::npos;
  });
  EXPECT_EQ(*last_act, "head.out");  // the weights are registered after calibration

  // FQ-ViT has 156 activation quantizers in Swin-T (1 input + 2 patch embedding + 12 per block
  // + 2 per patch merging + 3 final; LIS replaces the softmax quantizers) and 53 weights.
  EXPECT_EQ(s->size(), 156u + 53u);
  auto plain = calibrate_synthetic(*sh.model, fqvit_config(ObserverKind::minmax, 0), 1);
  sh.model->set_quant(nullptr);
  EXPECT_EQ(plain->size(), 156u + 12u + 53u);  // + one softmax point per block
  EXPECT_EQ(plain->params("layers.0.blocks.1.norm1.in").kind, QuantKind::uniform);
  EXPECT_EQ(plain->params("layers.0.blocks.1.norm1.in").scale.size(), 1u);
  EXPECT_EQ(plain->params("layers.2.blocks.5.attn.softmax").kind, QuantKind::uniform);
}

TEST(SwinQuant, SaveLoadGivesIdenticalLogits) {
  Shared& sh = shared();
  const QuantConfig qc = fqvit_config(ObserverKind::ema, 2);
  auto s = calibrate_synthetic(*sh.model, qc, 1);
  const Tensor a = sh.model->forward(sh.input);
  sh.model->set_quant(nullptr);
  const std::string path = test::temp_dir() + "/swin.json";
  s->save(path);
  QuantSession loaded = QuantSession::load(path, sh.cfg.name);
  EXPECT_EQ(loaded.config().label(), qc.label());
  EXPECT_EQ(loaded.to_json().dump(), s->to_json().dump());
  // A new session: the model rebuilds its weights from the originals with the loaded parameters.
  sh.model->set_quant(&loaded);
  EXPECT_TRUE(same_bits(a, sh.model->forward(sh.input)));
  sh.model->set_quant(nullptr);
}

TEST(SwinQuant, SameParamsForAnyThreadCount) {
  Shared& sh = shared();
  std::string dumps[2];
  Tensor logits[2];
  for (int t : {1, 2}) {
    set_num_threads(t);
    auto s = calibrate_synthetic(*sh.model, fqvit_config(ObserverKind::percentile, 2));
    dumps[t - 1] = s->to_json().dump();
    logits[t - 1] = sh.model->forward(sh.input);
    sh.model->set_quant(nullptr);
  }
  set_num_threads(0);
  EXPECT_EQ(dumps[0], dumps[1]);
  EXPECT_TRUE(same_bits(logits[0], logits[1]));
}

// qvit::calibrate (FQ-ViT's protocol on real images) with 1 and 2 threads.
TEST(SwinQuant, CalibrateOnImagesSameForAnyThreadCount) {
  QVIT_REQUIRE_DATA_PATH(dir, "imagenet-sample");
  Shared& sh = shared();
  const Dataset ds = image_folder(dir);
  CalibOptions opt;
  opt.batch = 1;
  opt.iters = 2;
  const std::vector<size_t> idx = calibration_indices(ds, opt);
  std::string dumps[2];
  for (int t : {1, 2}) {
    set_num_threads(t);
    QuantSession s(sh.cfg.name, fqvit_config(ObserverKind::minmax, 1));
    calibrate(*sh.model, s, ds, idx, sh.cfg.preprocess(), opt);
    dumps[t - 1] = s.to_json().dump();
    sh.model->set_quant(nullptr);
  }
  set_num_threads(0);
  EXPECT_EQ(dumps[0], dumps[1]);
}

TEST(SwinQuant, Fp32PathUnchangedBySession) {
  Shared& sh = shared();
  auto s = calibrate_synthetic(*sh.model, fqvit_config(ObserverKind::ema, 1), 1);
  EXPECT_FALSE(same_bits(sh.model->forward(sh.input), sh.fp));
  s->set_mode(QuantMode::off);  // attached but off: the plain FP32 path
  EXPECT_TRUE(same_bits(sh.model->forward(sh.input), sh.fp));
  s->set_mode(QuantMode::simulate);
  sh.model->set_quant(nullptr);
  EXPECT_TRUE(same_bits(sh.model->forward(sh.input), sh.fp));
}

}  // namespace
}  // namespace qvit
