// Calibration metrics (cosine, Hessian-guided, BBC bottom elimination): see qvit/apq_metric.h.
#include "qvit/apq_metric.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <vector>

#include "qvit/error.h"
#include "qvit/parallel.h"

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
  const size_t kept = std::min(n, static_cast<size_t>(std::ceil(keep * static_cast<double>(n) - 1e-9)));
  // Reused per thread: the calibration calls this thousands of times on ~10^6 elements.
  thread_local std::vector<double> term, key;
  thread_local std::vector<size_t> idx;
  term.resize(n);
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (static_cast<int64_t>(n) + kChunk - 1) / kChunk;
  double* t = term.data();
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (size_t i = static_cast<size_t>(c0 * kChunk); i < std::min(n, static_cast<size_t>(c1 * kChunk)); ++i) {
      const double ge = static_cast<double>(g[i]) * (static_cast<double>(o[i]) - q[i]);
      t[i] = ge * ge;
    }
  });
  // Sum of the terms whose bit pattern is above `above` (all terms when above < 0), in fixed
  // chunks merged in order (thread-count independent).
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  auto sum_above = [&](bool all, uint64_t above) {
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double s = 0.0;
        for (size_t i = static_cast<size_t>(c * kChunk); i < std::min(n, static_cast<size_t>((c + 1) * kChunk)); ++i)
          if (all || std::bit_cast<uint64_t>(t[i]) > above) s += t[i];
        part[static_cast<size_t>(c)] = s;
      }
    });
    double s = 0.0;
    for (double v : part) s += v;
    return s;
  };
  double sum = 0.0;
  if (kept == n) {
    sum = sum_above(true, 0);
  } else if (rank == BbcRank::term) {
    // Ranked by the term itself, the kept set's sum does not depend on how ties are broken:
    // sum = sum(t > tau) + (kept - count(t > tau)) * tau with tau the kept-th largest term, found
    // by a radix select on the bit patterns (non-negative doubles order like their bits).
    uint64_t prefix = 0, mask = 0;
    size_t need = kept;  // how many to take from the elements matching prefix/mask
    constexpr int kHist = 8;
    std::vector<uint32_t> hist(static_cast<size_t>(kHist) << 16);
    for (int shift = 48; shift >= 0; shift -= 16) {
      std::fill(hist.begin(), hist.end(), 0u);
      parallel_for(kHist, 1, [&](int64_t h0, int64_t h1) {
        for (int64_t h = h0; h < h1; ++h) {
          uint32_t* hh = hist.data() + (static_cast<size_t>(h) << 16);
          const size_t i0 = n * static_cast<size_t>(h) / kHist, i1 = n * static_cast<size_t>(h + 1) / kHist;
          for (size_t i = i0; i < i1; ++i) {
            const uint64_t b = std::bit_cast<uint64_t>(t[i]);
            if ((b & mask) == prefix) ++hh[(b >> shift) & 0xFFFF];
          }
        }
      });
      size_t above = 0;
      for (int bucket = 0xFFFF; bucket >= 0; --bucket) {
        size_t cnt = 0;
        for (int h = 0; h < kHist; ++h) cnt += hist[(static_cast<size_t>(h) << 16) + static_cast<size_t>(bucket)];
        if (above + cnt >= need) {
          need -= above;
          prefix |= static_cast<uint64_t>(bucket) << shift;
          mask |= uint64_t{0xFFFF} << shift;
          break;
        }
        above += cnt;
      }
    }
    const double tau = std::bit_cast<double>(prefix);
    sum = sum_above(false, prefix) + static_cast<double>(need) * tau;
  } else {
    key.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const double err = static_cast<double>(o[i]) - q[i];
      key[i] = rank == BbcRank::error ? std::fabs(err) : static_cast<double>(g[i]) * g[i];
    }
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), size_t{0});
    auto before = [&](size_t a, size_t b) { return key[a] != key[b] ? key[a] > key[b] : a < b; };
    std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(kept), idx.end(), before);
    for (size_t i = 0; i < kept; ++i) sum += term[idx[i]];
  }
  return -sum / static_cast<double>(n);
}

}  // namespace qvit::apq
