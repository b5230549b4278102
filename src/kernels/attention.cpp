// Multi-head self-attention core on the fused qkv activations:
//   out_h = softmax(scale * q_h k_h^T + rel_bias[h] + mask[b % n_mask]) v_h
// The fast path works per (batch, head, block of query rows): two GEMMs around a row softmax,
// with the score block in a per-thread scratch buffer that is grown once and then reused.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {
namespace {

void check_attention_args(int64_t B, int64_t N, int64_t heads, int64_t head_dim,
                          const float* mask, int64_t n_mask) {
  if (B < 0 || N <= 0 || heads <= 0 || head_dim <= 0) {
    fail("kernels", "attention_f32: bad shape B={} N={} heads={} head_dim={}", B, N, heads,
         head_dim);
  }
  if (mask != nullptr && n_mask <= 0) {
    fail("kernels", "attention_f32: mask given with n_mask={}", n_mask);
  }
}

}  // namespace

void attention_f32_ref(const float* qkv, float* out, int64_t B, int64_t N, int64_t heads,
                       int64_t head_dim, float scale, const float* rel_bias, const float* mask,
                       int64_t n_mask) {
  check_attention_args(B, N, heads, head_dim, mask, n_mask);
  const int64_t C = heads * head_dim, ld = 3 * C;
  parallel_for(B * heads, 1, [&](int64_t i0, int64_t i1) {
    std::vector<double> p(static_cast<size_t>(N));
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t b = item / heads, h = item % heads;
      const float* q = qkv + b * N * ld + h * head_dim;
      const float* k = q + C;
      const float* v = q + 2 * C;
      for (int64_t i = 0; i < N; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < N; ++j) {
          double s = 0.0;
          for (int64_t d = 0; d < head_dim; ++d) s += double(q[i * ld + d]) * k[j * ld + d];
          s *= scale;
          if (rel_bias) s += rel_bias[(h * N + i) * N + j];
          if (mask) s += mask[((b % n_mask) * N + i) * N + j];
          p[j] = s;
          mx = std::max(mx, s);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < N; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int64_t d = 0; d < head_dim; ++d) {
          double acc = 0.0;
          for (int64_t j = 0; j < N; ++j) acc += p[j] * v[j * ld + d];
          out[(b * N + i) * C + h * head_dim + d] = static_cast<float>(acc / sum);
        }
      }
    }
  });
}

void attention_f32(const float* qkv, float* out, int64_t B, int64_t N, int64_t heads,
                   int64_t head_dim, float scale, const float* rel_bias, const float* mask,
                   int64_t n_mask) {
  if (!kernels_detail::use_avx2()) {
    attention_f32_ref(qkv, out, B, N, heads, head_dim, scale, rel_bias, mask, n_mask);
    return;
  }
  check_attention_args(B, N, heads, head_dim, mask, n_mask);
  const int64_t C = heads * head_dim, ld = 3 * C;
  const int64_t rb = kernels_detail::attention_query_block_rows(N);
  const int64_t n_rb = (N + rb - 1) / rb;
  parallel_for(B * heads * n_rb, 1, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(rb * N)) scores.resize(static_cast<size_t>(rb * N));
    float* S = scores.data();
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t b = item / (heads * n_rb), h = item / n_rb % heads, r0 = item % n_rb * rb;
      const int64_t rows = std::min(rb, N - r0);
      const float* q = qkv + (b * N + r0) * ld + h * head_dim;
      const float* k = qkv + b * N * ld + C + h * head_dim;
      const float* v = k + C;
      gemm_f32(false, true, rows, N, head_dim, scale, q, ld, k, ld, 0.0f, S, N);
      kernels_detail::softmax_add_rows_f32_avx2(
          S, rows, N, rel_bias ? rel_bias + (h * N + r0) * N : nullptr,
          mask ? mask + ((b % n_mask) * N + r0) * N : nullptr);
      gemm_f32(false, false, rows, head_dim, N, 1.0f, S, N, v, ld, 0.0f,
               out + (b * N + r0) * C + h * head_dim, C);
    }
  });
}

}  // namespace qvit
