// Private helpers shared by the kernel translation units: the single-threaded row kernels each
// public (parallel) kernel is built from, the work-splitting grains, and a guard that keeps
// oneDNN single-threaded. Nothing here is part of the public API.
#pragma once

#include <omp.h>

#include <cstdint>

#include "qvit/error.h"

namespace qvit::kernels_detail {

// Chunk sizes (in elements or rows) for the parallel element-wise kernels. They depend only on
// the problem shape, never on the thread count, so results are bit-identical for any --threads.
inline constexpr int64_t kElementGrain = 16384;
inline int64_t row_grain(int64_t cols) { return cols >= kElementGrain ? 1 : kElementGrain / cols; }

// Query rows per attention work item: equal blocks of at most 64 rows, chosen from N alone so
// the split (and hence every bit of the result) does not depend on the thread count.
inline int64_t attention_query_block_rows(int64_t N) {
  const int64_t blocks = (N + 63) / 64;
  return (N + blocks - 1) / blocks;
}

// Forces OpenMP's (and therefore oneDNN's) thread count to 1 for the current task while alive.
// oneDNN sizes its own thread split from omp_get_max_threads() both when a primitive is created
// and when sgemm runs; with 1 it neither splits K nor needs a parallel region, so a call gives the
// same bits whichever thread runs it. omp_set_num_threads only touches the calling task's ICV,
// so this is safe inside a parallel region and across concurrent callers.
class SingleThreadScope {
 public:
  SingleThreadScope() : saved_(omp_get_max_threads()) {
    if (saved_ != 1) omp_set_num_threads(1);
  }
  ~SingleThreadScope() {
    if (saved_ != 1) omp_set_num_threads(saved_);
  }
  SingleThreadScope(const SingleThreadScope&) = delete;
  SingleThreadScope& operator=(const SingleThreadScope&) = delete;

 private:
  int saved_;
};

// ---- single-threaded kernels -----------------------------------------------------------------
// Register-tiled AVX2 GEMM for small problems (gemm_f32 routes attention-sized calls here).
void gemm_f32_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc);

// ---- single-threaded row kernels (ref in the plain files, avx2 in *_avx2.cpp) ---------------
void layernorm_rows_f32_ref(const float* x, const float* gamma, const float* beta, float* y,
                            int64_t rows, int64_t C, float eps);
void layernorm_rows_f32_avx2(const float* x, const float* gamma, const float* beta, float* y,
                             int64_t rows, int64_t C, float eps);

void gelu_span_f32_ref(const float* x, float* y, int64_t n);
void gelu_span_f32_avx2(const float* x, float* y, int64_t n);

void softmax_rows_f32_ref(float* x, int64_t rows, int64_t cols);
void softmax_rows_f32_avx2(float* x, int64_t rows, int64_t cols);
// Softmax of x + a + b (a, b: [rows, cols] or nullptr); x receives the result.
void softmax_add_rows_f32_avx2(float* x, int64_t rows, int64_t cols, const float* a,
                               const float* b);

// Shared by gemm_f32 and gemm_f32_ref.
inline void check_gemm_args(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                            int64_t lda, int64_t ldb, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0) fail("kernels", "gemm_f32: negative size M={} N={} K={}", M, N, K);
  const int64_t a_cols = trans_a ? M : K;
  const int64_t b_cols = trans_b ? K : N;
  if (lda < a_cols || ldb < b_cols || ldc < N || lda < 1 || ldb < 1 || ldc < 1) {
    fail("kernels", "gemm_f32: leading dimensions lda={} ldb={} ldc={} too small for M={} N={} K={}",
         lda, ldb, ldc, M, N, K);
  }
}

// True when the avx2 path is selected (kernel_path() == avx2); cheap enough for per-call use.
bool use_avx2();

}  // namespace qvit::kernels_detail
