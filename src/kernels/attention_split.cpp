// Attention in two steps with the probabilities materialised, for quantized simulation where
// quantization points sit on the logits and on the softmax output (the fused attention_f32 keeps
// them in cache instead). Same layouts as attention_f32; work items are (batch, head, block of
// query rows) as there, so small batches still keep every thread busy.
#include <algorithm>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {
namespace {

void check_split_args(const char* fn, int64_t B, int64_t N, int64_t heads, int64_t head_dim) {
  if (B < 0 || N <= 0 || heads <= 0 || head_dim <= 0) {
    fail("kernels", "{}: bad shape B={} N={} heads={} head_dim={}", fn, B, N, heads, head_dim);
  }
}

// Calls fn(b, h, r0, rows) for every (batch, head, query-row block), in parallel.
template <typename F>
void for_each_block(int64_t B, int64_t N, int64_t heads, F fn) {
  const int64_t rb = kernels_detail::attention_query_block_rows(N);
  const int64_t n_rb = (N + rb - 1) / rb;
  parallel_for(B * heads * n_rb, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t r0 = item % n_rb * rb;
      fn(item / (heads * n_rb), item / n_rb % heads, r0, std::min(rb, N - r0));
    }
  });
}

}  // namespace

void attention_scores_f32(const float* qkv, float* scores, int64_t B, int64_t N, int64_t heads,
                          int64_t head_dim, float scale) {
  check_split_args("attention_scores_f32", B, N, heads, head_dim);
  const int64_t C = heads * head_dim, ld = 3 * C;
  for_each_block(B, N, heads, [&](int64_t b, int64_t h, int64_t r0, int64_t rows) {
    const float* q = qkv + (b * N + r0) * ld + h * head_dim;
    const float* k = qkv + b * N * ld + C + h * head_dim;
    gemm_f32(false, true, rows, N, head_dim, scale, q, ld, k, ld, 0.0f,
             scores + ((b * heads + h) * N + r0) * N, N);
  });
}

void attention_context_f32(const float* probs, const float* qkv, float* out, int64_t B, int64_t N,
                           int64_t heads, int64_t head_dim) {
  check_split_args("attention_context_f32", B, N, heads, head_dim);
  const int64_t C = heads * head_dim, ld = 3 * C;
  for_each_block(B, N, heads, [&](int64_t b, int64_t h, int64_t r0, int64_t rows) {
    const float* v = qkv + b * N * ld + 2 * C + h * head_dim;
    gemm_f32(false, false, rows, head_dim, N, 1.0f, probs + ((b * heads + h) * N + r0) * N, N, v,
             ld, 0.0f, out + (b * N + r0) * C + h * head_dim, C);
  });
}

}  // namespace qvit
