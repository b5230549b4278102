// Weight files. Reads timm-style state dicts from .safetensors and PyTorch .pth (zip + pickle)
// without libtorch. The pickle reader implements only the opcodes and globals a state dict needs
// and rejects every other global: loading never executes anything. Every problem (missing file,
// truncation, malformed header or archive, bad offsets) is a qvit::Error with a one-line message
// "[io|safetensors|pth] PATH: ..."; the readers bounds-check all input and are safe to fuzz.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "qvit/tensor.h"

namespace qvit {

// Tensors by name. Floating tensors (F32, F16, BF16, F64) are converted to f32; integer tensors
// (I64, I32, I8, U8) keep their type (I64 e.g. for Swin's relative_position_index buffers).
using WeightMap = std::map<std::string, Tensor>;

struct WeightFile {
  WeightMap tensors;
  std::string path;
  std::string format;       // "safetensors" | "pth"
  nlohmann::json metadata;  // safetensors __metadata__ (object) or {} for .pth
};

// .safetensors (dtypes F32 F16 BF16 F64 I64 I32 I8 U8). The file is memory-mapped, so each
// tensor is copied once. __metadata__ (str -> str) goes to WeightFile::metadata.
WeightFile load_safetensors(const std::string& path);
// .pth saved by torch.save (zip format, torch >= 1.6; stored or deflated entries, ZIP64). Accepts
// a bare state_dict or the wrappers {"model": sd}, {"state_dict": sd}, {"module": sd} (the first
// present wins); other entries (epoch, optimizer state, ...) are ignored and non-tensor values
// inside the state dict are skipped. Views (storage offsets, strides) are copied contiguous.
// The legacy pre-1.6 format is rejected with a message saying how to re-save it.
WeightFile load_pth(const std::string& path);
// Chooses the format from the file content (zip magic -> pth, else safetensors).
WeightFile load_weights(const std::string& path);

// Writes f32/int tensors as .safetensors via write-to-temporary-then-rename; on failure nothing
// is left behind. Metadata must be an object of strings (the format stores str -> str).
void save_safetensors(const std::string& path, const WeightMap& tensors,
                      const nlohmann::json& metadata = nlohmann::json::object());

// Writes `bytes` to `path` atomically: a uniquely named temporary file in the same folder,
// fsync, then rename over `path`. On failure the temporary is removed and `path` is untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace qvit
