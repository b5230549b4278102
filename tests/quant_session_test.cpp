// QuantSession with the ViT model: calibration on synthetic data, the point list (FQ-ViT's
// placement), the parameter file round trip and its validation, thread-count independence.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "qvit/error.h"
#include "qvit/model.h"
#include "qvit/parallel.h"
#include "qvit/quant_session.h"
#include "test_util.h"

using namespace qvit;
namespace fs = std::filesystem;

namespace {

// Calibrates deit_tiny (synthetic weights) on two synthetic batches; returns the session.
std::unique_ptr<QuantSession> calibrate_synthetic(Model& m, QuantConfig qc) {
  auto s = std::make_unique<QuantSession>(m.config().name, qc);
  m.set_quant(s.get());
  s->set_mode(QuantMode::calibrate);
  for (uint32_t k = 0; k < 2; ++k) {
    s->set_last_batch(k == 1);
    m.forward(synthetic_input({2, 3, 224, 224}, 100 + k));
  }
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

}  // namespace

TEST(QuantSession, VitPointsFollowFqvitPlacement) {
  const ModelConfig& cfg = model_config("deit_tiny");
  auto m = create_model(cfg, synthetic_weights(cfg, 1));
  QuantConfig qc;
  qc.ptf = true;
  qc.lis = true;
  qc.attn_bits = 4;
  auto s = calibrate_synthetic(*m, qc);
  std::set<std::string> names;
  for (const auto& n : s->names()) names.insert(n);
  for (const char* n : {"embed.input", "embed.patch", "embed.tokens", "embed.pos",
                        "blocks.0.norm1.in", "blocks.0.norm1.out", "blocks.0.attn.qkv",
                        "blocks.0.attn.logits", "blocks.0.attn.context", "blocks.0.attn.proj",
                        "blocks.0.norm2.in", "blocks.0.norm2.out", "blocks.0.mlp.gelu",
                        "blocks.0.mlp.fc2", "blocks.11.norm2.in", "norm.in", "norm.out",
                        "head.out", "patch_embed.proj.weight", "blocks.5.mlp.fc1.weight",
                        "head.weight"})
    EXPECT_TRUE(names.count(n)) << n;
  // With LIS the softmax has no uniform quantizer.
  EXPECT_FALSE(names.count("blocks.0.attn.softmax"));
  EXPECT_EQ(s->params("blocks.0.norm1.in").kind, QuantKind::ptf);
  EXPECT_EQ(s->params("blocks.0.norm1.in").scale.size(), 192u);
  EXPECT_EQ(s->params("blocks.0.attn.qkv").scale.size(), 1u);
  EXPECT_EQ(s->params("blocks.0.attn.qkv.weight").scale.size(), 576u);
  // 12 blocks x (LN in/out x2, qkv, logits, context, proj, gelu, fc2) + embed 4 + norm 2 + head
  // + 50 weights (48 block linears, patch embed, head).
  EXPECT_EQ(s->size(), 12u * 10 + 4 + 3 + 50);
}

TEST(QuantSession, SimulationIsCloseToFp32AndDeterministic) {
  const ModelConfig& cfg = model_config("deit_tiny");
  auto m = create_model(cfg, synthetic_weights(cfg, 1));
  Tensor x = synthetic_input({2, 3, 224, 224}, 7);
  Tensor fp = m->forward(x);
  for (bool ptf : {false, true}) {
    QuantConfig qc;
    qc.ptf = ptf;
    auto s = calibrate_synthetic(*m, qc);
    Tensor q = m->forward(x);
    EXPECT_GT(cosine(fp, q), 0.95) << "ptf=" << ptf;
    EXPECT_NE(std::memcmp(fp.raw(), q.raw(), fp.nbytes()), 0) << "nothing was quantized";
    m->set_quant(nullptr);
    Tensor back = m->forward(x);
    EXPECT_EQ(std::memcmp(fp.raw(), back.raw(), fp.nbytes()), 0) << "FP32 path changed";
  }
}

TEST(QuantSession, SaveLoadGivesIdenticalLogits) {
  const ModelConfig& cfg = model_config("deit_tiny");
  auto m = create_model(cfg, synthetic_weights(cfg, 1));
  QuantConfig qc;
  qc.ptf = true;
  qc.lis = true;
  qc.attn_bits = 4;
  qc.observer = ObserverKind::omse;
  auto s = calibrate_synthetic(*m, qc);
  Tensor x = synthetic_input({1, 3, 224, 224}, 9);
  Tensor a = m->forward(x);
  const std::string path = test::temp_dir() + "/p.json";
  s->save(path);
  QuantSession loaded = QuantSession::load(path, cfg.name);
  EXPECT_EQ(loaded.config().label(), qc.label());
  auto m2 = create_model(cfg, synthetic_weights(cfg, 1));
  m2->set_quant(&loaded);
  Tensor b = m2->forward(x);
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
  EXPECT_EQ(loaded.to_json().dump(), s->to_json().dump());
}

TEST(QuantSession, SameParamsForAnyThreadCount) {
  const ModelConfig& cfg = model_config("deit_tiny");
  auto m = create_model(cfg, synthetic_weights(cfg, 1));
  std::string dumps[2];
  for (int t : {1, 2}) {
    set_num_threads(t);
    QuantConfig qc;
    qc.ptf = true;
    qc.observer = ObserverKind::percentile;
    dumps[t - 1] = calibrate_synthetic(*m, qc)->to_json().dump();
    m->set_quant(nullptr);
  }
  set_num_threads(0);
  EXPECT_EQ(dumps[0], dumps[1]);
}

TEST(QuantSession, ParamFileValidation) {
  const ModelConfig& cfg = model_config("deit_tiny");
  auto m = create_model(cfg, synthetic_weights(cfg, 1));
  auto s = calibrate_synthetic(*m, QuantConfig{});
  const std::string dir = test::temp_dir();
  s->save(dir + "/p.json");
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { QuantSession::load(dir + "/p.json", "deit_small_patch16_224"); },
               "parameters are for model 'deit_tiny_patch16_224', not 'deit_small_patch16_224'");
  expect_error([&] { QuantSession::load(dir + "/none.json", cfg.name); }, "cannot open");
  std::ofstream(dir + "/bad.json") << "{ not json";
  expect_error([&] { QuantSession::load(dir + "/bad.json", cfg.name); }, "not valid JSON");
  nlohmann::json j = s->to_json();
  j["version"] = 99;
  std::ofstream(dir + "/future.json") << j.dump();
  expect_error([&] { QuantSession::load(dir + "/future.json", cfg.name); }, "newer");
  j = s->to_json();
  j["points"][0]["scale"] = {-1.0};
  std::ofstream(dir + "/neg.json") << j.dump();
  expect_error([&] { QuantSession::load(dir + "/neg.json", cfg.name); }, "non-positive");
  for (float z : {3.5f, 300.0f, -129.0f}) {  // not an integer code of the point's bit type
    j = s->to_json();
    j["points"][0]["zero_point"] = {z};
    std::ofstream(dir + "/zp.json") << j.dump();
    expect_error([&] { QuantSession::load(dir + "/zp.json", cfg.name); }, "zero point");
  }
  j = s->to_json();
  j["config"]["act_bits"] = "uint1";
  std::ofstream(dir + "/bits.json") << j.dump();
  expect_error([&] { QuantSession::load(dir + "/bits.json", cfg.name); }, "uint1");
  // A file missing a point the model needs fails at the first forward, naming the point.
  j = s->to_json();
  j["points"].erase(j["points"].begin() + 3);
  std::ofstream(dir + "/missing.json") << j.dump();
  QuantSession partial = QuantSession::load(dir + "/missing.json", cfg.name);
  auto m2 = create_model(cfg, synthetic_weights(cfg, 1));
  m2->set_quant(&partial);
  expect_error([&] { m2->forward(synthetic_input({1, 3, 224, 224}, 1)); }, "no parameters");
}
