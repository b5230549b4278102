// int8 GEMM: the AVX2 path bit-exact with the scalar reference (odd shapes, the extreme values
// that make vpmaddubsw saturate, every zero point edge), the reference against a plain int64
// dot product written out here, thread-count independence, and argument errors.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/qkernels.h"

namespace qvit {
namespace {

struct Case {
  std::vector<uint8_t> a;
  std::vector<int8_t> w;
  int64_t M, N, K, lda;
  int32_t za;
};

Case random_case(int64_t M, int64_t N, int64_t K, int32_t za, uint32_t seed, int64_t pad = 0) {
  std::mt19937 rng(seed);
  Case c{{}, {}, M, N, K, K + pad, za};
  c.a.resize(static_cast<size_t>(std::max<int64_t>(1, M * c.lda)));
  c.w.resize(static_cast<size_t>(N * K));
  for (auto& v : c.a) v = static_cast<uint8_t>(rng() & 0xff);
  for (auto& v : c.w) v = static_cast<int8_t>(rng() & 0xff);
  return c;
}

std::vector<int32_t> run(const Case& c, QgemmIsa isa) {
  set_qgemm_isa(isa);
  std::vector<int32_t> acc(static_cast<size_t>(std::max<int64_t>(1, c.M * (c.N + 3))), -7);
  const QWeight w = QWeight::pack(c.w.data(), c.N, c.K);
  qgemm_u8s8s32(c.a.data(), c.M, c.lda, c.za, w, acc.data(), c.N + 3);  // ldacc > N
  reset_qgemm_isa();
  return acc;
}

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// The SIMD paths this CPU can run (each must equal the reference).
std::vector<QgemmIsa> simd_isas() {
  std::vector<QgemmIsa> v;
  if (has_avx2()) v.push_back(QgemmIsa::avx2);
  if (cpu_has_avx512vnni()) v.push_back(QgemmIsa::avx512vnni);
  return v;
}

TEST(QkernelsGemm, ReferenceIsTheIntegerDotProduct) {
  const Case c = random_case(3, 5, 7, 128, 1);
  std::vector<int32_t> acc(15);
  qgemm_u8s8s32_ref(c.a.data(), 3, 7, 128, c.w.data(), 5, 7, acc.data(), 5);
  for (int m = 0; m < 3; ++m)
    for (int n = 0; n < 5; ++n) {
      int64_t s = 0;
      for (int k = 0; k < 7; ++k) s += (int64_t(c.a[m * 7 + k]) - 128) * int64_t(c.w[n * 7 + k]);
      EXPECT_EQ(acc[m * 5 + n], s);
    }
  // By hand: a = [255, 0], z = 0, w = [-128, 127] -> 255 * -128 = -32640.
  const uint8_t a2[2] = {255, 0};
  const int8_t w2[2] = {-128, 127};
  int32_t out = 0;
  qgemm_u8s8s32_ref(a2, 1, 2, 0, w2, 1, 2, &out, 1);
  EXPECT_EQ(out, -32640);
}

TEST(QkernelsGemm, SimdMatchesReferenceOnOddShapes) {
  if (simd_isas().empty()) GTEST_SKIP() << "no AVX2";
  int checked = 0;
  for (int64_t M : {1, 5, 6, 7, 13, 49, 197, 300})
    for (int64_t N : {1, 15, 16, 17, 64, 65, 192})
      for (int64_t K : {1, 2, 15, 31, 33, 64, 200}) {
        const Case c = random_case(M, N, K, static_cast<int32_t>((M * 31 + N * 7 + K) % 256),
                                   static_cast<uint32_t>(M * 1000003 + N * 1009 + K), K % 3);
        const std::vector<int32_t> ref = run(c, QgemmIsa::ref);
        for (QgemmIsa isa : simd_isas()) {
          ASSERT_EQ(ref, run(c, isa)) << qgemm_isa_name(isa) << " " << M << "x" << N << "x" << K;
        }
        ++checked;
      }
  EXPECT_EQ(checked, 8 * 7 * 7);
}

// The epilogue sees every output element exactly once, after its accumulator is final, on every
// path (small M: column tiles over all rows; large M: 64-row tiles).
TEST(QkernelsGemm, EpilogueCoversEveryTileOnceWhenFinal) {
  std::vector<QgemmIsa> isas = simd_isas();
  isas.push_back(QgemmIsa::ref);
  for (int64_t M : {1, 197, 300})
    for (int64_t N : {17, 192, 600}) {
      const Case c = random_case(M, N, 40, 100, static_cast<uint32_t>(M * 7 + N));
      const std::vector<int32_t> ref = run(c, QgemmIsa::ref);
      for (QgemmIsa isa : isas) {
        set_qgemm_isa(isa);
        std::vector<int32_t> acc(static_cast<size_t>(M * (N + 3)), -7);
        std::vector<int> seen(static_cast<size_t>(M * N), 0);
        std::vector<int> bad(static_cast<size_t>(M * N), 0);
        const QWeight w = QWeight::pack(c.w.data(), N, c.K);
        qgemm_u8s8s32(c.a.data(), M, c.lda, c.za, w, acc.data(), N + 3,
                      [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
                        for (int64_t m = m0; m < m1; ++m)
                          for (int64_t n = n0; n < n1; ++n) {
                            ++seen[m * N + n];  // tiles are disjoint: no race
                            bad[m * N + n] += acc[m * (N + 3) + n] != ref[m * (N + 3) + n];
                          }
                      });
        reset_qgemm_isa();
        for (int64_t i = 0; i < M * N; ++i) {
          ASSERT_EQ(seen[i], 1) << qgemm_isa_name(isa) << " " << M << "x" << N << " at " << i;
          ASSERT_EQ(bad[i], 0) << qgemm_isa_name(isa) << " " << M << "x" << N << " at " << i;
        }
      }
    }
}

// All activations 255 (zero point 0) against all weights -128 or 127: vpmaddubsw would saturate
// its int16 pair sums (255 * -128 * 2 = -65280); qvit's int16 scheme must not.
TEST(QkernelsGemm, ExtremeValuesDoNotSaturate) {
  for (int8_t wv : {int8_t(-128), int8_t(127)}) {
    for (int32_t za : {0, 255}) {
      Case c{std::vector<uint8_t>(197 * 768, za == 0 ? 255 : 0), std::vector<int8_t>(33 * 768, wv), 197, 33, 768, 768, za};
      const int64_t want = int64_t(768) * (za == 0 ? 255 : -255) * wv;
      const std::vector<int32_t> ref = run(c, QgemmIsa::ref);
      EXPECT_EQ(ref[0], want);
      for (QgemmIsa isa : simd_isas()) {
        EXPECT_EQ(run(c, isa), ref) << qgemm_isa_name(isa);
      }
    }
  }
}

TEST(QkernelsGemm, ThreadCountDoesNotChangeResults) {
  if (!has_avx2()) GTEST_SKIP() << "no AVX2";
  const Case c = random_case(394, 576, 192, 131, 5);
  const int saved = num_threads();
  set_num_threads(1);
  for (QgemmIsa isa : simd_isas()) {
    set_num_threads(1);
    const auto one = run(c, isa);
    set_num_threads(2);
    const auto two = run(c, isa);
    EXPECT_EQ(one, two) << qgemm_isa_name(isa);
  }
  set_num_threads(saved);
}

TEST(QkernelsGemm, PackKeepsRowSums) {
  const Case c = random_case(1, 19, 37, 0, 9);
  const QWeight w = QWeight::pack(c.w.data(), 19, 37);
  for (int n = 0; n < 19; ++n) {
    int32_t s = 0;
    for (int k = 0; k < 37; ++k) s += c.w[n * 37 + k];
    EXPECT_EQ(w.row_sums()[n], s);
  }
}

TEST(QkernelsGemm, IsaSelection) {
  EXPECT_EQ(qgemm_isa(), kernel_path() == KernelPath::ref ? QgemmIsa::ref
                         : cpu_has_avx512vnni()            ? QgemmIsa::avx512vnni
                                                           : QgemmIsa::avx2);
  if (!cpu_has_avx512vnni()) {
    EXPECT_THROW(set_qgemm_isa(QgemmIsa::avx512vnni), Error);
  }
  set_qgemm_isa(QgemmIsa::ref);
  EXPECT_EQ(qgemm_isa(), QgemmIsa::ref);
  reset_qgemm_isa();
}

TEST(QkernelsGemm, BadArguments) {
  std::vector<int8_t> w(4, 1);
  std::vector<uint8_t> a(4, 1);
  std::vector<int32_t> acc(4);
  EXPECT_THROW(QWeight::pack(w.data(), 0, 4), Error);
  const QWeight q = QWeight::pack(w.data(), 2, 2);
  EXPECT_THROW(qgemm_u8s8s32(a.data(), 2, 1, 0, q, acc.data(), 2), Error);    // lda < K
  EXPECT_THROW(qgemm_u8s8s32(a.data(), 2, 2, 256, q, acc.data(), 2), Error);  // zero point
  EXPECT_THROW(qgemm_u8s8s32(a.data(), 2, 2, 0, q, acc.data(), 1), Error);    // ldacc < N
}

}  // namespace
}  // namespace qvit
