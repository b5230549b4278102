// `qvit predict`: top-5 classes, probabilities and names of real images against PyTorch's logits
// for the real DeiT-Tiny (tests/fixtures/vit/deit_tiny_real, tools/make_golden_vit.py), and its
// errors.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "golden.h"
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
