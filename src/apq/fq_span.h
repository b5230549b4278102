// Internal: the elementwise fake quantizers over one span, in two bit-identical versions — the
// scalar reference (the inline quantizers of qvit/apq_quant.h in a loop, qsim.cpp) and AVX2
// (fq_avx2.cpp). qsim.cpp's fq_* split the work in fixed chunks and pick the version by
// kernel_path(). The AVX2 versions compute the same IEEE operations in the same order: x / d
// (correctly rounded either way), round half to even (vroundps = nearbyint in the default
// rounding mode = round_half_even), clamp with max/min ordered so that NaN and -0 pass through
// like std::clamp, then * d.
#pragma once

#include <cstdint>

#include "qvit/apq_quant.h"

namespace qvit::apq::detail {

// Symmetric signed uniform: clamp(round(x/d), -2^(k-1), 2^(k-1)-1) * d.
void fq_sym_span_ref(const float* x, float* out, int64_t n, float d, int bits);
void fq_sym_span_avx2(const float* x, float* out, int64_t n, float d, int bits);
// Twin uniform post-GELU (quant_twin_gelu).
void fq_gelu_span_ref(const float* x, float* out, int64_t n, float pos_interval, int bits);
void fq_gelu_span_avx2(const float* x, float* out, int64_t n, float pos_interval, int bits);
// Unsigned uniform with `levels` steps (MPQ's uniform branch): clamp(round(x/step), 0, levels) * step.
void fq_upos_span_ref(const float* x, float* out, int64_t n, float step, int levels);
void fq_upos_span_avx2(const float* x, float* out, int64_t n, float step, int levels);
// Twin uniform post-softmax (quant_twin_softmax).
void fq_twin_softmax_span_ref(const float* x, float* out, int64_t n, int bits, int split_exp, TwinSoftmaxMode mode);
void fq_twin_softmax_span_avx2(const float* x, float* out, int64_t n, int bits, int split_exp, TwinSoftmaxMode mode);

}  // namespace qvit::apq::detail
