// Integer LayerNorm on PTF-quantized input: a hand case, the sigma = 0 guard, in-place use,
// errors, and golden outputs of tools/quant_reference.py (which also records how far FQ-ViT's
// literal float32 version and the float LayerNorm are from it).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "golden.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/quant.h"
#include "quant/int_layernorm_impl.h"

namespace qvit {
namespace {

QuantParams ptf_params(std::vector<float> scale, float zero) {
  QuantParams p;
  p.kind = QuantKind::ptf;
  p.bits = BitType{8, false};
  p.scale = std::move(scale);
  p.zero_point = {zero};
  return p;
}

TEST(QuantIntLayerNorm, ByHand) {
  // Codes [-1, 1], scale 1: mean 0, D = 2 * 2 - 0 = 4, std = (1 / 2) * 2 = 1.
  // A = 1 / (1/64) = 64 -> N = 7 - 6 = 1, M = 128; B = 0; y = round(+-128 / 2) = +-64 -> +-1.
  const std::vector<float> x = {-1.0f, 1.0f};
  const std::vector<float> gamma = {1.0f, 1.0f}, beta = {0.0f, 0.0f};
  std::vector<float> y(2);
  int_layernorm_ptf(x.data(), y.data(), 1, 2, ptf_params({1.0f}, 0.0f), gamma.data(), beta.data(),
                    1.0f / 64);
  EXPECT_EQ(y, (std::vector<float>{-1.0f, 1.0f}));
  // Channel scales 0.5 and 1: codes round(x / s) * (s / s_min) = [-2, 2] on the grid of 0.5.
  const std::vector<float> x2 = {-1.0f, 1.0f};
  const std::vector<float> beta2 = {0.25f, -0.5f};
  int_layernorm_ptf(x2.data(), y.data(), 1, 2, ptf_params({0.5f, 1.0f}, 0.0f), gamma.data(),
                    beta2.data(), 1.0f / 64);
  EXPECT_EQ(y, (std::vector<float>{-0.75f, 0.5f}));
}

TEST(QuantIntLayerNorm, ConstantTokenGivesBeta) {
  // Equal codes (FQ-ViT: std = 0 -> NaN). qvit: round(beta / s_out) * s_out.
  const std::vector<float> x = {0.5f, 0.5f, 0.5f};
  const std::vector<float> gamma = {1.0f, 2.0f, 0.0f}, beta = {0.3f, -0.2f, 0.01f};
  std::vector<float> y(3);
  const float s_out = 0.1f;
  int_layernorm_ptf(x.data(), y.data(), 1, 3, ptf_params({0.25f}, 10.0f), gamma.data(),
                    beta.data(), s_out);
  for (int c = 0; c < 3; ++c) {
    EXPECT_FALSE(std::isnan(y[c]));
    EXPECT_EQ(y[c], std::nearbyint(beta[c] / s_out) * s_out);
  }
}

TEST(QuantIntLayerNorm, InPlaceAndErrors) {
  std::vector<float> x = {-1.0f, 1.0f, 3.0f, 1.0f};
  const std::vector<float> gamma = {1.0f, 1.0f}, beta = {0.0f, 0.0f};
  std::vector<float> y(4);
  const QuantParams p = ptf_params({1.0f, 1.0f}, 0.0f);
  int_layernorm_ptf(x.data(), y.data(), 2, 2, p, gamma.data(), beta.data(), 1.0f / 64);
  int_layernorm_ptf(x.data(), x.data(), 2, 2, p, gamma.data(), beta.data(), 1.0f / 64);
  EXPECT_EQ(x, y);
  EXPECT_THROW(int_layernorm_ptf(x.data(), y.data(), 2, 2, ptf_params({1, 1, 1}, 0), gamma.data(),
                                 beta.data(), 0.1f), Error);
  EXPECT_THROW(int_layernorm_ptf(x.data(), y.data(), 2, 2, p, gamma.data(), beta.data(), 0.0f), Error);
  std::vector<float> huge = {1e30f, 0.0f};
  EXPECT_THROW(int_layernorm_ptf(huge.data(), y.data(), 1, 2, p, gamma.data(), beta.data(), 0.1f), Error);
}

TEST(QuantIntLayerNorm, Golden) {
  const test::Golden g = test::load_golden(test::fixture("quant/golden"));
  const auto& m = g.meta["ln"];
  QuantParams in = ptf_params(m["scale"].get<std::vector<float>>(), m["zero_point"][0].get<float>());
  in.alpha = m["alpha"].get<std::vector<int32_t>>();
  const std::vector<float> x = g.array("ln.x"), gamma = g.array("ln.gamma"), beta = g.array("ln.beta");
  const float s_out = m["s_out"].get<float>();
  const KernelPath saved = kernel_path();
  for (KernelPath path : {KernelPath::ref, KernelPath::avx2}) {
    if (path == KernelPath::avx2 && !__builtin_cpu_supports("avx2")) continue;
    set_kernel_path(path);
    std::vector<float> y(x.size());
    int_layernorm_ptf(x.data(), y.data(), 40, 64, in, gamma.data(), beta.data(), s_out);
    EXPECT_EQ(y, g.array("ln.y")) << kernel_path_name(path);
  }
  set_kernel_path(saved);
  // What the fixture measured: FQ-ViT's float32 sums give NaN on the two constant tokens and
  // the same codes elsewhere; the float LayerNorm is within one output step (except on
  // near-constant tokens, where |A| saturates the 8-bit M).
  EXPECT_EQ(m["literal_nan_rows"].get<std::vector<int>>(), (std::vector<int>{5, 17}));
  EXPECT_EQ(m["literal_max_code_diff"].get<float>(), 0.0f);
  EXPECT_LE(m["float_ln_max_code_diff"].get<float>(), 1.0f);
}

// The AVX2 token (double code sums, lane fix-ups) against the scalar token: bit-identical outputs
// (sign of zero included) over random PTF inputs with C = 1..200 (tails), gammas that put |A_c|
// exactly on powers of two (the libm fallback lanes), constant tokens, codes beyond the
// double-exact bound (handed to the scalar row), and in-place use.
TEST(QuantIntLayerNorm, Avx2RowMatchesScalarRow) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2";
  const KernelPath saved = kernel_path();
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int64_t C : {1, 5, 8, 13, 64, 192, 200}) {
    // ~100k values per output scale: a contracted FMA in the AVX2 path changed about one value
    // in 40k on real activations, so small tests miss it.
    const int64_t rows = std::max<int64_t>(9, 100000 / C);
    std::vector<float> s_in(C);
    for (auto& s : s_in) s = 0.01f * std::ldexp(1.0f, static_cast<int>(rng() % 4));
    QuantParams in = ptf_params(s_in, 0.0f);
    std::vector<float> gamma(C), beta(C);
    for (int64_t c = 0; c < C; ++c) {
      // On 2^-6 grids like the real DeiT-Tiny LayerNorm parameters (rounding ties are common).
      gamma[c] = c % 5 == 0 ? std::ldexp(1.0f, static_cast<int>(rng() % 5) - 2)
                            : 1.0f + std::nearbyint(32.0f * unit(rng)) / 64.0f;
      beta[c] = c % 7 == 0 ? 0.0f : std::nearbyint(20.0f * unit(rng)) / 64.0f;
      if (c % 11 == 3) gamma[c] = 0.0f;  // A_c = 0: the libm lane
    }
    std::vector<float> x(rows * C);
    std::uniform_int_distribution<int> code(-128, 127);
    // Tokens with a mean offset (like the residual stream): mean / std is then large enough for
    // the rounding of beta - (mean / std) gamma to matter.
    for (int64_t r = 0; r < rows; ++r) {
      const int off = code(rng) / 2;
      for (int64_t c = 0; c < C; ++c) x[r * C + c] = static_cast<float>(off + code(rng) / 3) * s_in[c];
    }
    for (int64_t c = 0; c < C; ++c) x[2 * C + c] = 0.0f;                 // constant token
    x[3 * C] = 4e5f * s_in[0];                                           // code beyond 2^19
    for (int64_t c = 0; c < C; ++c) x[4 * C + c] = c % 2 ? -0.0f : 3.0f * s_in[c];
    for (float s_out : {0.02f, 0.1f, 0.0371f, 0.0501283295f, 0.0717491508f}) {
      std::vector<float> y_ref(x.size()), y_avx(x.size()), y_inplace = x;
      set_kernel_path(KernelPath::ref);
      int_layernorm_ptf(x.data(), y_ref.data(), rows, C, in, gamma.data(), beta.data(), s_out);
      set_kernel_path(KernelPath::avx2);
      int_layernorm_ptf(x.data(), y_avx.data(), rows, C, in, gamma.data(), beta.data(), s_out);
      int_layernorm_ptf(y_inplace.data(), y_inplace.data(), rows, C, in, gamma.data(), beta.data(), s_out);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(y_ref[i]), std::bit_cast<uint32_t>(y_avx[i]))
            << "C " << C << " s_out " << s_out << " i " << i << ": " << y_ref[i] << " vs " << y_avx[i];
        ASSERT_EQ(std::bit_cast<uint32_t>(y_ref[i]), std::bit_cast<uint32_t>(y_inplace[i])) << i;
      }
    }
  }
  // Invalid codes are an error on both paths.
  std::vector<float> bad = {NAN, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<float> y(bad.size()), g(bad.size(), 1.0f), b(bad.size(), 0.0f);
  for (KernelPath path : {KernelPath::ref, KernelPath::avx2}) {
    set_kernel_path(path);
    EXPECT_THROW(int_layernorm_ptf(bad.data(), y.data(), 1, 9, ptf_params({0.1f}, 0.0f), g.data(), b.data(), 0.1f),
                 Error);
  }
  set_kernel_path(saved);
}

