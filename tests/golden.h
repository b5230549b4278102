// Reads golden fixtures written by tools/make_golden_*.py: NAME.json (metadata, "arrays":
// {key: {offset, shape}}) beside NAME.f32 (all arrays as raw little-endian float32).
#pragma once

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace qvit::test {

struct Golden {
  nlohmann::json meta;
  std::vector<float> data;
  // The array `key`, flattened.
  std::vector<float> array(const std::string& key) const {
    const auto& a = meta.at("arrays").at(key);
    size_t n = 1;
    for (auto d : a.at("shape")) n *= d.get<size_t>();
    const size_t off = a.at("offset").get<size_t>();
    return std::vector<float>(data.begin() + off, data.begin() + off + n);
  }
};

inline Golden load_golden(const std::string& base) {
  Golden g;
  std::ifstream f(base + ".json");
  if (!f) throw std::runtime_error("missing fixture " + base + ".json");
  g.meta = nlohmann::json::parse(f);
  g.data = read_f32(base + ".f32");
  return g;
}

// max |a - b| / max |b|
inline double rel_error(const float* a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}

inline double max_abs_diff(const float* a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

}  // namespace qvit::test
