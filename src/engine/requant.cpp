// Requantization multipliers and the float -> uint8 quantizer of the engine.
//   mult_from_real(r): r = m 2^-shift with m in [2^30, 2^31) (round to nearest of r 2^shift),
//   apply_mult(x) = floor((x m + 2^(shift-1)) / 2^shift), i.e. round half up (engine_ops.h).
#include <algorithm>
#include <cmath>

#include "engine/engine_ops.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "quant/observer_impl.h"

namespace qvit::engine {

Mult mult_from_real(double r) {
  if (!(r >= 0) || !std::isfinite(r) || r >= 2147483648.0)
    fail("engine", "requantization multiplier {} is not in [0, 2^31)", r);
  if (r == 0) return {};
  int e = 0;
  const double f = std::frexp(r, &e);  // r = f 2^e, f in [0.5, 1)
  int64_t m = std::llround(f * 2147483648.0);  // f 2^31 in [2^30, 2^31]
  int shift = 31 - e;
  if (m == (int64_t{1} << 31)) {
    m >>= 1;
    --shift;
  }
  if (shift > 62) {  // tiny r: fewer mantissa bits
    m >>= (shift - 62);
    shift = 62;
  }
  if (shift < 0) fail("engine", "requantization multiplier {} too large", r);
  return {static_cast<int32_t>(m), shift};
}

void Requant::init(const std::vector<Mult>& mult, const int32_t* bias, int fb) {
  N = static_cast<int64_t>(mult.size());
  if (N == 0) fail("engine", "requantization with no multipliers");
  m.resize(N);
  c.resize(N);
  t.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    const Mult& u = mult[n];
    if (u.mult == 0) {  // apply_mult gives 0 (a zero multiplier has shift 0)
      m[n] = c[n] = t[n] = 0;
      continue;
    }
    if (u.shift < fb || u.shift > 62 || u.mult < 0)
      fail("engine", "requantization multiplier {} 2^-{} out of range (shift must be in [{}, 62])", u.mult,
           u.shift, fb);
    m[n] = u.mult;
    t[n] = u.shift - fb;
    const int64_t round = u.shift > 0 ? int64_t{1} << (u.shift - 1) : 0;
    const int64_t b = (bias ? int64_t{bias[n]} : 0) * u.mult + round;  // |b| < 2^62 + 2^61
    c[n] = b >> fb;                                                     // floor division by 2^fb
  }
  build_groups();
}

void Requant::init_affine(const std::vector<Mult>& mult, const double* beta, const std::string& what) {
  N = static_cast<int64_t>(mult.size());
  if (N == 0) fail("engine", "{}: requantization with no multipliers", what);
  m.resize(N);
  c.resize(N);
  t.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    const Mult& u = mult[n];
    if (u.shift < 0 || u.shift > 62 || u.mult < 0)
      fail("engine", "{}: channel {}: requantization multiplier {} 2^-{} out of range", what, n, u.mult, u.shift);
    m[n] = u.mult;
    t[n] = u.shift;
    // beta 2^t is exact in double (a power-of-two scaling); adding 2^(t-1) (1/2 step) and
    // flooring is exact while the sum stays below 2^53, and beyond only loses bits far below one
    // output step (2^-t).
    const double b = std::ldexp(beta ? beta[n] : 0.0, u.shift) + std::ldexp(0.5, u.shift);
    if (!std::isfinite(b) || std::fabs(b) >= 2305843009213693952.0)  // 2^61
      fail("engine", "{}: channel {}: bias {} output steps is too large for the requantization", what, n,
           beta ? beta[n] : 0.0);
    c[n] = static_cast<int64_t>(std::floor(b));
  }
  build_groups();
}

void Requant::build_groups() {
  const int64_t G = N == 1 ? 1 : (N + 7) / 8;
  groups.assign(static_cast<size_t>(G), Group{});
  for (int64_t g = 0; g < G; ++g)
    for (int l = 0; l < 8; ++l) {
      const int64_t n = N == 1 ? 0 : std::min(g * 8 + l, N - 1);  // padding lanes repeat the last channel
      const int64_t half = l / 2;
      int64_t* mm = l % 2 ? groups[g].mo : groups[g].me;
      int64_t* cc = l % 2 ? groups[g].co : groups[g].ce;
      int64_t* tt = l % 2 ? groups[g].to : groups[g].te;
      int64_t* oo = l % 2 ? groups[g].oo : groups[g].oe;
      mm[half] = m[n];
      cc[half] = c[n];
      tt[half] = t[n];
      oo[half] = static_cast<int64_t>(uint64_t{1} << (63 - t[n]));
    }
}

