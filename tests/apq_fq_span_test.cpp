// The AVX2 span quantizers (src/apq/fq_avx2.cpp) against their scalar references, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "apq/fq_span.h"
#include "qvit/apq_mpq.h"

namespace qvit::apq::detail {
namespace {

bool have_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Inputs around a quantizer with interval d: exact halves of d (the rounding ties), the clamp
// edges, signed zeros, denormals, inf, NaN, and 100k random values over 2^-30 .. 2^10 times d.
std::vector<float> inputs(float d) {
  std::vector<float> v = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-30f, -1e-30f, INFINITY, -INFINITY, NAN, -NAN,
                          3e38f, -3e38f, d, -d, 0.5f * d, -0.5f * d, 1.0f, -1.0f, 0.16997f, -0.16997f};
  for (int k = -300; k <= 300; ++k) v.push_back((float(k) + 0.5f) * d), v.push_back(float(k) * d);
  uint32_t s = 7;
  for (int i = 0; i < 100000; ++i) {
    s = s * 1664525u + 1013904223u;
    const int e = static_cast<int>(s >> 27) - 30 + static_cast<int>((s >> 12) & 15);
    const float m = static_cast<float>(s & 0xfff) / 4096.0f;
    v.push_back(std::ldexp(1.0f + m, e) * d * ((s >> 26) & 1 ? -1.0f : 1.0f));
  }
  return v;
}

// Runs ref and avx2 on every prefix length 0..19 (masked tails) and on the whole input.
template <class Ref, class Vec>
void same_bits(const std::vector<float>& x, Ref ref, Vec vec, const char* what) {
  std::vector<float> a(x.size()), b(x.size());
  std::vector<size_t> lengths;
  for (size_t n = 0; n < 20; ++n) lengths.push_back(n);
  lengths.push_back(x.size());
  for (size_t n : lengths) {
    std::fill(a.begin(), a.end(), 7.0f), std::fill(b.begin(), b.end(), 7.0f);
    ref(x.data(), a.data(), static_cast<int64_t>(n));
    vec(x.data(), b.data(), static_cast<int64_t>(n));
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(bits_of(a[i]), bits_of(b[i])) << what << ": n=" << n << " x[" << i << "]=" << x[i] << " ref "
                                               << a[i] << " avx2 " << b[i];
  }
}

TEST(ApqFqSpan, ReferenceIsTheScalarQuantizer) {
  const std::vector<float> x = inputs(0.37f);
  std::vector<float> out(x.size());
  fq_sym_span_ref(x.data(), out.data(), static_cast<int64_t>(x.size()), 0.37f, 4);
  for (size_t i = 0; i < x.size(); i += 97) ASSERT_EQ(bits_of(out[i]), bits_of(quant_sym(x[i], 0.37f, 4))) << x[i];
  fq_upos_span_ref(x.data(), out.data(), static_cast<int64_t>(x.size()), 0.37f, 15);
  for (size_t i = 0; i < x.size(); i += 97)
    ASSERT_EQ(bits_of(out[i]), bits_of(mpq_quant(x[i], 4, MpqParams{MpqKind::uniform, 0.37f}))) << x[i];
  // hand values: 4-bit sym, d = 0.5: 0.25 -> 0 (tie to even), 0.75 -> 1.0, -9 -> -4.0 (clamp at -8 d)
  fq_sym_span_ref(std::vector<float>{0.25f, 0.75f, -9.0f}.data(), out.data(), 3, 0.5f, 4);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_EQ(out[2], -4.0f);
}

TEST(ApqFqSpan, Avx2IsBitIdenticalToReference) {
  if (!have_avx2()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  for (int bits : {2, 4, 6, 8})
    for (float d : {0.37f, 1.0f / 127.0f, 3e-3f, 12.5f}) {
      const std::vector<float> x = inputs(d);
      same_bits(x, [&](const float* i, float* o, int64_t n) { fq_sym_span_ref(i, o, n, d, bits); },
                [&](const float* i, float* o, int64_t n) { fq_sym_span_avx2(i, o, n, d, bits); }, "sym");
      same_bits(x, [&](const float* i, float* o, int64_t n) { fq_gelu_span_ref(i, o, n, d, bits); },
                [&](const float* i, float* o, int64_t n) { fq_gelu_span_avx2(i, o, n, d, bits); }, "gelu");
      const int levels = (1 << bits) - 1;
      same_bits(x, [&](const float* i, float* o, int64_t n) { fq_upos_span_ref(i, o, n, d, levels); },
                [&](const float* i, float* o, int64_t n) { fq_upos_span_avx2(i, o, n, d, levels); }, "upos");
    }
  // Softmax inputs: probabilities in [0, 1] on a log scale, ties of both intervals, edges.
  for (int bits : {3, 4, 6, 8})
    for (int e : {0, 1, 3, 7, 19})
      for (TwinSoftmaxMode mode : {TwinSoftmaxMode::disjoint, TwinSoftmaxMode::added}) {
        const float m = static_cast<float>((1 << (bits - 1)) - 1), split = std::ldexp(1.0f, -e);
        std::vector<float> x = inputs(split / m);
        for (float& v : x) v = std::fabs(v) > 1.0f ? std::fmod(std::fabs(v), 1.0f) : std::fabs(v);
        for (int k = 0; k <= 2 * int(m); ++k) x.push_back((float(k) + 0.5f) / m), x.push_back(split);
        x.push_back(NAN), x.push_back(-0.0f), x.push_back(1.0f);
        same_bits(x, [&](const float* i, float* o, int64_t n) { fq_twin_softmax_span_ref(i, o, n, bits, e, mode); },
                  [&](const float* i, float* o, int64_t n) { fq_twin_softmax_span_avx2(i, o, n, bits, e, mode); },
                  "twin softmax");
      }
}

// The threshold form of MPQ's log2 quantizer equals mpq_quant (which calls log2f) on every float
// within 2^12 bit patterns of every threshold — the only places where a step can fall — and on
// random floats, zeros, negatives, denormals, inf and NaN.
TEST(ApqFqSpan, MpqLog2ThresholdsMatchTheScalarQuantizer) {
  if (!have_avx2()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  for (int bits : {2, 3, 4, 5}) {
    const std::vector<float>& t = mpq_log2_thresholds(bits);
    ASSERT_EQ(t.size(), static_cast<size_t>(1 << bits));  // c = 0 .. levels
    for (size_t c = 1; c < t.size(); ++c) ASSERT_LT(t[c], t[c - 1]);
    std::vector<float> x = {0.0f, -0.0f, -1.0f, 1e-45f, 1e-40f, 1.0f, 2.0f, 3e38f, INFINITY, -INFINITY, NAN, 0.5f};
    for (float th : t) {
      uint32_t u;
      std::memcpy(&u, &th, 4);
      for (int64_t k = -4096; k <= 4096; ++k) {
        const uint32_t v = u + static_cast<uint32_t>(k);
        float f;
        std::memcpy(&f, &v, 4);
        x.push_back(f);
      }
    }
    uint32_t s = 3;
    for (int i = 0; i < 100000; ++i) {
      s = s * 1664525u + 1013904223u;
      x.push_back(std::ldexp(static_cast<float>(s >> 8) / float(1 << 24), -static_cast<int>(s & 31)));
    }
    same_bits(x, [&](const float* i, float* o, int64_t n) { fq_mpq_log2_span_ref(i, o, n, bits); },
              [&](const float* i, float* o, int64_t n) { fq_mpq_log2_span_avx2(i, o, n, t); }, "mpq log2");
  }
  // hand value: 2 bits, 0.3 -> 2^-2 (-log2 0.3 = 1.74), 0.06 -> 0 (4.06 rounds to 4 > 3)
  const float in[2] = {0.3f, 0.06f};
  float out[2];
  fq_mpq_log2_span_avx2(in, out, 2, mpq_log2_thresholds(2));
  EXPECT_EQ(out[0], 0.25f);
  EXPECT_EQ(out[1], 0.0f);
}

TEST(ApqFqSpan, BiasRows) {
  for (int64_t N : {1, 7, 8, 9, 17, 192}) {
    std::vector<float> y(static_cast<size_t>(3 * N)), b(static_cast<size_t>(N));
    for (size_t i = 0; i < y.size(); ++i) y[i] = 0.1f * static_cast<float>(i) - 3.0f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = 1.0f / (1.0f + static_cast<float>(i));
    std::vector<float> want = y;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t j = 0; j < N; ++j) want[r * N + j] = y[r * N + j] + b[j];
    std::vector<float> a = y;
    bias_rows_ref(a.data(), b.data(), 3, N);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits_of(a[i]), bits_of(want[i]));
    if (!have_avx2()) continue;
    bias_rows_avx2(y.data(), b.data(), 3, N);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits_of(y[i]), bits_of(want[i])) << N << " " << i;
  }
}

}  // namespace
}  // namespace qvit::apq::detail
