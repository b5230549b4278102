#include "test_util.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace fs = std::filesystem;

namespace qvit::test {

std::string data_path(const std::string& relative) {
  const char* env = std::getenv("QVIT_DATA");
  fs::path root = env && *env ? fs::path(env) : fs::path(QVIT_SOURCE_DIR) / ".." / "shared" / "data";
  fs::path p = relative.empty() ? root : root / relative;
  std::error_code ec;
  if (!fs::exists(p, ec)) return "";
  return p.lexically_normal().string();
}

bool data_required() {
  const char* env = std::getenv("QVIT_REQUIRE_DATA");
  return env && std::string(env) == "1";
}

std::string fixture(const std::string& name) { return std::string(QVIT_FIXTURES) + "/" + name; }

std::string temp_dir() {
  static std::mt19937_64 rng(std::random_device{}());
  fs::path p = fs::temp_directory_path() / ("qvit_test_" + std::to_string(rng()));
  fs::create_directories(p);
  return p.string();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

int run_cli(const std::string& args, std::string* output) {
  std::string cmd = std::string(QVIT_CLI) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<float> read_f32(const std::string& path) {
  auto bytes = read_bytes(path);
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

}  // namespace qvit::test
