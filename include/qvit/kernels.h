// FP32 compute kernels. Naming grammar: <op>_<types>[_<impl>], impl = ref | avx2; the name
// without impl dispatches to the fastest path this CPU supports. The path can be forced with the
// environment variable QVIT_KERNELS=ref|avx2 (read once, at first use), so tests run every path.
// Every optimised path is tested against its _ref twin (tests/kernels_*_test.cpp).
//
// Layouts are row-major. Functions that are documented as "parallel" split work with
// qvit::parallel_for (chunking independent of the thread count => results are bit-identical for
// any --threads); the others are single-threaded and may be called from inside a parallel region.
#pragma once

#include <cstdint>
#include <memory>

#include "qvit/tensor.h"

namespace qvit {

enum class KernelPath { ref, avx2 };
// The path dispatching kernels use: QVIT_KERNELS if set, else avx2 when the CPU has AVX2+FMA.
KernelPath kernel_path();
// Overrides the path (tests). Throws if avx2 is asked for on a CPU without it.
void set_kernel_path(KernelPath p);
const char* kernel_path_name(KernelPath p);

// ---- GEMM -----------------------------------------------------------------------------------
// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, op = transpose when trans_x is true.
// BLAS conventions: with beta == 0, C is not read. Single-threaded (safe to call inside a
// parallel region). The avx2 path uses qvit's register-tiled AVX2 kernel, or oneDNN's sgemm
// pinned to one thread where oneDNN runs AVX-512 or the problem is large (src/kernels/gemm.cpp).
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);
void gemm_f32_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc);

// Linear layer y[M,N] = x[M,K] * W[N,K]^T + b[N] (PyTorch nn.Linear layout). The weight is
// prepared (packed/reordered) once at construction; forward() is parallel and may be called
// concurrently from several threads. The layer keeps a reference to the caller's weight buffer
// (for the ref path) besides the prepared copy. The first forward() with a new M creates its
// oneDNN primitives (about a millisecond); later calls with that M reuse them.
class LinearF32 {
 public:
  LinearF32();
  // weight [N,K] f32; bias [N] f32 or an empty Tensor for no bias.
  LinearF32(const Tensor& weight, const Tensor& bias);
  ~LinearF32();
  LinearF32(LinearF32&&) noexcept;
  LinearF32& operator=(LinearF32&&) noexcept;

  int64_t in_features() const { return K_; }
  int64_t out_features() const { return N_; }
  // x [M,K] (row stride K), y [M,N] (row stride N). Parallel.
  void forward(const float* x, float* y, int64_t M) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t N_ = 0, K_ = 0;
};
// Reference for LinearF32 (single-threaded, double accumulation).
void linear_f32_ref(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t N,
                    int64_t K);

// ---- Elementwise / normalisation (all parallel) ---------------------------------------------
// y[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta, biased variance, per row of C.
// y may alias x.
void layernorm_f32(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                   int64_t C, float eps);
void layernorm_f32_ref(const float* x, const float* gamma, const float* beta, float* y,
                       int64_t rows, int64_t C, float eps);

// Exact GELU: y = 0.5 x (1 + erf(x / sqrt 2)). y may alias x. Max abs error vs ref < 1e-6.
void gelu_f32(const float* x, float* y, int64_t n);
void gelu_f32_ref(const float* x, float* y, int64_t n);

// In-place row softmax over `cols` elements, `rows` rows (row stride = cols).
void softmax_f32(float* x, int64_t rows, int64_t cols);
void softmax_f32_ref(float* x, int64_t rows, int64_t cols);

// y = a + b (n elements). y may alias a or b.
void add_f32(const float* a, const float* b, float* y, int64_t n);

// ---- Attention (parallel over batch x heads) -------------------------------------------------
// qkv: [B, N, 3*C] as produced by the fused qkv Linear (C = heads*head_dim; the last axis holds
// q, then k, then v, each [heads, head_dim]). out: [B, N, C] with heads concatenated.
//   out_h = softmax(scale * q_h k_h^T + rel_bias[h] + mask[b % n_mask]) v_h
// rel_bias: [heads, N, N] or nullptr (Swin relative position bias, already gathered).
// mask: [n_mask, N, N] or nullptr (Swin shifted-window mask: 0 or -100).
void attention_f32(const float* qkv, float* out, int64_t B, int64_t N, int64_t heads,
                   int64_t head_dim, float scale, const float* rel_bias, const float* mask,
                   int64_t n_mask);
void attention_f32_ref(const float* qkv, float* out, int64_t B, int64_t N, int64_t heads,
                       int64_t head_dim, float scale, const float* rel_bias, const float* mask,
                       int64_t n_mask);
// The same in two steps, with the probabilities materialised (quantized simulation puts
// quantization points on them): scores [B, heads, N, N] = scale * q_h k_h^T; then
// out [B, N, C] = probs_h v_h. The caller applies bias, mask and softmax in between.
void attention_scores_f32(const float* qkv, float* scores, int64_t B, int64_t N, int64_t heads,
                          int64_t head_dim, float scale);
void attention_context_f32(const float* probs, const float* qkv, float* out, int64_t B, int64_t N,
                           int64_t heads, int64_t head_dim);

// ---- Patch extraction (parallel) -------------------------------------------------------------
// Non-overlapping p x p patches of images [B, Cin, H, W] -> rows [B * (H/p) * (W/p), Cin*p*p],
// patches in raster order, each row ordered (c, kh, kw) like a Conv2d weight [out, Cin, p, p]
// flattened, so patch embedding = im2patch + LinearF32. H and W must be multiples of p.
void im2patch_f32(const float* img, float* out, int64_t B, int64_t Cin, int64_t H, int64_t W,
                  int64_t p);

}  // namespace qvit
