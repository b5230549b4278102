// qvit report: error statistics against hand-computed values, the session's statistics hook
// against fake_quant, the SVG writer's geometry, atomic folder output, and end to end on real
// DeiT-Tiny: the page rendered by headless Chromium (every chart loaded, no script/console
// error), and Ctrl-C leaving nothing behind.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "qvit/quant.h"
#include "qvit/report.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace qvit;

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int count(const std::string& s, const std::string& needle) {
  int n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

// Runs a shell command, returns its exit code; output (stdout+stderr) into `out`.
int sh(const std::string& cmd, std::string* out) {
  FILE* f = popen(("(" + cmd + ") 2>&1").c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char* kChromium = "/usr/bin/chromium";

// Renders `url` headless; fills the DOM after load and the browser's log (console messages
// appear as "CONSOLE" lines with --enable-logging=stderr).
bool render(const std::string& url, std::string* dom, std::string* log) {
  const std::string tmp = test::temp_dir();
  const std::string cmd = std::string("timeout 120 ") + kChromium +
                          " --headless --disable-gpu --no-sandbox --no-first-run"
                          " --user-data-dir=" + tmp + "/profile"
                          " --virtual-time-budget=5000 --enable-logging=stderr --v=0 --dump-dom '" +
                          url + "' >" + tmp + "/dom.html 2>" + tmp + "/log.txt";
  std::string out;
  const int rc = sh(cmd, &out);
  *dom = slurp(tmp + "/dom.html");
  *log = slurp(tmp + "/log.txt");
  return rc == 0;
}

std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> v;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find(":CONSOLE") != std::string::npos) v.push_back(line);
  return v;
}

#define REQUIRE_CHROMIUM()                                                              \
  if (access(kChromium, X_OK) != 0) {                                                   \
    if (test::data_required()) FAIL() << kChromium << " missing (scripts/setup.sh)";    \
    GTEST_SKIP() << kChromium << " missing (scripts/setup.sh installs it)";            \
  }
}  // namespace

TEST(ReportStats, ErrorAccumMatchesHandComputedValues) {
  const float x[] = {1, 2, 3}, q[] = {1, 2, 2};
  ErrorAccum e;
  e.add(x, q, 2);      // exact part
  e.add(x + 2, q + 2, 1);  // accumulates across calls
  EXPECT_EQ(e.n, 3);
  EXPECT_NEAR(e.sqnr_db(), 10 * std::log10(14.0 / 1.0), 1e-12);
  EXPECT_NEAR(e.cosine(), 11.0 / std::sqrt(14.0 * 9.0), 1e-12);
  EXPECT_NEAR(e.rel_mse(), 1.0 / 14.0, 1e-12);
  ErrorAccum same;
  same.add(x, x, 3);
  EXPECT_TRUE(std::isinf(same.sqnr_db()) && same.sqnr_db() > 0);
  EXPECT_DOUBLE_EQ(same.cosine(), 1.0);
  EXPECT_DOUBLE_EQ(same.rel_mse(), 0.0);
  ErrorAccum neg;  // q = -x: cosine -1, error 4 sum x^2
  const float m[] = {-1, -2, -3};
  neg.add(x, m, 3);
  EXPECT_NEAR(neg.cosine(), -1.0, 1e-12);
  EXPECT_NEAR(neg.rel_mse(), 4.0, 1e-12);
}

TEST(ReportStats, SessionStatsHookSeesValuesBeforeAndAfterFakeQuant) {
  QuantSession s("deit_tiny_patch16_224", QuantConfig{});
  const int64_t rows = 4, C = 3;
  std::vector<float> x(rows * C);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7f * i) * 3.0f;
  const std::vector<float> orig = x;
  int calls = 0;
  s.set_stats_hook([&](const std::string& name, QPointRole role, const float* before,
                       const float* after, int64_t r, int64_t c) {
    ++calls;
    EXPECT_EQ(name, "p");
    EXPECT_EQ(role, QPointRole::activation);
    EXPECT_EQ(r, rows);
    EXPECT_EQ(c, C);
    EXPECT_EQ(before, after);  // calibrating: x is not changed
    for (int64_t i = 0; i < r * c; ++i) EXPECT_EQ(before[i], orig[i]);
  });
  s.set_mode(QuantMode::calibrate);
  s.set_last_batch(true);
  s.point("p", QPointRole::activation, x.data(), rows, C);
  EXPECT_EQ(x, orig);
  EXPECT_EQ(calls, 1);
  s.finalize();
  s.set_mode(QuantMode::simulate);
  std::vector<float> expected = orig;
  fake_quant(expected.data(), rows, C, s.params("p"));
  std::vector<float> seen_before, seen_after;
  s.set_stats_hook([&](const std::string&, QPointRole, const float* before, const float* after,
                       int64_t r, int64_t c) {
    seen_before.assign(before, before + r * c);
    seen_after.assign(after, after + r * c);
  });
  s.point("p", QPointRole::activation, x.data(), rows, C);
  EXPECT_EQ(seen_before, orig);
  EXPECT_EQ(seen_after, expected);
  EXPECT_EQ(x, expected);
  EXPECT_NE(expected, orig);  // 8-bit over this range does change the values
}

