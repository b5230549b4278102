// Calibration metrics of the PTQ4ViT / APQ-ViT searches (higher = better), on flat arrays of the
// FP output O, the quantized output Q and the gradient g = dL/dO (same length n):
//   cosine:   sum(O*Q) / (|O| |Q|)                                   (PTQ4ViT BasePTQ)
//   hessian:  -(1/n) sum_e (g_e (O_e - Q_e))^2                       (PTQ4ViT, layer output)
//   bbc:      -(1/n) sum_{e in kept} (g_e (O_e - Q_e))^2             (APQ-ViT reading, block output)
//     "bottom elimination": elements are ranked by `rank` (the term itself, |O-Q| or g^2), the
//     ceil(keep*n) largest are kept (ties: lower index first); keep = 1 equals `hessian`.
#pragma once

#include <cstddef>

namespace qvit::apq {

enum class BbcRank { term, error, grad };

double metric_cosine(const float* o, const float* q, size_t n);
double metric_hessian(const float* o, const float* q, const float* g, size_t n);
double metric_bbc(const float* o, const float* q, const float* g, size_t n, double keep, BbcRank rank);

}  // namespace qvit::apq
