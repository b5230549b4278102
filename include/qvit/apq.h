// PTQ4ViT's framework and the three search methods of the APQ-ViT issue (base, ptq4vit, apq) for
// ViT/DeiT. What is quantized (PTQ4ViT, survey §2.1): the input and weight of every Linear
// (qkv, proj, fc1, fc2, head), both operands of both attention matmuls (q·kᵀ and softmax·v), the
// patch-embedding weights (its input image stays float). LayerNorm, softmax, GELU, residual adds
// and biases are float. Every quantizer is simulated (quantize -> dequantize); see apq_quant.h
// and apq_mpq.h for the arithmetic. Calibration = search of every interval over a candidate grid
// (docs/quantization.md, "APQ-ViT"), layer by layer in forward order.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qvit/apq_metric.h"
#include "qvit/apq_mpq.h"
#include "qvit/apq_quant.h"
#include "qvit/model.h"

namespace qvit::apq {

enum class Method { base, ptq4vit, apq };
enum class SoftmaxQuant { uniform, twin, mpq };  // post-softmax (matmul2 operand A)
enum class GeluQuant { uniform, twin };          // post-GELU (fc2 input)
enum class MetricKind { cosine, hessian, bbc };
enum class Granularity { tensor, channel };      // weights: tensor = 1 interval (qkv: 3), channel = per row
enum class BlockScope { block, subblock };       // BBC's "block" (decision 1)
enum class MpqSelect { metric, weighted };       // MPQ parameters chosen by the method's metric or x^gamma MSE

// Every knob; `defaults(method)` gives each method's documented defaults (docs/quantization.md).
struct ApqConfig {
  Method method = Method::apq;
  int wbits = 8, abits = 8;
  SoftmaxQuant softmax = SoftmaxQuant::mpq;
  GeluQuant gelu = GeluQuant::twin;
  TwinSoftmaxMode twin_mode = TwinSoftmaxMode::disjoint;
  MetricKind metric = MetricKind::bbc;
  Granularity weights = Granularity::tensor;
  Granularity patch_weights = Granularity::channel;  // patch-embedding conv (PTQ4ViT: per channel)
  BlockScope scope = BlockScope::block;    // decision 1
  bool quantized_inputs = false;           // decision 2: block inputs from the quantized model (else FP)
  bool calibrated_upstream = true;         // decision 3: earlier layers of the block quantized during a search
  bool use_labels = false;                 // decision 4: CE with the true labels (else FP arg-max pseudo-labels)
  double keep = 0.5;                       // decision 5: BBC kept fraction of the per-element terms
  BbcRank rank = BbcRank::term;            // decision 5: what ranks the terms
  int grid = 100;                          // decision 6: candidates (alpha + i (beta-alpha)/grid) x initial, i < grid
  float alpha = 0.01f, beta = 1.2f;
  int rounds = 3;                          // alternating weight / input (A / B) rounds
  int stride = 1;                          // coarse-to-fine: every stride-th candidate, then the neighbours of the best
  int refine = 0;                          // apq: 1. bbc: extra passes over each block, every other quantizer calibrated
  int refine_window = 0;                   // >0: a refinement search tries only the current value and the grid within +-window
  MpqSelect mpq_select = MpqSelect::metric;
  float mpq_gamma = 1.0f;
  int calib_images = 32;                   // decision 7
  uint64_t seed = 0;

  static ApqConfig defaults(Method m);
  // The defaults for a bit width: as defaults(m), with the bits set and, for apq, the post-softmax
  // quantizer chosen by the activation bits (mpq up to 5 bits, twin from 6: measured on the val
  // split, docs/quantization.md "Open decisions").
  static ApqConfig defaults(Method m, int wbits, int abits);
  std::string label() const;  // "apq W4A4"
  nlohmann::json to_json() const;
  static ApqConfig from_json(const nlohmann::json& j);  // missing keys keep the method's defaults (refine: 0)
  void validate() const;                                 // bit widths, grid, keep, ... (clear errors)
};

Method parse_method(const std::string& s);  // "base" | "ptq4vit" | "apq"
const char* method_name(Method m);

// The calibrated intervals of one quantized layer.
//   Linear  (patch_embed.proj, blocks.N.attn.qkv|proj, blocks.N.mlp.fc1|fc2, head):
//     w = weight intervals (1, 3 for qkv per tensor, or one per output channel);
//     a = input interval (fc2 with twin GELU: the positive-range interval; patch_embed: unused).
//   Matmul  (blocks.N.attn.matmul1: a = q, b = k; blocks.N.attn.matmul2: a = softmax, b = v):
//     softmax operand: uniform -> a; twin -> split_exp; mpq -> mpq.
struct LayerParams {
  std::vector<float> w;
  float a = 0.0f, b = 0.0f;
  int split_exp = -1;
  MpqParams mpq;
  bool operator==(const LayerParams&) const = default;  // every field, floats by value
};

struct ApqParams {
  std::string model;
  ApqConfig config;
  std::map<std::string, LayerParams> layers;
  std::vector<std::string> calib_images;  // paths, for the record
  double seconds = 0.0;                   // calibration wall time

  // {"format":"qvit-apq-params","version":1,"model":..,"config":{..},"layers":{..}}
  nlohmann::json to_json() const;
  static ApqParams from_json(const nlohmann::json& j, const std::string& path);
  void save(const std::string& path) const;  // atomic
  static ApqParams load(const std::string& path);
  // Every layer of `cfg` present with the right number of intervals, all > 0: else an error
  // naming `path` and the layer ("... was calibrated for deit_small", "... has 192 weight
  // intervals, expected 1").
  void check(const ModelConfig& cfg, const std::string& path) const;
};

// The quantizable layers of a ViT/DeiT in forward (= calibration) order.
std::vector<std::string> layer_names(const ModelConfig& cfg);

struct CalibProgress {
  std::function<void(size_t done, size_t total, const std::string& layer)> on_layer;
};

// Searches every interval on `images` [B,3,H,W] (normalised). `labels` are used when
// cfg.use_labels (one per image). ViT/DeiT only. Deterministic for any thread count.
ApqParams calibrate(const ModelConfig& mcfg, const WeightMap& weights, const Tensor& images,
                    const std::vector<int>& labels, const ApqConfig& cfg,
                    const CalibProgress& progress = {});

// A model that runs the quantized simulation with `params` (works with evaluate()).
std::unique_ptr<Model> create_model(const ModelConfig& mcfg, const WeightMap& weights,
                                    const ApqParams& params);

}  // namespace qvit::apq
