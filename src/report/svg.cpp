// A small SVG chart writer for qvit report: bar, line and histogram charts with axes, "nice"
// ticks, labels and a title. Output is plain SVG 1.1 text (viewable offline, embeddable by <img>).
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "qvit/report.h"

namespace qvit {

namespace {
const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

std::string color_or(const std::string& c, size_t i) {
  return c.empty() ? kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))] : c;
}

// Tick values covering [lo, hi] with a 1/2/5 x 10^k step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> t;
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  const double step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string num(double v) { return fmt::format("{:.4g}", v); }

struct Frame {
  double W, H, left, right, top, bottom;
  double x0, x1, y0, y1;  // data ranges
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (W - left - right); }
  double py(double y) const { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); }
};

std::string open_svg(double W, double H, const std::string& title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" "
      "font-weight=\"bold\">{3}</text>\n",
      W, H, W / 2, html_escape(title));
}

// Axes box, ticks with grid lines, axis labels.
std::string axes(const Frame& f, const std::string& xlabel, const std::string& ylabel,
                 bool x_ticks = true) {
  std::string s;
  if (x_ticks)
    for (double v : nice_ticks(f.x0, f.x1, 8)) {
      s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4}</text>\n",
                       f.px(v), f.top, f.H - f.bottom, f.H - f.bottom + 14, num(v));
    }
  for (double v : nice_ticks(f.y0, f.y1, 6)) {
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>"
                     "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
                     f.left, f.py(v), f.W - f.right, f.left - 4, f.py(v) + 4, num(v));
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
                   f.left, f.top, f.W - f.left - f.right, f.H - f.top - f.bottom);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                   (f.left + f.W - f.right) / 2, f.H - 6, html_escape(xlabel));
  s += fmt::format("<text transform=\"translate(14,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                   (f.top + f.H - f.bottom) / 2, html_escape(ylabel));
  return s;
}

// Top right inside the plot, or right of it (`outside`, needs a right margin of ~170 px).
std::string legend(const Frame& f, const std::vector<std::pair<std::string, std::string>>& items,
                   bool outside = false) {
  std::string s;
  double y = f.top + 12;
  const double x = outside ? f.W - f.right + 8 : f.W - f.right - 170;
  for (const auto& [name, color] : items) {
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"4\" fill=\"{}\"/>"
                     "<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
                     x, y - 4, color, x + 16, y, html_escape(name));
    y += 14;
  }
  return s;
}

void finite_range(const std::vector<double>& v, double& lo, double& hi) {
  for (double x : v)
    if (std::isfinite(x)) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
}

void pad_range(double& lo, double& hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
}
}  // namespace

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string svg_bar_chart(const std::string& title, const std::string& value_label,
                          const std::vector<std::string>& labels,
                          const std::vector<double>& values) {
  const double row = 14;
  Frame f{760, 60 + row * std::max<size_t>(labels.size(), 1) + 40, 190, 20, 30, 40, 0, 1, 0, 1};
  double lo = 0, hi = 0;
  finite_range(values, lo, hi);
  pad_range(lo, hi);
  f.x0 = lo, f.x1 = hi;
  std::string s = open_svg(f.W, f.H, title);
  // y: one band per label (no numeric y ticks): draw x ticks and the box by hand.
  for (double v : nice_ticks(f.x0, f.x1, 8))
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>"
                     "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
                     f.px(v), f.top, f.H - f.bottom, f.H - f.bottom + 14, num(v));
  for (size_t i = 0; i < labels.size(); ++i) {
    const double y = f.top + 4 + i * row;
    const double v = std::isfinite(values[i]) ? values[i] : hi;
    const double a = f.px(std::min(0.0, v) < lo ? lo : std::min(0.0, v));
    const double b = f.px(std::max(0.0, v));
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
                     "<title>{} {}</title></rect>"
                     "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                     std::min(a, b), y, std::max(std::abs(b - a), 0.5), row - 3, kPalette[0],
                     html_escape(labels[i]), num(values[i]), f.left - 4, y + row - 4,
                     html_escape(labels[i]));
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
                   f.left, f.top, f.W - f.left - f.right, f.H - f.top - f.bottom);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                   (f.left + f.W - f.right) / 2, f.H - 6, html_escape(value_label));
  return s + "</svg>\n";
}

