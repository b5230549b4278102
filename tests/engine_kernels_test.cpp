// Engine kernels (src/engine/engine_ops.h). Requantization rows: the 64-bit formulation equals
// apply_mult's 128-bit one on the biased accumulator, and the AVX2 row equals the scalar row bit
// for bit, on random and extreme inputs and odd row lengths. int16 GEMM of the attention: the
// packed scalar reference equals a naive product on the unpacked operands, the AVX2 kernel equals
// the reference, on odd shapes (M, N = 1, 7, 197; K odd padded by the packing). The LIS row:
// AVX2 (gathers, float division, bit arithmetic) equals the scalar row; so do the residual add and
// the GELU table lookup.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/engine_ops.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/qkernels.h"

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

TEST(EngineRequant, Avx2AndAvx512RowsBitExactWithScalarRows) {
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
        requant_row_avx2(rq, acc.data(), n, zero, 0, hi, y_simd.data(), nullptr);
        ASSERT_EQ(y_ref, y_simd) << "n " << n << " bcast " << bcast;
        if (cpu_has_avx512vnni()) {
          std::fill(y_simd.begin(), y_simd.end(), uint8_t{77});
          requant_row_avx512(rq, acc.data(), n, zero, 0, hi, y_simd.data(), nullptr);
          ASSERT_EQ(y_ref, y_simd) << "avx512 n " << n << " bcast " << bcast;
        }
        for (int64_t j = 0; j < n; ++j)  // and the definition
          ASSERT_EQ(y_ref[j], std::clamp<int64_t>(rq.one(acc[j], j) + zero, 0, hi));
        std::vector<int32_t> u_ref(static_cast<size_t>(n)), u_simd(static_cast<size_t>(n));
        const int32_t lo32 = -70000, hi32 = 70000;
        set_kernel_path(KernelPath::ref);
        rq.row_i32(acc.data(), n, lo32, hi32, u_ref.data());
        requant_row_avx2(rq, acc.data(), n, 0, lo32, hi32, nullptr, u_simd.data());
        ASSERT_EQ(u_ref, u_simd) << "n " << n << " bcast " << bcast;
        if (cpu_has_avx512vnni()) {
          std::fill(u_simd.begin(), u_simd.end(), 77);
          requant_row_avx512(rq, acc.data(), n, 0, lo32, hi32, nullptr, u_simd.data());
          ASSERT_EQ(u_ref, u_simd) << "avx512 n " << n << " bcast " << bcast;
        }
      }
    }
  }
}

// Tiles (the GEMM epilogue): rows x columns [ch0, ch0 + w) of a wider accumulator, every path
// equal to the definition one(acc, ch0 + j); a channel offset that is not a multiple of 8 fails.
TEST(EngineRequant, TilesWithChannelOffsetEqualDefinition) {
  PathGuard guard;
  std::mt19937_64 rng(12);
  const int64_t N = 200, rows = 5;
  for (bool bcast : {false, true}) {
    const std::vector<Mult> mult = random_mults(rng, bcast ? 1 : N, 8);
    std::vector<int32_t> bias(static_cast<size_t>(bcast ? 1 : N));
    for (auto& b : bias) b = extreme_or_random(rng);
    Requant rq;
    rq.init(mult, bias.data(), 8);
    std::vector<int32_t> acc(static_cast<size_t>(rows * N));
    for (auto& a : acc) a = extreme_or_random(rng);
    for (const auto& [ch0, w] : {std::pair<int64_t, int64_t>{0, 200}, {32, 64}, {64, 37}, {192, 8}, {96, 5}}) {
      std::vector<std::vector<uint8_t>> ys;
      std::vector<std::vector<int32_t>> us;
      std::vector<QgemmIsa> isas = {QgemmIsa::ref};
      if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.push_back(QgemmIsa::avx2);
      if (cpu_has_avx512vnni()) isas.push_back(QgemmIsa::avx512vnni);
      for (QgemmIsa isa : isas) {
        set_kernel_path(isa == QgemmIsa::ref ? KernelPath::ref : KernelPath::avx2);
        if (isa != QgemmIsa::ref) set_qgemm_isa(isa);
        std::vector<uint8_t> y(static_cast<size_t>(rows * N), 7);
        std::vector<int32_t> u(static_cast<size_t>(rows * w), 7);
        rq.rows_u8(acc.data() + ch0, N, rows, w, 3, 0, 255, y.data() + ch0, N, ch0);
        rq.rows_i32(acc.data() + ch0, N, rows, w, -70000, 70000, u.data(), w, ch0);
        reset_qgemm_isa();
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < N; ++j) {
            const bool in = j >= ch0 && j < ch0 + w;
            const int64_t want = in ? std::clamp<int64_t>(rq.one(acc[r * N + j], j) + 3, 0, 255) : 7;
            ASSERT_EQ(y[r * N + j], want) << qgemm_isa_name(isa) << " ch0 " << ch0 << " r " << r << " j " << j;
            if (in) {
              ASSERT_EQ(u[r * w + j - ch0], std::clamp<int64_t>(rq.one(acc[r * N + j], j), -70000, 70000));
            }
          }
      }
    }
    std::vector<uint8_t> y(8);
    if (!bcast) {
      EXPECT_THROW(rq.rows_u8(acc.data() + 4, N, 1, 8, 0, 0, 255, y.data(), 8, 4), Error);
    }
  }
}

