// A Linear layer that keeps its original weight, so the model can rebuild it from a
// fake-quantized copy when a quantization session simulates (shared by the model families).
#pragma once

#include <string>
#include <vector>

#include "qvit/qkernels.h"
#include "qvit/kernels.h"
#include "qvit/quant_session.h"
#include "qvit/tensor.h"

namespace qvit {

struct QLinear {
  std::string name;  // e.g. "blocks.0.attn.qkv"; the weight's quantization point is NAME.weight
  Tensor weight, bias;
  LinearF32 op;
  // While simulating, with `codes` true: the weight's integer codes (int8, packed) and their
  // per-row scales, for the exact simulation (models/sim_exact.h).
  QWeight codes;
  std::vector<float> code_scale;

  // Builds `op` from the original weight, or from a fake-quantized copy while `q` simulates.
  void prepare(QuantSession* q, bool with_codes = false) {
    codes = QWeight();
    code_scale.clear();
    if (!q || q->mode() != QuantMode::simulate) {
      op = LinearF32(weight, bias);
      return;
    }
    const int64_t N = weight.dim(0), K = weight.numel() / weight.dim(0);
    Tensor w = weight.clone();
    q->weight(name + ".weight", w.f32(), N, K);
    op = LinearF32(w, bias);
    if (!with_codes) return;
    const QuantParams& p = q->params(name + ".weight");
    std::vector<int8_t> c(static_cast<size_t>(N * K));
    weight_codes(weight.f32(), N, K, p, c.data(), name + ".weight");
    for (int64_t n = 0; n < N; ++n) code_scale.push_back(p.scale.size() == 1 ? p.scale[0] : p.scale[n]);
    codes = QWeight::pack(c.data(), N, K);
  }
};

}  // namespace qvit
