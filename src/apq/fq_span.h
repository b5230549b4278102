// Internal: the elementwise fake quantizers (and the bias add of linear_nt) over one span, in two
// bit-identical versions — the
// scalar reference (the inline quantizers of qvit/apq_quant.h in a loop, qsim.cpp) and AVX2
// (fq_avx2.cpp). qsim.cpp's fq_* split the work in fixed chunks and pick the version by
// kernel_path(). The AVX2 versions compute the same IEEE operations in the same order: x / d
// (correctly rounded either way), round half to even (vroundps = nearbyint in the default
// rounding mode = round_half_even), clamp with max/min ordered so that NaN and -0 pass through
// like std::clamp, then * d.
#pragma once

#include <cstdint>

#include <vector>

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

// MPQ's log2 branch (mpq_quant with MpqKind::log2). Its output 2^-c (c = 0..levels) or 0 does not
// decrease with x, so it is a step function: mpq_log2_thresholds(bits)[c] = the smallest float x
// with mpq_quant(x) >= 2^-c, found once per bit width by binary search over the float bit patterns
// using mpq_quant itself (c up to min(levels, 149); 2^-150 is below the smallest float). The AVX2
// version compares x against these thresholds instead of calling log2f; the test checks it
// against mpq_quant on every float near every threshold, where a step could differ.
const std::vector<float>& mpq_log2_thresholds(int bits);
void fq_mpq_log2_span_ref(const float* x, float* out, int64_t n, int bits);
void fq_mpq_log2_span_avx2(const float* x, float* out, int64_t n, const std::vector<float>& thresholds);
constexpr size_t kMpqLog2MaxVectorSteps = 32;  // more thresholds (abits >= 6): the scalar version

// y[r, :] += b for r < rows (row length N): linear_nt's bias, after the GEMM.
void bias_rows_ref(float* y, const float* b, int64_t rows, int64_t N);
void bias_rows_avx2(float* y, const float* b, int64_t rows, int64_t N);

}  // namespace qvit::apq::detail