TEST(EngineRequant, RejectsShiftBelowBiasBits) {
  Requant rq;
  EXPECT_THROW(rq.init({Mult{1 << 30, 3}}, nullptr, 8), std::exception);
  EXPECT_THROW(rq.init({}, nullptr, 0), std::exception);
}

bool cpu_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

TEST(EngineGemm16, ReferenceAndAvx2EqualNaiveProduct) {
  PathGuard guard;
  std::mt19937_64 rng(5);
  for (int64_t M : {1, 4, 7, 32, 197})
    for (int64_t N : {1, 7, 8, 16, 64, 197})
      for (int64_t K : {1, 2, 7, 64, 197}) {
        for (bool trans : {false, true}) {
          const int64_t K2 = (K + 1) / 2 * 2;
          std::vector<int16_t> A(static_cast<size_t>(M * K2), 0), Bm(static_cast<size_t>(K * N));
          for (int64_t i = 0; i < M; ++i)
            for (int64_t k = 0; k < K; ++k)  // the extremes the callers allow: |A| <= 2^14 or 255
              A[i * K2 + k] = static_cast<int16_t>(rng() % 4 == 0 ? (rng() % 2 ? 16384 : -255)
                                                                  : int(rng() % 511) - 255);
          for (auto& b : Bm) b = static_cast<int16_t>(rng() % 8 == 0 ? -255 : int(rng() % 511) - 255);
          // B(k, n): Bm[k N + n], or transposed storage Bm[n K + k]
          std::vector<int16_t> Bp(static_cast<size_t>(K2 / 2 * 2 * gemm16_np(N)), 7);
          gemm16_pack(Bm.data(), trans ? K : N, trans, K, N, Bp.data());
          std::vector<int32_t> naive(static_cast<size_t>(M * N)), ref(naive.size(), -1), simd(naive.size(), -2);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t n = 0; n < N; ++n) {
              int64_t s = 0;
              for (int64_t k = 0; k < K; ++k) s += int64_t{A[i * K2 + k]} * (trans ? Bm[n * K + k] : Bm[k * N + n]);
              naive[i * N + n] = static_cast<int32_t>(s);
            }
          gemm16_ref(A.data(), K2, M, K2, Bp.data(), N, ref.data(), N);
          ASSERT_EQ(ref, naive) << M << "x" << N << "x" << K;
          if (!cpu_avx2()) continue;
          gemm16_avx2(A.data(), K2, M, K2, Bp.data(), N, simd.data(), N);
          ASSERT_EQ(simd, ref) << M << "x" << N << "x" << K;
          if (!cpu_has_avx512vnni()) continue;
          std::fill(simd.begin(), simd.end(), -3);
          gemm16_vnni(A.data(), K2, M, K2, Bp.data(), N, simd.data(), N);
          ASSERT_EQ(simd, ref) << "vnni " << M << "x" << N << "x" << K;
        }
      }
  EXPECT_THROW(gemm16_ref(nullptr, 4, 1, 3, nullptr, 1, nullptr, 1), std::exception);
}

