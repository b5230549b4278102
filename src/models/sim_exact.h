// Exact arithmetic of the FQ-ViT simulation of ViT/DeiT (simulate mode; src/models/vit.cpp).
//
// Where both operands of a product are quantized, the simulation works on their codes: the sum of
// products of codes is an integer and is formed exactly (int32, or float32 / double where every
// partial sum is an integer or a dyadic that fits), the scales are applied once in double, and the
// next quantizer rounds that double (QuantSession::point with `exact`). In real arithmetic this is
// FQ-ViT's formula; it only removes the float32 rounding of the intermediate sums (which depends
// on the summation order and moved ~1 in 10^5 codes by one step). The integer engine computes the
// same real numbers with dyadic multipliers, so both round the same value (docs/quantization.md).
#pragma once

#include <cstdint>

#include "models/qlinear.h"
#include "qvit/quant.h"

namespace qvit::sim {

// Codes of fake-quantized values x [rows, C] (x = (q - z) s rounded once to float, so x / s is
// within 2^-22 |q - z| of an integer and rounds back to q exactly). Per-tensor or per-channel p.
void codes_of(const float* x, int64_t rows, int64_t C, const QuantParams& p, uint8_t* q);

// y[m, n] = fma(s_a s_w[n], sum_k (a[m, k] - z_a) w[n, k], b[n]) in double, with `in` the (per
// tensor) input quantizer of the codes a [M, K] and l's weight codes. acc: M x N scratch.
void linear(const uint8_t* a, int64_t M, const QuantParams& in, const QLinear& l, int32_t* acc, double* y);

// Attention logits of qkv codes [B, N, 3 H Dh] (q, k, v share `qkv`): for each image and head,
// y[i, j] = s^2 scale sum_d (q_id - z)(k_jd - z) in double; y [B, H, N, N]. The integer sum is
// formed in float32, exact because |partial sums| <= Dh 255^2 < 2^24 (Dh <= 256, checked).
// work: B N 3 H Dh floats.
void logits(const uint8_t* qkv, const QuantParams& qp, int64_t B, int64_t N, int64_t H, int64_t Dh, float scale,
            float* work, double* y);

// Attention context: out[b, i, h Dh + d] = s_v sum_j p[b, h, i, j] (v_jd - z) in double (p the
// probabilities, e.g. LIS's 2^-code: every product and partial sum is exact in double).
void context(const float* p, const uint8_t* qkv, const QuantParams& qp, int64_t B, int64_t N, int64_t H,
             int64_t Dh, double* y);

// Residual add on codes: y[r, c] = (a - za) sa_c + (b - zb) sb_c in double (b row r % b_rows when
// b_rows > 0: the position embedding, shared by every image).
void add(const uint8_t* a, const QuantParams& pa, const uint8_t* b, const QuantParams& pb, int64_t b_rows,
         int64_t rows, int64_t C, double* y);

}  // namespace qvit::sim
