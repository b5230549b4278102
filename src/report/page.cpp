// qvit report's output: report.json, the SVG charts and index.html (inline CSS, charts by <img>,
// a few lines of JS that mark the page when every chart has loaded and record script errors --
// the browser test reads both from the DOM). Written into a temporary folder, then renamed.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "qvit/error.h"
#include "qvit/io.h"
#include "qvit/report.h"

namespace qvit {

namespace fs = std::filesystem;

namespace {
nlohmann::json num_json(double v) {  // JSON has no infinities
  if (std::isfinite(v)) return v;
  return v > 0 ? "inf" : "-inf";
}

nlohmann::json err_json(const PointError& p) {
  return {{"name", p.name},
          {"role", p.role},
          {"values", p.err.n},
          {"sqnr_db", num_json(p.err.sqnr_db())},
          {"cosine", num_json(p.err.cosine())},
          {"rel_mse", num_json(p.err.rel_mse())}};
}

std::string fmtd(double v, int prec) {
  if (!std::isfinite(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.{}f}", v, prec);
}

std::string error_table(const std::vector<PointError>& v) {
  std::string s =
      "<table><tr><th>#</th><th>point</th><th>role</th><th>SQNR (dB)</th><th>cosine</th>"
      "<th>relative MSE</th></tr>\n";
  for (size_t i = 0; i < v.size(); ++i)
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                     i + 1, html_escape(v[i].name), v[i].role, fmtd(v[i].err.sqnr_db(), 2),
                     fmtd(v[i].err.cosine(), 6), fmtd(v[i].err.rel_mse(), 6));
  return s + "</table>\n";
}

std::string accuracy_table(const nlohmann::json& t) {
  std::string s = "<p>";
  for (const char* k : {"model", "weights", "calib_images", "eval_images", "seed"})
    if (t.contains(k)) s += fmt::format("{}: <b>{}</b> &nbsp; ", k, html_escape(t[k].dump()));
  s += "</p>\n<table><tr><th>method</th><th>setting</th><th>top-1 (%)</th><th>top-5 (%)</th>"
       "<th>top-1 agreement with FP32 (%)</th></tr>\n";
  for (const auto& r : t.at("rows"))
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.2f}</td><td>{:.2f}</td><td>{:.2f}</td></tr>\n",
                     html_escape(r.at("method").get<std::string>()),
                     html_escape(r.at("setting").get<std::string>()), r.at("top1").get<double>(),
                     r.at("top5").get<double>(), r.at("agreement").get<double>());
  return s + "</table>\n";
}

// Which LayerNorm inputs get their own chart: the first, middle and last ones.
std::vector<size_t> ln_chart_indices(size_t n) {
  std::vector<size_t> v;
  for (size_t i : {size_t{0}, n / 2, n ? n - 1 : 0})
    if (i < n && (v.empty() || v.back() != i)) v.push_back(i);
  return v;
}

std::string safe_file(const std::string& name) {
  std::string s;
  for (char c : name) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}

const char* kCss = R"(body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td:nth-child(2),th:nth-child(2){text-align:left}h2{border-bottom:1px solid #ccc;margin-top:2em}
img{display:block;margin:1em 0;max-width:100%}.note{color:#555;font-size:13px}
.scroll{max-height:420px;overflow-y:auto;display:inline-block})";

// Marks <body data-charts="ok"> when every <img> has decoded; window errors and console.error
// calls go to #js-errors and data-js-errors.
const char* kScript = R"(<script>
(function(){
  var errs=[];
  function note(m){errs.push(String(m));document.body.setAttribute('data-js-errors',String(errs.length));
    var e=document.getElementById('js-errors');if(e)e.textContent=errs.join('\n');}
  window.addEventListener('error',function(e){note(e.message||('failed to load '+(e.target&&e.target.src)));},true);
  var ce=console.error;console.error=function(){note(Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};
  window.addEventListener('load',function(){
    var imgs=document.images,ok=0;
    for(var i=0;i<imgs.length;i++)if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;
    document.body.setAttribute('data-charts-loaded',ok+'/'+imgs.length);
    document.body.setAttribute('data-charts',ok===imgs.length&&imgs.length>0?'ok':'missing');
  });
})();
</script>
)";
}  // namespace

