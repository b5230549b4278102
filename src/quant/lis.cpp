// FQ-ViT Log-Int-Softmax (QIntSoftmax with log_i_softmax): I-BERT's integer exp, then 4-bit
// log2 codes rounded in the linear domain. Per row of logits x (dequantized, scale S), float32
// in FQ-ViT's order (a Python scalar divided by a tensor is reciprocal(S) * scalar there):
//   t   = x / S;  t -= max_row(t)
//   x0  = floor(float(-0.6931) * (1 / S))                     (-ln 2 on the integer grid)
//   t   = max(t, 30 x0);  q = floor(t / x0);  r = t - x0 q
//   b   = floor(float(0.96963238 / 0.35815147) * (1 / S))
//   c   = floor(float(1 / 0.35815147) * (1 / (S * S)))
//   e   = max(floor((r (r + b) + c) * 2^(30 - q)), 0)         (an integer-valued float)
//   sum = exact integer sum of e over the row, rounded once to float32
//         (PyTorch sums float32 in an unspecified order; the integers are exact here)
//   v   = round(sum / e)                                      (~ 1 / softmax)
//   k   = floor(log2 v), plus 1 if v - 2^k >= 2^(k-1)         (boundary at 1.5 * 2^k)
//   code = k if k < 16, else "zero" (kLisZeroCode); probability 2^-code or 0.
// v >= 49152 is exactly the set with k >= 16, and v = inf (e = 0) is zero too. A row whose sum
// is 0 (only when S > ~1.67) gives 0/0 = NaN in FQ-ViT; here all its probabilities are zero.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/lis_impl.h"
#include "quant/observer_impl.h"

