// Machine-readable outputs of the CLI: fqvit-table's CSV/JSON/Markdown agree row by row, and
// calibrate --json summarises the parameter file it wrote.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A 4-image ImageFolder (4 classes, one image each) linked from imagenet-sample.
std::string tiny_folder(const std::string& sample) {
  const fs::path root = fs::path(qvit::test::temp_dir()) / "tiny";
  int classes = 0;
  for (const auto& cls : fs::directory_iterator(sample)) {
    if (!cls.is_directory()) continue;
    int n = 0;
    for (const auto& img : fs::directory_iterator(cls.path())) {
      fs::create_directories(root / cls.path().filename());
      fs::create_symlink(img.path(), root / cls.path().filename() / img.path().filename());
      if (++n == 1) break;
    }
    if (++classes == 4) break;
  }
  return root.string();
}
}  // namespace

TEST(ReportTables, FqvitTableCsvJsonAndMarkdownAgree) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  const std::string data = tiny_folder(sample);
  const std::string out = qvit::test::temp_dir() + "/t";
  std::string log;
  ASSERT_EQ(qvit::test::run_cli("fqvit-table --model deit_tiny --weights random:0 --data " + data +
                                    " --calib-data " + data + " --calib-batch 2 --calib-iter 1"
                                    " --methods minmax --batch 4 -o " + out + " --csv " + out +
                                    "_extra.csv --json " + out + "_extra.json",
                                &log),
            0)
      << log;
  const auto j = nlohmann::json::parse(slurp(out + ".json"));
  EXPECT_EQ(slurp(out + "_extra.json"), slurp(out + ".json"));
  const std::string csv = slurp(out + ".csv");
  EXPECT_EQ(slurp(out + "_extra.csv"), csv);
  const std::string md = slurp(out + ".md");
  std::istringstream in(csv);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "method,setting,top1,top5,agreement");
  ASSERT_EQ(j["rows"].size(), 4u);  // FP32 + minmax x 3 settings
  for (const auto& r : j["rows"]) {
    ASSERT_TRUE(std::getline(in, line));
    const std::string expect =
        r["method"].get<std::string>() + "," + r["setting"].get<std::string>() + ",";
    EXPECT_EQ(line.rfind(expect, 0), 0u) << line;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f,%.2f,%.2f", r["top1"].get<double>(),
                  r["top5"].get<double>(), r["agreement"].get<double>());
    EXPECT_EQ(line.substr(expect.size()), buf);
    std::snprintf(buf, sizeof buf, "| %.2f | %.2f | %.2f |", r["top1"].get<double>(),
                  r["top5"].get<double>(), r["agreement"].get<double>());
    EXPECT_NE(md.find("| " + r["method"].get<std::string>() + " | " +
                      r["setting"].get<std::string>() + " " + buf),
              std::string::npos)
        << md;
  }
  EXPECT_FALSE(std::getline(in, line));
}

TEST(ReportTables, CalibrateJsonSummarisesTheParameterFile) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  const std::string data = tiny_folder(sample);
  const std::string dir = qvit::test::temp_dir();
  std::string log;
  ASSERT_EQ(qvit::test::run_cli("calibrate --model deit_tiny --weights random:0 --calib-data " +
                                    data + " --calib-batch 2 --calib-iter 2 --ptf -o " + dir +
                                    "/q.json --json " + dir + "/summary.json",
                                &log),
            0)
      << log;
  const auto q = nlohmann::json::parse(slurp(dir + "/q.json"));
  const auto s = nlohmann::json::parse(slurp(dir + "/summary.json"));
  EXPECT_EQ(s["points"].get<size_t>(), q["points"].size());
  size_t ln = 0;
  for (const auto& p : q["points"]) ln += p["role"] == "ln_input";
  EXPECT_EQ(ln, 25u);  // DeiT-Tiny: 2 per block + the final norm
  EXPECT_EQ(s["points_by_role"]["ln_input"].get<size_t>(), ln);
  EXPECT_EQ(s["calib_images"], 4);
  EXPECT_EQ(s["config"], q["config"]);
}
