// Loading Swin checkpoints: the older timm / Microsoft key layout (patch merging at the end of a
// stage, head.*, relative_position_index and attn_mask buffers) must give the same model as the
// current layout; wrong buffers and a missing or misshaped bias table must fail with a clear error.
#include <gtest/gtest.h>

#include <cstring>

#include "qvit/error.h"
#include "qvit/io.h"
#include "qvit/model.h"
#include "test_util.h"

namespace qvit {
namespace {

constexpr int kWindow = 7;
constexpr int64_t kN = kWindow * kWindow;

// Written independently of src/models/swin.cpp, following timm's get_relative_position_index.
Tensor index_buffer(bool flat) {
  Tensor t(flat ? Shape{kN * kN} : Shape{kN, kN}, DType::i64);
  int64_t* p = t.data<int64_t>();
  for (int64_t a = 0; a < kN; ++a)
    for (int64_t b = 0; b < kN; ++b) {
      const int64_t dy = a / kWindow - b / kWindow + kWindow - 1;
      const int64_t dx = a % kWindow - b % kWindow + kWindow - 1;
      p[a * kN + b] = dy * (2 * kWindow - 1) + dx;
    }
  return t;
}

// timm's attn_mask for a shifted block on a res x res map: label the 3x3 regions of the map
// (slices [0,-w), [-w,-s), [-s,end) per axis), partition into windows, -100 between labels.
Tensor mask_buffer(int64_t res) {
  const int64_t w = kWindow, s = kWindow / 2, per = res / w;
  std::vector<int> img(res * res);
  auto region = [&](int64_t y) { return y < res - w ? 0 : (y < res - s ? 1 : 2); };
  for (int64_t y = 0; y < res; ++y)
    for (int64_t x = 0; x < res; ++x) img[y * res + x] = region(y) * 3 + region(x);
  Tensor m({per * per, kN, kN});
  for (int64_t win = 0; win < per * per; ++win)
    for (int64_t a = 0; a < kN; ++a)
      for (int64_t b = 0; b < kN; ++b) {
        auto label = [&](int64_t p) {
          return img[((win / per) * w + p / w) * res + (win % per) * w + p % w];
        };
        m.f32()[(win * kN + a) * kN + b] = label(a) == label(b) ? 0.0f : -100.0f;
      }
  return m;
}

// Converts the current layout to the older timm / Microsoft one.
WeightFile to_old_layout(const ModelConfig& cfg, const WeightFile& wf) {
  WeightFile old = wf;
  old.tensors.clear();
  for (const auto& [key, t] : wf.tensors) {
    std::string name = key;
    int stage = 0;
    char rest[64];
    if (std::sscanf(key.c_str(), "layers.%d.downsample.%63s", &stage, rest) == 2)
      name = "layers." + std::to_string(stage - 1) + ".downsample." + rest;
    else if (key.rfind("head.fc.", 0) == 0)
      name = "head." + key.substr(8);
    old.tensors[name] = t;
  }
  const int64_t grid = cfg.img_size / cfg.patch;
  for (size_t i = 0; i < cfg.depths.size(); ++i) {
    const int64_t res = grid >> i;
    for (int j = 0; j < cfg.depths[i]; ++j) {
      const std::string b = "layers." + std::to_string(i) + ".blocks." + std::to_string(j) + ".";
      old.tensors[b + "attn.relative_position_index"] = index_buffer(j == 1);
      if (j % 2 == 1 && res > kWindow) old.tensors[b + "attn_mask"] = mask_buffer(res);
    }
  }
  return old;
}

Tensor logits_of(const ModelConfig& cfg, WeightFile wf) {
  auto model = create_model(cfg, std::move(wf));
  return model->forward(synthetic_input({1, 3, cfg.img_size, cfg.img_size}, 4));
}

void expect_same(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
}

// Runs f and returns the message of the qvit::Error it throws ("" if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class SwinLoading : public ::testing::Test {
 protected:
  const ModelConfig& cfg_ = model_config("swin_tiny");
  WeightFile wf_ = synthetic_weights(cfg_, 3);
};

TEST_F(SwinLoading, OldLayoutIsRenamed) {
  WeightFile old = to_old_layout(cfg_, wf_);
  ASSERT_TRUE(old.tensors.count("layers.0.downsample.reduction.weight"));
  ASSERT_TRUE(old.tensors.count("head.weight"));
  check_weights(cfg_, old);
  ASSERT_EQ(old.tensors.size(), wf_.tensors.size());
  for (const auto& [key, t] : wf_.tensors) {
    ASSERT_TRUE(old.tensors.count(key)) << key;
    EXPECT_EQ(old.tensors.at(key).raw(), t.raw()) << key;  // same buffer, only renamed
  }
}

TEST_F(SwinLoading, OldLayoutGivesIdenticalLogits) {
  expect_same(logits_of(cfg_, to_old_layout(cfg_, wf_)), logits_of(cfg_, wf_));
}

TEST_F(SwinLoading, WrongIndexBufferFails) {
  WeightFile old = to_old_layout(cfg_, wf_);
  const std::string key = "layers.2.blocks.3.attn.relative_position_index";
  Tensor bad = old.tensors.at(key).clone();
  bad.data<int64_t>()[kN + 5] += 1;
  old.tensors[key] = bad;
  const std::string msg = error_of([&] { check_weights(cfg_, old); });
  EXPECT_NE(msg.find("[swin]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'" + key + "'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1,5]"), std::string::npos) << msg;

  old.tensors[key] = Tensor({kN, kN});  // float instead of an integer index
  EXPECT_NE(error_of([&] { check_weights(cfg_, old); }).find("dtype F32"), std::string::npos);
  old.tensors[key] = Tensor({kN, kN + 1}, DType::i64);
  EXPECT_NE(error_of([&] { check_weights(cfg_, old); }).find("[49,50]"), std::string::npos);
}

TEST_F(SwinLoading, WrongMaskBufferFails) {
  WeightFile old = to_old_layout(cfg_, wf_);
  const std::string key = "layers.1.blocks.1.attn_mask";
  Tensor bad = old.tensors.at(key).clone();
  bad.f32()[3 * kN * kN + 7] = -100.0f - bad.f32()[3 * kN * kN + 7];
  old.tensors[key] = bad;
  std::string msg = error_of([&] { check_weights(cfg_, old); });
  EXPECT_NE(msg.find("'" + key + "'"), std::string::npos) << msg;

  old = to_old_layout(cfg_, wf_);  // a mask for an unshifted block
  old.tensors["layers.1.blocks.0.attn_mask"] = mask_buffer(28);
  msg = error_of([&] { check_weights(cfg_, old); });
  EXPECT_NE(msg.find("'layers.1.blocks.0.attn_mask'"), std::string::npos) << msg;
}

TEST_F(SwinLoading, MissingBiasTableFails) {
  const std::string key = "layers.0.blocks.0.attn.relative_position_bias_table";
  wf_.tensors.erase(key);
  const std::string msg = error_of([&] { create_model(cfg_, wf_); });
  EXPECT_NE(msg.find("[model] random:3: missing tensor '" + key + "'"), std::string::npos) << msg;
}

TEST_F(SwinLoading, MisshapedBiasTableFails) {
  const std::string key = "layers.0.blocks.0.attn.relative_position_bias_table";
  wf_.tensors[key] = Tensor({169, 4});
  const std::string msg = error_of([&] { create_model(cfg_, wf_); });
  EXPECT_NE(msg.find("[model] random:3: tensor '" + key + "' has shape [169,4], expected [169,3]"),
            std::string::npos)
      << msg;
  wf_.tensors[key] = Tensor({13, 13, 3});
  EXPECT_NE(
      error_of([&] { create_model(cfg_, wf_); }).find("has shape [13,13,3], expected [169,3]"),
      std::string::npos);
}

TEST_F(SwinLoading, BothLayoutsAtOnceFail) {
  // layers.3.downsample exists only in the current layout, layers.0.downsample only in the old one.
  WeightFile mixed = to_old_layout(cfg_, wf_);
  const std::string key = "layers.3.downsample.norm.weight";
  mixed.tensors[key] = wf_.tensors.at(key);
  const std::string msg = error_of([&] { check_weights(cfg_, mixed); });
  EXPECT_NE(msg.find("[swin] random:3: tensor '" + key + "' belongs to the current"),
            std::string::npos)
      << msg;

  // Old and new names of the classifier side by side: the old one is left over, unexpected.
  mixed = wf_;
  mixed.tensors["head.weight"] = wf_.tensors.at("head.fc.weight");
  EXPECT_NE(error_of([&] { check_weights(cfg_, mixed); }).find("unexpected tensors"),
            std::string::npos);
}

TEST_F(SwinLoading, SafetensorsRoundTrip) {
  const std::string dir = test::temp_dir();
  const Tensor want = logits_of(cfg_, wf_);
  save_safetensors(dir + "/swin_tiny.safetensors", wf_.tensors);
  expect_same(logits_of(cfg_, load_weights(dir + "/swin_tiny.safetensors")), want);
  save_safetensors(dir + "/swin_tiny_old.safetensors", to_old_layout(cfg_, wf_).tensors);
  expect_same(logits_of(cfg_, load_weights(dir + "/swin_tiny_old.safetensors")), want);
}

}  // namespace
}  // namespace qvit