TEST(ReportSvg, BarLengthsAreProportionalAndTextIsEscaped) {
  const std::string svg = svg_bar_chart("t <&>", "dB", {"a", "b<"}, {10.0, 20.0});
  EXPECT_NE(svg.find("t &lt;&amp;&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">b&lt;</text>"), std::string::npos);
  EXPECT_EQ(svg.find("b<"), std::string::npos);
  // The two bars: width ratio 2 (axis from 0).
  std::regex bar("<rect x=\"[0-9.]+\" y=\"[0-9.]+\" width=\"([0-9.]+)\" height=\"11.0\"");
  std::vector<double> w;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), bar); it != std::sregex_iterator(); ++it)
    w.push_back(std::stod((*it)[1]));
  ASSERT_EQ(w.size(), 2u) << svg;
  EXPECT_NEAR(w[1] / w[0], 2.0, 0.02);
  EXPECT_EQ(count(svg, "<svg"), 1);
  EXPECT_EQ(count(svg, "</svg>"), 1);
}

TEST(ReportSvg, HistogramAndLineChartGeometry) {
  const std::string h = svg_histogram("h", "x", "n", {0, 1, 2, 3}, {1, 4, 2}, false,
                                      {{"levels", {0.5, 1.5, 9.0}, "#f00"}});
  std::regex bin("<rect x=\"[0-9.]+\" y=\"[0-9.]+\" width=\"[0-9.]+\" height=\"([0-9.]+)\" fill=\"#9ecae1\"");
  std::vector<double> ht;
  for (auto it = std::sregex_iterator(h.begin(), h.end(), bin); it != std::sregex_iterator(); ++it)
    ht.push_back(std::stod((*it)[1]));
  ASSERT_EQ(ht.size(), 3u);
  EXPECT_NEAR(ht[1] / ht[0], 4.0, 0.01);
  EXPECT_NEAR(ht[2] / ht[0], 2.0, 0.01);
  EXPECT_EQ(count(h, "stroke=\"#f00\""), 2);  // the level at 9 is outside [0, 3]
  const std::string l = svg_line_chart("l", "x", "y", {0, 1, 2, 3},
                                       {{"s", {1, NAN, 2, 3}, ""}});
  // NaN breaks the line: two "M" moves, two "L" segments in total.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(l, m, std::regex("<path d=\"([^\"]*)\"")));
  EXPECT_EQ(count(m[1], "M"), 2);
  EXPECT_EQ(count(m[1], "L"), 1);
}

TEST(ReportPage, WritesCompleteFolderAndReplacesAnOldOne) {
  ReportData d;
  d.model = "m";
  d.config_label = "W8A8";
  PointError p{"blocks.0.attn.qkv", "activation", {}};
  const float x[] = {1, 2}, q[] = {1, 1};
  p.err.add(x, q, 2);
  d.points = {p};
  d.blocks = {p};
  d.ln_inputs = {{"norm.in", {-1, -2}, {1, 5}}};
  d.softmax_edges = {-2, -1, 0};
  d.softmax_counts = {3, 4};
  d.tables = {nlohmann::json{{"model", "m"},
                             {"rows", {{{"method", "-"}, {"setting", "FP32"}, {"top1", 70.0},
                                        {"top5", 90.0}, {"agreement", 100.0}}}}}};
  const fs::path root = test::temp_dir();
  const std::string out = (root / "rep").string();
  fs::create_directories(out);
  std::ofstream(out + "/stale.txt") << "old";
  write_report(d, out);
  EXPECT_FALSE(fs::exists(out + "/stale.txt"));  // the old folder was replaced as a whole
  const std::string html = slurp(out + "/index.html");
  std::regex img("<img src=\"([^\"]+)\"");
  int imgs = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), img); it != std::sregex_iterator(); ++it) {
    ++imgs;
    EXPECT_TRUE(fs::exists(out + "/" + (*it)[1].str())) << (*it)[1];
  }
  EXPECT_EQ(imgs, 4);  // points, blocks, one LayerNorm input, softmax histogram
  EXPECT_NE(html.find("<td>FP32</td><td>70.00</td>"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);  // nothing fetched from the network
  const auto j = nlohmann::json::parse(slurp(out + "/report.json"));
  EXPECT_NEAR(j["points"][0]["sqnr_db"].get<double>(), 10 * std::log10(5.0), 1e-9);
  for (const auto& e : fs::directory_iterator(root))  // no temporary folder left
    EXPECT_EQ(e.path().filename(), "rep") << e.path();
}

