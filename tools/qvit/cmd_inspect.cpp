// qvit inspect: what a model file holds. For .qvit: version, metadata and the section table (every
// checksum verified unless --no-verify); for .safetensors / .pth: the tensors as loaded. --json
// prints the same as one JSON document (with the full metadata).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "commands.h"
#include "qvit/error.h"
#include "qvit/io.h"
#include "qvit/qvit_file.h"

namespace qvit::cli {

namespace {
using nlohmann::json;

struct InspectArgs {
  std::string path;
  bool json_out = false, no_verify = false;
};

bool is_qvit(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  return f.read(magic, 4) && std::memcmp(magic, "QVIT", 4) == 0;
}

// Indented JSON; names that are not valid UTF-8 (allowed in a .qvit table) are shown with U+FFFD.
std::string pretty(const json& v) {
  return v.dump(2, ' ', false, json::error_handler_t::replace);
}

// Long arrays shortened for the terminal: numbers and strings as "[576 values: 0.01, 0.02, 0.03,
// ..., 0.04]", objects and arrays as the first three, "... N more ...", the last (each shortened).
json summarize(const json& v) {
  if (v.is_object()) {
    json out = json::object();
    for (const auto& [k, x] : v.items()) out[k] = summarize(x);
    return out;
  }
  if (!v.is_array()) return v;
  json out = json::array();
  if (v.size() <= 8) {
    for (const auto& x : v) out.push_back(summarize(x));
    return out;
  }
  const bool scalars = std::none_of(v.begin(), v.end(), [](const json& x) { return x.is_structured(); });
  if (scalars) {
    std::string s = "[" + std::to_string(v.size()) + " values: ";
    for (size_t i = 0; i < 3; ++i) s += v[i].dump() + ", ";
    return s + "..., " + v.back().dump() + "]";
  }
  for (size_t i = 0; i < 3; ++i) out.push_back(summarize(v[i]));
  out.push_back("... " + std::to_string(v.size() - 4) + " more ...");
  out.push_back(summarize(v.back()));
  return out;
}

json qvit_json(const QvitFile& f, bool verified) {
  json sections = json::array();
  for (const QvitSection& s : f.sections()) {
    json e = {{"name", s.name}, {"kind", s.is_metadata ? "metadata" : "tensor"},
              {"offset", s.offset}, {"nbytes", s.nbytes}, {"crc32", fmt::format("{:08x}", s.crc32)}};
    if (!s.is_metadata) {
      e["dtype"] = dtype_name(s.dtype);
      e["bits"] = s.bits;
      e["shape"] = s.shape;
    }
    sections.push_back(std::move(e));
  }
  return {{"path", f.path()},         {"format", "qvit"},       {"version", f.version()},
          {"size", f.file_size()},    {"checksums_verified", verified},
          {"metadata", f.meta()},     {"sections", sections}};
}

void print_qvit(const QvitFile& f, bool verified) {
  std::printf("%s: qvit format version %u, %llu bytes, %zu sections (checksums %s)\n",
              f.path().c_str(), f.version(), static_cast<unsigned long long>(f.file_size()),
              f.sections().size(), verified ? "verified" : "not verified");
  std::printf("metadata:\n%s\n", pretty(summarize(f.meta())).c_str());
  size_t width = 4;
  for (const QvitSection& s : f.sections()) width = std::max(width, s.name.size());
  std::printf("%-*s  %-5s %4s  %-20s %12s %12s  %s\n", static_cast<int>(width), "name", "dtype",
              "bits", "shape", "offset", "bytes", "crc32");
  for (const QvitSection& s : f.sections()) {
    std::printf("%-*s  %-5s %4s  %-20s %12llu %12llu  %08x\n", static_cast<int>(width),
                s.name.c_str(), s.is_metadata ? "JSON" : dtype_name(s.dtype),
                s.is_metadata ? "-" : std::to_string(s.bits).c_str(),
                s.is_metadata ? "-" : shape_str(s.shape).c_str(),
                static_cast<unsigned long long>(s.offset),
                static_cast<unsigned long long>(s.nbytes), s.crc32);
  }
}

json weights_json(const WeightFile& w) {
  json tensors = json::array();
  for (const auto& [name, t] : w.tensors)
    tensors.push_back(
        {{"name", name}, {"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"nbytes", t.nbytes()}});
  return {{"path", w.path}, {"format", w.format}, {"metadata", w.metadata}, {"tensors", tensors}};
}

void print_weights(const WeightFile& w) {
  size_t total = 0, width = 4;
  for (const auto& [name, t] : w.tensors) {
    total += static_cast<size_t>(t.numel());
    width = std::max(width, name.size());
  }
  std::printf("%s: %s, %zu tensors, %zu values (dtypes as loaded: floating types become F32)\n",
              w.path.c_str(), w.format.c_str(), w.tensors.size(), total);
  if (!w.metadata.empty()) std::printf("metadata:\n%s\n", pretty(summarize(w.metadata)).c_str());
  std::printf("%-*s  %-5s  %s\n", static_cast<int>(width), "name", "dtype", "shape");
  for (const auto& [name, t] : w.tensors)
    std::printf("%-*s  %-5s  %s\n", static_cast<int>(width), name.c_str(), dtype_name(t.dtype()),
                shape_str(t.shape()).c_str());
}

int run_inspect(const InspectArgs& a) {
  if (is_qvit(a.path)) {
    const QvitFile f = QvitFile::open(a.path, {.verify_checksums = !a.no_verify});
    if (a.json_out) {
      std::printf("%s\n", pretty(qvit_json(f, !a.no_verify)).c_str());
    } else {
      print_qvit(f, !a.no_verify);
    }
    return 0;
  }
  const WeightFile w = load_weights(a.path);
  if (a.json_out) {
    std::printf("%s\n", pretty(weights_json(w)).c_str());
  } else {
    print_weights(w);
  }
  return 0;
}
}  // namespace

Command add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* sub = app.add_subcommand(
      "inspect", "Show a model file: .qvit metadata and sections, or .safetensors/.pth tensors");
  sub->add_option("file", args->path, "Model file (.qvit, .safetensors or .pth)")->required();
  sub->add_flag("--json", args->json_out, "Print JSON (full metadata) instead of a table");
  sub->add_flag("--no-verify", args->no_verify, "Do not verify .qvit checksums");
  return {sub, [args] { return run_inspect(*args); }};
}

}  // namespace qvit::cli
