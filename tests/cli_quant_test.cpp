// CLI quantization paths: calibrate -> params file -> eval --qparams, and the errors for
// impossible bit widths, a params file of another model, too few calibration images.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;
using qvit::test::run_cli;

namespace {
void expect_cli_error(const std::string& args, const std::string& needle) {
  std::string out;
  int rc = run_cli(args, &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_LT(rc, 128) << "crashed: " << out;
  EXPECT_NE(out.find("qvit: error:"), std::string::npos) << out;
  EXPECT_NE(out.find(needle), std::string::npos) << out;
}

// A tiny ImageFolder of `n` real images (2 classes) for fast CLI runs.
std::string small_folder(const std::string& sample, int n) {
  fs::path dir = qvit::test::temp_dir();
  int copied = 0;
  for (const auto& cls : {"n01440764", "n01443537"}) {
    fs::create_directories(dir / cls);
    for (const auto& e : fs::directory_iterator(fs::path(sample) / cls)) {
      if (copied >= n) break;
      fs::copy_file(e.path(), dir / cls / e.path().filename());
      ++copied;
    }
  }
  return dir.string();
}
}  // namespace

TEST(CliQuant, CalibrateThenEvalWithParams) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  const std::string data = small_folder(sample, 2);
  const std::string dir = qvit::test::temp_dir();
  std::string out;
  ASSERT_EQ(run_cli("calibrate --model deit_tiny --weights random:1 --calib-data " + data +
                        " --calib-batch 1 --calib-iter 2 --ptf --lis --quant-method ema -o " +
                        dir + "/p.json",
                    &out),
            0)
      << out;
  std::ifstream f(dir + "/p.json");
  nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["format"], "qvit-qparams");
  EXPECT_EQ(j["config"]["observer"], "ema");
  EXPECT_EQ(j["config"]["attn_bits"], 4);
  EXPECT_GT(j["points"].size(), 100u);
  ASSERT_EQ(run_cli("eval --model deit_tiny --weights random:1 --data " + data + " --qparams " +
                        dir + "/p.json --json " + dir + "/a.json",
                    &out),
            0)
      << out;
  EXPECT_NE(out.find("W8A8 attn4 PTF LIS ema"), std::string::npos) << out;
  // The same calibration inline gives the same predictions.
  ASSERT_EQ(run_cli("eval --model deit_tiny --weights random:1 --data " + data + " --quant " +
                        "--calib-data " + data + " --calib-batch 1 --calib-iter 2 --ptf --lis " +
                        "--quant-method ema --json " + dir + "/b.json",
                    &out),
            0)
      << out;
  nlohmann::json a = nlohmann::json::parse(std::ifstream(dir + "/a.json"));
  nlohmann::json b = nlohmann::json::parse(std::ifstream(dir + "/b.json"));
  EXPECT_EQ(a["per_image"], b["per_image"]);
}

TEST(CliQuant, BadInput) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  const std::string data = small_folder(sample, 2);
  const std::string dir = qvit::test::temp_dir();
  expect_cli_error("calibrate --model deit_tiny --weights random:1 --calib-data " + data +
                       " --a-bits uint1 -o " + dir + "/p.json",
                   "uint1");
  expect_cli_error("calibrate --model deit_tiny --weights random:1 --calib-data " + data +
                       " --w-bits int77 -o " + dir + "/p.json",
                   "int77");
  expect_cli_error("eval --model deit_tiny --weights random:1 --data " + data +
                       " --quant --calib-data " + data + " --lis --attn-bits 8",
                   "attention bits must be 4");
  expect_cli_error("calibrate --model deit_tiny --weights random:1 --calib-data " + data +
                       " --calib-batch 100 --calib-iter 10 -o " + dir + "/p.json",
                   "has 2 images, but calibration asks for 1000");
  EXPECT_FALSE(fs::exists(dir + "/p.json"));
  std::string out;
  ASSERT_EQ(run_cli("calibrate --model deit_tiny --weights random:1 --calib-data " + data +
                        " --calib-batch 1 --calib-iter 1 -o " + dir + "/p.json",
                    &out),
            0)
      << out;
  expect_cli_error("eval --model deit_small --weights random:1 --data " + data + " --qparams " +
                       dir + "/p.json",
                   "parameters are for model 'deit_tiny_patch16_224', not 'deit_small_patch16_224'");
  expect_cli_error("eval --model deit_tiny --weights random:1 --data " + data + " --quant",
                   "--quant needs --calib-data");
}

// apq-calibrate: the params file records the resolved config (apq's post-softmax quantizer follows
// the activation bits unless --set overrides it), and eval --apq-params runs it. Bad options fail
// before any work and leave no file.
TEST(CliQuant, ApqCalibrateConfigAndErrors) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  const std::string data = small_folder(sample, 2);
  const std::string dir = qvit::test::temp_dir();
  const std::string base = "apq-calibrate --model deit_tiny --weights random:1 --calib-data " + data +
                           " --calib-images 2 --threads 2 --set grid=4 --set rounds=1 --set stride=1 ";
  std::string out;
  ASSERT_EQ(run_cli(base + "--wbits 6 --abits 6 -o " + dir + "/w6.json", &out), 0) << out;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/w6.json"));
  EXPECT_EQ(j["config"]["softmax"], "twin");
  EXPECT_EQ(j["config"]["metric"], "bbc");
  EXPECT_EQ(j["config"]["grid"], 4);
  ASSERT_EQ(run_cli(base + "--wbits 4 --abits 4 --set softmax=mpq --set keep=0.25 -o " + dir + "/w4.json", &out), 0)
      << out;
  j = nlohmann::json::parse(std::ifstream(dir + "/w4.json"));
  EXPECT_EQ(j["config"]["softmax"], "mpq");
  EXPECT_DOUBLE_EQ(j["config"]["keep"].get<double>(), 0.25);
  ASSERT_EQ(run_cli("eval --model deit_tiny --weights random:1 --data " + data + " --apq-params " + dir +
                        "/w4.json --json " + dir + "/e.json",
                    &out),
            0)
      << out;
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir + "/e.json"))["images"], 2);
  expect_cli_error(base + "--wbits 9 -o " + dir + "/x.json", "wbits");
  expect_cli_error(base + "--set nonsense=1 -o " + dir + "/x.json", "unknown option 'nonsense'");
  expect_cli_error(base + "--set softmax=cubic -o " + dir + "/x.json", "cubic");
  expect_cli_error(base + "--set keep=0 -o " + dir + "/x.json", "keep");
  expect_cli_error("apq-calibrate --model deit_tiny --weights random:1 --calib-data " + data +
                       " --calib-images 5 -o " + dir + "/x.json",
                   "5 calibration images wanted");
  EXPECT_FALSE(fs::exists(dir + "/x.json"));
  expect_cli_error("eval --model deit_small --weights random:1 --data " + data + " --apq-params " + dir + "/w4.json",
                   "deit_tiny");
}
