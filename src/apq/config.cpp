// ApqConfig defaults per method, validation, and the qvit-apq-params JSON file.
#include <cmath>
#include <fstream>

#include "qvit/apq.h"
#include "qvit/error.h"
#include "qvit/io.h"

namespace qvit::apq {

namespace {

template <class E>
struct Names {
  E e;
  const char* s;
};
constexpr Names<Method> kMethods[] = {{Method::base, "base"}, {Method::ptq4vit, "ptq4vit"}, {Method::apq, "apq"}};
constexpr Names<SoftmaxQuant> kSoftmax[] = {{SoftmaxQuant::uniform, "uniform"}, {SoftmaxQuant::twin, "twin"}, {SoftmaxQuant::mpq, "mpq"}};
constexpr Names<GeluQuant> kGelu[] = {{GeluQuant::uniform, "uniform"}, {GeluQuant::twin, "twin"}};
constexpr Names<MetricKind> kMetric[] = {{MetricKind::cosine, "cosine"}, {MetricKind::hessian, "hessian"}, {MetricKind::bbc, "bbc"}};
constexpr Names<Granularity> kGran[] = {{Granularity::tensor, "tensor"}, {Granularity::channel, "channel"}};
constexpr Names<BlockScope> kScope[] = {{BlockScope::block, "block"}, {BlockScope::subblock, "subblock"}};
constexpr Names<MpqSelect> kMpqSel[] = {{MpqSelect::metric, "metric"}, {MpqSelect::weighted, "weighted"}};
constexpr Names<BbcRank> kRank[] = {{BbcRank::term, "term"}, {BbcRank::error, "error"}, {BbcRank::grad, "grad"}};
constexpr Names<TwinSoftmaxMode> kTwin[] = {{TwinSoftmaxMode::disjoint, "disjoint"}, {TwinSoftmaxMode::added, "added"}};

template <class E, size_t N>
const char* to_s(const Names<E> (&t)[N], E e) {
  for (const auto& x : t)
    if (x.e == e) return x.s;
  return "?";
}
template <class E, size_t N>
E from_s(const Names<E> (&t)[N], const std::string& s, const char* what) {
  std::string known;
  for (const auto& x : t) {
    if (s == x.s) return x.e;
    known += known.empty() ? "" : "|";
    known += x.s;
  }
  fail("apq", "unknown {} '{}' (known: {})", what, s, known);
}

}  // namespace

Method parse_method(const std::string& s) { return from_s(kMethods, s, "--method"); }
const char* method_name(Method m) { return to_s(kMethods, m); }

ApqConfig ApqConfig::defaults(Method m) {
  ApqConfig c;
  c.method = m;
  switch (m) {
    case Method::base:  // PTQ4ViT's BasePTQ: cosine, one round, plain uniform everywhere
      c.softmax = SoftmaxQuant::uniform;
      c.gelu = GeluQuant::uniform;
      c.metric = MetricKind::cosine;
      c.patch_weights = Granularity::tensor;
      c.calibrated_upstream = false;
      c.alpha = 0.5f;
      c.rounds = 1;
      break;
    case Method::ptq4vit:  // twin uniform, Hessian-guided layer metric, parallel calibration
      c.softmax = SoftmaxQuant::twin;
      c.gelu = GeluQuant::twin;
      c.metric = MetricKind::hessian;
      c.calibrated_upstream = false;
      break;
    case Method::apq:  // BBC block metric + MPQ softmax inside PTQ4ViT's framework (twin post-GELU)
      c.softmax = SoftmaxQuant::mpq;
      c.gelu = GeluQuant::twin;
      c.metric = MetricKind::bbc;
      c.calibrated_upstream = true;
      c.stride = 4;
      // One refinement pass over each block (docs/quantization.md, decision 6b): val split W4A4
      // 55.77 against 54.06 top-1 without it; 534 s for W4A4 on 2 threads with the exact speed-ups.
      c.refine = 1;
      break;
  }
  return c;
}

ApqConfig ApqConfig::defaults(Method m, int wbits, int abits) {
  ApqConfig c = defaults(m);
  c.wbits = wbits;
  c.abits = abits;
  // MPQ (one uniform step or log2 over [0, max]) beats twin uniform at 4 bits, but from 6 bits the
  // twin quantizer's two ranges of 2^(k-1)-1 levels resolve the many small probabilities that a
  // single uniform step of max/(2^k-1) rounds to 0: val split W6A6 agreement 92.5 % (twin) vs
  // 89.3 % (mpq). 5 bits is unmeasured and keeps mpq.
  if (m == Method::apq && abits >= 6) c.softmax = SoftmaxQuant::twin;
  return c;
}

std::string ApqConfig::label() const {
  return std::string(method_name(method)) + " W" + std::to_string(wbits) + "A" + std::to_string(abits);
}

void ApqConfig::validate() const {
  check_bits(wbits, "wbits");
  check_bits(abits, "abits");
  if (grid < 1 || grid > 10000) fail("apq", "--grid must be in 1..10000, got {}", grid);
  if (!(alpha > 0.0f) || !(beta >= alpha) || !std::isfinite(beta))
    fail("apq", "the search range needs 0 < alpha <= beta, got alpha={} beta={}", alpha, beta);
  if (rounds < 1 || rounds > 100) fail("apq", "--rounds must be in 1..100, got {}", rounds);
  if (stride < 1 || stride > grid) fail("apq", "--stride must be in 1..grid ({}), got {}", grid, stride);
  if (refine < 0 || refine > 10) fail("apq", "refine must be in 0..10, got {}", refine);
  if (refine_window < 0 || refine_window > grid)
    fail("apq", "refine_window must be in 0..grid ({}), got {}", grid, refine_window);
  if (!(keep > 0.0) || keep > 1.0) fail("apq", "--keep must be in (0, 1], got {}", keep);
  if (calib_images < 1) fail("apq", "--calib-images must be >= 1, got {}", calib_images);
  if (!(mpq_gamma >= 0.0f)) fail("apq", "--mpq-gamma must be >= 0, got {}", mpq_gamma);
}

nlohmann::json ApqConfig::to_json() const {
  return {{"method", method_name(method)},
          {"wbits", wbits},
          {"abits", abits},
          {"softmax", to_s(kSoftmax, softmax)},
          {"gelu", to_s(kGelu, gelu)},
          {"twin_mode", to_s(kTwin, twin_mode)},
          {"metric", to_s(kMetric, metric)},
          {"weights", to_s(kGran, weights)},
          {"patch_weights", to_s(kGran, patch_weights)},
          {"scope", to_s(kScope, scope)},
          {"quantized_inputs", quantized_inputs},
          {"calibrated_upstream", calibrated_upstream},
          {"use_labels", use_labels},
          {"keep", keep},
          {"rank", to_s(kRank, rank)},
          {"grid", grid},
          {"alpha", alpha},
          {"beta", beta},
          {"rounds", rounds},
          {"stride", stride},
          {"refine", refine},
          {"refine_window", refine_window},
          {"mpq_select", to_s(kMpqSel, mpq_select)},
          {"mpq_gamma", mpq_gamma},
          {"calib_images", calib_images},
          {"seed", seed}};
}

ApqConfig ApqConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("apq", "config must be a JSON object");
  ApqConfig c = defaults(parse_method(j.value("method", std::string("apq"))));
  auto str = [&](const char* k, auto& field, const auto& table) {
    if (j.contains(k)) field = from_s(table, j.at(k).get<std::string>(), k);
  };
  auto num = [&](const char* k, auto& field) {
    if (j.contains(k)) field = j.at(k).get<std::remove_reference_t<decltype(field)>>();
  };
  num("wbits", c.wbits);
  num("abits", c.abits);
  str("softmax", c.softmax, kSoftmax);
  str("gelu", c.gelu, kGelu);
  str("twin_mode", c.twin_mode, kTwin);
  str("metric", c.metric, kMetric);
  str("weights", c.weights, kGran);
  str("patch_weights", c.patch_weights, kGran);
  str("scope", c.scope, kScope);
  num("quantized_inputs", c.quantized_inputs);
  num("calibrated_upstream", c.calibrated_upstream);
  num("use_labels", c.use_labels);
  num("keep", c.keep);
  str("rank", c.rank, kRank);
  num("grid", c.grid);
  num("alpha", c.alpha);
  num("beta", c.beta);
  num("rounds", c.rounds);
  num("stride", c.stride);
  // A file without "refine" predates the option (2026-12-05) and was calibrated without a
  // refinement pass, whatever the method's default is now.
  c.refine = 0;
  num("refine", c.refine);
  num("refine_window", c.refine_window);
  str("mpq_select", c.mpq_select, kMpqSel);
  num("mpq_gamma", c.mpq_gamma);
  num("calib_images", c.calib_images);
  num("seed", c.seed);
  c.validate();
  return c;
}

