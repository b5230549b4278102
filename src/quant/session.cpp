// QuantSession: routes every quantization point to its observer (calibration) or its quantizer
// (simulation), and reads/writes the parameter file.
#include "qvit/quant_session.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "qvit/error.h"
#include "qvit/io.h"

namespace qvit {

namespace {
constexpr const char* kFormat = "qvit-qparams";
constexpr int kVersion = 1;

QPointRole parse_role(const std::string& s, const std::string& path) {
  for (QPointRole r : {QPointRole::activation, QPointRole::ln_input, QPointRole::softmax,
                       QPointRole::logits, QPointRole::weight})
    if (s == qpoint_role_name(r)) return r;
  fail("qparams", "{}: unknown point role '{}'", path, s);
}

const char* kind_name(QuantKind k) {
  switch (k) {
    case QuantKind::none: return "none";
    case QuantKind::uniform: return "uniform";
    case QuantKind::ptf: return "ptf";
    case QuantKind::log2: return "log2";
  }
  return "?";
}

QuantKind parse_kind(const std::string& s, const std::string& path) {
  for (QuantKind k : {QuantKind::none, QuantKind::uniform, QuantKind::ptf, QuantKind::log2})
    if (s == kind_name(k)) return k;
  fail("qparams", "{}: unknown quantizer kind '{}'", path, s);
}
}  // namespace

const char* qpoint_role_name(QPointRole r) {
  switch (r) {
    case QPointRole::activation: return "activation";
    case QPointRole::ln_input: return "ln_input";
    case QPointRole::softmax: return "softmax";
    case QPointRole::logits: return "logits";
    case QPointRole::weight: return "weight";
  }
  return "?";
}

nlohmann::json QuantConfig::to_json() const {
  return {{"weight_bits", weight_bits.name()}, {"act_bits", act_bits.name()},
          {"attn_bits", attn_bits},           {"ptf", ptf},
          {"lis", lis},                       {"observer", observer_kind_name(observer)},
          {"quant_input", quant_input}};
}

QuantConfig QuantConfig::from_json(const nlohmann::json& j) {
  QuantConfig c;
  c.weight_bits = parse_bit_type(j.at("weight_bits").get<std::string>());
  c.act_bits = parse_bit_type(j.at("act_bits").get<std::string>());
  c.attn_bits = j.at("attn_bits").get<int>();
  c.ptf = j.at("ptf").get<bool>();
  c.lis = j.at("lis").get<bool>();
  c.observer = parse_observer_kind(j.at("observer").get<std::string>());
  c.quant_input = j.value("quant_input", -1);
  return c;
}

std::string QuantConfig::label() const {
  return fmt::format("W{}A{} attn{}{}{} {}", weight_bits.bits, act_bits.bits, attn_bits,
                     ptf ? " PTF" : "", lis ? " LIS" : "", observer_kind_name(observer));
}

QuantSession::QuantSession(std::string model, QuantConfig cfg)
    : model_(std::move(model)), cfg_(cfg) {
  make_bit_type(cfg_.attn_bits, false);  // validates
  if (cfg_.lis && cfg_.attn_bits != 4)
    fail("quant", "Log-Int-Softmax produces 4-bit codes; attention bits must be 4, got {}",
         cfg_.attn_bits);
}

QuantParams* QuantSession::find(const std::string& name) {
  auto it = points_.find(name);
  return it == points_.end() || !it->second.ready ? nullptr : &it->second.params;
}

void QuantSession::point(const std::string& name, QPointRole role, float* x, int64_t rows,
                         int64_t C) {
  point(name, role, x, rows, C, nullptr);
}

void QuantSession::point(const std::string& name, QPointRole role, float* x, int64_t rows,
                         int64_t C, const double* exact) {
  if (mode_ == QuantMode::off) return;
  if (role == QPointRole::softmax && cfg_.lis) return;  // LIS quantizes the softmax itself
  if (mode_ == QuantMode::calibrate) {
    auto [it, fresh] = points_.try_emplace(name);
    Point& p = it->second;
    if (fresh) {
      p.role = role;
      p.channels = C;
      p.order = static_cast<int>(points_.size());
      ObserverOptions opt;
      opt.name = name;
      opt.bits = role == QPointRole::softmax ? make_bit_type(cfg_.attn_bits, false) : cfg_.act_bits;
      ObserverKind kind = cfg_.observer;
      if (role == QPointRole::ln_input && cfg_.ptf) {
        kind = ObserverKind::ptf;
        opt.per_channel = true;
      }
      p.observer = make_observer(kind, opt);
    } else if (p.channels != C) {
      fail("quant", "point '{}' saw {} channels, then {}", name, p.channels, C);
    }
    p.observer->observe(x, rows, C, last_batch_);
    if (stats_hook_) stats_hook_(name, role, x, x, rows, C);
    return;
  }
  const QuantParams& q = params(name);
  if (q.per_channel() && static_cast<int64_t>(q.scale.size()) != C)
    fail("quant", "point '{}' has {} channel scales but the tensor has {} channels", name,
         q.scale.size(), C);
  if (stats_hook_) stats_before_.assign(x, x + rows * C);
  if (exact && q.kind != QuantKind::log2)
    fake_quant_exact(exact, x, rows, C, q);
  else
    fake_quant(x, rows, C, q);
  if (hook_) hook_(name, x, rows, C);
  if (stats_hook_) stats_hook_(name, role, stats_before_.data(), x, rows, C);
}

void QuantSession::weight(const std::string& name, float* w, int64_t N, int64_t K) {
  if (mode_ == QuantMode::off) return;
  auto [it, fresh] = points_.try_emplace(name);
  Point& p = it->second;
  if (fresh || !p.ready) {
    p.role = QPointRole::weight;
    p.channels = N;
    p.order = static_cast<int>(points_.size());
    p.params = weight_params_per_channel(w, N, K, cfg_.weight_bits);
    p.ready = true;
  } else if (static_cast<int64_t>(p.params.scale.size()) != N) {
    fail("quant", "weight '{}' has {} output channels, the parameters {}", name, N,
         p.params.scale.size());
  }
  fake_quant_weight(w, N, K, p.params);
}

const QuantParams& QuantSession::params(const std::string& name) const {
  auto it = points_.find(name);
  if (it == points_.end() || !it->second.ready)
    fail("quant", "no parameters for quantization point '{}' of {} (calibrate first, or the "
         "params file is for another model or configuration)", name, model_);
  return it->second.params;
}

void QuantSession::finalize() {
  for (auto& [name, p] : points_) {
    if (p.ready) continue;
    if (!p.observer) fail("quant", "point '{}' has neither observer nor parameters", name);
    p.params = p.observer->params();
    p.ready = true;
    p.observer.reset();
  }
}

std::vector<std::string> QuantSession::names() const {
  std::vector<std::pair<int, std::string>> v;
  for (const auto& [name, p] : points_) v.emplace_back(p.order, name);
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (auto& [o, n] : v) out.push_back(n);
  return out;
}

nlohmann::json QuantSession::to_json() const {
  nlohmann::json pts = nlohmann::json::array();
  for (const std::string& name : names()) {
    const Point& p = points_.at(name);
    if (!p.ready) fail("quant", "point '{}' is not calibrated; cannot save", name);
    nlohmann::json j = {{"name", name},
                        {"role", qpoint_role_name(p.role)},
                        {"kind", kind_name(p.params.kind)},
                        {"bits", p.params.bits.name()},
                        {"channels", p.channels},
                        {"scale", p.params.scale},
                        {"zero_point", p.params.zero_point},
                        {"observed_min", p.params.observed_min},
                        {"observed_max", p.params.observed_max}};
    if (!p.params.alpha.empty()) j["alpha"] = p.params.alpha;
    if (p.role != QPointRole::weight)
      j["observer"] = p.params.kind == QuantKind::ptf ? "ptf" : observer_kind_name(cfg_.observer);
    pts.push_back(std::move(j));
  }
  return {{"format", kFormat}, {"version", kVersion}, {"model", model_},
          {"config", cfg_.to_json()}, {"points", std::move(pts)}};
}

QuantSession QuantSession::from_json(const nlohmann::json& j, const std::string& expected_model,
                                     const std::string& path) {
  try {
    if (!j.is_object() || j.value("format", "") != kFormat)
      fail("qparams", "{}: not a qvit quantization-parameter file", path);
    const int version = j.at("version").get<int>();
    if (version > kVersion)
      fail("qparams", "{}: version {} is newer than this qvit understands ({})", path, version,
           kVersion);
    const std::string model = j.at("model").get<std::string>();
    if (!expected_model.empty() && model != expected_model)
      fail("qparams", "{}: parameters are for model '{}', not '{}'", path, model, expected_model);
    QuantSession s(model, QuantConfig::from_json(j.at("config")));
    int order = 0;
    for (const auto& pj : j.at("points")) {
      const std::string name = pj.at("name").get<std::string>();
      Point p;
      p.role = parse_role(pj.at("role").get<std::string>(), path);
      p.channels = pj.at("channels").get<int64_t>();
      p.params.kind = parse_kind(pj.at("kind").get<std::string>(), path);
      p.params.bits = parse_bit_type(pj.at("bits").get<std::string>());
      p.params.scale = pj.at("scale").get<std::vector<float>>();
      p.params.zero_point = pj.at("zero_point").get<std::vector<float>>();
      if (pj.contains("alpha")) p.params.alpha = pj.at("alpha").get<std::vector<int32_t>>();
      p.params.observed_min = pj.value("observed_min", 0.0f);
      p.params.observed_max = pj.value("observed_max", 0.0f);
      const size_t n = p.params.scale.size();
      const size_t nz = p.params.zero_point.size();  // PTF shares one zero point
      if (n == 0 || (nz != n && nz != 1) || (n != 1 && static_cast<int64_t>(n) != p.channels))
        fail("qparams", "{}: point '{}' has {} scales and {} zero points for {} channels", path,
             name, n, p.params.zero_point.size(), p.channels);
      for (float sc : p.params.scale)
        if (!(sc > 0) || !std::isfinite(sc))
          fail("qparams", "{}: point '{}' has a non-positive or non-finite scale", path, name);
      for (float z : p.params.zero_point)  // the integer engine uses them as integer codes
        if (!std::isfinite(z) || z != std::nearbyint(z) || z < static_cast<float>(p.params.bits.qmin()) ||
            z > static_cast<float>(p.params.bits.qmax()))
          fail("qparams", "{}: point '{}' has zero point {}, expected an integer code in [{}, {}] ({})", path,
               name, z, p.params.bits.qmin(), p.params.bits.qmax(), p.params.bits.name());
      if (p.params.kind == QuantKind::ptf && p.params.alpha.size() != n)
        fail("qparams", "{}: PTF point '{}' needs one alpha per channel", path, name);
      p.ready = true;
      p.order = ++order;
      if (!s.points_.emplace(name, std::move(p)).second)
        fail("qparams", "{}: point '{}' appears twice", path, name);
    }
    s.mode_ = QuantMode::simulate;
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("qparams", "{}: malformed parameter file: {}", path, e.what());
  }
}

void QuantSession::save(const std::string& path) const {
  write_file_atomic(path, to_json().dump(1) + "\n");
}

QuantSession QuantSession::load(const std::string& path, const std::string& expected_model) {
  std::ifstream f(path);
  if (!f) fail("qparams", "{}: cannot open", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail("qparams", "{}: not valid JSON: {}", path, e.what());
  }
  return from_json(j, expected_model, path);
}

}  // namespace qvit
