// FQ-ViT's integer LayerNorm (QIntLayerNorm, "int" mode) on a PTF-quantized input. Per token
// (row), float32 in FQ-ViT's order unless noted:
//   x_q  = round(x / s_c) * round(s_c / s_min)       codes (q - zero) shifted to s_min
//   S1   = sum x_q, S2 = sum x_q^2, D = C S2 - S1^2  exact integers here (FQ-ViT: float32
//                                                     sums, whose cancellation can even make
//                                                     D < 0 -> NaN)
//   mean = (float(S1) / C) * s_min
//   std  = (s_min / C) * sqrt(float(D))               float sqrt, no epsilon
//   A_c  = ((s_min / std) * gamma_c) / s_out
//   N_c  = clamp(7 - floor(log2 |A_c|), 0, 31)        |A_c| ~ M_c / 2^N_c, 8-bit M
//   M_c  = clamp(floor(|A_c| 2^N_c), 0, 255)
//   B_c  = round(((beta_c - (mean / std) * gamma_c) / s_out) * 2^N_c)
//   y_c  = round((sign(A_c) M_c x_q + B_c) / 2^N_c) * s_out
// D = 0 (all codes of the token equal; FQ-ViT divides by std = 0 and returns NaN, issue #31):
// y_c = round(beta_c / s_out) * s_out, the limit of a LayerNorm with a tiny epsilon.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/int_layernorm_impl.h"

namespace qvit {

namespace {

__extension__ using int128 = __int128;  // GCC/Clang; exact sums of squares

constexpr int kMantissaBits = 8;
constexpr float kMaxCode = 16777216.0f;  // 2^24: codes must be exact floats

// 2^n for 0 <= n <= 31, exactly (= std::ldexp(1.0f, n)), from the exponent bits.
inline float pow2(int n) { return std::bit_cast<float>(static_cast<uint32_t>(n + 127) << 23); }

// std::nearbyint(v) in the default rounding mode (ties to even), sign of zero included:
// for |v| < 2^23, (|v| + 1.5 2^23) - 1.5 2^23 rounds |v| to an integer once, exactly as
// nearbyint does, and nearbyint keeps the sign of v. Larger |v|, inf and NaN: nearbyint(v) = v.
inline float round_even(float v) {
  const float a = std::fabs(v);
  const float r = std::copysign((a + 12582912.0f) - 12582912.0f, v);
  return a < 8388608.0f ? r : v;  // |v| >= 2^23 is an integer already; inf and NaN stay
}

// floor(log2 a) for a normal positive float whose mantissa m (a = m 2^e, 1 <= m < 2) lies in
// [1 + 2^-10, 2 - 2^-10]: then log2 a lies in [e + 0.0014, e + 0.9986], so any log2 with an
// error below 1e-3 (glibc's log2f is within 1 ulp) floors to e. Returns false otherwise (zero,
// subnormal, inf, NaN, or m within 2^-10 of a power of two), where the caller uses std::log2.
inline bool fast_floor_log2(float a, int* e) {
  const uint32_t bits = std::bit_cast<uint32_t>(a);
  const uint32_t exp_field = (bits >> 23) & 0xffu;
  const uint32_t frac = bits & 0x7fffffu;
  if (exp_field == 0 || exp_field == 0xffu || (bits >> 31) != 0) return false;
  constexpr uint32_t kEdge = 1u << 13;  // 2^-10 in units of 2^-23
  if (frac < kEdge || frac > 0x800000u - kEdge) return false;
  *e = static_cast<int>(exp_field) - 127;
  return true;
}

}  // namespace

namespace quant_detail {

bool int_ln_codes_tail(const float* xr, const IntLnRow& k, int64_t c0, float* xq, double* d1, double* d2) {
  for (int64_t c = c0; c < k.C; ++c) {
    const float v = xr[c] / k.s_in[c];
    const float a = v < 0 ? -v : v;
    if (!(a < 8388608.0f)) return false;  // large, inf or NaN
    const float q = std::copysign((a + 12582912.0f) - 12582912.0f, v) * k.shift[c];  // round_even
    if (!(q <= 524288.0f && q >= -524288.0f)) return false;
    xq[c] = q;
    *d1 += q;
    *d2 += static_cast<double>(q) * q;
  }
  return true;
}

bool int_ln_token(int64_t s1, __int128 s2, const IntLnRow& k, float* a_base, float* mean_over_std) {
  const int128 D = static_cast<int128>(k.C) * s2 - static_cast<int128>(s1) * s1;
  if (D == 0) return false;
  const float c_f = static_cast<float>(k.C);
  const float mean = (static_cast<float>(s1) / c_f) * k.s_min;
  const float stdev = (k.s_min / c_f) * std::sqrt(static_cast<float>(D));
  *a_base = k.s_min / stdev;
  *mean_over_std = mean / stdev;
  return true;
}

void int_ln_constant_token(float* yr, const IntLnRow& k) {
  for (int64_t c = 0; c < k.C; ++c) yr[c] = std::nearbyint(k.beta[c] / k.s_out) * k.s_out;
}

IntLnCoeff int_ln_coeff(int64_t c, float a_base, float mean_over_std, const IntLnRow& k) {
  const float gamma = k.gamma[c], beta = k.beta[c], s_out = k.s_out;
  const float a = (a_base * gamma) / s_out;
  const float a_abs = std::fabs(a);
  const float sign = a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : 0.0f);
  float pow_n, m;
  int n, e;
  if (fast_floor_log2(a_abs, &e)) {
    // n = clamp(7 - e, 0, 31) as in the float expression below (all values exact).
    n = std::clamp(kMantissaBits - 1 - e, 0, 31);
    pow_n = pow2(n);
    // v = |A| 2^n is exact, finite and >= 0; floor(v) = truncation for 0 <= v < 256.
    const float v = a_abs * pow_n;
    m = v < 256.0f ? static_cast<float>(static_cast<int>(v)) : 255.0f;
  } else {
    // |A| = 0: log2 = -inf -> N = 31, M = 0.
    const float n_shift =
        std::clamp(static_cast<float>(kMantissaBits - 1) - std::floor(std::log2(a_abs)), 0.0f, 31.0f);
    n = static_cast<int>(n_shift);
    pow_n = std::ldexp(1.0f, n);
    m = std::clamp(std::floor(a_abs * pow_n), 0.0f, 255.0f);
  }
  const float b = round_even(((beta - mean_over_std * gamma) / s_out) * pow_n);
  return {sign * m, b, pow_n, n};
}

float int_ln_channel(int64_t c, float xq, float a_base, float mean_over_std, const IntLnRow& k) {
  const IntLnCoeff f = int_ln_coeff(c, a_base, mean_over_std, k);
  const float code = round_even((f.sm * xq + f.b) / f.pow_n);
  return code * k.s_out;
}

}  // namespace quant_detail

