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

namespace qvit::qkernels_detail {

constexpr int kVnniCols = 32;  // output channels per VNNI panel (two zmm of 16 int32)
constexpr int kVnniRows = 8;   // rows per AVX-512 VNNI micro-kernel call

// c[r * ldc + j] = init[j] + sum_q a[r * lda + 4q .. 4q+3] . panel[q][j][0..3] (u8 x s8, exact
// int32 via vpdpbusd, which has no intermediate saturation) for r < rows (<= 8), j < cols (<= 32);
// a is uint8 with rows padded to a multiple of 4 with zeros; init has 32 readable entries.
void qgemm_micro_avx512(const uint8_t* a, int64_t lda, int rows, const int8_t* panel,
                        int64_t k_quads, int32_t* c, int64_t ldc, int cols, const int32_t* init);

}  // namespace qvit::qkernels_detail
