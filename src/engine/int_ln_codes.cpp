// FQ-ViT's integer LayerNorm (src/quant/int_layernorm.cpp) run on the PTF codes themselves.
// Per token: x_q,c = (q_c - z) 2^(alpha_c - alpha_min) (integers), S1 = sum x_q, S2 = sum x_q^2
// exactly; the per-token factors sign(A_c) M_c (8-bit), B_c and N_c come from the same float
// formulas as the simulation (quant_detail::int_ln_token / int_ln_coeff: one sqrt per token and a
// few float operations per channel, as FQ-ViT defines them); every element is then integer:
//   code_c = round_half_even((sign(A_c) M_c x_q,c + B_c) / 2^N_c),  y_c = clamp(code_c + z_out).
// This equals the simulation's code exactly while |sign(A) M x_q + B| < 2^24 (its float32 sum is
// exact there); beyond (rare: N_c >= ~16), the element is computed with the simulation's float
// expression, so the result is always the simulation's. The AVX2 path runs the simulation's own
// bit-identical AVX2 token kernel on the dequantized codes (an integer-valued float pipeline) and
// converts its outputs code * s_out back to codes; the scalar path is the reference.
#include <algorithm>
#include <cmath>

#include "engine/engine_ops.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "quant/int_layernorm_impl.h"

namespace qvit::engine {

namespace {

// round_half_even(v / 2^n) for 0 <= n <= 62.
inline int64_t shift_round_even(int64_t v, int n) {
  if (n == 0) return v;
  const int64_t q = v >> n;  // floor
  const int64_t r = v - (q << n);
  const int64_t half = int64_t{1} << (n - 1);
  return q + ((r > half || (r == half && (q & 1))) ? 1 : 0);
}

constexpr int64_t kExact = int64_t{1} << 24;

inline int64_t to_i64(float b) {
  constexpr float kLim = 4.6e18f;
  return static_cast<int64_t>(std::clamp(b, -kLim, kLim));
}

}  // namespace

void IntLayerNorm::init(const QuantParams& in, const float* g, const float* b,
                        const QuantParams& out) {
  if (in.kind != QuantKind::ptf && in.kind != QuantKind::uniform)
    fail("engine", "LayerNorm input must be PTF- or uniform-quantized");
  if (in.zero_point.size() != 1) fail("engine", "LayerNorm input needs one zero point");
  in_zero = static_cast<int32_t>(in.zero_point[0]);
  s_in.resize(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) s_in[c] = in.scale.size() == 1 ? in.scale[0] : in.scale[c];
  s_min = *std::min_element(s_in.begin(), s_in.end());
  shift_f.resize(static_cast<size_t>(C));
  shift.resize(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    shift_f[c] = std::nearbyint(s_in[c] / s_min);
    shift[c] = static_cast<int32_t>(shift_f[c]);
    if (shift_f[c] != std::ldexp(1.0f, std::ilogb(shift_f[c])) || shift[c] > 256)
      fail("engine", "LayerNorm input scales are not power-of-two multiples (PTF) of the smallest");
  }
  gamma.assign(g, g + C);
  beta.assign(b, b + C);
  s_out = out.scale.at(0);
  out_zero = static_cast<int32_t>(out.zero_point.at(0));
  out_max = out.bits.qmax();
}

void IntLayerNorm::forward(const uint8_t* x, uint8_t* y, int64_t rows) const {
  parallel_for(rows, std::max<int64_t>(1, 4096 / C), [&](int64_t r0, int64_t r1) { forward_rows(x, y, r0, r1); });
}

void IntLayerNorm::forward_rows(const uint8_t* x, uint8_t* y, int64_t r0, int64_t r1) const {
  const quant_detail::IntLnRow k{C, s_in.data(), shift_f.data(), gamma.data(), beta.data(), s_min,
                                 s_out};
  const bool avx2 = kernel_path() == KernelPath::avx2;
  const bool avx512 = avx2 && qgemm_isa() == QgemmIsa::avx512vnni;  // with the int8 GEMM's path
  {
    thread_local std::vector<int32_t> xq;
    thread_local std::vector<float> xf, yf, tmp;
    xq.resize(static_cast<size_t>(C));
    xf.resize(static_cast<size_t>(C));
    yf.resize(static_cast<size_t>(C));
    tmp.resize(static_cast<size_t>(C));
    const float z = static_cast<float>(in_zero);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* xr = x + r * C;
      uint8_t* yr = y + r * C;
      if (avx2) {
        ln_dequant_avx2(xr, C, z, s_in.data(), xf.data());
        const bool done = avx512 ? quant_detail::int_ln_row_avx512(xf.data(), yf.data(), k, tmp.data())
                                 : quant_detail::int_ln_row_avx2(xf.data(), yf.data(), k, tmp.data());
        if (done) {
          ln_requant_avx2(yf.data(), C, s_out, out_zero, out_max, yr);
          continue;
        }
      }
      int64_t s1 = 0, s2 = 0;  // |x_q| <= 255 * 256: s2 < 2^32 C, exact in int64
      for (int64_t c = 0; c < C; ++c) {
        const int32_t v = (static_cast<int32_t>(xr[c]) - in_zero) * shift[c];
        xq[c] = v;
        s1 += v;
        s2 += static_cast<int64_t>(v) * v;
      }
      float a_base, mos;
      if (!quant_detail::int_ln_token(s1, s2, k, &a_base, &mos)) {
        for (int64_t c = 0; c < C; ++c)
          yr[c] = clamp_q(static_cast<int64_t>(std::nearbyint(beta[c] / s_out)) + out_zero, out_max);
        continue;
      }
      for (int64_t c = 0; c < C; ++c) {
        const quant_detail::IntLnCoeff f = quant_detail::int_ln_coeff(c, a_base, mos, k);
        const int64_t v = static_cast<int64_t>(f.sm) * xq[c] + to_i64(f.b);
        const int64_t code = (v < kExact && v > -kExact)
                                 ? shift_round_even(v, f.n)
                                 : static_cast<int64_t>(std::nearbyint((f.sm * static_cast<float>(xq[c]) + f.b) / f.pow_n));
        yr[c] = clamp_q(code + out_zero, out_max);
      }
    }
  }
}

}  // namespace qvit::engine
