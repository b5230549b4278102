// Integer kernels for the integer engine: int8 GEMM with exact int32 accumulation.
//
// Arithmetic (normative): activations are uint8 codes a with a per-tensor zero point z_a,
// weights are int8 codes w (symmetric, per output channel, any value in [-128, 127]);
//   acc[m, n] = sum_k (a[m, k] - z_a) * w[n, k]          exactly, in int32.
// |a - z_a| <= 255 and |w| <= 128, so each product fits int16 x int16 and every term of the
// sum is exact; the caller guarantees K * 255 * 128 < 2^31 (K <= 65793), checked.
//
// Scheme on AVX2 without VNNI: `vpmaddubsw` (u8 x s8) adds pairs of products in *saturating*
// int16 — 255 * 127 * 2 overflows — so qvit does not use it. The activations are widened once
// per call to int16 with the zero point subtracted, the weights are packed once to int16, and
// `vpmaddwd` (int16 x int16, pairs added into int32, exact for these ranges) does the products.
// Same result as the scalar reference for every input, bit for bit (tested, including the
// all-255 x all-(-128) case that breaks vpmaddubsw).
//
// On CPUs with AVX-512 VNNI (e.g. Zen 4/5, Ice Lake and later) a third path uses vpdpbusd,
// which adds four u8 x s8 products into int32 with no intermediate saturation: raw uint8
// activations times int8 weights, minus z_a * (row sum of w) — the same exact integers.
//
// Each kernel has a scalar `_ref` twin; the dispatching entry point uses kernel_path()
// (QVIT_KERNELS=ref|avx2, include/qvit/kernels.h) and, on the SIMD path, QVIT_QGEMM=avx2|vnni
// (default: vnni when the CPU has it). Results do not depend on the path or the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace qvit {

// Linear-layer weights int8 [N, K], packed once for qgemm_u8s8s32: int16 panels of 16 output
// channels x pairs of k (N padded to 16, K to 2 with zeros). Also keeps the per-row sums.
class QWeight {
 public:
  QWeight() = default;
  static QWeight pack(const int8_t* w, int64_t N, int64_t K);
  int64_t n() const { return N_; }
  int64_t k() const { return K_; }
  const int32_t* row_sums() const { return row_sums_.data(); }  // sum_k w[n, k]
  const int8_t* raw() const { return raw_.data(); }              // the original [N, K] codes
  const int16_t* panels() const { return panels_.data(); }
  int64_t k_pairs() const { return (K_ + 1) / 2; }
  const int8_t* vnni_panels() const { return vnni_.data(); }  // empty without AVX-512 VNNI
  int64_t k_quads() const { return (K_ + 3) / 4; }

 private:
  int64_t N_ = 0, K_ = 0;
  std::vector<int8_t> raw_;
  std::vector<int16_t> panels_;  // [ceil(N/16)][k_pairs][16][2]
  std::vector<int8_t> vnni_;     // [ceil(N/32)][k_quads][32][4]
  std::vector<int32_t> row_sums_;
};

enum class QgemmIsa : uint8_t { ref, avx2, avx512vnni };
// What qgemm_u8s8s32 runs: ref when kernel_path() is ref; otherwise avx512vnni when the CPU has
// it (unless QVIT_QGEMM=avx2), else avx2.
QgemmIsa qgemm_isa();
// Forces a path (tests, benchmarks); throws when the CPU lacks it. Weights packed before a
// switch to avx512vnni on a CPU without it are not repacked (it cannot happen).
void set_qgemm_isa(QgemmIsa isa);
void reset_qgemm_isa();  // back to the default choice
const char* qgemm_isa_name(QgemmIsa isa);
bool cpu_has_avx512vnni();

// acc[m * ldacc + n] = sum_k (a[m * lda + k] - a_zero) * w[n, k], for m < M, n < N. Parallel.
void qgemm_u8s8s32(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const QWeight& w,
                   int32_t* acc, int64_t ldacc);
// The same, then epilogue(m0, m1, n0, n1) once for each tile of a partition of [0, M) x [0, N),
// on the thread that computed it, as soon as acc is final there (so that the requantization runs
// while the tile is in cache, in the same parallel region). Tiles depend on M, N and the path only;
// the callback must write nothing outside its tile's outputs.
using QgemmEpilogue = std::function<void(int64_t m0, int64_t m1, int64_t n0, int64_t n1)>;
void qgemm_u8s8s32(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const QWeight& w,
                   int32_t* acc, int64_t ldacc, const QgemmEpilogue& epilogue);
// The scalar reference (single-threaded, int64 sums checked to fit int32).
void qgemm_u8s8s32_ref(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const int8_t* w,
                       int64_t N, int64_t K, int32_t* acc, int64_t ldacc);

}  // namespace qvit
