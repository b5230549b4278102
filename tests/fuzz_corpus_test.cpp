// Replays every file of the committed fuzz corpus (fuzz/corpus/<target>/, seeds plus every
// input a fuzzer ever found a problem with) through the same entry points as the libFuzzer
// targets, in the normal build: each must parse or throw qvit::Error, nothing else.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <vector>

#include "../fuzz/fuzz_common.h"

namespace qvit {
namespace {

namespace fs = std::filesystem;

TEST(FuzzCorpus, EveryFileParsesOrFailsCleanly) {
  const std::map<std::string, std::function<void(const uint8_t*, size_t)>> targets = {
      {"safetensors", fuzz::safetensors}, {"pth", fuzz::pth},         {"qparams", fuzz::qparams},
      {"image", fuzz::image},             {"qvit_file", fuzz::qvit_file}};
  for (const auto& [name, fn] : targets) {
    const fs::path dir = fs::path(QVIT_FUZZ_CORPUS) / name;
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
      std::ifstream f(e.path(), std::ios::binary);
      const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      SCOPED_TRACE(e.path().string());
      EXPECT_NO_THROW(fn(bytes.data(), bytes.size()));
      ++files;
    }
    EXPECT_GE(files, 1) << name;
  }
}

}  // namespace
}  // namespace qvit
