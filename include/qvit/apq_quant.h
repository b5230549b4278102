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

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <vector>

namespace qvit::apq {

// Throws "[apq] --<what> must be an integer in 2..8, got <bits>" unless 2 <= bits <= 8.
int check_bits(int bits, std::string_view what);

// round half to even, bit for bit std::nearbyint in the default rounding mode (sign of zero
// included), inline and without libm's call: for |v| < 2^22, v + 1.5*2^23 lands in [2^23, 2^24)
// where floats are the integers, so the addition rounds v to an integer (half to even) and the
// subtraction is exact; larger values take nearbyint. Needs float arithmetic exactly as written
// (no -ffast-math; FLT_EVAL_METHOD 0, as on x86-64).
inline float round_half_even(float v) {
  if (!(std::fabs(v) < 0x1p22f)) return std::nearbyint(v);
  return std::copysign((v + 0x1.8p23f) - 0x1.8p23f, v);
}

// Symmetric signed uniform quantizer.
inline float quant_sym(float x, float interval, int bits) {
  const float qmax = static_cast<float>(1 << (bits - 1));
  return std::clamp(round_half_even(x / interval), -qmax, qmax - 1.0f) * interval;
}
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
inline float gelu_neg_interval(int bits) { return kGeluNegRange / static_cast<float>(1 << (bits - 1)); }
inline float quant_twin_gelu(float x, int bits, float pos_interval) {
  const float qmax = static_cast<float>(1 << (bits - 1));
  if (x < 0.0f) {
    const float dn = gelu_neg_interval(bits);
    return std::clamp(round_half_even(x / dn), -qmax, 0.0f) * dn;
  }
  return std::clamp(round_half_even(x / pos_interval), 0.0f, qmax - 1.0f) * pos_interval;
}
void quant_twin_gelu_inplace(float* x, size_t n, int bits, float pos_interval);

}  // namespace qvit::apq
