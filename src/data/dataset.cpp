// Dataset listing (ImageFolder, labelled flat folder) and deterministic sampling.
#include "qvit/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "qvit/error.h"

namespace fs = std::filesystem;

namespace qvit {

namespace {

bool hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return n.empty() || n[0] == '.';
}

std::vector<fs::path> sorted_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) continue;
    if (it->is_regular_file(ec)) out.push_back(it->path());
  }
  if (ec) fail("dataset", "{}: cannot list folder: {}", dir.string(), ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

void require_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail("dataset", "{}: no such folder", dir);
  if (!fs::is_directory(dir, ec)) fail("dataset", "{}: not a folder", dir);
}

}  // namespace

Dataset image_folder(const std::string& root) {
  require_dir(root);
  Dataset ds;
  ds.root = root;
  std::vector<fs::path> class_dirs;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!hidden(it->path()) && it->is_directory(ec)) class_dirs.push_back(it->path());
  }
  if (ec) fail("dataset", "{}: cannot list folder: {}", root, ec.message());
  if (class_dirs.empty())
    fail("dataset", "{}: no class folders (expected ROOT/<class>/<image>; for a flat folder of "
                    "images pass --labels FILE)", root);
  std::sort(class_dirs.begin(), class_dirs.end());
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    ds.classes.push_back(class_dirs[c].filename().string());
    for (const fs::path& f : sorted_files(class_dirs[c]))
      ds.samples.push_back({f.string(), static_cast<int>(c)});
  }
  if (ds.samples.empty()) fail("dataset", "{}: the class folders hold no images", root);
  return ds;
}

Dataset labeled_folder(const std::string& dir, const std::string& label_file, int num_classes,
                       bool allow_missing) {
  require_dir(dir);
  std::ifstream in(label_file);
  if (!in) fail("dataset", "{}: cannot open label file", label_file);
  std::unordered_map<std::string, int> labels;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::istringstream ss(line);
    std::string file, extra;
    long label;
    if (!(ss >> file >> label) || (ss >> extra))
      fail("dataset", "{}:{}: expected 'FILE LABEL', got '{}'", label_file, lineno, line);
    if (label < 0 || label >= num_classes)
      fail("dataset", "{}:{}: label {} out of range [0, {})", label_file, lineno, label,
           num_classes);
    labels[file] = static_cast<int>(label);
  }
  if (labels.empty()) fail("dataset", "{}: no labels", label_file);
  Dataset ds;
  ds.root = dir;
  const auto files = sorted_files(dir);
  if (files.empty()) fail("dataset", "{}: folder holds no images", dir);
  for (const fs::path& f : files) {
    auto it = labels.find(f.filename().string());
    if (it == labels.end())
      fail("dataset", "{}: image '{}' has no label in {}", dir, f.filename().string(), label_file);
    ds.samples.push_back({f.string(), it->second});
  }
  if (!allow_missing && ds.samples.size() < labels.size()) {
    std::set<std::string> present;
    for (const fs::path& f : files) present.insert(f.filename().string());
    std::string first;
    for (const auto& [name, label] : labels)
      if (!present.count(name) && (first.empty() || name < first)) first = name;
    fail("dataset", "{}: names {} files that are not in {} (first: '{}'); pass --allow-missing to "
         "evaluate only the images present", label_file, labels.size() - ds.samples.size(), dir,
         first);
  }
  return ds;
}

Dataset open_dataset(const std::string& dir, const std::string& label_file, int num_classes,
                     bool allow_missing) {
  return label_file.empty() ? image_folder(dir)
                            : labeled_folder(dir, label_file, num_classes, allow_missing);
}

std::vector<size_t> sample_indices(size_t n, size_t count, uint64_t seed) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (size_t i = n; i > 1; --i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const size_t j = static_cast<size_t>((s >> 33) % i);
    std::swap(idx[i - 1], idx[j]);
  }
  idx.resize(std::min(count, n));
  return idx;
}

}  // namespace qvit
