// Internals of int_layernorm_ptf (src/quant/int_layernorm.cpp) shared with its AVX2 row kernel
// (src/quant/int_layernorm_avx2.cpp). Not public API.
#pragma once

#include <cstdint>

namespace qvit::quant_detail {

// What every token of one int_layernorm_ptf call shares.
struct IntLnRow {
  int64_t C;
  const float* s_in;   // per-channel PTF scale s_c
  const float* shift;  // round(s_c / s_min)
  const float* gamma;
  const float* beta;
  float s_min, s_out;
};

// Per-token factors s_min / std and mean / std from the exact code sums S1 = sum x_q and
// S2 = sum x_q^2; false when D = C S2 - S1^2 = 0 (all codes equal).
bool int_ln_token(int64_t s1, __int128 s2, const IntLnRow& k, float* a_base, float* mean_over_std);
// The output of a constant token: round(beta / s_out) * s_out.
void int_ln_constant_token(float* yr, const IntLnRow& k);
// The per-channel factors of a token: sign(A_c) M_c, B_c (integral floats) and 2^N_c, N_c.
struct IntLnCoeff {
  float sm, b, pow_n;
  int n;
};
IntLnCoeff int_ln_coeff(int64_t c, float a_base, float mean_over_std, const IntLnRow& k);
// One output value y_c of a token from its shifted code x_q (the scalar reference).
float int_ln_channel(int64_t c, float xq, float a_base, float mean_over_std, const IntLnRow& k);

// The SIMD rows' scalar tail of the first pass, channels [c0, C): x_q = round_even(x / s_c) shift_c
// into xq, added to the double sums d1 (x_q) and d2 (x_q^2); false when a value is not a valid
// code or |x_q| > 2^19 (the scalar row then decides).
bool int_ln_codes_tail(const float* xr, const IntLnRow& k, int64_t c0, float* xq, double* d1, double* d2);
// One token with AVX2, bit-identical to the scalar row. Sums the codes in double, exact while
// |x_q| <= 2^19 and C <= 2^14 (checked); returns false without writing `yr` otherwise or when a
// value is not a valid code, and the caller runs the scalar row (exact sums, error messages).
// `xq` is scratch of C floats.
bool int_ln_row_avx2(const float* xr, float* yr, const IntLnRow& k, float* xq);
// The same on 16 lanes (AVX-512F; the caller checks the CPU), bit-identical to it.
bool int_ln_row_avx512(const float* xr, float* yr, const IntLnRow& k, float* xq);

}  // namespace qvit::quant_detail
