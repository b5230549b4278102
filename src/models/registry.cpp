// Model configurations (timm names and aliases), the family table, weight checking, synthetic
// weights and model loading.
#include <algorithm>
#include <cmath>
#include <set>

#include "models/family.h"
#include "qvit/error.h"

namespace qvit {

namespace {

ModelConfig vit_config(const char* name, int dim, int depth, int heads, bool deit) {
  ModelConfig c;
  c.name = name;
  c.family = "vit";
  c.patch = 16;
  c.dim = dim;
  c.depth = depth;
  c.heads = heads;
  c.ln_eps = 1e-6f;
  if (deit) {
    c.crop_pct = 0.875f;
  } else {  // timm's original ViT weights: crop 0.9, mean = std = 0.5
    c.crop_pct = 0.9f;
    c.mean = {0.5f, 0.5f, 0.5f};
    c.std = {0.5f, 0.5f, 0.5f};
  }
  return c;
}

ModelConfig swin_config(const char* name, int dim, std::vector<int> depths,
                        std::vector<int> heads) {
  ModelConfig c;
  c.name = name;
  c.family = "swin";
  c.patch = 4;
  c.dim = dim;
  c.depths = std::move(depths);
  c.stage_heads = std::move(heads);
  c.window = 7;
  c.ln_eps = 1e-5f;
  c.crop_pct = 0.9f;
  return c;
}

struct Entry {
  ModelConfig cfg;
  std::vector<std::string> aliases;
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> r = {
      {vit_config("deit_tiny_patch16_224", 192, 12, 3, true), {"deit_tiny", "deit-t", "deit_t"}},
      {vit_config("deit_small_patch16_224", 384, 12, 6, true), {"deit_small", "deit-s", "deit_s"}},
      {vit_config("deit_base_patch16_224", 768, 12, 12, true), {"deit_base", "deit-b", "deit_b"}},
      {vit_config("vit_base_patch16_224", 768, 12, 12, false), {"vit_base", "vit-b", "vit_b"}},
      {vit_config("vit_large_patch16_224", 1024, 24, 16, false), {"vit_large", "vit-l", "vit_l"}},
      {swin_config("swin_tiny_patch4_window7_224", 96, {2, 2, 6, 2}, {3, 6, 12, 24}),
       {"swin_tiny", "swin-t", "swin_t"}},
      {swin_config("swin_small_patch4_window7_224", 96, {2, 2, 18, 2}, {3, 6, 12, 24}),
       {"swin_small", "swin-s", "swin_s"}},
      {swin_config("swin_base_patch4_window7_224", 128, {2, 2, 18, 2}, {4, 8, 16, 32}),
       {"swin_base", "swin-b", "swin_b"}},
  };
  return r;
}

// The families this build knows; a new family is one line here plus its own file.
const std::vector<ModelFamily>& families() {
  static const std::vector<ModelFamily> f = {
      {"vit", &vit_weight_specs, nullptr, &create_vit},
      {"swin", &swin_weight_specs, &swin_normalize_weights, &create_swin},
  };
  return f;
}

uint32_t fnv1a32(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

// 32-bit integer hash; every product stays below 2^63 so tools/synthetic_weights.py can compute
// it with int64 tensors.
uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t x = (i + uint64_t(seed) * 0x9E3779B9ull) & 0xFFFFFFFFull;
  x ^= x >> 16;
  x = (x * 0x7FEB352Dull) & 0xFFFFFFFFull;
  x ^= x >> 15;
  x = (x * 0x5BD1E995ull) & 0xFFFFFFFFull;
  x ^= x >> 16;
  return static_cast<uint32_t>(x);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

PreprocessConfig ModelConfig::preprocess() const {
  PreprocessConfig p;
  p.crop = img_size;
  p.resize_short = static_cast<int>(std::floor(img_size / crop_pct));
  p.interpolation = interpolation;
  p.mean = mean;
  p.std = std;
  return p;
}

const ModelConfig& model_config(const std::string& name) {
  for (const auto& e : registry()) {
    if (e.cfg.name == name) return e.cfg;
    if (std::find(e.aliases.begin(), e.aliases.end(), name) != e.aliases.end()) return e.cfg;
  }
  std::string known;
  for (const auto& e : registry()) known += (known.empty() ? "" : ", ") + e.aliases[0];
  fail("model", "unknown model '{}' (known: {})", name, known);
}

std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const auto& e : registry()) out.push_back(e.cfg.name);
  return out;
}

const ModelFamily& model_family(const std::string& name) {
  for (const auto& f : families())
    if (name == f.name) return f;
  fail("model", "model family '{}' is not built into this qvit", name);
}

std::vector<WeightSpec> weight_specs(const ModelConfig& cfg) {
  return model_family(cfg.family).specs(cfg);
}

void check_weights(const ModelConfig& cfg, WeightFile& weights) {
  const ModelFamily& fam = model_family(cfg.family);
  if (fam.normalize) fam.normalize(cfg, weights);
  const std::string& file = weights.path.empty() ? std::string("<weights>") : weights.path;
  std::vector<std::string> missing;
  std::set<std::string> expected;
  for (const WeightSpec& s : fam.specs(cfg)) {
    expected.insert(s.name);
    auto it = weights.tensors.find(s.name);
    if (it == weights.tensors.end()) {
      if (!s.optional) missing.push_back(s.name);
      continue;
    }
    const Tensor& t = it->second;
    if (t.dtype() != s.dtype)
      fail("model", "{}: tensor '{}' has dtype {}, expected {}", file, s.name,
           dtype_name(t.dtype()), dtype_name(s.dtype));
    if (t.shape() != s.shape)
      fail("model", "{}: tensor '{}' has shape {}, expected {} for {}", file, s.name,
           shape_str(t.shape()), shape_str(s.shape), cfg.name);
  }
  if (!missing.empty())
    fail("model", "{}: missing tensor '{}'{} for {}", file, missing[0],
         missing.size() > 1 ? fmt::format(" (and {} more)", missing.size() - 1) : "", cfg.name);
  std::vector<std::string> unexpected;
  for (const auto& [k, v] : weights.tensors)
    if (!expected.count(k)) unexpected.push_back("'" + k + "'");
  if (!unexpected.empty()) {
    std::string list;
    for (size_t i = 0; i < unexpected.size() && i < 5; ++i) list += (i ? ", " : "") + unexpected[i];
    if (unexpected.size() > 5) list += fmt::format(" and {} more", unexpected.size() - 5);
    fail("model", "{}: unexpected tensors for {}: {} (is this a checkpoint of another model?)",
         file, cfg.name, list);
  }
}

namespace {
void fill_uniform(float* p, int64_t n, const std::string& name, uint32_t seed, double scale,
                  double offset) {
  const uint32_t tseed = seed ^ fnv1a32(name);
  for (int64_t i = 0; i < n; ++i) {
    const double u = double(hash32(uint64_t(i), tseed)) * (1.0 / 4294967296.0) * 2.0 - 1.0;
    p[i] = static_cast<float>(offset + scale * u);
  }
}
}  // namespace

Tensor synthetic_input(const Shape& shape, uint32_t seed) {
  Tensor t(shape);
  fill_uniform(t.f32(), t.numel(), "input", seed, 2.0, 0.0);
  return t;
}

WeightFile synthetic_weights(const ModelConfig& cfg, uint32_t seed) {
  WeightFile wf;
  wf.path = fmt::format("random:{}", seed);
  wf.format = "synthetic";
  wf.metadata = nlohmann::json::object();
  for (const WeightSpec& s : model_family(cfg.family).specs(cfg)) {
    if (s.optional || s.dtype != DType::f32) continue;
    Tensor t(s.shape);
    const std::string& n = s.name;
    const bool is_norm = n.find("norm") != std::string::npos && s.shape.size() == 1;
    const bool is_embed = ends_with(n, "cls_token") || ends_with(n, "pos_embed") ||
                          ends_with(n, "relative_position_bias_table");
    double scale;
    double offset = 0;
    if (is_norm && ends_with(n, ".weight")) {
      scale = 0.2;
      offset = 1.0;
    } else if (ends_with(n, ".bias")) {
      scale = 0.05;
    } else if (is_embed) {
      scale = 0.5;
    } else {
      const double fan_in = double(t.numel()) / double(s.shape[0]);
      scale = std::sqrt(3.0 / fan_in);
    }
    fill_uniform(t.f32(), t.numel(), n, seed, scale, offset);
    wf.tensors.emplace(n, std::move(t));
  }
  return wf;
}

void Model::tap(const std::string& name, const float* data, const Shape& shape) {
  if (!taps_) return;
  Tensor t(shape);
  std::copy(data, data + t.numel(), t.f32());
  (*taps_)[name] = std::move(t);
}

bool Model::quantizes_input() const {
  if (quant_ && quant_->config().quant_input >= 0) return quant_->config().quant_input != 0;
  // FQ-ViT: ViT's 0.5/0.5 normalisation keeps inputs in [-1, 1]; DeiT and Swin quantize them.
  return !(cfg_.family == "vit" && cfg_.mean[0] == 0.5f);
}

bool Model::weights_stale() {
  const int mode = simulating() ? int(QuantMode::simulate) : int(QuantMode::off);
  const QuantSession* s = simulating() ? quant_ : nullptr;
  if (mode == prepared_for_ && s == prepared_session_) return false;
  prepared_for_ = mode;
  prepared_session_ = s;
  return true;
}

std::unique_ptr<Model> create_model(const ModelConfig& cfg, WeightFile weights) {
  check_weights(cfg, weights);
  return model_family(cfg.family).create(cfg, weights);
}

WeightFile load_checked_weights(const ModelConfig& cfg, const std::string& weights) {
  WeightFile wf;
  if (weights.rfind("random:", 0) == 0) {
    const std::string s = weights.substr(7);
    char* end = nullptr;
    unsigned long seed = std::strtoul(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || seed > 0xFFFFFFFFul)
      fail("model", "bad weights '{}': expected random:SEED with SEED a 32-bit integer", weights);
    wf = synthetic_weights(cfg, static_cast<uint32_t>(seed));
  } else {
    wf = load_weights(weights);
  }
  check_weights(cfg, wf);
  return wf;
}

std::unique_ptr<Model> load_model(const std::string& name, const std::string& weights) {
  const ModelConfig& cfg = model_config(name);
  WeightFile wf = load_checked_weights(cfg, weights);
  return model_family(cfg.family).create(cfg, wf);
}

}  // namespace qvit
