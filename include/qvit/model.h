// Models: configurations (timm names), the registry of model families, weight checking and the
// forward interface. A family (ViT/DeiT in src/models/vit.cpp, Swin in src/models/swin.cpp) is one
// file plus one line in src/models/registry.cpp.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "qvit/image.h"
#include "qvit/io.h"
#include "qvit/quant_session.h"
#include "qvit/tensor.h"

namespace qvit {

struct ModelConfig {
  std::string name;    // timm name, e.g. "deit_tiny_patch16_224"
  std::string family;  // "vit" | "swin"
  int img_size = 224;
  int patch = 16;
  int in_chans = 3;
  int num_classes = 1000;
  int dim = 0;                  // ViT: width; Swin: width of stage 0
  int depth = 0;                // ViT: number of blocks
  int heads = 0;                // ViT: attention heads
  std::vector<int> depths;      // Swin: blocks per stage
  std::vector<int> stage_heads; // Swin: heads per stage
  int window = 7;               // Swin
  int mlp_ratio = 4;
  float ln_eps = 1e-6f;
  // Evaluation preprocessing defaults.
  float crop_pct = 0.875f;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  Interpolation interpolation = Interpolation::bicubic;

  PreprocessConfig preprocess() const;  // resize_short = floor(img_size / crop_pct)
};

// Looks a model up by timm name or short alias ("deit_tiny", "vit_base", "swin_t", ...).
// Unknown names throw "[model] unknown model 'x' (known: ...)".
const ModelConfig& model_config(const std::string& name);
std::vector<std::string> model_names();

// One expected tensor of a checkpoint.
struct WeightSpec {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  bool optional = false;  // may be absent (e.g. Swin's relative_position_index buffers)
};

// Every tensor a model of this config reads, in checkpoint order.
std::vector<WeightSpec> weight_specs(const ModelConfig& cfg);

// Checks presence, dtype and shape of every expected tensor and reports unexpected ones:
// "[model] FILE: missing tensor 'blocks.3.mlp.fc1.weight' (and 2 more)",
// "[model] FILE: tensor 'head.weight' has shape [1000,384], expected [1000,192]",
// "[model] FILE: unexpected tensors: 'foo', 'bar' (is this a checkpoint of another model?)".
// The family first renames keys of other known checkpoint layouts in place (e.g. Swin's older
// timm layout), which is why `weights` is modified.
void check_weights(const ModelConfig& cfg, WeightFile& weights);

// Seeded synthetic weights for tests and for running a model without a checkpoint
// ("--weights random:SEED"). Values come from a counter-based hash of (seed, tensor name, index)
// so tools/synthetic_weights.py reproduces them bit-exactly:
//   u = hash32(index, seed ^ fnv1a32(name)) / 2^32 * 2 - 1   (in double, then float)
//   LayerNorm weights 1 + 0.2u; biases 0.05u; tokens / position embeddings / relative position
//   tables 0.5u; other weights u * sqrt(3 / fan_in) with fan_in = numel / shape[0].
WeightFile synthetic_weights(const ModelConfig& cfg, uint32_t seed);
// A synthetic model input: 2u with the tensor name "input" (tools/synthetic_weights.py).
Tensor synthetic_input(const Shape& shape, uint32_t seed);

class Model {
 public:
  explicit Model(ModelConfig cfg) : cfg_(std::move(cfg)) {}
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  // images [B, 3, img_size, img_size], normalised. Returns logits [B, num_classes].
  // Work buffers are sized on the first call for a batch size and reused.
  virtual Tensor forward(const Tensor& images) = 0;
  // Intermediate activations for tests: after each ViT block / Swin stage the model stores a
  // copy into `taps` when it is non-null (name -> tensor), e.g. "blocks.3", "layers.1".
  void set_taps(WeightMap* taps) { taps_ = taps; }

  // Attaches a quantization session (nullptr: plain FP32). The model calls it at every
  // quantization point (FQ-ViT's placement); in simulate mode its weights are fake-quantized.
  // The session's mode may change between forwards; the model re-prepares its weights when it
  // does.
  void set_quant(QuantSession* q) { quant_ = q; }
  QuantSession* quant() const { return quant_; }
  // Whether FQ-ViT quantizes this model's input image by default (DeiT, Swin: yes; ViT: no).
  bool quantizes_input() const;
  // Rebuilds the weights for the session's current mode if it changed (fake-quantized weights
  // in simulate mode, registering their parameters in the session). forward() calls it too.
  void sync_quant() {
    if (weights_stale()) prepare_weights();
  }

 protected:
  void tap(const std::string& name, const float* data, const Shape& shape);
  // A quantization point (no-op without a session).
  void qpoint(const std::string& name, QPointRole role, float* x, int64_t rows, int64_t C) {
    if (quant_) quant_->point(name, role, x, rows, C);
  }
  bool quant_active() const { return quant_ && quant_->mode() != QuantMode::off; }
  bool simulating() const { return quant_ && quant_->mode() == QuantMode::simulate; }
  // Builds the compute weights from the originals, fake-quantized when simulating.
  virtual void prepare_weights() = 0;
  // True when the weights must be (re)built for the current session mode; records the new mode.
  bool weights_stale();
  ModelConfig cfg_;
  WeightMap* taps_ = nullptr;
  QuantSession* quant_ = nullptr;

 private:
  int prepared_for_ = -1;  // QuantMode the weights were prepared for (-1: never)
  const QuantSession* prepared_session_ = nullptr;
};

// Checks the weights (check_weights) and builds the model.
std::unique_ptr<Model> create_model(const ModelConfig& cfg, WeightFile weights);
// Loads `weights` (a .safetensors/.pth path, or "random:SEED") and checks them (check_weights).
WeightFile load_checked_weights(const ModelConfig& cfg, const std::string& weights);
// Loads `weights` (a .safetensors/.pth path, or "random:SEED") and builds the model.
std::unique_ptr<Model> load_model(const std::string& name, const std::string& weights);

}  // namespace qvit