std::vector<std::string> layer_names(const ModelConfig& cfg) {
  std::vector<std::string> n = {"patch_embed.proj"};
  for (int i = 0; i < cfg.depth; ++i)
    for (const char* s : {"attn.qkv", "attn.matmul1", "attn.matmul2", "attn.proj", "mlp.fc1", "mlp.fc2"})
      n.push_back("blocks." + std::to_string(i) + "." + s);
  n.push_back("head");
  return n;
}

nlohmann::json ApqParams::to_json() const {
  nlohmann::json layers_j = nlohmann::json::object();
  for (const auto& [name, p] : layers) {
    nlohmann::json l = nlohmann::json::object();
    if (!p.w.empty()) l["w"] = p.w;
    if (p.a > 0.0f) l["a"] = p.a;
    if (p.b > 0.0f) l["b"] = p.b;
    if (p.split_exp >= 0) l["split_exp"] = p.split_exp;
    if (name.find("matmul2") != std::string::npos && config.softmax == SoftmaxQuant::mpq) {
      l["mpq"] = p.mpq.kind == MpqKind::log2 ? nlohmann::json{{"kind", "log2"}}
                                               : nlohmann::json{{"kind", "uniform"}, {"step", p.mpq.step}};
    }
    layers_j[name] = std::move(l);
  }
  return {{"format", "qvit-apq-params"}, {"version", 1},     {"model", model},
          {"config", config.to_json()},  {"layers", layers_j}, {"calib_images", calib_images},
          {"seconds", seconds}};
}