namespace qvit {

namespace {

__extension__ using uint128 = unsigned __int128;  // GCC/Clang; exact row sums

constexpr int kExpShift = 30;            // I-BERT's n
constexpr float kZeroFromV = 49152.0f;   // 1.5 * 2^15: first v whose code is >= 16
constexpr float kMaxExactSum = 1.0e36f;  // keeps the uint128 row sum exact

// 2^n for -126 <= n <= 127, exactly (= std::ldexp(1.0f, n)), from the exponent bits.
inline float pow2(int n) { return std::bit_cast<float>(static_cast<uint32_t>(n + 127) << 23); }

// std::nearbyint(v) in the default rounding mode (ties to even), sign of zero included:
// for |v| < 2^23, (|v| + 1.5 2^23) - 1.5 2^23 rounds |v| to an integer once, exactly as
// nearbyint does, and nearbyint keeps the sign of v. Larger |v|, inf and NaN: nearbyint(v) = v.
inline float round_even(float v) {
  const float a = std::fabs(v);
  const float r = std::copysign((a + 12582912.0f) - 12582912.0f, v);
  return a < 8388608.0f ? r : v;  // |v| >= 2^23 is an integer already; inf and NaN stay
}

}  // namespace

namespace quant_detail {

// The LIS code of v = round(sum / e) >= 1 (or inf/NaN): floor(log2 v), rounded up from
// 1.5 * 2^k on. Exact: v is an integer below 2^16 when it gets that far.
uint8_t lis_code(float v) {
  if (!(v < kZeroFromV)) return kLisZeroCode;
  if (v < 1.0f) return 0;  // cannot happen (sum >= e); FQ-ViT clamps log2(0) = -inf to 0
  // 1 <= v < 2^16: v = m 2^k with k = floor(log2 v) the unbiased exponent and 1 <= m < 2;
  // v >= 1.5 2^k iff m >= 1.5 iff the top fraction bit is set (v - 2^k is exact, Sterbenz).
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  return static_cast<uint8_t>(static_cast<int>(bits >> 23) - 127 + static_cast<int>((bits >> 22) & 1u));
}

}  // namespace quant_detail

namespace {

// One row, scalar: the reference arithmetic (see the top of the file).
void lis_row(const float* x, float* p, uint8_t* code_row, int64_t cols, const quant_detail::LisConsts& k,
             float* e, int64_t r) {
  const float S = k.S, x0 = k.x0, b_int = k.b_int, c_int = k.c_int, t_min = k.t_min;
  float t_max = x[0] / S;
  for (int64_t j = 1; j < cols; ++j) t_max = std::max(t_max, x[j] / S);
  uint128 sum = 0;
  for (int64_t j = 0; j < cols; ++j) {
    float t = x[j] / S - t_max;
    if (std::isnan(t)) fail("quant", "lis_softmax: row {} has NaN or +Inf logits", r);
    t = t < t_min ? t_min : t;
    // x0 <= -1 and t_min = 30 x0 <= t <= 0 (t is not NaN), so t / x0 lies in [0, 30]
    // (division rounds monotonically) or is -0: floor is truncation, up to the sign of a
    // zero q, which changes neither rem (t - x0 q = t for t = 0: 0 - (+-0) = +0) nor shift.
    const float q = static_cast<float>(static_cast<int>(t / x0));
    const float rem = t - x0 * q;
    float poly = rem + b_int;
    poly = rem * poly;
    poly = poly + c_int;
    const float shift = pow2(kExpShift - static_cast<int>(q));  // 0 <= 30 - q <= 30
    const float ej = std::max(std::floor(poly * shift), 0.0f);
    if (!(ej < kMaxExactSum)) fail("quant", "lis_softmax: exp value {} too large (S = {})", ej, S);
    e[j] = ej;
    // ej is an integer-valued float in [0, 1e36): below 2^64 the uint64 conversion is exact
    // and inline; the uint128 conversion (a libgcc call) only for larger values.
    sum += ej < 18446744073709551616.0f ? static_cast<uint128>(static_cast<uint64_t>(ej))
                                        : static_cast<uint128>(ej);
  }
  const float sum_f = static_cast<float>(sum);
  for (int64_t j = 0; j < cols; ++j) {
    const uint8_t code = sum == 0 ? kLisZeroCode : quant_detail::lis_code(round_even(sum_f / e[j]));
    p[j] = code == kLisZeroCode ? 0.0f : pow2(-static_cast<int>(code));  // code <= 15
    if (code_row) code_row[j] = code;
  }
}

}  // namespace

void lis_softmax(const float* logits, float* probs, uint8_t* codes, int64_t rows, int64_t cols,
                 float S) {
  if (rows < 0 || cols <= 0) fail("quant", "lis_softmax: bad shape rows={} cols={}", rows, cols);
  if (!(S > 0.0f) || !std::isfinite(S)) fail("quant", "lis_softmax: scale S must be > 0, got {}", S);
  const float inv_s = 1.0f / S;
  const float inv_s2 = 1.0f / (S * S);
  const float x0 = std::floor(static_cast<float>(-0.6931) * inv_s);
  // FQ-ViT divides the coefficients by a = 0.35815147 in Python (double) first.
  const float b_int = std::floor(static_cast<float>(0.96963238 / 0.35815147) * inv_s);
  const float c_int = std::floor(static_cast<float>(1.0 / 0.35815147) * inv_s2);
  const float t_min = static_cast<float>(kExpShift) * x0;

  const quant_detail::LisConsts k{S, x0, b_int, c_int, t_min};
  const bool avx2 = kernel_path() == KernelPath::avx2;
  parallel_for(rows, std::max<int64_t>(1, 4096 / cols), [&](int64_t r0, int64_t r1) {
    std::vector<float> e(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = logits + r * cols;
      float* p = probs + r * cols;
      uint8_t* code_row = codes ? codes + r * cols : nullptr;
      if (avx2 && quant_detail::lis_row_avx2(x, p, code_row, cols, k, e.data())) continue;
      lis_row(x, p, code_row, cols, k, e.data(), r);
    }
  });
}

}  // namespace qvit