TEST(EngineLis, Avx2AndAvx512RowsEqualScalarRow) {
  if (!cpu_avx2()) GTEST_SKIP() << "no AVX2";
  PathGuard guard;
  std::mt19937_64 rng(3);
  for (float S : {0.01f, 0.037f, 0.11f, 0.5f}) {
    for (float zero : {0.0f, 37.0f, 200.0f}) {
      IntLis lis;
      lis.init(S, zero, 256);
      for (int64_t cols : {1, 3, 8, 31, 33, 64, 65, 127, 128, 129, 197, 256}) {
        for (int rep = 0; rep < 20; ++rep) {
          std::vector<uint8_t> l(static_cast<size_t>(cols));
          const int spread = 1 + static_cast<int>(rng() % 256);  // peaked rows and flat ones
          const int base = static_cast<int>(rng() % 256);
          for (auto& v : l) v = static_cast<uint8_t>(std::clamp(base - int(rng() % spread), 0, 255));
          if (rep % 5 == 0) std::fill(l.begin(), l.end(), l[0]);
          std::vector<uint8_t> ref(static_cast<size_t>(cols)), simd(static_cast<size_t>(cols), 99);
          lis.row_ref(l.data(), ref.data(), cols);
          lis_row_avx2(lis, l.data(), simd.data(), cols);
          ASSERT_EQ(ref, simd) << "S " << S << " zero " << zero << " cols " << cols;
          if (!cpu_has_avx512vnni()) continue;
          std::fill(simd.begin(), simd.end(), uint8_t{99});
          lis_row_avx512(lis, l.data(), simd.data(), cols);
          ASSERT_EQ(ref, simd) << "avx512 S " << S << " zero " << zero << " cols " << cols;
        }
      }
    }
  }
}