ApqParams ApqParams::from_json(const nlohmann::json& j, const std::string& path) {
  try {
    if (!j.is_object() || j.value("format", std::string()) != "qvit-apq-params")
      fail("apq", "{}: not a qvit-apq-params file (missing \"format\": \"qvit-apq-params\")", path);
    const int v = j.value("version", 0);
    if (v != 1) fail("apq", "{}: version {} is not supported (this qvit reads version 1)", path, v);
    ApqParams p;
    p.model = j.at("model").get<std::string>();
    p.config = ApqConfig::from_json(j.at("config"));
    for (const auto& [name, l] : j.at("layers").items()) {
      LayerParams lp;
      if (l.contains("w")) lp.w = l.at("w").get<std::vector<float>>();
      lp.a = l.value("a", 0.0f);
      lp.b = l.value("b", 0.0f);
      lp.split_exp = l.value("split_exp", -1);
      if (l.contains("mpq")) {
        const std::string kind = l.at("mpq").at("kind").get<std::string>();
        if (kind == "log2") lp.mpq = {MpqKind::log2, 0.0f};
        else if (kind == "uniform") lp.mpq = {MpqKind::uniform, l.at("mpq").at("step").get<float>()};
        else fail("apq", "{}: layer '{}': unknown MPQ kind '{}'", path, name, kind);
      }
      p.layers[name] = std::move(lp);
    }
    if (j.contains("calib_images")) p.calib_images = j.at("calib_images").get<std::vector<std::string>>();
    p.seconds = j.value("seconds", 0.0);
    return p;
  } catch (const nlohmann::json::exception& e) {
    fail("apq", "{}: malformed qvit-apq-params file: {}", path, e.what());
  } catch (const Error& e) {
    const std::string m = e.what();
    if (m.find(path) != std::string::npos) throw;
    fail("apq", "{}: {}", path, m);
  }
}

void ApqParams::save(const std::string& path) const { write_file_atomic(path, to_json().dump(1) + "\n"); }

ApqParams ApqParams::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("apq", "{}: cannot open", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail("apq", "{}: not valid JSON: {}", path, e.what());
  }
  return from_json(j, path);
}

void ApqParams::check(const ModelConfig& cfg, const std::string& path) const {
  if (model != cfg.name) fail("apq", "{}: parameters were calibrated for {}, not {}", path, model, cfg.name);
  const int64_t D = cfg.dim, hidden = int64_t(cfg.mlp_ratio) * D;
  for (const std::string& n : layer_names(cfg)) {
    auto it = layers.find(n);
    if (it == layers.end()) fail("apq", "{}: no parameters for layer '{}'", path, n);
    const LayerParams& p = it->second;
    const bool matmul = n.find("matmul") != std::string::npos;
    if (!matmul) {
      int64_t rows = D;
      if (n == "head") rows = cfg.num_classes;
      else if (n.ends_with("qkv")) rows = 3 * D;
      else if (n.ends_with("fc1")) rows = hidden;
      const Granularity g = n == "patch_embed.proj" ? config.patch_weights : config.weights;
      const size_t want = g == Granularity::channel ? static_cast<size_t>(rows) : (n.ends_with("qkv") ? 3 : 1);
      if (p.w.size() != want)
        fail("apq", "{}: layer '{}' has {} weight intervals, expected {}", path, n, p.w.size(), want);
      for (float v : p.w)
        if (!(v > 0.0f) || !std::isfinite(v)) fail("apq", "{}: layer '{}' has a weight interval {} (must be > 0)", path, n, v);
      if (n != "patch_embed.proj" && !(p.a > 0.0f && std::isfinite(p.a)))
        fail("apq", "{}: layer '{}' has input interval {} (must be > 0)", path, n, p.a);
    } else {
      const bool softmax = n.ends_with("matmul2");
      if (!(p.b > 0.0f && std::isfinite(p.b))) fail("apq", "{}: layer '{}' has operand-B interval {} (must be > 0)", path, n, p.b);
      if (!softmax || config.softmax == SoftmaxQuant::uniform) {
        if (!(p.a > 0.0f && std::isfinite(p.a))) fail("apq", "{}: layer '{}' has operand-A interval {} (must be > 0)", path, n, p.a);
      } else if (config.softmax == SoftmaxQuant::twin) {
        if (p.split_exp < 0 || p.split_exp > 30) fail("apq", "{}: layer '{}' has twin split exponent {} (must be 0..30)", path, n, p.split_exp);
      } else if (p.mpq.kind == MpqKind::uniform && !(p.mpq.step > 0.0f && std::isfinite(p.mpq.step))) {
        fail("apq", "{}: layer '{}' has MPQ step {} (must be > 0)", path, n, p.mpq.step);
      }
    }
  }
}

}  // namespace qvit::apq
