// Internals of qgemm_u8s8s32 shared with its AVX2 micro-kernel. Not public API.
#pragma once

#include <cstdint>

namespace qvit::qkernels_detail {

constexpr int kPanelCols = 16;  // output channels per packed weight panel
constexpr int kMicroRows = 6;   // rows per AVX2 micro-kernel call

// c[r * ldc + j] = sum_p a16[r * lda16 + 2p .. 2p+1] . panel[p][j][0..1] for r < rows (<= 6),
// j < cols (<= 16). a16: int16 activations (zero point already subtracted), even-padded rows.
void qgemm_micro_avx2(const int16_t* a16, int64_t lda16, int rows, const int16_t* panel,
                      int64_t k_pairs, int32_t* c, int64_t ldc, int cols);

// dst[k] = src[k] - zero for k < K (uint8 -> int16).
void widen_u8_avx2(const uint8_t* src, int64_t K, int32_t zero, int16_t* dst);

}  // namespace qvit::qkernels_detail
