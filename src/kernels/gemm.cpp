// gemm_f32: single-threaded strided GEMM (attention runs one per (batch, head, row block)).
//
// The avx2 path picks between two engines, once per process:
//  - our register-tiled AVX2 kernel (gemm_avx2.cpp): as fast as oneDNN's AVX2 sgemm at
//    attention sizes (and faster below ~100k MACs), with no packing or heap traffic per call;
//  - oneDNN's sgemm, pinned to one thread, when oneDNN runs AVX-512 (2x wider than our kernel)
//    or for large problems, where its cache blocking matters.
// Either way a call's bits depend only on its arguments, never on the thread that runs it.
#include <dnnl.h>

#include <dnnl.hpp>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"

namespace qvit {
namespace {

constexpr double kLargeGemmMacs = 16.0 * 1024 * 1024;  // beyond this, cache blocking pays

bool onednn_has_avx512() {
  static const bool has = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512_core = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & avx512_core) == avx512_core;  // oneDNN's ISA values are nested bit sets
  }();
  return has;
}

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  if (!kernels_detail::use_avx2()) {
    gemm_f32_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  kernels_detail::check_gemm_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  const double macs = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (K == 0 || (!onednn_has_avx512() && macs <= kLargeGemmMacs)) {
    kernels_detail::gemm_f32_avx2(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  kernels_detail::SingleThreadScope single_thread;
  const dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A,
                                      lda, B, ldb, beta, C, ldc);
  if (st != dnnl_success) {
    fail("kernels", "gemm_f32: dnnl_sgemm failed with status {} (M={} N={} K={})",
         static_cast<int>(st), M, N, K);
  }
}

}  // namespace qvit
