// qvit report's numbers: error statistics (ErrorAccum), the FP probe pass (LayerNorm input
// ranges, post-softmax histogram) and the FP-vs-simulated pass (per point, per block, top-1).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "qvit/error.h"
#include "qvit/report.h"

namespace qvit {

void ErrorAccum::add(const float* x, const float* q, int64_t count) {
  double a = 0, e = 0, c = 0, b = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double xv = x[i], qv = q[i], d = xv - qv;
    a += xv * xv;
    e += d * d;
    c += xv * qv;
    b += qv * qv;
  }
  sxx += a, see += e, sxq += c, sqq += b;
  n += count;
}

double ErrorAccum::sqnr_db() const {
  if (see == 0) return std::numeric_limits<double>::infinity();
  if (sxx == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sxx / see);
}

double ErrorAccum::cosine() const {
  if (sxx == 0 && sqq == 0) return 1.0;
  if (sxx == 0 || sqq == 0) return 0.0;
  return sxq / std::sqrt(sxx * sqq);
}

double ErrorAccum::rel_mse() const {
  if (sxx == 0) return see == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return see / sxx;
}

namespace {
constexpr double kLog2Lo = -20, kLog2Bin = 0.25;  // softmax histogram: log2 p in [-20, 0]
constexpr int kLog2Bins = 80;

int block_number(const std::string& tap) {  // "blocks.11" -> 11, else -1
  const auto dot = tap.rfind('.');
  if (dot == std::string::npos) return -1;
  try {
    return std::stoi(tap.substr(dot + 1));
  } catch (...) {
    return -1;
  }
}
}  // namespace

ReportData collect_report(Model& model, QuantSession& session, const Dataset& calib,
                          const std::vector<size_t>& probe, const Dataset& eval,
                          const std::vector<size_t>& eval_order, const PreprocessConfig& pre,
                          const ReportOptions& opt) {
  ReportData d;
  d.model = model.config().name;
  d.config_label = session.config().label();
  d.probe_images = probe.size();
  d.eval_images = eval_order.size();
  const size_t total = probe.size() + eval_order.size();
  size_t done = 0;

  // Pass 1: FP probe. A calibrate-mode session leaves x unchanged; the default config visits the
  // softmax points too (no LIS).
  std::map<std::string, ChannelRange> ranges;
  std::vector<std::string> range_order;
  d.softmax_counts.assign(kLog2Bins, 0.0);
  for (int i = 0; i <= kLog2Bins; ++i) d.softmax_edges.push_back(kLog2Lo + i * kLog2Bin);
  {
    QuantSession probe_session(session.model(), QuantConfig{});
    probe_session.set_mode(QuantMode::calibrate);
    probe_session.set_stats_hook([&](const std::string& name, QPointRole role, const float* x,
                                     const float*, int64_t rows, int64_t C) {
      if (role == QPointRole::ln_input) {
        auto [it, fresh] = ranges.try_emplace(name);
        ChannelRange& r = it->second;
        if (fresh) {
          r.name = name;
          r.min.assign(C, std::numeric_limits<float>::infinity());
          r.max.assign(C, -std::numeric_limits<float>::infinity());
          range_order.push_back(name);
        }
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t c = 0; c < C; ++c) {
            r.min[c] = std::min(r.min[c], x[i * C + c]);
            r.max[c] = std::max(r.max[c], x[i * C + c]);
          }
      } else if (role == QPointRole::softmax) {
        for (int64_t i = 0; i < rows * C; ++i) {
          const double l = x[i] > 0 ? std::log2(static_cast<double>(x[i])) : kLog2Lo;
          int b = static_cast<int>(std::floor((l - kLog2Lo) / kLog2Bin));
          d.softmax_counts[std::clamp(b, 0, kLog2Bins - 1)] += 1;
        }
      }
    });
    model.set_quant(&probe_session);
    BatchLoader loader(calib, probe, pre, opt.batch, opt.workers);
    Batch b;
    while (loader.next(b)) {
      model.forward(b.images);
      done += b.index.size();
      if (opt.on_progress) opt.on_progress(done, total);
    }
    model.set_quant(nullptr);
  }
  for (const auto& n : range_order) d.ln_inputs.push_back(ranges[n]);

  // Pass 2: FP (block taps) and simulated (point + block errors) on the same batches.
  std::map<std::string, PointError> points;
  std::vector<std::string> point_order;
  session.set_stats_hook([&](const std::string& name, QPointRole role, const float* before,
                             const float* after, int64_t rows, int64_t C) {
    auto [it, fresh] = points.try_emplace(name);
    if (fresh) {
      it->second.name = name;
      it->second.role = qpoint_role_name(role);
      point_order.push_back(name);
    }
    it->second.err.add(before, after, rows * C);
  });
  std::map<int, PointError> blocks;
  try {
    BatchLoader loader(eval, eval_order, pre, opt.batch, opt.workers);
    Batch b;
    WeightMap fp_taps, q_taps;
    while (loader.next(b)) {
      model.set_quant(nullptr);
      model.set_taps(&fp_taps);
      const Tensor fp = model.forward(b.images);
      session.set_mode(QuantMode::simulate);
      model.set_quant(&session);
      model.set_taps(&q_taps);
      const Tensor q = model.forward(b.images);
      model.set_taps(nullptr);
      for (const auto& [name, t] : fp_taps) {
        auto it = q_taps.find(name);
        if (it == q_taps.end() || it->second.numel() != t.numel())
          fail("report", "block output '{}' missing or of another size in the quantized run", name);
        PointError& pe = blocks[block_number(name)];
        pe.name = name;
        pe.role = "block";
        pe.err.add(t.f32(), it->second.f32(), t.numel());
      }
      const int64_t K = fp.dim(1);
      for (size_t i = 0; i < b.index.size(); ++i) {
        const float* lf = fp.f32() + i * K;
        const float* lq = q.f32() + i * K;
        const int tf = static_cast<int>(std::max_element(lf, lf + K) - lf);
        const int tq = static_cast<int>(std::max_element(lq, lq + K) - lq);
        d.agree += tf == tq;
        if (b.labels[i] >= 0) {
          ++d.labelled;
          d.fp_top1 += tf == b.labels[i];
          d.q_top1 += tq == b.labels[i];
        }
      }
      done += b.index.size();
      if (opt.on_progress) opt.on_progress(done, total);
    }
  } catch (...) {
    session.set_stats_hook(nullptr);
    model.set_taps(nullptr);
    model.set_quant(nullptr);
    throw;
  }
  session.set_stats_hook(nullptr);
  model.set_quant(nullptr);
  for (const auto& n : point_order) d.points.push_back(points[n]);
  std::stable_sort(d.points.begin(), d.points.end(), [](const PointError& a, const PointError& b) {
    return a.err.sqnr_db() < b.err.sqnr_db();
  });
  for (auto& [k, pe] : blocks) d.blocks.push_back(pe);
  return d;
}

}  // namespace qvit
