// Swin window attention with FQ-ViT's quantization points (swin_quant.py WindowAttention), used by
// src/models/swin.cpp while a quantization session is active (calibration or simulation).
#pragma once

#include <cstdint>
#include <string>

#include "qvit/quant_session.h"

namespace qvit {

struct SwinAttentionArgs {
  int64_t batch_windows = 0;  // B * windows; windows batch-major (index b * windows + w)
  int64_t windows = 0;        // windows per image: mask[w] belongs to batch window b * windows + w
  int64_t tokens = 0;         // N = window * window
  int64_t heads = 0, head_dim = 0;
  const float* table = nullptr;    // relative_position_bias_table [table_rows, heads] (FP)
  int64_t table_rows = 0;          // (2 * window - 1)^2
  const int64_t* index = nullptr;  // relative position index [N * N] into the table rows
  const float* mask = nullptr;     // shifted-window mask [windows, N, N] (0 / -100) or nullptr
};

// qkv [batch_windows * N, 3C] is the qkv Linear's output; it is fake-quantized in place. scores
// is a workspace of batch_windows * heads * N * N floats. Writes the attention context
// [batch_windows * N, C] (heads concatenated) to out, after its quantization point. Points, with
// prefix = "layers.{i}.blocks.{j}.attn.":
//   qkv      (FQ-ViT attn.qact1)      the qkv output, one scale for q, k and v
//   scores   (attn.qact_attn1)        q k^T / sqrt(head_dim)
//   table    (attn.qact_table)        the relative-position-bias table itself, [table_rows, heads]
//                                     (FQ-ViT quantizes the parameter, then gathers it)
//   logits   (attn.qact2, logits role) scores + gathered bias; its scale is LIS's input scale
//   (the -100 shifted-window mask is added in float after this point, as in FQ-ViT)
//   softmax  (log_int_softmax)        uniform attn_bits, or Log-Int-Softmax when simulating with
//                                     LIS (then no point: LIS quantizes the probabilities itself)
//   context  (attn.qact3)             probs v
void swin_window_attention_quant(QuantSession& q, const std::string& prefix,
                                 const SwinAttentionArgs& a, float* qkv, float* scores, float* out);

}  // namespace qvit
