// Flags of the PTQ4ViT/APQ-ViT commands (apq-calibrate, apq-table, eval --method) and helpers
// shared by them: drawing the calibration images and running a calibration with progress.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "qvit/apq.h"
#include "qvit/dataset.h"

namespace qvit::cli {

struct ApqArgs {
  std::string method = "apq";
  int wbits = 8, abits = 8, calib_images = 32;
  uint64_t seed = 0;
  std::vector<std::string> sets;  // KEY=VALUE overrides of the method's defaults

  void add_to(CLI::App* app);
  apq::ApqConfig config() const;  // validated
};

apq::ApqConfig apq_config(const std::string& method, int wbits, int abits, int calib_images, uint64_t seed,
                          const std::vector<std::string>& sets);

struct CalibSet {
  std::vector<size_t> indices;  // into the dataset
  std::vector<std::string> paths;
  Tensor images;                // [n, 3, H, W], evaluation transform
  std::vector<int> labels;
};
// `count` images drawn with `seed` (sample_indices), preprocessed like evaluation.
CalibSet load_calib_set(const Dataset& ds, int count, uint64_t seed, const ModelConfig& cfg, int workers);

apq::ApqParams run_apq_calibration(const ModelConfig& cfg, const WeightMap& w, const CalibSet& cs,
                                   const apq::ApqConfig& c);

}  // namespace qvit::cli