void Requant::row_u8_ref(const int32_t* acc, int64_t n, int32_t zero, int32_t lo, int32_t hi,
                         uint8_t* y, int64_t ch0) const {
  requant_tail(*this, acc, 0, n, zero, lo, hi, y, nullptr, ch0);
}

void Requant::row_i32_ref(const int32_t* acc, int64_t n, int32_t lo, int32_t hi, int32_t* y, int64_t ch0) const {
  requant_tail(*this, acc, 0, n, 0, lo, hi, nullptr, y, ch0);
}

// The SIMD paths follow the int8 GEMM's choice (qgemm_isa(): ref under QVIT_KERNELS=ref, AVX-512
// when the CPU has VNNI unless QVIT_QGEMM=avx2). Their channel groups start at multiples of 8.
void Requant::row_u8(const int32_t* acc, int64_t n, int32_t zero, int32_t lo, int32_t hi, uint8_t* y,
                     int64_t ch0) const {
  if (ch0 % 8 != 0 || ch0 < 0) fail("engine", "requantization row starts at channel {} (not a multiple of 8)", ch0);
  switch (qgemm_isa()) {
    case QgemmIsa::avx512vnni: requant_row_avx512(*this, acc, n, zero, lo, hi, y, nullptr, ch0); break;
    case QgemmIsa::avx2: requant_row_avx2(*this, acc, n, zero, lo, hi, y, nullptr, ch0); break;
    default: row_u8_ref(acc, n, zero, lo, hi, y, ch0);
  }
}

void Requant::row_i32(const int32_t* acc, int64_t n, int32_t lo, int32_t hi, int32_t* y, int64_t ch0) const {
  if (ch0 % 8 != 0 || ch0 < 0) fail("engine", "requantization row starts at channel {} (not a multiple of 8)", ch0);
  switch (qgemm_isa()) {
    case QgemmIsa::avx512vnni: requant_row_avx512(*this, acc, n, 0, lo, hi, nullptr, y, ch0); break;
    case QgemmIsa::avx2: requant_row_avx2(*this, acc, n, 0, lo, hi, nullptr, y, ch0); break;
    default: row_i32_ref(acc, n, lo, hi, y, ch0);
  }
}

void Requant::rows_u8(const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n, int32_t zero, int32_t lo,
                      int32_t hi, uint8_t* y, int64_t ldy, int64_t ch0) const {
  if (ch0 % 8 != 0 || ch0 < 0) fail("engine", "requantization row starts at channel {} (not a multiple of 8)", ch0);
  switch (qgemm_isa()) {
    case QgemmIsa::avx512vnni: requant_rows_avx512(*this, acc, ldacc, rows, n, zero, lo, hi, y, nullptr, ldy, ch0); break;
    case QgemmIsa::avx2: requant_rows_avx2(*this, acc, ldacc, rows, n, zero, lo, hi, y, nullptr, ldy, ch0); break;
    default:
      for (int64_t r = 0; r < rows; ++r) row_u8_ref(acc + r * ldacc, n, zero, lo, hi, y + r * ldy, ch0);
  }
}

void Requant::rows_i32(const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n, int32_t lo, int32_t hi,
                       int32_t* y, int64_t ldy, int64_t ch0) const {
  if (ch0 % 8 != 0 || ch0 < 0) fail("engine", "requantization row starts at channel {} (not a multiple of 8)", ch0);
  switch (qgemm_isa()) {
    case QgemmIsa::avx512vnni: requant_rows_avx512(*this, acc, ldacc, rows, n, 0, lo, hi, nullptr, y, ldy, ch0); break;
    case QgemmIsa::avx2: requant_rows_avx2(*this, acc, ldacc, rows, n, 0, lo, hi, nullptr, y, ldy, ch0); break;
    default:
      for (int64_t r = 0; r < rows; ++r) row_i32_ref(acc + r * ldacc, n, lo, hi, y + r * ldy, ch0);
  }
}

void quantize_u8(const float* x, uint8_t* q, int64_t n, float s, float z, int32_t qmax) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      q[i] = static_cast<uint8_t>(quant_detail::quant_code(x[i], s, z, 0.0f, static_cast<float>(qmax)));
  });
}

}  // namespace qvit::engine
