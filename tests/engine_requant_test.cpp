// Requantization rows of the integer engine (Requant, src/engine/engine_ops.h): the 64-bit
// formulation equals apply_mult's 128-bit one on the biased accumulator, and the AVX2 row equals
// the scalar row bit for bit, on random and extreme inputs and odd row lengths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/engine_ops.h"
#include "qvit/kernels.h"

namespace qvit::engine {
namespace {

struct PathGuard {
  KernelPath saved = kernel_path();
  ~PathGuard() { set_kernel_path(saved); }
};

int32_t extreme_or_random(std::mt19937_64& rng) {
  static const int32_t kEdge[] = {0, 1, -1, INT32_MAX, INT32_MIN + 1, 255 * 128 * 768, -255 * 128 * 768};
  if (rng() % 8 == 0) return kEdge[rng() % 7];
  const int bits = 1 + static_cast<int>(rng() % 31);
  const int64_t v = static_cast<int64_t>(rng() % (uint64_t{1} << bits));
  return static_cast<int32_t>(rng() % 2 ? v : -v);
}

std::vector<Mult> random_mults(std::mt19937_64& rng, int64_t n, int fb) {
  std::vector<Mult> out;
  for (int64_t i = 0; i < n; ++i) {
    Mult m;
    do {  // reals from 2^-50 to 2^20, as the file's multipliers (shift >= fb)
      m = mult_from_real(std::ldexp(1.0 + double(rng() % 1000000) / 1e6, -50 + int(rng() % 70)));
    } while (m.shift < fb);
    if (rng() % 16 == 0) m = Mult{};  // zero multiplier (apply_mult gives 0)
    out.push_back(m);
  }
  return out;
}

TEST(EngineRequant, SixtyFourBitFormEqualsApplyMultOnBiasedAccumulator) {
  std::mt19937_64 rng(7);
  for (int fb : {0, 8}) {
    for (int rep = 0; rep < 200; ++rep) {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 40);
      const std::vector<Mult> mult = random_mults(rng, n, fb);
      std::vector<int32_t> bias(static_cast<size_t>(n));
      for (auto& b : bias) b = extreme_or_random(rng);
      Requant rq;
      rq.init(mult, fb ? bias.data() : nullptr, fb);
      for (int64_t j = 0; j < n; ++j)
        for (int k = 0; k < 20; ++k) {
          const int32_t acc = extreme_or_random(rng);
          const int64_t x = mult[j].mult == 0 ? 0 : (int64_t{acc} << fb) + (fb ? bias[j] : 0);
          ASSERT_EQ(rq.one(acc, j), apply_mult(x, mult[j])) << "acc " << acc << " mult " << mult[j].mult << " shift "
                                                              << mult[j].shift << " fb " << fb;
        }
    }
  }
}

TEST(EngineRequant, Avx2RowsBitExactWithScalarRows) {
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) GTEST_SKIP() << "no AVX2";
  PathGuard guard;
  std::mt19937_64 rng(11);
  for (int64_t n : {1, 7, 8, 9, 13, 64, 197, 576, 1537}) {
    for (bool bcast : {false, true}) {
      const std::vector<Mult> mult = random_mults(rng, bcast ? 1 : n, 8);
      std::vector<int32_t> bias(static_cast<size_t>(bcast ? 1 : n));
      for (auto& b : bias) b = extreme_or_random(rng);
      Requant rq;
      rq.init(mult, bias.data(), 8);
      std::vector<int32_t> acc(static_cast<size_t>(n));
      for (int rep = 0; rep < 30; ++rep) {
        // small accumulators land inside the clamp range; large ones test the 64-bit clamp
        for (auto& a : acc) a = rep % 2 ? extreme_or_random(rng) : static_cast<int32_t>(rng() % 20001) - 10000;
        const int32_t zero = static_cast<int32_t>(rng() % 256);
        const int32_t hi = rep % 3 ? 255 : 15;
        std::vector<uint8_t> y_ref(static_cast<size_t>(n)), y_simd(static_cast<size_t>(n));
        set_kernel_path(KernelPath::ref);
        rq.row_u8(acc.data(), n, zero, 0, hi, y_ref.data());
        set_kernel_path(KernelPath::avx2);
        rq.row_u8(acc.data(), n, zero, 0, hi, y_simd.data());
        ASSERT_EQ(y_ref, y_simd) << "n " << n << " bcast " << bcast;
        for (int64_t j = 0; j < n; ++j)  // and the definition
          ASSERT_EQ(y_ref[j], std::clamp<int64_t>(rq.one(acc[j], j) + zero, 0, hi));
        std::vector<int32_t> u_ref(static_cast<size_t>(n)), u_simd(static_cast<size_t>(n));
        const int32_t lo32 = -70000, hi32 = 70000;
        set_kernel_path(KernelPath::ref);
        rq.row_i32(acc.data(), n, lo32, hi32, u_ref.data());
        set_kernel_path(KernelPath::avx2);
        rq.row_i32(acc.data(), n, lo32, hi32, u_simd.data());
        ASSERT_EQ(u_ref, u_simd) << "n " << n << " bcast " << bcast;
      }
    }
  }
}

TEST(EngineRequant, RejectsShiftBelowBiasBits) {
  Requant rq;
  EXPECT_THROW(rq.init({Mult{1 << 30, 3}}, nullptr, 8), std::exception);
  EXPECT_THROW(rq.init({}, nullptr, 0), std::exception);
}

}  // namespace
}  // namespace qvit::engine
