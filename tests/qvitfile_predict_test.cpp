// `qvit predict`: top-5 classes, probabilities and names of real images against PyTorch's logits
// for the real DeiT-Tiny (tests/fixtures/vit/deit_tiny_real, tools/make_golden_vit.py), with an
// integer model file (--qmodel) against the engine called directly, and its errors.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "golden.h"
#include "qvit/engine.h"
#include "qvit/image.h"
#include "qvit/qvit_file.h"
#include "test_util.h"

namespace qvit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> synset_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  return lines;
}

TEST(QvitPredict, MatchesPyTorchOnRealImages) {
  QVIT_REQUIRE_DATA_PATH(weights, "models/deit_tiny_patch16_224.safetensors");
  QVIT_REQUIRE_DATA_PATH(synsets, "synset_words.txt");
  const auto g = test::load_golden(test::fixture("vit/deit_tiny_real"));
  const auto images = g.meta["images"].get<std::vector<std::string>>();
  const std::vector<float> logits = g.array("logits");
  std::string args = "predict --json --batch 3 --threads 2 --model deit_tiny --weights " + weights +
                     " --classes " + synsets;
  for (const auto& im : images) {
    QVIT_REQUIRE_DATA_PATH(p, "imagenet-sample/" + im);
    args += " " + p;
  }
  std::string out;
  ASSERT_EQ(test::run_cli(args, &out), 0) << out;
  const json j = json::parse(out);
  EXPECT_EQ(j["model"], "deit_tiny_patch16_224");
  ASSERT_EQ(j["images"].size(), images.size());
  const auto lines = synset_lines(synsets);
  int checked = 0;
  ASSERT_EQ(lines.size(), 1000u);
  for (size_t i = 0; i < images.size(); ++i) {
    SCOPED_TRACE(images[i]);
    const json& r = j["images"][i];
    EXPECT_NE(r["path"].get<std::string>().find(images[i]), std::string::npos);
    // PyTorch's top 5 and softmax, in double.
    const float* l = logits.data() + 1000 * i;
    std::vector<int> idx(1000);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return l[a] > l[b]; });
    double mx = l[idx[0]], sum = 0;
    for (int c = 0; c < 1000; ++c) sum += std::exp(double(l[c]) - mx);
    ASSERT_EQ(r["top"].size(), 5u);
    for (size_t k = 0; k < 5; ++k) {
      const json& t = r["top"][k];
      // Our logits are within 1e-3 of PyTorch's (vit_golden_test); skip near-ties.
      if (k + 1 < 5 && l[idx[k]] - l[idx[k + 1]] < 2e-3f) continue;
      ++checked;
      EXPECT_EQ(t["index"], idx[k]) << k;
      EXPECT_NEAR(t["prob"].get<double>(), std::exp(double(l[idx[k]]) - mx) / sum, 2e-4) << k;
      EXPECT_NEAR(t["logit"].get<double>(), l[idx[k]], 1e-3) << k;
      EXPECT_EQ(t["wnid"].get<std::string>() + " " + t["name"].get<std::string>(),
                lines[idx[k]]);
    }
  }
  EXPECT_GE(checked, 16);  // of 20
  // The text form of the first image's best class.
  args.replace(args.find("--json "), 7, "");
  ASSERT_EQ(test::run_cli(args + " --top 1", &out), 0) << out;
  EXPECT_NE(out.find("  1. "), std::string::npos) << out;
  EXPECT_NE(out.find("%     0  n01440764 tench, Tinca tinca\n"), std::string::npos) << out;
}

