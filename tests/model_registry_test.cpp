#include <gtest/gtest.h>
#include <cmath>
#include <cstring>

#include "qvit/error.h"
#include "qvit/model.h"

using namespace qvit;

TEST(ModelRegistry, NamesAndAliases) {
  EXPECT_EQ(model_config("deit_tiny").name, "deit_tiny_patch16_224");
  EXPECT_EQ(model_config("vit_large_patch16_224").depth, 24);
  EXPECT_EQ(model_config("deit_small").preprocess().resize_short, 256);
  EXPECT_EQ(model_config("vit_base").preprocess().resize_short, 248);
  EXPECT_FLOAT_EQ(model_config("vit_base").preprocess().mean[0], 0.5f);
  EXPECT_EQ(model_config("swin_tiny").preprocess().resize_short, 248);
  try {
    model_config("resnet50");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown model 'resnet50'"), std::string::npos);
  }
}

TEST(ModelRegistry, CheckWeightsReportsProblems) {
  const ModelConfig& cfg = model_config("deit_tiny");
  auto expect_error = [&](WeightFile wf, const std::string& needle) {
    wf.path = "w.safetensors";
    try {
      check_weights(cfg, wf);
      FAIL() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("w.safetensors"), std::string::npos) << e.what();
    }
  };
  WeightFile ok = synthetic_weights(cfg, 1);
  EXPECT_NO_THROW(check_weights(cfg, ok));
  WeightFile missing = ok;
  missing.tensors.erase("blocks.3.mlp.fc1.weight");
  expect_error(missing, "missing tensor 'blocks.3.mlp.fc1.weight'");
  WeightFile shape = ok;
  shape.tensors["head.weight"] = Tensor({1000, 384});
  expect_error(shape, "tensor 'head.weight' has shape [1000,384], expected [1000,192]");
  WeightFile dtype = ok;
  dtype.tensors["head.bias"] = Tensor({1000}, DType::i64);
  expect_error(dtype, "tensor 'head.bias' has dtype I64, expected F32");
  WeightFile extra = ok;
  extra.tensors["head_dist.weight"] = Tensor({1000, 192});
  expect_error(extra, "unexpected tensors for deit_tiny_patch16_224: 'head_dist.weight'");
  // A checkpoint of another size.
  expect_error(synthetic_weights(model_config("deit_small"), 1), "has shape");
}

TEST(ModelRegistry, RandomWeightsSpec) {
  EXPECT_THROW(load_model("deit_tiny", "random:abc"), Error);
  EXPECT_THROW(load_model("deit_tiny", "random:"), Error);
  auto m = load_model("deit_tiny", "random:5");
  EXPECT_EQ(m->config().dim, 192);
}

TEST(ModelRegistry, SyntheticWeightsAreDeterministic) {
  const ModelConfig& cfg = model_config("deit_tiny");
  WeightFile a = synthetic_weights(cfg, 9), b = synthetic_weights(cfg, 9), c = synthetic_weights(cfg, 10);
  const Tensor& ta = a.tensors.at("blocks.0.attn.qkv.weight");
  EXPECT_EQ(0, std::memcmp(ta.raw(), b.tensors.at("blocks.0.attn.qkv.weight").raw(), ta.nbytes()));
  EXPECT_NE(0, std::memcmp(ta.raw(), c.tensors.at("blocks.0.attn.qkv.weight").raw(), ta.nbytes()));
  // LayerNorm weights around 1, biases small.
  EXPECT_NEAR(a.tensors.at("norm.weight").f32()[0], 1.0f, 0.2f);
  EXPECT_LE(std::fabs(a.tensors.at("head.bias").f32()[0]), 0.05f);
}
