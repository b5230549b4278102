// Weight files. Reads timm-style state dicts from .safetensors and PyTorch .pth (zip + pickle)
// without libtorch. The pickle reader implements only the opcodes and globals a state dict needs
// and rejects every other global: loading never executes anything.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "qvit/tensor.h"

namespace qvit {

// Tensors by name. Floating tensors (F32, F16, BF16, F64) are converted to f32; integer tensors
// (I64, I32, I8, U8) keep their type (I64 e.g. for Swin's relative_position_index buffers).
using WeightMap = std::map<std::string, Tensor>;

struct WeightFile {
  WeightMap tensors;
  std::string path;
  std::string format;         // "safetensors" | "pth"
  nlohmann::json metadata;    // safetensors __metadata__ (object) or {} for .pth
};

WeightFile load_safetensors(const std::string& path);
// .pth saved by torch.save (zip format). Accepts a bare state_dict, {"model": sd},
// {"state_dict": sd} and {"model_ema": sd}-style wrappers (first of model, state_dict, module).
WeightFile load_pth(const std::string& path);
// Chooses the format from the file content (zip magic -> pth, else safetensors).
WeightFile load_weights(const std::string& path);

// Writes f32/int tensors as .safetensors (to path.tmp, then renamed).
void save_safetensors(const std::string& path, const WeightMap& tensors,
                      const nlohmann::json& metadata = nlohmann::json::object());

// Writes `bytes` to `path` atomically: a temporary file in the same folder, then rename.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace qvit
