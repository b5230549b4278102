// qvit fqvit-table: FP32 plus FQ-ViT's 12 configurations (4 observers x {W8A8 attn8, + PTF,
// + PTF + LIS attn4}) for one model, as Markdown and JSON, like the FQ-ViT README's table.
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "progress.h"
#include "quant_options.h"
#include "qvit/error.h"
#include "qvit/io.h"
#include "qvit/parallel.h"

namespace qvit::cli {

// RFC 4180 field: quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

namespace {
struct TableArgs {
  std::string model, weights, data, labels, out, json, csv;
  int threads = 0, workers = 2, batch = 50;
  bool holdout = false;
  std::string methods = "minmax,ema,percentile,omse";
  QuantArgs q;
};


struct Row {
  std::string method, setting;
  EvalResult r;
  double agreement = 100.0;
};

int run_table(const TableArgs& a) {
  set_num_threads(a.threads);
  const ModelConfig& cfg = model_config(a.model);
  const PreprocessConfig pre = cfg.preprocess();
  if (a.q.calib_data.empty()) fail("cli", "fqvit-table needs --calib-data");
  Dataset ds = open_dataset(a.data, a.labels, cfg.num_classes);
  const bool same = a.q.calib_data == a.data && a.q.calib_labels == a.labels;
  Dataset calib = same ? ds : open_dataset(a.q.calib_data, a.q.calib_labels, cfg.num_classes);
  CalibOptions copt;
  copt.batch = a.q.calib_batch;
  copt.iters = a.q.calib_iter;
  copt.seed = a.q.seed;
  const std::vector<size_t> used = calibration_indices(calib, copt);
  std::vector<size_t> order;
  if (a.holdout) {
    if (!same) fail("cli", "--holdout needs --calib-data to be the same folder as --data");
    order = complement_indices(ds, used);
  } else {
    for (size_t i = 0; i < ds.samples.size(); ++i) order.push_back(i);
  }
  EvalOptions eopt;
  eopt.batch = a.batch;
  eopt.workers = a.workers;

  auto model = load_model(a.model, a.weights);
  std::vector<Row> rows;
  {
    Progress p("fp32 eval", "img");
    eopt.on_progress = [&](size_t d, size_t t) { p.update(d, t); };
    rows.push_back({"-", "FP32", evaluate(*model, ds, order, pre, eopt)});
    p.finish();
  }
  struct Setting {
    const char* name;
    bool ptf, lis;
  };
  const Setting settings[] = {{"W8A8 attn8", false, false},
                              {"W8A8 attn8 PTF", true, false},
                              {"W8A8 attn4 PTF LIS", true, true}};
  std::vector<std::string> methods;
  for (size_t s = 0, e; s <= a.methods.size(); s = e + 1) {
    e = a.methods.find(',', s);
    if (e == std::string::npos) e = a.methods.size();
    methods.push_back(a.methods.substr(s, e - s));
  }
  for (const std::string& m : methods) {
    for (const Setting& st : settings) {
      QuantArgs q = a.q;
      q.method = m;
      q.ptf = st.ptf;
      q.lis = st.lis;
      q.attn_bits = 0;
      std::fprintf(stderr, "== %s, %s\n", m.c_str(), st.name);
      auto session = calibrate_from_args(*model, q, pre, a.workers, calib, nullptr);
      Progress p("eval", "img");
      eopt.on_progress = [&](size_t d, size_t t) { p.update(d, t); };
      Row row{m, st.name, evaluate(*model, ds, order, pre, eopt)};
      p.finish();
      row.agreement = top1_agreement(row.r, rows[0].r);
      rows.push_back(std::move(row));
      model->set_quant(nullptr);
      std::fprintf(stderr, "   top-1 %.2f  top-5 %.2f  agreement with FP %.2f%%\n",
                   rows.back().r.top1_pct(), rows.back().r.top5_pct(), rows.back().agreement);
    }
  }

  std::string md = fmt::format(
      "FQ-ViT configurations for {} ({}), calibration: {} x {} images from {} (seed {}), "
      "evaluation: {} images of {}{}.\n\n| method | W/A/attn bits, options | top-1 (%) | top-5 (%) | "
      "top-1 agreement with FP32 (%) |\n|---|---|---:|---:|---:|\n",
      cfg.name, a.weights, a.q.calib_iter, a.q.calib_batch, a.q.calib_data, a.q.seed, order.size(),
      a.data, a.holdout ? " not used for calibration" : "");
  nlohmann::json j = {{"model", cfg.name}, {"weights", a.weights}, {"eval_images", order.size()},
                      {"calib_images", used.size()}, {"seed", a.q.seed}, {"rows", nlohmann::json::array()}};
  std::string csv = "method,setting,top1,top5,agreement\n";
  for (const Row& r : rows) {
    csv += fmt::format("{},{},{:.2f},{:.2f},{:.2f}\n", csv_field(r.method), csv_field(r.setting),
                       r.r.top1_pct(), r.r.top5_pct(), r.agreement);
    md += fmt::format("| {} | {} | {:.2f} | {:.2f} | {:.2f} |\n", r.method, r.setting,
                      r.r.top1_pct(), r.r.top5_pct(), r.agreement);
    j["rows"].push_back({{"method", r.method}, {"setting", r.setting}, {"top1", r.r.top1_pct()},
                         {"top5", r.r.top5_pct()}, {"agreement", r.agreement}});
  }
  std::printf("%s", md.c_str());
  if (!a.out.empty()) {
    write_file_atomic(a.out + ".md", md);
    write_file_atomic(a.out + ".json", j.dump(1) + "\n");
    write_file_atomic(a.out + ".csv", csv);
    std::fprintf(stderr, "wrote %s.md, %s.json and %s.csv\n", a.out.c_str(), a.out.c_str(),
                 a.out.c_str());
  }
  if (!a.json.empty()) write_file_atomic(a.json, j.dump(1) + "\n");
  if (!a.csv.empty()) write_file_atomic(a.csv, csv);
  return 0;
}
}  // namespace

Command add_fqvit_table_command(CLI::App& app) {
  auto args = std::make_shared<TableArgs>();
  CLI::App* sub = app.add_subcommand(
      "fqvit-table", "FP32 and the 12 FQ-ViT configurations for a model, as a table");
  sub->add_option("--model", args->model, "Model name")->required();
  sub->add_option("--weights", args->weights, "Weights file or random:SEED")->required();
  sub->add_option("--data", args->data, "Evaluation image folder")->required();
  sub->add_option("--labels", args->labels, "Label file when --data is flat");
  sub->add_option("-o,--output", args->out, "Write OUT.md, OUT.json and OUT.csv");
  sub->add_option("--json", args->json, "Write the table as JSON to this file");
  sub->add_option("--csv", args->csv, "Write the table as CSV to this file");
  sub->add_option("--methods", args->methods, "Observers to run, comma-separated")
      ->capture_default_str();
  sub->add_flag("--holdout", args->holdout,
                "Evaluate on the images of --data not used for calibration");
  sub->add_option("--batch", args->batch, "Evaluation batch size")->capture_default_str();
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--workers", args->workers, "Image decoding threads")
      ->capture_default_str()->check(CLI::Range(1, 8));
  args->q.add_to(sub, /*with_switch=*/false);
  return {sub, [args] { return run_table(*args); }};
}

}  // namespace qvit::cli
