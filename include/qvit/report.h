// Quantization reports (qvit report): error statistics between an FP model and its simulated
// quantization, FQ-ViT's distribution figures, a small SVG chart writer and the HTML page.
// The page is self-contained: inline CSS, charts as SVG files next to it, no network.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qvit/dataset.h"
#include "qvit/model.h"
#include "qvit/quant_session.h"

namespace qvit {

// ---- error statistics between a reference x and its approximation q (accumulated in double)
//   SQNR  = 10 log10(sum x^2 / sum (x - q)^2)   (+inf when q == x)
//   cos   = sum x q / sqrt(sum x^2 sum q^2)      (1 when both are zero)
//   rel. MSE = sum (x - q)^2 / sum x^2
struct ErrorAccum {
  double sxx = 0, see = 0, sxq = 0, sqq = 0;
  int64_t n = 0;
  void add(const float* x, const float* q, int64_t count);
  double sqnr_db() const;
  double cosine() const;
  double rel_mse() const;
};

// ---- SVG charts (own writer: axes, ticks, labels, title; fixed palette)
struct ChartSeries {
  std::string name;
  std::vector<double> y;
  std::string color;  // CSS colour; empty: palette
};
// Horizontal bars, one row per label (top to bottom in the given order).
std::string svg_bar_chart(const std::string& title, const std::string& value_label,
                          const std::vector<std::string>& labels, const std::vector<double>& values);
// Lines over shared x values; non-finite y values break a line.
std::string svg_line_chart(const std::string& title, const std::string& xlabel,
                           const std::string& ylabel, const std::vector<double>& x,
                           const std::vector<ChartSeries>& series);
// Vertical lines drawn over a histogram (e.g. quantization levels), in x units.
struct ChartOverlay {
  std::string name;
  std::vector<double> x;
  std::string color;
};
// counts[i] covers [edges[i], edges[i+1]); log_y: log10(1 + count) axis.
std::string svg_histogram(const std::string& title, const std::string& xlabel,
                          const std::string& ylabel, const std::vector<double>& edges,
                          const std::vector<double>& counts, bool log_y,
                          const std::vector<ChartOverlay>& overlays);
std::string html_escape(const std::string& s);

// ---- the report's numbers
struct PointError {
  std::string name, role;
  ErrorAccum err;
};
struct ChannelRange {
  std::string name;  // the LayerNorm input point, e.g. "blocks.3.norm1.in"
  std::vector<float> min, max;
};
struct ReportData {
  std::string model, weights, config_label;
  size_t probe_images = 0, eval_images = 0;
  std::vector<PointError> points;  // every simulated quantization point, worst SQNR first
  std::vector<PointError> blocks;  // block outputs (FP vs quantized network), in network order
  std::vector<ChannelRange> ln_inputs;  // FP per-channel ranges, in network order
  // Post-softmax values of the FP model over log2(p): edges in log2 units (first bin also
  // takes everything below it).
  std::vector<double> softmax_edges, softmax_counts;
  size_t fp_top1 = 0, q_top1 = 0, agree = 0, labelled = 0;  // on the evaluation images
  std::vector<nlohmann::json> tables;  // accuracy tables (qvit fqvit-table JSON), as given
};

struct ReportOptions {
  int batch = 10;
  int workers = 2;
  // Called after every batch with (done, total) images over both passes; may throw to cancel.
  std::function<void(size_t, size_t)> on_progress;
};

// Pass 1 (probe): the FP model over `probe` images of `calib`, a throw-away calibrate-mode
// session observing every point (LayerNorm input ranges, softmax histogram).
// Pass 2: each `eval` batch through the FP model (block taps) and through `session` in simulate
// mode (per-point and per-block errors, top-1). Leaves the model without a session.
ReportData collect_report(Model& model, QuantSession& session, const Dataset& calib,
                          const std::vector<size_t>& probe, const Dataset& eval,
                          const std::vector<size_t>& eval_order, const PreprocessConfig& pre,
                          const ReportOptions& opt);

nlohmann::json report_json(const ReportData& d);
// Writes DIR/index.html, DIR/report.json and DIR/*.svg: everything goes to a fresh sibling
// temporary folder first, which then replaces DIR (an old DIR is removed only after the new
// one is complete). `temp_dir_out` (optional) receives the temporary path as soon as it exists
// so a signal handler can remove it.
void write_report(const ReportData& d, const std::string& dir,
                  std::string* temp_dir_out = nullptr);

}  // namespace qvit
