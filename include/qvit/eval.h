// ImageNet-style evaluation: runs a model over a dataset through the BatchLoader and collects
// top-1/top-5 accuracy and per-image top-5 predictions.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qvit/dataset.h"
#include "qvit/model.h"

namespace qvit {

struct ImageResult {
  size_t index = 0;  // into Dataset::samples
  int label = -1;
  std::array<int, 5> top5{};
  std::array<float, 5> top5_logits{};
};

struct EvalResult {
  size_t images = 0;    // evaluated
  size_t labelled = 0;  // with a known label (accuracy is over these)
  size_t top1 = 0, top5 = 0;
  double seconds = 0;   // wall time, loading included
  std::vector<ImageResult> per_image;

  double top1_pct() const { return labelled ? 100.0 * top1 / labelled : 0.0; }
  double top5_pct() const { return labelled ? 100.0 * top5 / labelled : 0.0; }
  double images_per_second() const { return seconds > 0 ? images / seconds : 0.0; }
};

struct EvalOptions {
  int batch = 32;
  int workers = 2;  // decoding threads
  // Called after every batch with (done, total).
  std::function<void(size_t, size_t)> on_progress;
};

// Indices of the k largest logits, largest first (ties: lower index first).
std::array<int, 5> top5_indices(const float* logits, int num_classes);

EvalResult evaluate(Model& model, const Dataset& ds, const std::vector<size_t>& order,
                    const PreprocessConfig& pre, const EvalOptions& opt);

// {"model", "images", "top1", "top5", ..., "per_image": [{"path","label","top5","logits"}]}
nlohmann::json eval_json(const EvalResult& r, const Dataset& ds);

// Percentage of images whose top-1 class is the same in a and b (same images, same order).
double top1_agreement(const EvalResult& a, const EvalResult& b);

// FQ-ViT's calibration protocol: `iters` batches of `batch` images drawn with `seed` from the
// calibration set, evaluation transform, the full-precision model observed at every
// quantization point ("parallel" calibration); the last batch runs the OMSE/PTF searches.
struct CalibOptions {
  int batch = 100;
  int iters = 10;
  uint64_t seed = 0;
  int workers = 2;
  std::function<void(size_t, size_t)> on_progress;
};

// The calibration images: batch * iters indices drawn with the seed (error if the set has fewer).
std::vector<size_t> calibration_indices(const Dataset& ds, const CalibOptions& opt);
// The images of `ds` not in `exclude`, in dataset order (the held-out evaluation split).
std::vector<size_t> complement_indices(const Dataset& ds, const std::vector<size_t>& exclude);

// Runs calibration and leaves the session attached to the model, in simulate mode, with the
// model's weights fake-quantized.
void calibrate(Model& model, QuantSession& session, const Dataset& ds,
               const std::vector<size_t>& indices, const PreprocessConfig& pre,
               const CalibOptions& opt);

}  // namespace qvit