TEST(EngineLis, Avx2PowersOfTwoFromCodes) {
  if (!cpu_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937_64 rng(17);
  for (int64_t n : {1, 15, 16, 17, 197}) {
    for (int rep = 0; rep < 10; ++rep) {
      std::vector<uint8_t> codes(static_cast<size_t>(n));
      for (auto& c : codes) c = static_cast<uint8_t>(rep < 5 ? 1 + rng() % 16 : rng() % 17);  // 1..16 or 0..16
      std::vector<int16_t> a(static_cast<size_t>(n), -7);
      const bool zero = lis_pow2_avx2(codes.data(), n, a.data());
      bool expect_zero = false;
      for (int64_t j = 0; j < n; ++j) {
        const int c = codes[j];
        expect_zero |= c == 0;
        ASSERT_EQ(a[j], (c == 0 || c == 16) ? 0 : (1 << (15 - c))) << "code " << c;
      }
      ASSERT_EQ(zero, expect_zero);
    }
  }
}

TEST(EngineLayerNorm, Avx2CodeConversionsEqualScalar) {
  if (!cpu_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937_64 rng(19);
  for (int64_t C : {1, 8, 13, 192, 384}) {
    std::vector<uint8_t> x(static_cast<size_t>(C));
    std::vector<float> s(static_cast<size_t>(C)), xf(s.size()), y(s.size());
    for (int64_t c = 0; c < C; ++c) {
      x[c] = static_cast<uint8_t>(rng());
      s[c] = std::ldexp(0.013f, int(rng() % 4));
      // ties (k + 0.5) s_out, huge values, NaN and infinities among ordinary ones
      const int kind = static_cast<int>(rng() % 6);
      y[c] = kind == 0 ? (float(int(rng() % 300) - 150) + 0.5f) * 0.05f
             : kind == 1 ? (rng() % 2 ? 3e38f : -3e38f)
             : kind == 2 ? (rng() % 2 ? NAN : INFINITY)
                         : float(int(rng() % 20001) - 10000) * 1e-3f;
    }
    ln_dequant_avx2(x.data(), C, 37.0f, s.data(), xf.data());
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(xf[c], (static_cast<float>(x[c]) - 37.0f) * s[c]);
    std::vector<uint8_t> q(static_cast<size_t>(C));
    ln_requant_avx2(y.data(), C, 0.05f, 128, 255, q.data());
    for (int64_t c = 0; c < C; ++c) {
      const float r = std::nearbyint(y[c] / 0.05f);
      const int64_t expect = std::isnan(r) ? 0 : std::clamp<int64_t>(int64_t(std::clamp(r, -1e9f, 1e9f)) + 128, 0, 255);
      ASSERT_EQ(q[c], expect) << "y " << y[c];
    }
  }
}

TEST(EngineResidual, Avx2AndAvx512RowsEqualScalarRows) {
  if (!cpu_avx2()) GTEST_SKIP() << "no AVX2";
  PathGuard guard;
  std::mt19937_64 rng(9);
  for (int64_t C : {1, 7, 8, 192, 197, 384}) {
    for (int rep = 0; rep < 20; ++rep) {
      // per-channel PTF-like scales (powers of two apart) or per-tensor, ratios from 2^-12 to 2^6
      auto scales = [&](bool per_channel) {
        std::vector<float> v(per_channel ? static_cast<size_t>(C) : 1);
        const float base = std::ldexp(1.0f + float(rng() % 1000) / 1000.0f, -12 + int(rng() % 12));
        for (auto& x : v) x = base * float(1 << (rng() % 4));
        return v;
      };
      IntAdd add;
      add.init(C, scales(rep % 2), int32_t(rng() % 256), scales(rep % 3 == 0), int32_t(rng() % 256),
               scales(rep % 2), int32_t(rng() % 256), rep % 4 ? 255 : 63);
      const int64_t rows = 5;
      std::vector<uint8_t> a(static_cast<size_t>(rows * C)), b(a.size()), y_ref(a.size()), y_simd(a.size());
      for (auto& v : a) v = static_cast<uint8_t>(rng());
      for (auto& v : b) v = static_cast<uint8_t>(rng());
      set_kernel_path(KernelPath::ref);
      add.forward(a.data(), b.data(), 0, y_ref.data(), rows);
      set_kernel_path(KernelPath::avx2);
      set_qgemm_isa(QgemmIsa::avx2);
      add.forward(a.data(), b.data(), 0, y_simd.data(), rows);
      ASSERT_EQ(y_ref, y_simd) << "C " << C << " rep " << rep;
      if (cpu_has_avx512vnni()) {  // the AVX-512 row, taken with the AVX-512 int8 path
        set_qgemm_isa(QgemmIsa::avx512vnni);
        std::fill(y_simd.begin(), y_simd.end(), uint8_t{77});
        add.forward(a.data(), b.data(), 0, y_simd.data(), rows);
        ASSERT_EQ(y_ref, y_simd) << "avx512 C " << C << " rep " << rep;
      }
      reset_qgemm_isa();
      for (int64_t c = 0; c < C; ++c) {  // the documented formula, in 128 bits
        __extension__ using i128 = __int128;
        const i128 v = i128(a[c] - add.za) * add.ma[c] + i128(b[c] - add.zb) * add.mb[c];
        const i128 half = add.k > 0 ? i128(1) << (add.k - 1) : 0;
        const int64_t q = static_cast<int64_t>((v + half) >> add.k) + add.zo;
        ASSERT_EQ(y_ref[c], std::clamp<int64_t>(q, 0, add.qmax));
      }
    }
  }
}

TEST(EngineGelu, Avx2AndAvx512LookupEqualScalarLookup) {
  if (!cpu_avx2()) GTEST_SKIP() << "no AVX2";
  PathGuard guard;
  std::mt19937_64 rng(13);
  for (float s : {0.01f, 0.05f, 0.2f}) {
    GeluLut lut;
    lut.init(s, 21.0f, 255);
    for (int64_t n : {1, 9, 64, 1536}) {
      std::vector<int32_t> u(static_cast<size_t>(n));
      for (auto& v : u) v = lut.u_lo + static_cast<int32_t>(rng() % uint64_t(lut.u_hi - lut.u_lo + 1));
      u[0] = lut.u_hi;  // the last entry (read with the padding)
      std::vector<uint8_t> y_ref(static_cast<size_t>(n)), y_simd(static_cast<size_t>(n));
      std::vector<int32_t> f_ref(static_cast<size_t>(n)), f_simd(static_cast<size_t>(n));
      set_kernel_path(KernelPath::ref);
      const int64_t nr = lut.lookup(u.data(), n, y_ref.data(), f_ref.data());
      ASSERT_GE(nr, 1);  // u_hi's entry is always exact-computed
      f_ref.resize(static_cast<size_t>(nr));
      for (int64_t f : f_ref) y_ref[f] = 0;  // undefined there
      for (int isa = 0; isa < 2; ++isa) {
        if (isa == 1 && !cpu_has_avx512vnni()) continue;
        std::fill(f_simd.begin(), f_simd.end(), -5);
        const int64_t ns = isa ? gelu_lookup_avx512(lut.table.data(), lut.u_lo, u.data(), n, y_simd.data(), f_simd.data())
                               : gelu_lookup_avx2(lut.table.data(), lut.u_lo, u.data(), n, y_simd.data(), f_simd.data());
        ASSERT_EQ(nr, ns) << "isa " << isa;
        std::vector<int32_t> fs(f_simd.begin(), f_simd.begin() + ns);
        ASSERT_EQ(f_ref, fs) << "isa " << isa;
        for (int64_t f : f_ref) y_simd[f] = 0;
        ASSERT_EQ(y_ref, y_simd) << "isa " << isa;
      }
    }
  }
}

}  // namespace
}  // namespace qvit::engine
