// Golden tests for the Swin family against torchvision's SwinTransformer
// (tools/make_golden_swin.py): logits, a slice plus the sum and sum of |x| of every stage output on
// qvit's seeded synthetic weights, for swin_tiny/small/base; the synthetic weights and input must
// match the Python generator bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qvit/model.h"
#include "test_util.h"

namespace qvit {
namespace {

constexpr double kTolerance = 1e-4;  // max|a-b| / max|b|, FP32 engine vs PyTorch FP32

struct Golden {
  nlohmann::json meta;
  std::vector<float> data;

  explicit Golden(const std::string& model) {
    const std::string base = test::fixture("swin/" + model + "_synthetic");
    std::ifstream f(base + ".json");
    if (!f) throw std::runtime_error("cannot open " + base + ".json");
    meta = nlohmann::json::parse(f);
    data = test::read_f32(base + ".f32");
  }
  bool has(const std::string& key) const { return meta["arrays"].contains(key); }
  std::vector<float> array(const std::string& key) const {
    const auto& a = meta["arrays"].at(key);
    int64_t n = 1;
    for (int64_t d : a["shape"]) n *= d;
    const int64_t off = a["offset"];
    return std::vector<float>(data.begin() + off, data.begin() + off + n);
  }
};

double rel_error(const float* a, const std::vector<float>& ref) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - ref[i]));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return diff / scale;
}

bool same_bits(const float* a, const std::vector<float>& b) {
  return std::memcmp(a, b.data(), b.size() * sizeof(float)) == 0;
}

class SwinGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SwinGolden, MatchesTorchvision) {
  const ModelConfig& cfg = model_config(GetParam());
  const Golden g(cfg.name);
  const uint32_t wseed = g.meta["weights_seed"], iseed = g.meta["input_seed"];
  WeightFile weights = synthetic_weights(cfg, wseed);
  const Tensor x = synthetic_input({1, 3, cfg.img_size, cfg.img_size}, iseed);

  // tools/synthetic_weights.py reproduces qvit::synthetic_weights/synthetic_input exactly.
  for (const auto& [key, _] : g.meta["arrays"].items()) {
    if (key.rfind("weight:", 0) != 0) continue;
    const std::string name = key.substr(7);
    ASSERT_TRUE(weights.tensors.count(name)) << name;
    EXPECT_TRUE(same_bits(weights.tensors.at(name).f32(), g.array(key))) << name;
  }
  ASSERT_TRUE(g.has("input"));
  EXPECT_TRUE(same_bits(x.f32(), g.array("input")));

  auto model = create_model(cfg, std::move(weights));
  WeightMap taps;
  model->set_taps(&taps);
  const Tensor logits = model->forward(x);
  ASSERT_EQ(logits.shape(), (Shape{1, cfg.num_classes}));
  const double err = rel_error(logits.f32(), g.array("logits"));
  std::printf("[ %s ] logits rel err %.3g", cfg.name.c_str(), err);
  EXPECT_LT(err, kTolerance) << "logits";

  for (size_t i = 0; i < cfg.depths.size(); ++i) {
    const std::string key = "layers." + std::to_string(i);
    ASSERT_TRUE(taps.count(key)) << key;
    const Tensor& t = taps.at(key);
    const auto& stats = g.meta["stages"][key];
    EXPECT_EQ(t.shape(), stats["shape"].get<Shape>()) << key;
    const double e = rel_error(t.f32(), g.array(key));
    std::printf(", %s %.3g", key.c_str(), e);
    EXPECT_LT(e, kTolerance) << key;
    double sum = 0, abs_sum = 0;
    for (int64_t k = 0; k < t.numel(); ++k) {
      sum += t.f32()[k];
      abs_sum += std::fabs(t.f32()[k]);
    }
    const double ref_abs = stats["abs_sum"];
    EXPECT_LT(std::fabs(sum - stats["sum"].get<double>()) / ref_abs, kTolerance) << key << " sum";
    EXPECT_LT(std::fabs(abs_sum - ref_abs) / ref_abs, kTolerance) << key << " sum of |x|";
  }
  std::printf("\n");
}

INSTANTIATE_TEST_SUITE_P(Models, SwinGolden,
                         ::testing::Values("swin_tiny_patch4_window7_224",
                                           "swin_small_patch4_window7_224",
                                           "swin_base_patch4_window7_224"),
                         [](const auto& info) {
                           return info.param.substr(0, info.param.find('_', 5));
                         });

// Windows are laid out batch-major, so image b of a batch must give what it gives alone.
TEST(SwinBatch, ImagesAreIndependent) {
  const ModelConfig& cfg = model_config("swin_tiny");
  auto model = create_model(cfg, synthetic_weights(cfg, 5));
  const int64_t S = cfg.img_size, n = 3 * S * S;
  const Tensor a = synthetic_input({1, 3, S, S}, 1), b = synthetic_input({1, 3, S, S}, 2);
  Tensor ab({2, 3, S, S});
  std::memcpy(ab.f32(), a.f32(), n * sizeof(float));
  std::memcpy(ab.f32() + n, b.f32(), n * sizeof(float));
  const Tensor both = model->forward(ab);
  const Tensor la = model->forward(a).clone();
  const Tensor lb = model->forward(b).clone();
  const std::vector<float> ra(la.f32(), la.f32() + cfg.num_classes);
  const std::vector<float> rb(lb.f32(), lb.f32() + cfg.num_classes);
  EXPECT_LT(rel_error(both.f32(), ra), 1e-5);
  EXPECT_LT(rel_error(both.f32() + cfg.num_classes, rb), 1e-5);
}

// Parameter counts of torchvision's swin_t/s/b (the same architectures).
TEST(SwinSpecs, ParameterCounts) {
  const std::pair<const char*, int64_t> cases[] = {
      {"swin_tiny", 28288354}, {"swin_small", 49606258}, {"swin_base", 87768224}};
  for (const auto& [name, count] : cases) {
    int64_t n = 0;
    for (const WeightSpec& s : weight_specs(model_config(name))) n += shape_numel(s.shape);
    EXPECT_EQ(n, count) << name;
  }
}

}  // namespace
}  // namespace qvit
