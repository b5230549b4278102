// AVX2 conversions around the LayerNorm token kernel of the engine (int_ln_codes.cpp): PTF codes
// to the simulation's float inputs (c - z) s_c, and outputs y to codes clamp(nearbyint(y / s) + z).
// The same float operations as the scalar loops (IEEE division, round to nearest even), so the
// same results.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/engine_ops.h"

namespace qvit::engine {

void ln_dequant_avx2(const uint8_t* x, int64_t C, float z, const float* s, float* xf) {
  const __m256 zv = _mm256_set1_ps(z);
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    int64_t w;
    std::memcpy(&w, x + c, 8);
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(w)));
    _mm256_storeu_ps(xf + c, _mm256_mul_ps(_mm256_sub_ps(v, zv), _mm256_loadu_ps(s + c)));
  }
  for (; c < C; ++c) xf[c] = (static_cast<float>(x[c]) - z) * s[c];
}

void ln_requant_avx2(const float* yf, int64_t C, float s_out, int32_t zero, int32_t qmax, uint8_t* y) {
  const __m256 sv = _mm256_set1_ps(s_out), lo = _mm256_set1_ps(-1073741824.0f), hi = _mm256_set1_ps(1073741824.0f);
  const __m256i zv = _mm256_set1_epi32(zero), qv = _mm256_set1_epi32(qmax), z0 = _mm256_setzero_si256();
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    __m256 v = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(yf + c), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);  // NaN -> lo (then code 0), like the scalar clamp
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zv);
    q = _mm256_min_epi32(_mm256_max_epi32(q, z0), qv);
    const __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(q, q), _mm256_setzero_si256());
    const uint32_t w0 = static_cast<uint32_t>(_mm256_cvtsi256_si32(p));
    const uint32_t w1 = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(p, 1)));
    const uint64_t out = uint64_t{w0} | (uint64_t{w1} << 32);
    std::memcpy(y + c, &out, 8);
  }
  for (; c < C; ++c) {
    const float v = std::nearbyint(yf[c] / s_out);
    const float vc = std::isnan(v) ? -1073741824.0f : std::fmin(std::fmax(v, -1073741824.0f), 1073741824.0f);
    y[c] = clamp_q(static_cast<int64_t>(vc) + zero, qmax);
  }
}

}  // namespace qvit::engine
