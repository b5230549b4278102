// Internal: the PTQ4ViT-style simulated ViT/DeiT block, shared by the calibration search
// (src/apq/calibrate.cpp) and the quantized model (src/apq/qsim.cpp).
//
// A block is run as stages; stage k computes layer k's output and the float ops after it:
//   prep : ln1 = LN1(x_in)
//   qkv  : qkv = Lin(ln1)
//   m1   : scores = scale * Q(q) Q(k)^T ; probs = softmax(scores)
//   m2   : ctx = Qs(probs) Q(v)                (heads merged)
//   proj : proj = Lin(ctx); x_mid = x_in + proj; ln2 = LN2(x_mid)
//   fc1  : h = Lin(ln2); g = GELU(h)
//   fc2  : fc2 = Lin_gelu(g); x_out = x_mid + fc2
// where Lin/Q use the layer's LayerParams when given, and are float when not.
#pragma once

#include <string>
#include <vector>

#include "qvit/apq.h"
#include "qvit/tensor.h"

namespace qvit::apq::detail {

enum Stage { kQkv = 0, kMatmul1, kMatmul2, kProj, kFc1, kFc2, kStages };
extern const char* const kStageNames[kStages];  // "attn.qkv", ..., "mlp.fc2"

struct Dims {
  int64_t B = 0, T = 0, np = 0, D = 0, H = 0, Dh = 0, hidden = 0, classes = 0, patch_k = 0;
  int64_t R() const { return B * T; }
  float scale = 1.0f, eps = 1e-6f;
};
Dims vit_dims(const ModelConfig& cfg, int64_t batch);

struct BlockWeights {
  const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
  const float *qkv_w, *qkv_b, *proj_w, *proj_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};
BlockWeights block_weights(const WeightMap& w, int block);
const Tensor& weight(const WeightMap& w, const std::string& name);

struct BlockState {
  const float* x_in = nullptr;
  Tensor ln1, qkv, scores, probs, ctx, proj, x_mid, ln2, h, g, fc2, x_out;
  void allocate(const Dims& d);
  void copy_from(const BlockState& o);  // every buffer (x_in pointer too)
};

// Per-stage quantizer parameters (nullptr = float).
struct BlockQuant {
  const LayerParams* p[kStages] = {};
};

// Scratch for quantized copies of operands.
struct Scratch {
  Tensor xq, wq, qkvq, pq;
  void allocate(const Dims& d);
};

// ---- fake quantizers (parallel, deterministic) ----
void fq_sym(const float* x, float* out, int64_t n, float interval, int bits);
void fq_gelu(const float* x, float* out, int64_t n, float pos_interval, int bits);
void fq_softmax(const ApqConfig& c, const LayerParams& p, const float* x, float* out, int64_t n);
// Weight [rows, cols] with intervals.size() row groups.
void fq_weight(const float* w, float* out, int64_t rows, int64_t cols, const std::vector<float>& iv, int bits);
// Input quantizer of a Linear stage (fc2 with twin GELU uses the GELU quantizer).
void fq_linear_input(const ApqConfig& c, bool gelu_input, const LayerParams& p, const float* x,
                     float* out, int64_t n);

// y[M,N] = x[M,K] w[N,K]^T + b (b may be null). Parallel over fixed row chunks.
void linear_nt(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t N, int64_t K);
// Operand copies for the matmuls: q/k (matmul1) or v (matmul2) of qkv [R, 3D] quantized into qkvq.
void quant_qkv_part(const float* qkv, float* qkvq, const Dims& d, int part, float interval, int bits);

// Runs stages [from, kStages) of block `bw` (from == kQkv also runs prep), reading earlier
// stages' outputs from `s`. Stops after stage `last` (inclusive).
void run_stages(const ApqConfig& c, const Dims& d, const BlockWeights& bw, const BlockQuant& q,
                BlockState& s, Scratch& sc, int from, int last = kFc2);
// The post-ops of stage k after its output was written (softmax, residual, LN, GELU).
void stage_post(const Dims& d, const BlockWeights& bw, BlockState& s, int k);

// Patch embedding + class token + position embedding: x [B*T, D]. `pw` = (quantized) weight.
void embed(const Dims& d, const WeightMap& w, const float* patch_out, float* x);
// Final LayerNorm of the class tokens: out [B, D].
void final_norm_cls(const Dims& d, const WeightMap& w, const float* x, float* out);

}  // namespace qvit::apq::detail
