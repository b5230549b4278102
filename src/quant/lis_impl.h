// Internals of lis_softmax (src/quant/lis.cpp) shared with its AVX2 row kernel
// (src/quant/lis_avx2.cpp). Not public API.
#pragma once

#include <cstdint>

namespace qvit::quant_detail {

// Per-call constants of FQ-ViT's integer exp for a logits scale S (see lis.cpp).
struct LisConsts {
  float S, x0, b_int, c_int, t_min;
};

// One row with AVX2, bit-identical to the scalar row of lis.cpp. It sums the integer exp values
// in double, which is exact while every value is below 2^53 / cols (so no partial sum reaches
// 2^53); it returns false without writing anything when that does not hold, or when the row has
// NaN/Inf logits, and the caller then runs the scalar row (exact 128-bit sum, error messages).
// `e` is scratch of cols floats.
bool lis_row_avx2(const float* x, float* p, uint8_t* codes, int64_t cols, const LisConsts& k, float* e);

}  // namespace qvit::quant_detail
