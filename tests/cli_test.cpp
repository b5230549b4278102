// End-to-end tests of the qvit CLI: the evaluation acceptance run and one-line errors on bad input.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;
using qvit::test::run_cli;

namespace {
// A one-line error: "qvit: error: [component] ..." naming `needle`, non-zero exit.
void expect_cli_error(const std::string& args, const std::string& needle) {
  std::string out;
  int rc = run_cli(args, &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_LT(rc, 128) << "crashed: " << out;
  EXPECT_NE(out.find("qvit: error:"), std::string::npos) << out;
  EXPECT_NE(out.find(needle), std::string::npos) << out;
}
}  // namespace

TEST(Cli, HelpListsCommandsAndOptions) {
  std::string out;
  EXPECT_EQ(run_cli("--help", &out), 0);
  EXPECT_NE(out.find("eval"), std::string::npos);
  EXPECT_EQ(run_cli("eval --help", &out), 0);
  for (const char* opt : {"--model", "--weights", "--data", "--labels", "--limit", "--batch",
                          "--threads", "--json"})
    EXPECT_NE(out.find(opt), std::string::npos) << opt;
}

TEST(Cli, BadInputGivesOneLineErrors) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  fs::path tmp = qvit::test::temp_dir();
  fs::create_directories(tmp / "empty");
  expect_cli_error("eval --model resnet50 --weights random:0 --data " + sample,
                   "unknown model 'resnet50'");
  expect_cli_error("eval --model deit_tiny --weights random:0 --data " + (tmp / "empty").string(),
                   "no class folders");
  std::ofstream(tmp / "labels.txt") << "missing.JPEG 3\n";
  fs::create_directories(tmp / "flat");
  expect_cli_error("eval --model deit_tiny --weights random:0 --data " + (tmp / "flat").string() +
                       " --labels " + (tmp / "labels.txt").string(),
                   "folder holds no images");
  fs::copy_file(fs::path(sample) / "n01440764" / "n01440764_tench.JPEG", tmp / "flat" / "a.JPEG");
  std::ofstream(tmp / "labels.txt") << "a.JPEG 0\nmissing.JPEG 3\n";
  expect_cli_error("eval --model deit_tiny --weights random:0 --data " + (tmp / "flat").string() +
                       " --labels " + (tmp / "labels.txt").string() + " --json " +
                       (tmp / "out.json").string(),
                   "missing.JPEG");
  EXPECT_FALSE(fs::exists(tmp / "out.json"));
  std::ofstream(tmp / "garbage.safetensors") << "garbage garbage garbage";
  expect_cli_error("eval --model deit_tiny --weights " + (tmp / "garbage.safetensors").string() +
                       " --data " + sample,
                   "garbage.safetensors");
}

// Acceptance: deit_tiny on the 1000 sample images gives PyTorch's 79.5 % / 94.8 % and the same
// top-1 class as the PyTorch reference (tools/make_golden_vit.py) on >= 998 images.
TEST(Cli, EvalDeitTinyOnImagenetSample) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  QVIT_REQUIRE_DATA_PATH(weights, "models/deit_tiny_patch16_224.safetensors");
  fs::path tmp = qvit::test::temp_dir();
  const std::string json = (tmp / "eval.json").string();
  std::string out;
  int rc = run_cli("eval --model deit_tiny --weights " + weights + " --data " + sample +
                       " --batch 32 --threads 2 --json " + json, &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("| deit_tiny_patch16_224 |"), std::string::npos) << out;
  std::ifstream f(json);
  nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["images"], 1000);
  EXPECT_NEAR(j["top1"].get<double>(), 79.5, 1e-9);
  EXPECT_NEAR(j["top5"].get<double>(), 94.8, 1e-9);

  std::ifstream rf(qvit::test::fixture("vit/deit_tiny_sample_top1.json"));
  nlohmann::json ref = nlohmann::json::parse(rf);
  int agree = 0;
  for (const auto& img : j["per_image"]) {
    fs::path p(img["path"].get<std::string>());
    const std::string key = p.parent_path().filename().string() + "/" + p.filename().string();
    ASSERT_TRUE(ref["per_image"].contains(key)) << key;
    agree += img["top5"][0] == ref["per_image"][key]["top5"][0];
    EXPECT_EQ(img["label"], ref["per_image"][key]["label"]);
    EXPECT_EQ(img["top5"].size(), 5u);
  }
  EXPECT_GE(agree, 998);
}