std::string svg_line_chart(const std::string& title, const std::string& xlabel,
                           const std::string& ylabel, const std::vector<double>& x,
                           const std::vector<ChartSeries>& series) {
  Frame f{760, 320, 60, 20, 30, 40, 0, 1, 0, 1};
  double xl = std::numeric_limits<double>::infinity(), xh = -xl, yl = xl, yh = -xl;
  finite_range(x, xl, xh);
  for (const auto& s : series) finite_range(s.y, yl, yh);
  pad_range(xl, xh);
  pad_range(yl, yh);
  const double m = (yh - yl) * 0.05;
  f.x0 = xl, f.x1 = xh, f.y0 = yl - m, f.y1 = yh + m;
  std::string s = open_svg(f.W, f.H, title) + axes(f, xlabel, ylabel);
  std::vector<std::pair<std::string, std::string>> items;
  for (size_t k = 0; k < series.size(); ++k) {
    const std::string c = color_or(series[k].color, k);
    std::string d;
    bool pen = false;
    for (size_t i = 0; i < x.size() && i < series[k].y.size(); ++i) {
      const double y = series[k].y[i];
      if (!std::isfinite(y)) {
        pen = false;
        continue;
      }
      d += fmt::format("{}{:.1f},{:.1f} ", pen ? "L" : "M", f.px(x[i]), f.py(y));
      pen = true;
    }
    s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", d, c);
    items.emplace_back(series[k].name, c);
  }
  return s + legend(f, items) + "</svg>\n";
}

std::string svg_histogram(const std::string& title, const std::string& xlabel,
                          const std::string& ylabel, const std::vector<double>& edges,
                          const std::vector<double>& counts, bool log_y,
                          const std::vector<ChartOverlay>& overlays) {
  Frame f{900, 340, 60, 170, 30, 40, 0, 1, 0, 1};
  if (edges.size() >= 2) f.x0 = edges.front(), f.x1 = edges.back();
  double hi = 0;
  for (double c : counts) hi = std::max(hi, log_y ? std::log10(1 + c) : c);
  f.y1 = hi > 0 ? hi * 1.05 : 1;
  std::string s = open_svg(f.W, f.H, title) +
                  axes(f, xlabel, log_y ? ylabel + " (log10(1 + count))" : ylabel);
  for (size_t i = 0; i + 1 < edges.size() && i < counts.size(); ++i) {
    const double v = log_y ? std::log10(1 + counts[i]) : counts[i];
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#9ecae1\"/>\n",
                     f.px(edges[i]), f.py(v), f.px(edges[i + 1]) - f.px(edges[i]),
                     f.py(0) - f.py(v));
  }
  std::vector<std::pair<std::string, std::string>> items;
  const double band = (f.H - f.top - f.bottom) / std::max<size_t>(overlays.size(), 1);
  for (size_t k = 0; k < overlays.size(); ++k) {
    const std::string c = color_or(overlays[k].color, k + 1);
    // Each overlay gets its own vertical band so dense level sets stay distinguishable.
    const double ya = f.top + k * band, yb = ya + band;
    for (double x : overlays[k].x) {
      if (!(x >= f.x0 && x <= f.x1)) continue;
      s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" "
                       "stroke=\"{3}\" stroke-width=\"1\" opacity=\"0.8\"/>\n",
                       f.px(x), ya, yb, c);
    }
    items.emplace_back(overlays[k].name, c);
  }
  return s + legend(f, items, /*outside=*/true) + "</svg>\n";
}

}  // namespace qvit