// The AVX-512 token (the integer engine's LayerNorm on AVX-512 CPUs) against the AVX2 token, which
// the test above holds to the scalar one: same return value, bit-identical outputs, over
// C = 1..200 (tails of both), power-of-two gammas (the libm lanes), A_c = 0, constant tokens and
// codes beyond the double-exact bound.
TEST(QuantIntLayerNorm, Avx512RowMatchesAvx2Row) {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX-512";
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> code(-128, 127);
  int64_t checked = 0, fast = 0;
  for (int64_t C : {1, 7, 8, 15, 16, 17, 64, 192, 200}) {
    std::vector<float> s_in(C), shift(C), gamma(C), beta(C);
    for (auto& s : s_in) s = 0.01f * std::ldexp(1.0f, static_cast<int>(rng() % 4));
    const float s_min = *std::min_element(s_in.begin(), s_in.end());
    for (int64_t c = 0; c < C; ++c) {
      shift[c] = std::nearbyint(s_in[c] / s_min);
      gamma[c] = c % 5 == 0 ? std::ldexp(1.0f, static_cast<int>(rng() % 5) - 2)
                            : 1.0f + std::nearbyint(32.0f * unit(rng)) / 64.0f;
      beta[c] = c % 7 == 0 ? 0.0f : std::nearbyint(20.0f * unit(rng)) / 64.0f;
      if (c % 11 == 3) gamma[c] = 0.0f;
    }
    const int64_t rows = std::max<int64_t>(9, 60000 / C);
    for (float s_out : {0.02f, 0.0371f, 0.0717491508f}) {
      const quant_detail::IntLnRow k{C, s_in.data(), shift.data(), gamma.data(), beta.data(), s_min, s_out};
      std::vector<float> x(C), y2(C), y5(C), t2(C), t5(C);
      for (int64_t r = 0; r < rows; ++r) {
        const int off = code(rng) / 2;
        for (int64_t c = 0; c < C; ++c) x[c] = static_cast<float>(off + code(rng) / 3) * s_in[c];
        if (r == 2) std::fill(x.begin(), x.end(), 0.0f);  // constant token
        if (r == 3) x[0] = 4e5f * s_in[0];                // code beyond 2^19: both decline
        std::fill(y2.begin(), y2.end(), 7.0f);
        std::fill(y5.begin(), y5.end(), 7.0f);
        const bool r2 = quant_detail::int_ln_row_avx2(x.data(), y2.data(), k, t2.data());
        const bool r5 = quant_detail::int_ln_row_avx512(x.data(), y5.data(), k, t5.data());
        ASSERT_EQ(r2, r5) << "C " << C << " row " << r;
        fast += r5;
        for (int64_t c = 0; r2 && c < C; ++c)
          ASSERT_EQ(std::bit_cast<uint32_t>(y2[c]), std::bit_cast<uint32_t>(y5[c]))
              << "C " << C << " row " << r << " c " << c << ": " << y2[c] << " vs " << y5[c];
        ++checked;
      }
    }
  }
  EXPECT_GT(fast, checked * 9 / 10);  // the vector rows ran (not only the declines)
}

}  // namespace
}  // namespace qvit
