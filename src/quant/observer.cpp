// Observer registry (one constructor per observer file) and the helpers they share: batch
// validation, min/max scans with the NaN/Inf check. Min and max are exact, so partial results
// can be merged in any order; every other reduction in src/quant has a fixed order.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <mutex>

#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit {

namespace {

struct ObserverEntry {
  ObserverKind kind;
  const char* name;
  std::unique_ptr<Observer> (*make)(const ObserverOptions&);
};

// The registry: a new observer is one file plus one line here.
constexpr ObserverEntry kObservers[] = {
    {ObserverKind::minmax, "minmax", quant_detail::make_minmax_observer},
    {ObserverKind::ema, "ema", quant_detail::make_ema_observer},
    {ObserverKind::percentile, "percentile", quant_detail::make_percentile_observer},
    {ObserverKind::omse, "omse", quant_detail::make_omse_observer},
    {ObserverKind::ptf, "ptf", quant_detail::make_ptf_observer},
};

// Values per parallel chunk of a scan.
constexpr int64_t kScanGrain = 65536;

}  // namespace

ObserverKind parse_observer_kind(const std::string& s) {
  for (const auto& e : kObservers) {
    if (s == e.name) return e.kind;
  }
  fail("quant", "unknown observer '{}': expected minmax, ema, percentile, omse or ptf", s);
}

const char* observer_kind_name(ObserverKind k) {
  for (const auto& e : kObservers) {
    if (e.kind == k) return e.name;
  }
  return "?";
}

std::unique_ptr<Observer> make_observer(ObserverKind kind, const ObserverOptions& opt) {
  for (const auto& e : kObservers) {
    if (e.kind == kind) return e.make(opt);
  }
  fail("quant", "make_observer: unknown observer kind {}", static_cast<int>(kind));
}

namespace quant_detail {

namespace {

[[noreturn]] void fail_non_finite(const std::string& who) {
  fail("quant", "{}: the data contains NaN or Inf (quantization needs finite values)", who);
}

}  // namespace

Range tensor_range(const float* x, int64_t n, const std::string& who) {
  if (n <= 0) fail("quant", "{}: empty tensor", who);
  Range total{x[0], x[0]};
  bool bad = false;
  std::mutex mu;
  parallel_for(n, kScanGrain, [&](int64_t i0, int64_t i1) {
    float mn = x[i0], mx = x[i0];
    int non_finite = 0;
#pragma omp simd reduction(min : mn) reduction(max : mx) reduction(| : non_finite)
    for (int64_t i = i0; i < i1; ++i) {
      const float v = x[i];
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
      non_finite |= !(std::fabs(v) <= FLT_MAX);
    }
    std::lock_guard<std::mutex> lock(mu);
    total.min = std::min(total.min, mn);
    total.max = std::max(total.max, mx);
    bad = bad || non_finite != 0;
  });
  if (bad) fail_non_finite(who);
  return total;
}

void column_ranges(const float* x, int64_t rows, int64_t C, std::vector<float>& mn,
                   std::vector<float>& mx, const std::string& who) {
  if (rows <= 0 || C <= 0) fail("quant", "{}: empty tensor [{}, {}]", who, rows, C);
  mn.assign(x, x + C);
  mx.assign(x, x + C);
  bool bad = false;
  std::mutex mu;
  parallel_for(rows, std::max<int64_t>(1, kScanGrain / C), [&](int64_t r0, int64_t r1) {
    std::vector<float> lmn(x + r0 * C, x + r0 * C + C), lmx(lmn);
    float* a = lmn.data();
    float* b = lmx.data();
    int non_finite = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
#pragma omp simd reduction(| : non_finite)
      for (int64_t c = 0; c < C; ++c) {
        const float v = xr[c];
        a[c] = v < a[c] ? v : a[c];
        b[c] = v > b[c] ? v : b[c];
        non_finite |= !(std::fabs(v) <= FLT_MAX);
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    for (int64_t c = 0; c < C; ++c) {
      mn[c] = std::min(mn[c], a[c]);
      mx[c] = std::max(mx[c], b[c]);
    }
    bad = bad || non_finite != 0;
  });
  if (bad) fail_non_finite(who);
}

ObserverBase::ObserverBase(ObserverKind kind, const ObserverOptions& opt)
    : opt_(opt), kind_(kind) {
  label_ = fmt::format("observer '{}' ({})", opt.name.empty() ? "activation" : opt.name,
                       observer_kind_name(kind));
  // Bit types built by hand (not by parse/make_bit_type) are validated here.
  make_bit_type(opt.bits.bits, opt.bits.is_signed);
  if (!(opt.ema_sigma > 0.0f && opt.ema_sigma <= 1.0f)) {
    fail("quant", "{}: ema_sigma must be in (0, 1], got {}", label_, opt.ema_sigma);
  }
  if (!(opt.percentile > 0.5 && opt.percentile < 1.0)) {
    fail("quant", "{}: percentile must be in (0.5, 1), got {}", label_, opt.percentile);
  }
  if (opt.omse_steps < 1 || opt.omse_steps > 100) {
    fail("quant", "{}: omse_steps must be in [1, 100], got {}", label_, opt.omse_steps);
  }
  if (opt.ptf_k < 0 || opt.ptf_k > 8) {
    fail("quant", "{}: ptf_k must be in [0, 8], got {}", label_, opt.ptf_k);
  }
}

void ObserverBase::check_batch(const float* x, int64_t rows, int64_t C) const {
  if (seen_last_) fail("quant", "{}: observe() after the batch marked last", label_);
  if (x == nullptr || rows <= 0 || C <= 0) {
    fail("quant", "{}: batch {} has shape [{}, {}]; expected a non-empty [rows, C]", label_,
         batches_ + 1, rows, C);
  }
  if (batches_ > 0 && C != C_) {
    fail("quant", "{}: batch {} has C = {} but earlier batches had C = {}", label_, batches_ + 1,
         C, C_);
  }
}

void ObserverBase::commit_batch(int64_t C, bool last) {
  C_ = C;
  ++batches_;
  seen_last_ = last;
}

void ObserverBase::require_params_ready(bool need_last) const {
  if (batches_ == 0) fail("quant", "{}: params() before any batch was observed", label_);
  if (need_last && !seen_last_) {
    fail("quant", "{}: params() needs the batch marked last (the search runs on it)", label_);
  }
}

}  // namespace quant_detail

}  // namespace qvit
