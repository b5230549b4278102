// AVX2 versions of the span quantizers of fq_span.h, bit for bit the scalar reference (tested in
// tests/apq_quantizers_test.cpp on random data, halves, range edges, signed zeros, inf and NaN).
#include <immintrin.h>

#include <cmath>

#include "apq/fq_span.h"
#include "kernels/avx2_util.h"

namespace qvit::apq::detail {

namespace {

using kernels_detail::avx2_tail_mask;

// clamp(round(x / d), lo, hi) * d. max(lo, v) / min(hi, v) return v when v is NaN and keep
// v = -0 against a bound 0 (the second operand wins ties and NaN), exactly like std::clamp.
inline __m256 q(__m256 x, __m256 d, __m256 lo, __m256 hi) {
  __m256 v = _mm256_round_ps(_mm256_div_ps(x, d), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
  return _mm256_mul_ps(v, d);
}

// Applies f to n floats, 8 at a time, the tail through a masked load/store (the inactive lanes
// compute on zeros and are not stored).
template <class F>
inline void spans(const float* x, float* out, int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = avx2_tail_mask(n - i);
    _mm256_maskstore_ps(out + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

}  // namespace

void fq_sym_span_avx2(const float* x, float* out, int64_t n, float d, int bits) {
  const float qmax = static_cast<float>(1 << (bits - 1));
  const __m256 vd = _mm256_set1_ps(d), lo = _mm256_set1_ps(-qmax), hi = _mm256_set1_ps(qmax - 1.0f);
  spans(x, out, n, [&](__m256 v) { return q(v, vd, lo, hi); });
}

void fq_gelu_span_avx2(const float* x, float* out, int64_t n, float pos_interval, int bits) {
  const float qmax = static_cast<float>(1 << (bits - 1));
  const __m256 dn = _mm256_set1_ps(gelu_neg_interval(bits)), dp = _mm256_set1_ps(pos_interval);
  const __m256 zero = _mm256_setzero_ps(), nlo = _mm256_set1_ps(-qmax), phi = _mm256_set1_ps(qmax - 1.0f);
  spans(x, out, n, [&](__m256 v) {
    const __m256 neg = _mm256_cmp_ps(v, zero, _CMP_LT_OQ);  // NaN: the positive branch, as in C++
    return _mm256_blendv_ps(q(v, dp, zero, phi), q(v, dn, nlo, zero), neg);
  });
}

void fq_upos_span_avx2(const float* x, float* out, int64_t n, float step, int levels) {
  const __m256 vs = _mm256_set1_ps(step), zero = _mm256_setzero_ps(), hi = _mm256_set1_ps(static_cast<float>(levels));
  spans(x, out, n, [&](__m256 v) { return q(v, vs, zero, hi); });
}

void fq_twin_softmax_span_avx2(const float* x, float* out, int64_t n, int bits, int split_exp, TwinSoftmaxMode mode) {
  const float m = static_cast<float>((1 << (bits - 1)) - 1);
  const float split = std::ldexp(1.0f, -split_exp);
  const __m256 d1 = _mm256_set1_ps(split / m), d2 = _mm256_set1_ps(1.0f / m), vm = _mm256_set1_ps(m);
  const __m256 zero = _mm256_setzero_ps(), vsplit = _mm256_set1_ps(split);
  if (mode == TwinSoftmaxMode::disjoint) {
    spans(x, out, n, [&](__m256 v) {
      const __m256 low = _mm256_cmp_ps(v, vsplit, _CMP_LT_OQ);
      return _mm256_blendv_ps(q(v, d2, zero, vm), q(v, d1, zero, vm), low);
    });
  } else {
    const __m256 hlo = _mm256_set1_ps(std::nearbyint(split / (1.0f / m)));
    spans(x, out, n, [&](__m256 v) { return _mm256_add_ps(q(v, d1, zero, vm), q(v, d2, hlo, vm)); });
  }
}

void fq_mpq_log2_span_avx2(const float* x, float* out, int64_t n, const std::vector<float>& thresholds) {
  const int steps = static_cast<int>(thresholds.size());
  __m256 t[kMpqLog2MaxVectorSteps], level[kMpqLog2MaxVectorSteps];
  for (int c = 0; c < steps; ++c) t[c] = _mm256_set1_ps(thresholds[c]), level[c] = _mm256_set1_ps(std::ldexp(1.0f, -c));
  spans(x, out, n, [&](__m256 v) {
    __m256 r = _mm256_setzero_ps();  // below every threshold, x <= 0 and NaN: 0
    for (int c = steps - 1; c >= 0; --c) r = _mm256_blendv_ps(r, level[c], _mm256_cmp_ps(v, t[c], _CMP_GE_OQ));
    return r;
  });
}

void bias_rows_avx2(float* y, const float* b, int64_t rows, int64_t N) {
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * N;
    int64_t j = 0;
    for (; j + 8 <= N; j += 8) _mm256_storeu_ps(yr + j, _mm256_add_ps(_mm256_loadu_ps(yr + j), _mm256_loadu_ps(b + j)));
    for (; j < N; ++j) yr[j] += b[j];
  }
}

}  // namespace qvit::apq::detail
