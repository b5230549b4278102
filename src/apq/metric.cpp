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
  const size_t kept =
      std::clamp<size_t>(static_cast<size_t>(std::ceil(keep * static_cast<double>(n) - 1e-9)), 1, n);
  // Reused per thread: the calibration calls this thousands of times on ~10^6 elements.
  thread_local std::vector<double> term, key;
  thread_local std::vector<size_t> idx;
  term.resize(n);
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (static_cast<int64_t>(n) + kChunk - 1) / kChunk;
  auto chunk_end = [&](int64_t c) { return std::min(n, static_cast<size_t>((c + 1) * kChunk)); };
  double* t = term.data();
  // With rank = term and kept < n, the selection below needs tau, the kept-th largest term.
  // Non-negative doubles order like their bit patterns, so tau is found by bits: the terms are
  // counted by their top 12 bits (sign + exponent: one octave per bucket) per chunk while they
  // are computed, which names tau's octave; only that octave's terms are then copied out and
  // selected exactly (nth_element).
  const bool select = kept < n && rank == BbcRank::term;
  constexpr int kOctaves = 1 << 12;
  thread_local std::vector<uint32_t> octave_count;
  if (select) octave_count.assign(static_cast<size_t>(chunks * kOctaves), 0u);
  uint32_t* oc = octave_count.data();
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      uint32_t* h = select ? oc + c * kOctaves : nullptr;
      for (size_t i = static_cast<size_t>(c * kChunk); i < chunk_end(c); ++i) {
        const double ge = static_cast<double>(g[i]) * (static_cast<double>(o[i]) - q[i]);
        t[i] = ge * ge;
        if (h) ++h[std::bit_cast<uint64_t>(t[i]) >> 52];
      }
    }
  });
  // Sum of the terms whose bit pattern is above `above` (all terms when `all`), in fixed
  // chunks merged in order (thread-count independent).
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  auto sum_above = [&](bool all, uint64_t above) {
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double s = 0.0;
        // (branch-free: adding +0.0 leaves s unchanged bit for bit, s >= +0 throughout)
        for (size_t i = static_cast<size_t>(c * kChunk); i < chunk_end(c); ++i)
          s += (all || std::bit_cast<uint64_t>(t[i]) > above) ? t[i] : 0.0;
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
    // sum = sum(t > tau) + (kept - count(t > tau)) * tau.
    size_t above = 0;  // terms in octaves above tau's
    int octave = kOctaves - 1;
    for (;; --octave) {
      size_t cnt = 0;
      for (int64_t c = 0; c < chunks; ++c) cnt += oc[c * kOctaves + octave];
      if (above + cnt >= kept) break;
      above += cnt;
    }
    std::vector<size_t> offset(static_cast<size_t>(chunks) + 1, 0);
    for (int64_t c = 0; c < chunks; ++c) offset[c + 1] = offset[c] + oc[c * kOctaves + octave];
    thread_local std::vector<uint64_t> cand;
    cand.resize(offset.back());
    uint64_t* cd = cand.data();
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        // Branch-free copy: every term is written at the cursor, which advances on a match only;
        // the cursor stays inside the chunk's own slots (the loop ends when they are full).
        uint64_t* dst = cd + offset[static_cast<size_t>(c)];
        uint64_t* const end = cd + offset[static_cast<size_t>(c) + 1];
        for (size_t i = static_cast<size_t>(c * kChunk); i < chunk_end(c) && dst < end; ++i) {
          const uint64_t b = std::bit_cast<uint64_t>(t[i]);
          *dst = b;
          dst += static_cast<int>(b >> 52) == octave;
        }
      }
    });
    const size_t need = kept - above;  // 1 <= need <= cand.size()
    std::nth_element(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(need - 1), cand.end(),
                     std::greater<uint64_t>());
    const uint64_t tau_bits = cand[need - 1];
    size_t more = 0;  // terms of the octave above tau
    for (uint64_t b : cand) more += b > tau_bits;
    sum = sum_above(false, tau_bits) + static_cast<double>(kept - above - more) * std::bit_cast<double>(tau_bits);
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
