// The integer inference engine: a model calibrated with FQ-ViT parameters (a QuantSession) is
// converted to integer weights and integer-only parameters, written as a .qvit file, and run with
// integer kernels (uint8 activations with zero points, int8 per-channel weights, int32
// accumulation, dyadic requantization, FQ-ViT's integer LayerNorm on PTF codes, LIS attention with
// 4-bit log2 codes and attention x V as shifts). The arithmetic and the few float steps are listed
// in docs/quantization.md, "Integer engine". Supports ViT/DeiT; errors are "[engine] ...".
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "qvit/model.h"
#include "qvit/quant_session.h"
#include "qvit/qvit_file.h"

namespace qvit {

inline constexpr const char* kIntModelFormat = "qvit-int-vit";
inline constexpr int kIntModelVersion = 2;  // 2: float biases (1: int32 at 2^-8 of the accumulator)

// Where the converted model came from (stored in the metadata, for reports).
struct ConvertSource {
  std::string weights;  // e.g. the weights path or "random:0"
  std::string qparams;  // the qparams path
};

// Builds the integer model of `cfg` from float `weights` (already checked) and calibrated FQ-ViT
// parameters. Throws "[engine] ..." when the parameters do not belong to these weights (missing
// points, channel counts, weight scales that differ from the weights' own), or use a
// configuration the engine cannot run (e.g. no LIS, bits above 8, Swin).
QvitWriter convert_to_int(const ModelConfig& cfg, const WeightFile& weights,
                          const QuantSession& qparams, const ConvertSource& src);
// Loads the model and parameters from files and writes the .qvit file (atomically).
void convert_files(const std::string& model, const std::string& weights, const std::string& qparams,
                   const std::string& out_path);

// One integer stage's output, for tests and diagnostics: `codes` [rows, C] with dequantized value
// (code - zero) * scale[c] (scale has 1 or C entries). The hook may modify the codes in place (a
// test feeds the simulation's codes to the next stage this way). Names are the quantization
// points of the simulation: "embed.patch", "blocks.3.attn.qkv", "norm.out", "head.out", ...
struct StageView {
  std::string name;
  uint8_t* codes = nullptr;
  int64_t rows = 0, C = 0;
  const float* scale = nullptr;
  int64_t nscale = 1;
  int32_t zero = 0;
  int32_t qmax = 255;  // codes are in [0, qmax]
};
using StageHook = std::function<void(const StageView&)>;

// A Model that runs a converted file. forward() returns the logits as the simulation does:
// dequantized codes of the head's output quantizer.
class IntModel : public Model {
 public:
  using Model::Model;
  // With a hook set, the final LayerNorm runs on every token (not only the class tokens) so
  // "norm.in"/"norm.out" cover the same rows as the simulation's.
  virtual void set_stage_hook(StageHook hook) = 0;
  virtual const QuantConfig& quant_config() const = 0;
};

// Opens and validates a .qvit file (magic, version, checksums, metadata, every tensor's shape).
std::unique_ptr<IntModel> load_int_model(const std::string& path);
std::unique_ptr<IntModel> load_int_model(const QvitFile& file);

}  // namespace qvit