// Real DeiT-Tiny on imagenet-sample: 20 calibration + 20 evaluation images.
TEST(ReportBrowser, DeitTinyReportRendersInHeadlessChromium) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  QVIT_REQUIRE_DATA_PATH(weights, "models/deit_tiny_patch16_224.safetensors");
  REQUIRE_CHROMIUM();
  const std::string out = test::temp_dir() + "/report";
  std::string log;
  ASSERT_EQ(test::run_cli("report --model deit_tiny --weights " + weights + " --calib-data " +
                              sample + " --calib-batch 10 --calib-iter 2 --probe-images 20"
                              " --eval-images 20 --threads 2 --table " QVIT_SOURCE_DIR
                              "/docs/results_fqvit_deit_tiny.json -o " + out,
                          &log),
            0)
      << log;
  const auto j = nlohmann::json::parse(slurp(out + "/report.json"));
  EXPECT_EQ(j["eval_images"], 20);
  EXPECT_EQ(j["blocks"].size(), 12u);
  EXPECT_EQ(j["ln_inputs"].size(), 25u);  // norm1, norm2 of 12 blocks + the final norm
  // Every ViT point of FQ-ViT W8A8 minmax is simulated (12 per block + embedding + head).
  EXPECT_GT(j["points"].size(), 12u * 12u - 10);
  double prev = -1e9;
  for (const auto& p : j["points"]) {  // sorted worst first; consistent statistics
    const double s = p["sqnr_db"].get<double>();
    EXPECT_GE(s, prev);
    prev = s;
    EXPECT_NEAR(s, -10 * std::log10(p["rel_mse"].get<double>()), 1e-6) << p["name"];
    EXPECT_GT(p["cosine"].get<double>(), 0.9) << p["name"];
  }
  // 8-bit error accumulates through the network: the last block is worse than the first.
  EXPECT_LT(j["blocks"][11]["sqnr_db"].get<double>(), j["blocks"][0]["sqnr_db"].get<double>());
  // The softmax histogram counts every probability of the probe pass: 20 images x 12 blocks x
  // 3 heads x 197 x 197.
  double total = 0;
  for (double c : j["softmax_hist"]["counts"]) total += c;
  EXPECT_EQ(total, 20.0 * 12 * 3 * 197 * 197);

  int svgs = 0;
  for (const auto& e : fs::directory_iterator(out)) svgs += e.path().extension() == ".svg";
  EXPECT_GE(svgs, 5);
  std::string dom, blog;
  ASSERT_TRUE(render("file://" + out + "/index.html", &dom, &blog)) << blog;
  EXPECT_NE(dom.find("data-charts=\"ok\""), std::string::npos) << dom.substr(0, 2000);
  EXPECT_NE(dom.find("data-charts-loaded=\"" + std::to_string(svgs) + "/" + std::to_string(svgs) + "\""),
            std::string::npos);
  EXPECT_FALSE(std::regex_search(dom, std::regex("<body[^>]*data-js-errors")));
  const auto console = console_lines(blog);
  EXPECT_TRUE(console.empty()) << console[0];

  // The same checks catch a broken page: a missing chart and a script error.
  std::ofstream(out + "/index.html", std::ios::app)
      << "<img src=\"missing.svg\"><script>no_such_function();</script>";
  ASSERT_TRUE(render("file://" + out + "/index.html", &dom, &blog));
  EXPECT_NE(dom.find("data-charts=\"missing\""), std::string::npos);
  EXPECT_TRUE(std::regex_search(dom, std::regex("<body[^>]*data-js-errors")));
  EXPECT_FALSE(console_lines(blog).empty());
}

TEST(ReportInterrupt, SigintLeavesNoOutputAndExits130) {
  QVIT_REQUIRE_DATA_PATH(sample, "imagenet-sample");
  QVIT_REQUIRE_DATA_PATH(weights, "models/deit_tiny_patch16_224.safetensors");
  const fs::path root = test::temp_dir();
  const std::string out = (root / "rep").string(), err = (root / "stderr.txt").string();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen(err.c_str(), "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    execl(QVIT_CLI, QVIT_CLI, "report", "--model", "deit_tiny", "--weights", weights.c_str(),
          "--calib-data", sample.c_str(), "--calib-batch", "10", "--calib-iter", "2",
          "--probe-images", "400", "--eval-images", "400", "--threads", "2", "-o", out.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until the report pass shows progress (calibration done), then interrupt.
  const auto t0 = std::chrono::steady_clock::now();
  while (slurp(err).find("report: ") == std::string::npos &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(slurp(err).find("report: "), std::string::npos) << slurp(err);
  ASSERT_EQ(kill(pid, SIGINT), 0);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
  EXPECT_EQ(WEXITSTATUS(st), 130) << slurp(err);
  EXPECT_NE(slurp(err).find("interrupted"), std::string::npos);
  for (const auto& e : fs::directory_iterator(root))  // only the captured stderr remains
    EXPECT_EQ(e.path().filename(), "stderr.txt") << e.path();
}