namespace {

// One token (row), scalar: the reference arithmetic (see the top of the file).
void int_ln_row(const float* xr, float* yr, int64_t r, const quant_detail::IntLnRow& k, float* xq) {
  int64_t s1 = 0;
  int128 s2 = 0;
  for (int64_t c = 0; c < k.C; ++c) {
    const float q = round_even(xr[c] / k.s_in[c]) * k.shift[c];
    if (!(std::fabs(q) <= kMaxCode)) {
      fail("quant", "int_layernorm_ptf: row {} channel {}: value {} is not a PTF-quantized code "
           "(|x / s| > 2^24 or not finite)", r, c, xr[c]);
    }
    xq[c] = q;
    const int64_t qi = static_cast<int64_t>(q);
    s1 += qi;
    s2 += static_cast<int128>(qi) * qi;
  }
  float a_base, mean_over_std;
  if (!quant_detail::int_ln_token(s1, s2, k, &a_base, &mean_over_std)) {
    quant_detail::int_ln_constant_token(yr, k);
    return;
  }
  for (int64_t c = 0; c < k.C; ++c) yr[c] = quant_detail::int_ln_channel(c, xq[c], a_base, mean_over_std, k);
}

}  // namespace

void int_layernorm_ptf(const float* x, float* y, int64_t rows, int64_t C, const QuantParams& in,
                       const float* gamma, const float* beta, float s_out) {
  if (rows < 0 || C <= 0) fail("quant", "int_layernorm_ptf: bad shape rows={} C={}", rows, C);
  const size_t ns = in.scale.size();
  if (ns != 1 && static_cast<int64_t>(ns) != C) {
    fail("quant", "int_layernorm_ptf: input has {} scales for C = {}", ns, C);
  }
  if (!(s_out > 0.0f) || !std::isfinite(s_out)) {
    fail("quant", "int_layernorm_ptf: output scale must be > 0, got {}", s_out);
  }
  std::vector<float> s_in(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) s_in[c] = ns == 1 ? in.scale[0] : in.scale[c];
  const float s_min = *std::min_element(s_in.begin(), s_in.end());
  if (!(s_min > 0.0f)) fail("quant", "int_layernorm_ptf: input scales must be > 0");
  for (int64_t c = 0; c < C; ++c) shift[c] = std::nearbyint(s_in[c] / s_min);

  const quant_detail::IntLnRow k{C, s_in.data(), shift.data(), gamma, beta, s_min, s_out};
  const bool avx2 = kernel_path() == KernelPath::avx2;
  parallel_for(rows, std::max<int64_t>(1, 8192 / C), [&](int64_t r0, int64_t r1) {
    std::vector<float> xq(static_cast<size_t>(C));
    for (int64_t r = r0; r < r1; ++r) {
      // y may alias x: each row is read completely (into xq) before it is written.
      if (avx2 && quant_detail::int_ln_row_avx2(x + r * C, y + r * C, k, xq.data())) continue;
      int_ln_row(x + r * C, y + r * C, r, k, xq.data());
    }
  });
}

}  // namespace qvit