TEST(QvitPredict, IntModelFile) {
  QVIT_REQUIRE_DATA_PATH(weights, "models/deit_tiny_patch16_224.safetensors");
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  QVIT_REQUIRE_DATA_PATH(synsets, "synset_words.txt");
  const std::string dir = test::temp_dir(), qmodel = dir + "/m.qvit";
  std::string out;
  ASSERT_EQ(test::run_cli("calibrate --model deit_tiny --weights " + weights + " --calib-data " +
                              sample + " --ptf --lis --calib-batch 4 --calib-iter 1 --threads 2 -o " +
                              dir + "/p.json", &out), 0) << out;
  ASSERT_EQ(test::run_cli("convert --model deit_tiny --weights " + weights + " --qparams " + dir +
                              "/p.json -o " + qmodel, &out), 0) << out;
  const std::vector<std::string> images = {"n01440764/n01440764_tench.JPEG",
                                           "n02123045/n02123045_tabby.JPEG",
                                           "n04592741/n04592741_wing.JPEG"};
  std::string args = "predict --json --batch 2 --threads 2 --classes " + synsets;
  for (const auto& im : images) args += " " + sample + "/" + im;
  ASSERT_EQ(test::run_cli(args + " --qmodel " + qmodel, &out), 0) << out;
  const json j = json::parse(out);

  // The engine called directly on the same images as one batch of 3.
  auto model = load_int_model(qmodel);
  const ModelConfig& cfg = model->config();
  Tensor x({3, 3, cfg.img_size, cfg.img_size});
  for (size_t i = 0; i < images.size(); ++i)
    preprocess_image(decode_image_file(sample + "/" + images[i]), cfg.preprocess(),
                     x.f32() + i * 3 * cfg.img_size * cfg.img_size);
  const Tensor logits = model->forward(x);
  const auto lines = synset_lines(synsets);
  ASSERT_EQ(j["images"].size(), 3u);
  EXPECT_EQ(j["model"], cfg.name);
  for (size_t i = 0; i < 3; ++i) {
    const float* l = logits.f32() + 1000 * i;
    std::vector<int> idx(1000);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return l[a] > l[b]; });
    for (size_t k = 0; k < 5; ++k) {
      const json& t = j["images"][i]["top"][k];
      EXPECT_EQ(t["index"], idx[k]) << i << " " << k;
      EXPECT_EQ(t["logit"].get<double>(), double(l[idx[k]])) << i << " " << k;  // bit-identical
      EXPECT_EQ(t["wnid"].get<std::string>() + " " + t["name"].get<std::string>(), lines[idx[k]]);
    }
  }

  // qvit bench: the integer model timed against FP32, alternately, into a JSON file.
  ASSERT_EQ(test::run_cli("bench --engine int --qmodel " + qmodel + " --pair-float --threads 2 --iters 3 "
                              "--warmup 0 --json " + dir + "/bench.json", &out), 0) << out;
  EXPECT_NE(out.find("paired speed ratio int/fp32"), std::string::npos) << out;
  {
    const json b = json::parse(std::ifstream(dir + "/bench.json"));
    EXPECT_EQ(b["engine"], "int");
    EXPECT_EQ(b["model"], cfg.name);
    ASSERT_EQ(b["fp32_runs_ms"].size(), 3u);
    ASSERT_EQ(b["int_runs_ms"].size(), 3u);
    for (const auto& k : {"fp32_runs_ms", "int_runs_ms"})
      for (const auto& v : b[k]) EXPECT_GT(v.get<double>(), 0.0);
    EXPECT_GT(b["paired_ratio"].get<double>(), 0.0);
  }
  EXPECT_EQ(test::run_cli("bench --model deit_tiny --pair-float --iters 1", &out), 1);
  EXPECT_EQ(out, "qvit: error: [cli] --pair-float needs --engine int\n");

  // Bad input: --model with --qmodel, a tampered and a truncated file.
  EXPECT_EQ(test::run_cli(args + " --qmodel " + qmodel + " --model deit_tiny", &out), 1);
  EXPECT_EQ(out, "qvit: error: [cli] --qmodel holds the model: do not give --model/--weights with it\n");
  const QvitSection qkv = QvitFile::open(qmodel).section("blocks.0.attn.qkv.weight");
  auto bytes = test::read_bytes(qmodel);
  bytes[qkv.offset + 100] ^= 0x04;
  test::write_bytes(dir + "/tampered.qvit", bytes);
  EXPECT_EQ(test::run_cli(args + " --qmodel " + dir + "/tampered.qvit", &out), 1);
  EXPECT_EQ(out.rfind("qvit: error: [qvit] " + dir + "/tampered.qvit: checksum mismatch in section "
                      "'blocks.0.attn.qkv.weight' (stored ", 0), 0u) << out;
  bytes[qkv.offset + 100] ^= 0x04;
  const size_t full = bytes.size();
  bytes.resize(full / 2);
  test::write_bytes(dir + "/cut.qvit", bytes);
  EXPECT_EQ(test::run_cli(args + " --qmodel " + dir + "/cut.qvit", &out), 1);
  EXPECT_EQ(out, fmt::format("qvit: error: [qvit] {}/cut.qvit: truncated: the header says {} bytes, "
                             "the file has {}\n", dir, full, bytes.size()));
  fs::remove_all(dir);
}

TEST(QvitPredict, Errors) {
  std::string dir = test::temp_dir();
  std::ofstream(dir + "/few.txt") << "n0 zero\nn1 one\n";
  const std::string img = test::fixture("images/gray_121x77.jpg");
  std::string out;
  EXPECT_EQ(test::run_cli("predict --model deit_tiny --weights random:0 --classes " + dir +
                              "/few.txt " + img, &out), 1);
  EXPECT_EQ(out, "qvit: error: [cli] " + dir + "/few.txt: 2 class names, the model has 1000 classes\n");
  EXPECT_EQ(test::run_cli("predict --model deit_tiny --weights random:0 --top 1001 " + img, &out), 1);
  EXPECT_EQ(out, "qvit: error: [cli] --top 1001 exceeds the 1000 classes of deit_tiny_patch16_224\n");
  EXPECT_EQ(test::run_cli("predict --model deit_tiny --weights random:0 " + dir + "/none.jpg", &out),
            1);
  EXPECT_NE(out.find(dir + "/none.jpg"), std::string::npos) << out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qvit
