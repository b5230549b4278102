// The engine's placeholder integer GEMM (until the packed int8 GEMM of include/qvit/qkernels.h):
// int16 x int16 -> int32 with vpmaddwd, exact for uint8 activations and int8 weights (a pair sum
// is at most 2 * 255 * 128 < 2^31). Weights are packed once into panels of 8 output channels:
// for each pair of k, one 256-bit vector holds (w[n][2kk], w[n][2kk+1]) for the 8 channels n; a
// 4 x 16 micro-kernel broadcasts an activation pair and multiplies it with two panels.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace qvit::engine {

// packed: [ceil(N/8)][Kp/2][8][2] int16, Kp = K rounded up to even, zero padded.
void pack_w16_panels(const int8_t* w, int64_t N, int64_t K, int16_t* packed) {
  const int64_t Kp = (K + 1) & ~int64_t{1}, panels = (N + 7) / 8;
  std::memset(packed, 0, static_cast<size_t>(panels * Kp * 8) * sizeof(int16_t));
  for (int64_t n = 0; n < N; ++n) {
    int16_t* p = packed + (n / 8) * Kp * 8 + (n % 8) * 2;
    for (int64_t k = 0; k < K; ++k) p[(k / 2) * 16 + (k % 2)] = w[n * K + k];
  }
}

// acc[r][n] (row stride ldacc) for r < 4 (rows of x16: Kp int16 each, zero padded) and n in
// [n0, n0 + nn), nn <= 16, from panels p0 (and p0 + 1).
void gemm4x16_s16_avx2(const int16_t* x16, int64_t Kp, const int16_t* panels, int64_t n0, int64_t nn,
                       int32_t* acc, int64_t ldacc, int64_t rows) {
  const int16_t* w0 = panels + (n0 / 8) * Kp * 8;
  const int16_t* w1 = w0 + Kp * 8;
  const bool two = nn > 8;
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
          c30 = c00, c31 = c00;
  const int32_t* x0 = reinterpret_cast<const int32_t*>(x16);
  const int32_t* x1 = reinterpret_cast<const int32_t*>(x16 + Kp);
  const int32_t* x2 = reinterpret_cast<const int32_t*>(x16 + 2 * Kp);
  const int32_t* x3 = reinterpret_cast<const int32_t*>(x16 + 3 * Kp);
  const int64_t kk_n = Kp / 2;
  if (two) {
    for (int64_t kk = 0; kk < kk_n; ++kk) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + kk * 16));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + kk * 16));
      __m256i v = _mm256_set1_epi32(x0[kk]);
      c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(v, a));
      c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(v, b));
      v = _mm256_set1_epi32(x1[kk]);
      c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(v, a));
      c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(v, b));
      v = _mm256_set1_epi32(x2[kk]);
      c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(v, a));
      c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(v, b));
      v = _mm256_set1_epi32(x3[kk]);
      c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(v, a));
      c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(v, b));
    }
  } else {
    for (int64_t kk = 0; kk < kk_n; ++kk) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + kk * 16));
      c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(_mm256_set1_epi32(x0[kk]), a));
      c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(_mm256_set1_epi32(x1[kk]), a));
      c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(_mm256_set1_epi32(x2[kk]), a));
      c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(_mm256_set1_epi32(x3[kk]), a));
    }
  }
  alignas(32) int32_t t[4][16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[0]), c00);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[0] + 8), c01);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[1]), c10);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[1] + 8), c11);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[2]), c20);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[2] + 8), c21);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[3]), c30);
  _mm256_store_si256(reinterpret_cast<__m256i*>(t[3] + 8), c31);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(acc + r * ldacc + n0, t[r], static_cast<size_t>(nn) * 4);
}

// out[r] = sum_k x_r[k] w[k] for r < 4 (the attention logits; K a multiple of 16 vectorised).
void dot4_s16_avx2(const int16_t* x0, const int16_t* x1, const int16_t* x2, const int16_t* x3,
                   const int16_t* w, int64_t K, int32_t* out) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x0 + k))));
    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x1 + k))));
    a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x2 + k))));
    a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x3 + k))));
  }
  const __m256i* acc[4] = {&a0, &a1, &a2, &a3};
  const int16_t* xs[4] = {x0, x1, x2, x3};
  for (int r = 0; r < 4; ++r) {
    alignas(32) int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), *acc[r]);
    int32_t s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    for (int64_t j = k; j < K; ++j) s += int32_t(xs[r][j]) * w[j];
    out[r] = s;
  }
}

}  // namespace qvit::engine
