// ViT/DeiT forward against torchvision's independent VisionTransformer (tools/make_golden_vit.py):
// seeded synthetic weights for every size, real DeiT-Tiny weights on real images.
#include <cstring>

#include "golden.h"
#include "qvit/image.h"
#include "qvit/model.h"
#include "qvit/parallel.h"

using namespace qvit;
using qvit::test::load_golden;
using qvit::test::rel_error;

namespace {

// The first `per_item` values of each batch item of a tap [B, N, D].
const float* tap_slice(const Tensor& t, int64_t b, int64_t per_item, std::vector<float>& buf) {
  const int64_t item = t.numel() / t.dim(0);
  buf.assign(t.f32() + b * item, t.f32() + b * item + per_item);
  return buf.data();
}

void check_synthetic(const std::string& name) {
  auto g = load_golden(test::fixture("vit/" + name + "_synthetic"));
  const ModelConfig& cfg = model_config(name);
  auto model = create_model(cfg, synthetic_weights(cfg, g.meta["weights_seed"].get<uint32_t>()));
  WeightMap taps;
  model->set_taps(&taps);
  Tensor x = synthetic_input({2, 3, 224, 224}, g.meta["input_seed"].get<uint32_t>());
  Tensor logits = model->forward(x);
  EXPECT_LT(rel_error(logits.f32(), g.array("logits")), 1e-4) << name << " logits";
  for (const std::string& key : {std::string("blocks.0"), "blocks." + std::to_string(cfg.depth - 1)}) {
    auto want = g.array(key);
    const int64_t per_item = static_cast<int64_t>(want.size() / 2);
    std::vector<float> got;
    for (int64_t b = 0; b < 2; ++b) {
      tap_slice(taps.at(key), b, per_item, got);
      std::vector<float> w(want.begin() + b * per_item, want.begin() + (b + 1) * per_item);
      EXPECT_LT(rel_error(got.data(), w), 1e-4) << name << " " << key << " item " << b;
    }
  }
}

}  // namespace

TEST(VitGolden, DeitSmallSynthetic) { check_synthetic("deit_small_patch16_224"); }
TEST(VitGolden, DeitBaseSynthetic) { check_synthetic("deit_base_patch16_224"); }
TEST(VitGolden, VitBaseSynthetic) { check_synthetic("vit_base_patch16_224"); }
TEST(VitGolden, VitLargeSynthetic) { check_synthetic("vit_large_patch16_224"); }

TEST(VitGolden, DeitTinyRealWeightsRealImages) {
  QVIT_REQUIRE_DATA_PATH(st, "models/deit_tiny_patch16_224.safetensors");
  QVIT_REQUIRE_DATA_PATH(pth, "models/deit_tiny_patch16_224.pth");
  auto g = load_golden(test::fixture("vit/deit_tiny_real"));
  const auto images = g.meta["images"].get<std::vector<std::string>>();
  const ModelConfig& cfg = model_config("deit_tiny");
  const PreprocessConfig pre = cfg.preprocess();
  Tensor x({int64_t(images.size()), 3, 224, 224});
  for (size_t i = 0; i < images.size(); ++i) {
    QVIT_REQUIRE_DATA_PATH(path, "imagenet-sample/" + images[i]);
    preprocess_image(decode_image_file(path), pre, x.f32() + i * 3 * 224 * 224);
  }
  auto from_st = load_model("deit_tiny", st);
  auto from_pth = load_model("deit_tiny", pth);
  Tensor a = from_st->forward(x);
  Tensor b = from_pth->forward(x);
  EXPECT_LT(test::max_abs_diff(a.f32(), g.array("logits")), 1e-3);
  ASSERT_EQ(a.numel(), b.numel());
  EXPECT_EQ(std::memcmp(a.f32(), b.f32(), a.nbytes()), 0) << ".pth and .safetensors differ";
}

TEST(VitGolden, SameLogitsForAnyThreadCount) {
  const ModelConfig& cfg = model_config("deit_tiny");
  auto model = create_model(cfg, synthetic_weights(cfg, 3));
  Tensor x = synthetic_input({3, 3, 224, 224}, 4);
  set_num_threads(1);
  Tensor one = model->forward(x);
  set_num_threads(2);
  Tensor two = model->forward(x);
  set_num_threads(0);
  EXPECT_EQ(std::memcmp(one.f32(), two.f32(), one.nbytes()), 0);
}

TEST(VitGolden, BatchOfOneEqualsRowOfBatch) {
  // Batch composition must not change an image's logits beyond float noise.
  const ModelConfig& cfg = model_config("deit_tiny");
  auto model = create_model(cfg, synthetic_weights(cfg, 3));
  Tensor x = synthetic_input({3, 3, 224, 224}, 4);
  Tensor all = model->forward(x);
  Tensor x1({1, 3, 224, 224});
  std::memcpy(x1.f32(), x.f32() + 2 * 3 * 224 * 224, x1.nbytes());
  Tensor single = model->forward(x1);
  std::vector<float> want(single.f32(), single.f32() + 1000);
  EXPECT_LT(rel_error(all.f32() + 2000, want), 1e-5);
}
