// Attention in two steps with the probabilities materialised, for quantized simulation where
// quantization points sit on the logits and on the softmax output (the fused attention_f32 keeps
// them in cache instead). Same layouts as attention_f32.
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {

void attention_scores_f32(const float* qkv, float* scores, int64_t B, int64_t N, int64_t heads,
                          int64_t head_dim, float scale) {
  const int64_t C = heads * head_dim, ld = 3 * C;
  parallel_for(B * heads, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / heads, h = i % heads;
      const float* q = qkv + b * N * ld + h * head_dim;
      gemm_f32(false, true, N, N, head_dim, scale, q, ld, q + C, ld, 0.0f, scores + i * N * N, N);
    }
  });
}

void attention_context_f32(const float* probs, const float* qkv, float* out, int64_t B, int64_t N,
                           int64_t heads, int64_t head_dim) {
  const int64_t C = heads * head_dim, ld = 3 * C;
  parallel_for(B * heads, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / heads, h = i % heads;
      const float* v = qkv + b * N * ld + 2 * C + h * head_dim;
      gemm_f32(false, false, N, head_dim, N, 1.0f, probs + i * N * N, N, v, ld, 0.0f,
               out + b * N * C + h * head_dim, C);
    }
  });
}

}  // namespace qvit
