// PTQ4ViT / APQ-ViT quantizers (simulated: every function returns the de-quantized float value).
// Arithmetic (k = bit width, 2 <= k <= 8; round = round half to even, like torch.round):
//   symmetric signed uniform, interval d:  q(x) = clamp(round(x/d), -2^(k-1), 2^(k-1)-1) * d
//     initial interval (PTQ4ViT): d0 = absmax / (2^(k-1) - 0.5)
//   twin uniform, post-softmax (x in [0,1]), m = 2^(k-1)-1, split s = 2^-e (e >= 0):
//     d1 = s/m, d2 = 1/m
//     disjoint (paper):  x <  s -> clamp(round(x/d1), 0, m) * d1
//                        x >= s -> clamp(round(x/d2), 0, m) * d2
//     added (quirk of the released code as described in survey §2.1, option):
//                        clamp(round(x/d1), 0, m) * d1 + clamp(round(x/d2), round(s/d2), m) * d2
//       i.e. values >= s get ~s added, small values get round(m*s)/m added.
//   twin uniform, post-GELU: negative part d_neg = 0.16997 / 2^(k-1) over codes [-2^(k-1), 0],
//     positive part searched d_pos over codes [0, 2^(k-1)-1]:
//       x < 0 -> clamp(round(x/d_neg), -2^(k-1), 0) * d_neg;  x >= 0 -> clamp(round(x/d_pos), 0, 2^(k-1)-1) * d_pos
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace qvit::apq {

// Throws "[apq] --<what> must be an integer in 2..8, got <bits>" unless 2 <= bits <= 8.
int check_bits(int bits, std::string_view what);

// Symmetric signed uniform quantizer.
float quant_sym(float x, float interval, int bits);
float initial_interval(float absmax, int bits);
void quant_sym_inplace(float* x, size_t n, float interval, int bits);
// Weight W[rows, cols] (row = output channel) with intervals.size() equal row groups:
// 1 = per tensor, 3 = qkv (q, k, v row blocks), rows = per output channel. out may alias w.
void quant_weight_rows(const float* w, float* out, size_t rows, size_t cols,
                       const std::vector<float>& intervals, int bits);

enum class TwinSoftmaxMode { disjoint, added };
float quant_twin_softmax(float x, int bits, int split_exp, TwinSoftmaxMode mode);
void quant_twin_softmax_inplace(float* x, size_t n, int bits, int split_exp, TwinSoftmaxMode mode);

constexpr float kGeluNegRange = 0.16997f;
float gelu_neg_interval(int bits);
float quant_twin_gelu(float x, int bits, float pos_interval);
void quant_twin_gelu_inplace(float* x, size_t n, int bits, float pos_interval);

}  // namespace qvit::apq
