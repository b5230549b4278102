// Quantization flags shared by eval, calibrate and fqvit-table (FQ-ViT's flag names), and the
// step that turns them into a calibrated or loaded QuantSession.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "qvit/dataset.h"
#include "qvit/eval.h"
#include "qvit/model.h"
#include "qvit/quant_session.h"

namespace qvit::cli {

struct QuantArgs {
  bool quant = false, ptf = false, lis = false;
  std::string method = "minmax";
  std::string w_bits = "int8", a_bits = "uint8";
  int attn_bits = 0;  // 0: 8, or 4 with --lis
  std::string calib_data, calib_labels, qparams;
  int calib_batch = 100, calib_iter = 10;
  uint64_t seed = 0;
  int input_quant = -1;

  // Adds the flags; `with_switch`: also --quant (eval), else quantization is implied.
  void add_to(CLI::App* app, bool with_switch);
  QuantConfig config() const;
};

// Calibrates on --calib-data (progress on stderr) and returns the session, left attached to the
// model in simulate mode. `calib_indices` receives the images used.
std::unique_ptr<QuantSession> calibrate_from_args(Model& model, const QuantArgs& q,
                                                  const PreprocessConfig& pre, int workers,
                                                  const Dataset& calib_set,
                                                  std::vector<size_t>* calib_indices);

}  // namespace qvit::cli
