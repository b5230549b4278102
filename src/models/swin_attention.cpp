// Swin window attention with FQ-ViT's quantization points, unfused (scores and probabilities
// materialised): see swin_attention.h for the point list.
#include "models/swin_attention.h"

#include <cmath>
#include <vector>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"

namespace qvit {

namespace {

// Matrix i of s ([count, NN]) += add[i / div % period] ([period, NN]), in parallel.
void add_matrices(float* s, const float* add, int64_t count, int64_t div, int64_t period,
                  int64_t NN) {
  parallel_for(count, 4, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* dst = s + i * NN;
      const float* src = add + (i / div % period) * NN;
      for (int64_t p = 0; p < NN; ++p) dst[p] += src[p];
    }
  });
}

}  // namespace

void swin_window_attention_quant(QuantSession& q, const std::string& prefix,
                                 const SwinAttentionArgs& a, float* qkv, float* scores,
                                 float* out) {
  const int64_t N = a.tokens, H = a.heads, Dh = a.head_dim, C = H * Dh, BW = a.batch_windows;
  const int64_t NN = N * N, rows = BW * H * N;
  if (BW <= 0 || N <= 0 || H <= 0 || Dh <= 0 || a.windows <= 0 || BW % a.windows != 0 || !a.table ||
      !a.index || a.table_rows <= 0)
    fail("swin", "window attention: bad arguments (B*windows={}, windows={}, N={}, heads={})", BW,
         a.windows, N, H);

  q.point(prefix + "qkv", QPointRole::activation, qkv, BW * N, 3 * C);
  attention_scores_f32(qkv, scores, BW, N, H, Dh, 1.0f / std::sqrt(static_cast<float>(Dh)));
  q.point(prefix + "scores", QPointRole::activation, scores, rows, N);

  // Relative position bias from the quantized table, gathered to [heads, N, N].
  std::vector<float> table(a.table, a.table + a.table_rows * H);
  q.point(prefix + "table", QPointRole::activation, table.data(), a.table_rows, H);
  std::vector<float> bias(static_cast<size_t>(H * NN));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t p = 0; p < NN; ++p) bias[h * NN + p] = table[a.index[p] * H + h];
  add_matrices(scores, bias.data(), BW * H, 1, H, NN);  // matrix (bw, h) += bias[h]
  q.point(prefix + "logits", QPointRole::logits, scores, rows, N);

  // Shifted windows: the mask is added in float after the logits quantizer (FQ-ViT), one mask per
  // window shared by the heads: matrix (bw, h) += mask[bw % windows].
  if (a.mask) add_matrices(scores, a.mask, BW * H, H, a.windows, NN);
  if (q.mode() == QuantMode::simulate && q.config().lis)
    lis_softmax(scores, scores, nullptr, rows, N, q.params(prefix + "logits").scale[0]);
  else
    softmax_f32(scores, rows, N);
  q.point(prefix + "softmax", QPointRole::softmax, scores, rows, N);
  attention_context_f32(scores, qkv, out, BW, N, H, Dh);
  q.point(prefix + "context", QPointRole::activation, out, BW * N, C);
}

}  // namespace qvit
