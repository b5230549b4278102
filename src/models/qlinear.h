// A Linear layer that keeps its original weight, so the model can rebuild it from a
// fake-quantized copy when a quantization session simulates (shared by the model families).
#pragma once

#include <string>

#include "qvit/kernels.h"
#include "qvit/quant_session.h"
#include "qvit/tensor.h"

namespace qvit {

struct QLinear {
  std::string name;  // e.g. "blocks.0.attn.qkv"; the weight's quantization point is NAME.weight
  Tensor weight, bias;
  LinearF32 op;

  // Builds `op` from the original weight, or from a fake-quantized copy while `q` simulates.
  void prepare(QuantSession* q) {
    if (!q || q->mode() != QuantMode::simulate) {
      op = LinearF32(weight, bias);
      return;
    }
    Tensor w = weight.clone();
    q->weight(name + ".weight", w.f32(), w.dim(0), w.numel() / w.dim(0));
    op = LinearF32(w, bias);
  }
};

}  // namespace qvit
