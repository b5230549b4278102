// MPQ (Matthew-effect preserving quantization) for softmax outputs — the survey's interim design
// (§1.10; ours, not the paper's formula): a pluggable post-softmax quantizer, either
//   uniform: q(x) = clamp(round(x/step), 0, 2^k-1) * step                      (unsigned, zero at 0)
//   log2:    c = round(-log2 x); q(x) = 2^-max(c,0) if x > 0 and c < 2^k, else 0
// whose parameters are chosen by a probability-weighted objective that preserves large values:
//   E = sum_i x_i^gamma * (x_i - q(x_i))^2      (gamma = 0: plain MSE; default gamma = 1)
// Uniform step candidates: (alpha + i*(beta-alpha)/n) * max(x) / (2^k-1), i = 0..n-1.
#pragma once

#include <cstddef>

namespace qvit::apq {

enum class MpqKind { uniform, log2, best };  // best: whichever of the two has the smaller E

struct MpqParams {
  MpqKind kind = MpqKind::uniform;  // uniform or log2 after a search
  float step = 0.0f;                // uniform only
  bool operator==(const MpqParams&) const = default;
};

struct MpqSearch {
  MpqKind kind = MpqKind::best;
  float gamma = 1.0f;
  float alpha = 0.5f, beta = 1.2f;
  int n = 100;
};

float mpq_quant(float x, int bits, const MpqParams& p);
double mpq_objective(const float* x, size_t n, int bits, const MpqParams& p, float gamma);
MpqParams mpq_search(const float* x, size_t n, int bits, const MpqSearch& s);

}  // namespace qvit::apq