nlohmann::json report_json(const ReportData& d) {
  nlohmann::json j = {{"format", "qvit-report"}, {"version", 1}, {"model", d.model},
                      {"weights", d.weights}, {"config", d.config_label},
                      {"probe_images", d.probe_images}, {"eval_images", d.eval_images},
                      {"labelled", d.labelled}, {"fp_top1", d.fp_top1}, {"quant_top1", d.q_top1},
                      {"top1_agree", d.agree}};
  j["points"] = nlohmann::json::array();
  for (const auto& p : d.points) j["points"].push_back(err_json(p));
  j["blocks"] = nlohmann::json::array();
  for (const auto& p : d.blocks) j["blocks"].push_back(err_json(p));
  j["ln_inputs"] = nlohmann::json::array();
  for (const auto& r : d.ln_inputs) j["ln_inputs"].push_back({{"name", r.name}, {"min", r.min}, {"max", r.max}});
  j["softmax_hist"] = {{"log2_edges", d.softmax_edges}, {"counts", d.softmax_counts}};
  j["tables"] = d.tables;
  return j;
}

void write_report(const ReportData& d, const std::string& dir, std::string* temp_dir_out) {
  if (dir.empty()) fail("report", "no output folder given");
  const fs::path out = fs::absolute(fs::path(dir).lexically_normal());
  const fs::path parent = out.has_filename() ? out.parent_path() : out.parent_path().parent_path();
  const std::string base = (out.has_filename() ? out : out.parent_path()).filename().string();
  if (!fs::is_directory(parent)) fail("report", "{}: parent folder does not exist", dir);
  const fs::path tmp = parent / fmt::format(".{}.tmp-{}", base, ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec)) fail("report", "{}: cannot create folder: {}", tmp.string(), ec.message());
  if (temp_dir_out) *temp_dir_out = tmp.string();
  try {
    std::vector<std::pair<std::string, std::string>> charts;  // file, caption
    auto chart = [&](const std::string& file, const std::string& svg, const std::string& caption) {
      write_file_atomic((tmp / file).string(), svg);
      charts.emplace_back(file, caption);
      return fmt::format("<img src=\"{}\" alt=\"{}\">\n<p class=\"note\">{}</p>\n", file,
                         html_escape(caption), caption);
    };
    std::string html = fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>qvit report: "
        "{0}</title>\n<style>{1}</style>\n</head><body>\n{2}<h1>qvit report: {0}</h1>\n<p>Weights "
        "<b>{3}</b>, quantization <b>{4}</b>; FP probe on {5} calibration images, errors on {6} "
        "evaluation images.</p>\n<pre id=\"js-errors\"></pre>\n",
        html_escape(d.model), kCss, kScript, html_escape(d.weights), html_escape(d.config_label),
        d.probe_images, d.eval_images);

    html += "<h2>Accuracy</h2>\n";
    html += fmt::format(
        "<p>On the report's {} evaluation images ({} labelled): FP32 top-1 {}/{}, quantized top-1 "
        "{}/{}, same top-1 class {}/{}.</p>\n",
        d.eval_images, d.labelled, d.fp_top1, d.labelled, d.q_top1, d.labelled, d.agree,
        d.eval_images);
    if (d.tables.empty()) html += "<p class=\"note\">No accuracy table given (--table).</p>\n";
    for (const auto& t : d.tables) html += accuracy_table(t);

    html += "<h2>Error through the network</h2>\n";
    {
      std::vector<double> x, sq, cs;
      for (size_t i = 0; i < d.blocks.size(); ++i) {
        x.push_back(static_cast<double>(i));
        sq.push_back(d.blocks[i].err.sqnr_db());
      }
      html += chart("blocks_sqnr.svg",
                    svg_line_chart("Block output SQNR, FP vs quantized network", "block",
                                   "SQNR (dB)", x, {{"SQNR", sq, ""}}),
                    "Each block's output in the quantized network compared with the FP network "
                    "(errors accumulate).");
      html += error_table(d.blocks);
    }

    html += "<h2>Post-softmax distribution</h2>\n";
    {
      ChartOverlay u8{"uniform 8-bit levels", {}, "#2ca02c"}, u4{"uniform 4-bit levels", {}, "#ff7f0e"},
          l4{"log2 4-bit levels", {}, "#d62728"};
      for (int k = 1; k <= 255; ++k) u8.x.push_back(std::log2(k / 255.0));
      for (int k = 1; k <= 15; ++k) u4.x.push_back(std::log2(k / 15.0));
      for (int k = 0; k <= 15; ++k) l4.x.push_back(-k);
      html += chart("softmax_hist.svg",
                    svg_histogram("Post-softmax values (FP), with quantization levels",
                                  "log2(attention probability)", "count", d.softmax_edges,
                                  d.softmax_counts, true, {u8, u4, l4}),
                    "Histogram of the FP attention probabilities over log2(p) (values below 2^-20 "
                    "in the first bin). Uniform levels k/(2^b-1) over [0, 1] crowd near 1 where few "
                    "values are; log2 levels 2^-k follow the distribution.");
    }
    html += "<h2>Inter-channel variation of LayerNorm inputs</h2>\n<p class=\"note\">Per-channel "
            "minimum and maximum of the FP LayerNorm inputs over the probe images (FQ-ViT's "
            "motivation for the Power-of-Two Factor).</p>\n";
    {
      std::string summary = "<table><tr><th>#</th><th>LayerNorm input</th><th>min</th><th>max</th>"
                            "<th>largest / median channel range</th></tr>\n";
      for (size_t k = 0; k < d.ln_inputs.size(); ++k) {
        const ChannelRange& r = d.ln_inputs[k];
        std::vector<double> range;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t c = 0; c < r.min.size(); ++c) {
          range.push_back(double(r.max[c]) - r.min[c]);
          lo = std::min(lo, double(r.min[c]));
          hi = std::max(hi, double(r.max[c]));
        }
        std::vector<double> sorted = range;
        std::sort(sorted.begin(), sorted.end());
        const double med = sorted.empty() ? 0 : sorted[sorted.size() / 2];
        summary += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.3f}</td><td>{:.3f}</td><td>{}</td></tr>\n",
                               k + 1, html_escape(r.name), lo, hi,
                               fmtd(med > 0 ? sorted.back() / med : INFINITY, 1));
      }
      for (size_t k : ln_chart_indices(d.ln_inputs.size())) {
        const ChannelRange& r = d.ln_inputs[k];
        std::vector<double> x, mn, mx;
        for (size_t c = 0; c < r.min.size(); ++c) {
          x.push_back(static_cast<double>(c));
          mn.push_back(r.min[c]);
          mx.push_back(r.max[c]);
        }
        html += chart("ln_" + safe_file(r.name) + ".svg",
                      svg_line_chart("Channel-wise min/max of " + r.name, "channel", "value", x,
                                     {{"max", mx, ""}, {"min", mn, ""}}),
                      "Per-channel range of " + html_escape(r.name) + ".");
      }
      html += summary + "</table>\n";
    }

    std::string points_html;  // last: the longest section
    points_html += "<h2>Error at each quantization point</h2>\n<p class=\"note\">Between the value "
            "entering a point and its fake-quantized value in the quantized network, worst "
            "SQNR first.</p>\n";
    if (d.config_label.find("LIS") != std::string::npos)
      points_html += "<p class=\"note\">With LIS the softmax is quantized inside Log-Int-Softmax, "
                     "not at a point: its error appears in the points and blocks after it.</p>\n";
    {
      std::vector<std::string> labels;
      std::vector<double> v;
      for (const auto& p : d.points) labels.push_back(p.name), v.push_back(p.err.sqnr_db());
      points_html += chart("points_sqnr.svg",
                    svg_bar_chart("SQNR per quantization point (dB, higher is better)",
                                  "SQNR (dB)", labels, v),
                    "SQNR of every quantization point, sorted.");
      points_html += "<div class=\"scroll\">" + error_table(d.points) + "</div>\n";
    }

    html += points_html;
    html += fmt::format("<p class=\"note\">Numbers: <a href=\"report.json\">report.json</a>. "
                        "{} charts.</p>\n</body></html>\n", charts.size());
    write_file_atomic((tmp / "report.json").string(), report_json(d).dump(1) + "\n");
    write_file_atomic((tmp / "index.html").string(), html);

    // Swap into place: an existing folder is moved aside first and removed after the rename.
    const fs::path old = parent / fmt::format(".{}.old-{}", base, ::getpid());
    const bool had = fs::exists(out);
    if (had) fs::rename(out, old);
    fs::rename(tmp, out);
    if (had) fs::remove_all(old, ec);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (temp_dir_out) temp_dir_out->clear();
}

}  // namespace qvit
