// Shared helpers for the unit tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qvit::test {

// Location of the shared test data: $QVIT_DATA, else <source>/../shared/data. Returns "" when the
// directory (or `relative` inside it) does not exist.
std::string data_path(const std::string& relative = "");

// True under QVIT_REQUIRE_DATA=1 (set by .ci/run): missing data must fail, not skip.
bool data_required();

// Path of a committed fixture in tests/fixtures.
std::string fixture(const std::string& name);
// n floats uniform in [lo, hi) from std::mt19937(seed).
std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// A fresh empty temporary directory (removed at process exit is not guaranteed).
std::string temp_dir();

// Reads a whole file into bytes (throws on error).
std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

// Runs the qvit CLI with the given argument string (shell-quoted by the caller); returns the exit
// code and fills `output` with combined stdout+stderr.
int run_cli(const std::string& args, std::string* output);

// Reads a tensor file written by tools/*.py: raw little-endian float32 with a .json sidecar
// giving {"shape": [...]}; here simply raw floats.
std::vector<float> read_f32(const std::string& path);

}  // namespace qvit::test

// Skips the test (or fails it under QVIT_REQUIRE_DATA=1) when shared data is missing.
#define QVIT_REQUIRE_DATA_PATH(var, relative)                                              \
  std::string var = ::qvit::test::data_path(relative);                                     \
  if (var.empty()) {                                                                       \
    if (::qvit::test::data_required()) {                                                   \
      FAIL() << "shared data missing: " << (relative) << " (set QVIT_DATA)";               \
    }                                                                                      \
    GTEST_SKIP() << "shared data missing: " << (relative) << " (set QVIT_DATA to the data folder)"; \
  }
