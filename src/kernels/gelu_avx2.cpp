// Exact GELU, AVX2+FMA: y = x/2 + |x|/2 * erf(|x|/sqrt2) (erf is odd).
//
// erf(t/sqrt2) for t = |x| < 5.6 is a piecewise polynomial: 8 intervals of width h = 0.7, on
// interval i a degree-6 polynomial in v = t/h - i in [0, 1) (Chebyshev interpolation at 7 nodes
// of the exact function in 30-digit arithmetic: max error 1.6e-8 before float rounding). The
// interval's coefficients are picked per lane with vpermps: no division, no gather, ~24
// instructions per 8 values. Horner's rounding stays near 1 ulp of erf because v is small and
// the terms shrink fast — a single rational x P(x^2)/Q(x^2) over [0, 5.6] was as fast but lost
// ~6 ulp near |x| = 5.6, which GELU multiplies by |x|/2 (1.06e-6 abs there). t is clamped just
// below 5.6, where the last polynomial evaluates to exactly 1.0f, so gelu(x) is exactly x (or 0)
// for large |x|. Measured over every float in [-10, 10] against the double reference: max abs
// error 4.8e-7 (one ulp of values in [4, 8)).
#include <immintrin.h>

#include "kernels/avx2_util.h"
#include "kernels/kernels_internal.h"

namespace qvit::kernels_detail {
namespace {

constexpr float kSaturate = 5.6f;                 // erf(t/sqrt2) rounds to 1 in float beyond
constexpr float kIntervalsPerUnit = 8.0f / kSaturate;
constexpr float kMaxScaled = 7.99999952f;        // largest float below 8: stays in interval 7

// kErfPoly[k][i]: coefficient of v^k on interval i, i.e. for t in [0.7 i, 0.7 (i+1)).
alignas(32) const float kErfPoly[7][8] = {
    {-1.619741068e-08f, 5.160727106e-01f, 8.384866866e-01f, 9.642711534e-01f, 9.948897383e-01f, 9.995347424e-01f, 9.999733087e-01f, 9.999990417e-01f},
    {5.585207834e-01f, 4.371540294e-01f, 2.096179506e-01f, 6.157756677e-02f, 1.108173576e-02f, 1.221698005e-03f, 8.250118997e-05f, 3.412393980e-06f},
    {-2.573465574e-05f, -1.070796253e-01f, -1.027048081e-01f, -4.526763763e-02f, -1.086170093e-02f, -1.495726298e-03f, -1.209954608e-04f, -5.820881498e-06f},
    {-4.545468946e-02f, -1.834635291e-02f, 1.638214351e-02f, 1.719924749e-02f, 6.200947404e-03f, 1.116940608e-03f, 1.102387542e-04f, 6.198169914e-06f},
    {-4.665207307e-04f, 1.136300575e-02f, 4.523070751e-03f, -2.751302003e-03f, -2.179772234e-03f, -5.494710952e-04f, -6.685641591e-05f, -4.358756592e-06f},
    {4.075787446e-03f, -2.717313351e-04f, -2.333056414e-03f, -2.830174336e-04f, 4.430396889e-04f, 1.714634495e-04f, 2.546977656e-05f, 1.880906027e-06f},
    {-5.769021140e-04f, -4.053709894e-04f, 2.991692691e-04f, 1.437339062e-04f, -3.924555430e-05f, -2.633916151e-05f, -4.625062125e-06f, -3.749380975e-07f},
};

inline __m256 gelu8(__m256 x) {
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 s = _mm256_min_ps(_mm256_mul_ps(ax, _mm256_set1_ps(kIntervalsPerUnit)),
                                 _mm256_set1_ps(kMaxScaled));
  const __m256 interval = _mm256_round_ps(s, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m256i idx = _mm256_cvttps_epi32(interval);
  const __m256 v = _mm256_sub_ps(s, interval);
  __m256 erf = _mm256_permutevar8x32_ps(_mm256_load_ps(kErfPoly[6]), idx);
  for (int k = 5; k >= 0; --k) {
    erf = _mm256_fmadd_ps(erf, v, _mm256_permutevar8x32_ps(_mm256_load_ps(kErfPoly[k]), idx));
  }
  return _mm256_fmadd_ps(_mm256_mul_ps(ax, _mm256_set1_ps(0.5f)), erf,
                         _mm256_mul_ps(x, _mm256_set1_ps(0.5f)));
}

}  // namespace

void gelu_span_f32_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = gelu8(_mm256_loadu_ps(x + i));
    const __m256 b = gelu8(_mm256_loadu_ps(x + i + 8));
    _mm256_storeu_ps(y + i, a);
    _mm256_storeu_ps(y + i + 8, b);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu8(_mm256_loadu_ps(x + i)));
  if (i < n) avx2_store_tail(y + i, n - i, gelu8(avx2_load_tail(x + i, n - i, 0.0f)));
}

}  // namespace qvit::kernels_detail
