// Quantization points and the calibration/simulation session — FQ-ViT's QAct idea, written once.
// Model code calls session->point("blocks.3.attn.qkv", role, x, rows, C) wherever FQ-ViT puts a
// quantizer; it does not know which observer or quantizer is active. The session decides:
//   calibrate: every point's observer sees the FP activation (x unchanged), FQ-ViT's "parallel"
//              calibration; the last batch triggers the OMSE/PTF searches.
//   simulate:  x is quantized -> dequantized in place with the calibrated parameters.
// Parameters are saved to / loaded from a versioned JSON file (ncnn's table idea).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qvit/quant.h"

namespace qvit {

// FQ-ViT's configuration knobs (its CLI flags --ptf, --lis, --quant-method, bit widths).
struct QuantConfig {
  BitType weight_bits{8, true};
  BitType act_bits{8, false};
  int attn_bits = 8;  // post-softmax: uniform bits; with lis, the log2 code bits (4)
  bool ptf = false;   // Power-of-Two Factor quantizers on LayerNorm inputs + integer LayerNorm
  bool lis = false;   // Log-Int-Softmax
  ObserverKind observer = ObserverKind::minmax;
  // Quantize the input image (FQ-ViT: DeiT and Swin yes, ViT no). -1: the model's default.
  int quant_input = -1;
  nlohmann::json to_json() const;
  static QuantConfig from_json(const nlohmann::json& j);
  std::string label() const;  // e.g. "W8A8 attn4 PTF LIS omse"
};

enum class QPointRole : uint8_t {
  activation,  // uniform per tensor, the configured observer
  ln_input,    // feeds a LayerNorm: PTF per channel when cfg.ptf, else like activation
  softmax,     // post-softmax probabilities: uniform attn_bits (skipped with lis: LIS quantizes)
  logits,      // attention logits (the LIS input scale): like activation
  weight,      // a Linear/Conv weight [N, K]: symmetric per output channel, MinMax
};
const char* qpoint_role_name(QPointRole r);

enum class QuantMode : uint8_t { off, calibrate, simulate };

class QuantSession {
 public:
  QuantSession(std::string model, QuantConfig cfg);

  const std::string& model() const { return model_; }
  const QuantConfig& config() const { return cfg_; }
  QuantMode mode() const { return mode_; }
  void set_mode(QuantMode m) { mode_ = m; }
  // Calibration: the next forward is the last batch (OMSE/PTF search on it).
  void set_last_batch(bool last) { last_batch_ = last; }

  // A quantization point: x [rows, C]. calibrate -> observe; simulate -> fake-quantize in place.
  void point(const std::string& name, QPointRole role, float* x, int64_t rows, int64_t C);
  // The same with the exact values: simulate mode quantizes `exact` (rounded in double, half to
  // even) instead of x and writes the fake-quantized values to x; the hooks see x as given
  // (its float copy of exact) and the result. Other modes use x.
  void point(const std::string& name, QPointRole role, float* x, int64_t rows, int64_t C,
             const double* exact);
  // Fake-quantizes a weight w [N, K] in place (symmetric, per output channel). Uses the stored
  // parameters when the session has them (loaded from a file; N must match), else computes and
  // stores them. A no-op when the mode is off.
  void weight(const std::string& name, float* w, int64_t N, int64_t K);
  // Calibrated parameters of a point (simulate mode; throws "[quant] no parameters for 'x'").
  const QuantParams& params(const std::string& name) const;
  bool has(const std::string& name) const { return points_.count(name) != 0; }
  // Simulate mode: called with every point's fake-quantized values (tests compare them with the
  // integer engine's stages).
  using PointHook = std::function<void(const std::string& name, const float* x, int64_t rows, int64_t C)>;
  void set_point_hook(PointHook h) { hook_ = std::move(h); }
  // Statistics sink (qvit report): calibrate and simulate modes call it at every visited point
  // with the values before and after the point (`after == before` when calibrating: x is not
  // changed). Weights are not points; LIS softmax is skipped like everywhere else.
  using StatsHook = std::function<void(const std::string& name, QPointRole role,
                                       const float* before, const float* after, int64_t rows,
                                       int64_t C)>;
  void set_stats_hook(StatsHook h) { stats_hook_ = std::move(h); }
  // Fixes every point's parameters from its observer (end of calibration).
  void finalize();
  size_t size() const { return points_.size(); }
  std::vector<std::string> names() const;  // in first-seen (forward) order

  // {"format":"qvit-qparams","version":1,"model":..,"config":{..},"points":[{name, role, ...}]}
  nlohmann::json to_json() const;
  // Validates the format, version and model name; `path` names the file in errors.
  static QuantSession from_json(const nlohmann::json& j, const std::string& expected_model,
                                const std::string& path);
  void save(const std::string& path) const;  // atomic
  static QuantSession load(const std::string& path, const std::string& expected_model);

 private:
  struct Point {
    QPointRole role = QPointRole::activation;
    int64_t channels = 0;
    std::unique_ptr<Observer> observer;
    QuantParams params;
    bool ready = false;
    int order = 0;
  };
  QuantParams* find(const std::string& name);
  std::string model_;
  QuantConfig cfg_;
  QuantMode mode_ = QuantMode::off;
  bool last_batch_ = false;
  std::map<std::string, Point> points_;
  PointHook hook_;
  StatsHook stats_hook_;
  std::vector<float> stats_before_;  // copy of x before fake-quant for stats_hook_
};

}  // namespace qvit
