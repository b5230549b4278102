// AVX2 helpers shared by the *_avx2.cpp translation units (include only from those: the
// intrinsics need -mavx2 -mfma).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace qvit::kernels_detail {

// Lane mask with the first n (0..8) lanes set, for _mm256_maskload_ps / _mm256_maskstore_ps.
inline __m256i avx2_tail_mask(int64_t n) {
  alignas(32) static const int32_t kBits[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kBits + 8 - n));
}

// Masked load whose inactive lanes hold `fill` instead of 0.
inline __m256 avx2_load_tail(const float* p, int64_t n, float fill) {
  const __m256i m = avx2_tail_mask(n);
  return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}

// Stores the first n (0..8) lanes of v. Not _mm256_maskstore_ps: a masked store still covers
// 32 bytes, and a following load of the next row's first elements must then wait for it to
// retire (no store forwarding) — this made 49-column softmax rows 2.5x slower per element.
inline void avx2_store_tail(float* p, int64_t n, __m256 v) {
  alignas(32) float buf[8];
  _mm256_store_ps(buf, v);
  for (int64_t i = 0; i < n; ++i) p[i] = buf[i];
}

// Horizontal sum in a fixed order.
inline float avx2_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float avx2_hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) to ~2 ulp for x <= 88 (softmax only feeds x - max <= 0); 0 below ln(FLT_MIN), so no
// denormals. Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, the classic Cephes degree-7
// polynomial for e^r, and 2^n built in the exponent bits. n comes from one FMA with the
// "magic" 1.5*2^23 + 127: the sum's low mantissa bits are then round(x log2e) + 127, i.e. the
// biased exponent, ready to shift into place.
inline __m256 avx2_exp(__m256 x) {
  const __m256 kLo = _mm256_set1_ps(-87.33654f);  // ln(FLT_MIN)
  const __m256 kMagic = _mm256_set1_ps(12583039.0f);  // 0x1.8p23 + 127
  const __m256 underflow = _mm256_cmp_ps(x, kLo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, kLo);
  const __m256 biased = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), kMagic);
  const __m256 n = _mm256_sub_ps(biased, kMagic);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_castps_si256(biased), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n)));
}

}  // namespace qvit::kernels_detail
