// Small single-threaded GEMM, AVX2+FMA, for attention-sized problems (N ~ 49..197, K ~ 32..197):
// register tiles of up to 6 rows x 16 columns (12 accumulators), B read in place, no cache
// blocking and no heap traffic after warm-up. op(A) or op(B) transposed is packed once per call
// into a per-thread buffer. Each C element is one FMA chain over k = 0..K-1 in order, so the bits
// do not depend on how M and N are tiled.
#include <immintrin.h>

#include <vector>

#include "kernels/avx2_util.h"
#include "kernels/kernels_internal.h"

namespace qvit::kernels_detail {
namespace {

constexpr int kTileRows = 6;

// C[R, 8V] = alpha * A[R, K] B[K, 8V] + beta * C; when Masked, the last vector has only
// `tail` (1..7) valid columns.
template <int R, int V, bool Masked>
void tile(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
          int64_t ldc, float alpha, float beta, int64_t tail) {
  const __m256i mask = avx2_tail_mask(Masked ? tail : 8);
  // The constant-trip loops must be fully unrolled so acc[][] lives in registers (-O2 alone
  // does not, and the kernel then runs at a third of the speed).
  __m256 acc[R][V];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m256 b[V];
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) {
      const float* p = B + k * ldb + 8 * v;
      b[v] = (Masked && v == V - 1) ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) {
      float* p = C + r * ldc + 8 * v;
      const bool masked = Masked && v == V - 1;
      __m256 out = _mm256_mul_ps(valpha, acc[r][v]);
      if (beta != 0.0f) {  // BLAS: with beta == 0, C is not read
        const __m256 c = masked ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
        out = _mm256_fmadd_ps(vbeta, c, out);
      }
      if (masked) {
        avx2_store_tail(p, tail, out);
      } else {
        _mm256_storeu_ps(p, out);
      }
    }
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t,
                        float, float, int64_t);

template <int V, bool Masked>
TileFn tile_for_rows(int64_t rows) {
  switch (rows) {
    case 1: return tile<1, V, Masked>;
    case 2: return tile<2, V, Masked>;
    case 3: return tile<3, V, Masked>;
    case 4: return tile<4, V, Masked>;
    case 5: return tile<5, V, Masked>;
    default: return tile<6, V, Masked>;
  }
}

TileFn tile_for(int64_t rows, int64_t cols) {
  const bool masked = cols % 8 != 0;
  if (cols > 8) return masked ? tile_for_rows<2, true>(rows) : tile_for_rows<2, false>(rows);
  return masked ? tile_for_rows<1, true>(rows) : tile_for_rows<1, false>(rows);
}

// 8x8 block transpose in registers (the classic unpack/shuffle/permute sequence).
inline void transpose8x8(const float* src, int64_t ld, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// dst[c * rows + r] = src[r * ld + c]: a [rows, cols] view transposed into a dense [cols, rows].
void transpose_into(const float* src, int64_t ld, int64_t rows, int64_t cols, float* dst) {
  const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
  for (int64_t r = 0; r < rows8; r += 8)
    for (int64_t c = 0; c < cols8; c += 8) transpose8x8(src + r * ld + c, ld, dst + c * rows + r, rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = r < rows8 ? cols8 : 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
  }
}

float* grow(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

void gemm_f32_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc) {
  if (M == 0 || N == 0) return;
  thread_local std::vector<float> packed_a, packed_b;
  if (trans_a) {  // A is stored [K, M]
    float* p = grow(packed_a, M * K);
    transpose_into(A, lda, K, M, p);
    A = p, lda = K;
  }
  if (trans_b) {  // B is stored [N, K]
    float* p = grow(packed_b, K * N);
    transpose_into(B, ldb, N, K, p);
    B = p, ldb = N;
  }
  for (int64_t j0 = 0; j0 < N; j0 += 16) {
    const int64_t cols = N - j0 < 16 ? N - j0 : 16;
    const int64_t tail = cols % 8;
    const TileFn full = tile_for(kTileRows, cols);
    int64_t i0 = 0;
    for (; i0 + kTileRows <= M; i0 += kTileRows) {
      full(K, A + i0 * lda, lda, B + j0, ldb, C + i0 * ldc + j0, ldc, alpha, beta, tail);
    }
    if (i0 < M) {
      tile_for(M - i0, cols)(K, A + i0 * lda, lda, B + j0, ldb, C + i0 * ldc + j0, ldc, alpha,
                             beta, tail);
    }
  }
}

}  // namespace qvit::kernels_detail
