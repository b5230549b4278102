// Calibration metrics (cosine, Hessian-guided, BBC bottom elimination): see qvit/apq_metric.h.
#include "qvit/apq_metric.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "qvit/error.h"

namespace qvit::apq {

double metric_cosine(const float* o, const float* q, size_t n) {
  double oq = 0, oo = 0, qq = 0;
  for (size_t i = 0; i < n; ++i) {
    oq += static_cast<double>(o[i]) * q[i];
    oo += static_cast<double>(o[i]) * o[i];
    qq += static_cast<double>(q[i]) * q[i];
  }
  if (oo == 0.0 || qq == 0.0) return oo == qq ? 1.0 : 0.0;
  return oq / std::sqrt(oo * qq);
}

double metric_hessian(const float* o, const float* q, const float* g, size_t n) {
  return metric_bbc(o, q, g, n, 1.0, BbcRank::term);
}

double metric_bbc(const float* o, const float* q, const float* g, size_t n, double keep, BbcRank rank) {
  if (n == 0) fail("apq", "calibration metric on an empty output");
  if (!(keep > 0.0 && keep <= 1.0)) fail("apq", "BBC keep fraction must be in (0,1], got {}", keep);
  std::vector<double> term(n), key(n);
  for (size_t i = 0; i < n; ++i) {
    const double err = static_cast<double>(o[i]) - q[i];
    const double ge = static_cast<double>(g[i]) * err;
    term[i] = ge * ge;
    key[i] = rank == BbcRank::term ? term[i] : rank == BbcRank::error ? std::fabs(err)
                                                                      : static_cast<double>(g[i]) * g[i];
  }
  const size_t kept = std::min(n, static_cast<size_t>(std::ceil(keep * static_cast<double>(n) - 1e-9)));
  double sum = 0.0;
  if (kept == n) {
    for (double t : term) sum += t;
  } else {
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), size_t{0});
    auto before = [&](size_t a, size_t b) { return key[a] != key[b] ? key[a] > key[b] : a < b; };
    std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(kept), idx.end(), before);
    for (size_t i = 0; i < kept; ++i) sum += term[idx[i]];
  }
  return -sum / static_cast<double>(n);
}

}  // namespace qvit::apq
