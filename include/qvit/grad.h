// Backward pass of the FP32 ViT/DeiT forward, for the calibration metrics of PTQ4ViT / APQ-ViT
// (they weight quantization errors by dL/dY of layer and block outputs). Ops: one per file in
// src/grad/, checked against central finite differences and PyTorch autograd fixtures
// (tools/make_golden_grad.py).
#pragma once

#include <string>
#include <vector>

#include "qvit/io.h"
#include "qvit/model.h"
#include "qvit/tensor.h"

namespace qvit {

// ---- Op backward kernels (parallel over rows; fp32 with double reductions) -------------------
// Linear y[M,N] = x[M,K] W[N,K]^T + b: dX[M,K] = dY W.
void linear_backward_input(const float* dy, const float* w, float* dx, int64_t M, int64_t N, int64_t K);
void linear_backward_input_ref(const float* dy, const float* w, float* dx, int64_t M, int64_t N, int64_t K);
// LayerNorm (biased variance, eps) of x[rows, C] with gamma: dX from dY.
void layernorm_backward(const float* dy, const float* x, const float* gamma, float* dx, int64_t rows,
                        int64_t C, float eps);
// Exact GELU y = x Phi(x): dX = dY (Phi(x) + x phi(x)).
void gelu_backward(const float* dy, const float* x, float* dx, int64_t n);
// Row softmax P = softmax(S): dS = P (dP - sum_j dP_j P_j). dS may alias dP.
void softmax_backward(const float* dp, const float* p, float* ds, int64_t rows, int64_t cols);
// Attention of one head: S = scale q k^T, P = softmax(S), ctx = P v (q, k, v [T, d] with row
// strides ldq/ldk/ldv, P [T, T]). From dctx [T, d] (stride ldc): dS [T, T] (gradient of the
// scaled logits S) and dq, dk, dv (strides like q, k, v; overwritten).
void attention_backward_head(const float* dctx, int64_t ldc, const float* q, const float* k,
                             const float* v, int64_t ld, const float* p, int64_t T, int64_t d,
                             float scale, float* ds, float* dq, float* dk, float* dv);

// ---- Model level -------------------------------------------------------------------------
// Runs the FP32 forward on `images` [B,3,H,W] (normalised), the loss
//   L = sum_b CE(logits_b, label_b)   (a sum, so each image's gradient is its own)
// with label_b = labels[b], or the FP model's arg-max when `labels` is empty (pseudo-labels),
// and returns dL/dY for every requested intermediate output Y, with Y's shape:
//   "blocks.{i}"              block output (after the 2nd residual add) [B,T,D]
//   "blocks.{i}.attn.qkv"     qkv Linear output [B,T,3D]
//   "blocks.{i}.attn.matmul1" scaled attention logits q k^T d^-0.5 (pre-softmax) [B,H,T,T]
//   "blocks.{i}.attn.matmul2" attention context P V, heads merged [B,T,D]
//   "blocks.{i}.attn.proj"    proj Linear output [B,T,D]
//   "blocks.{i}.mlp.fc1"      fc1 output (pre-GELU) [B,T,4D]
//   "blocks.{i}.mlp.fc2"      fc2 output [B,T,D]
//   "head"                    logits [B,classes]
//   "patch_embed"             patch-embedding output (before class token and pos_embed) [B,np,D]
// Also "logits" (the FP logits themselves, not a gradient) when asked for. ViT/DeiT only
// ("[grad] ... not supported for swin"); unknown names throw. Thread-count independent.
WeightMap output_gradients(const ModelConfig& cfg, const WeightMap& weights, const Tensor& images,
                           const std::vector<std::string>& names, const std::vector<int>& labels = {});

}  // namespace qvit
