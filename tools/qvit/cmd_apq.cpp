// qvit apq-calibrate / apq-table: PTQ4ViT's framework with the base, ptq4vit and apq searches
// (include/qvit/apq.h). Calibration images: --calib-images drawn with --seed from --calib-data;
// the table evaluates on --eval-images drawn (seed + 1) from the images not used for calibration
// (--split eval), or on the rest of them (--split val, for choosing defaults).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>

#include "apq_options.h"
#include "commands.h"
#include "progress.h"
#include "qvit/apq.h"
#include "qvit/dataset.h"
#include "qvit/error.h"
#include "qvit/eval.h"
#include "qvit/io.h"
#include "qvit/parallel.h"

namespace qvit::cli {

void ApqArgs::add_to(CLI::App* app) {
  app->add_option("--method", method, "base | ptq4vit | apq")->capture_default_str();
  app->add_option("--wbits", wbits, "Weight bits (2..8)")->capture_default_str();
  app->add_option("--abits", abits, "Activation bits (2..8)")->capture_default_str();
  app->add_option("--calib-images", calib_images, "Calibration images drawn with --seed")->capture_default_str();
  app->add_option("--seed", seed, "Seed for drawing the calibration images")->capture_default_str();
  app->add_option("--set", sets,
                  "Override a search option KEY=VALUE (repeatable; keys as in the params file's \"config\": "
                  "softmax, gelu, twin_mode, metric, weights, patch_weights, scope, quantized_inputs, "
                  "calibrated_upstream, use_labels, keep, rank, grid, alpha, beta, rounds, stride, refine, "
                  "refine_window, mpq_select, mpq_gamma)");
}

namespace {

nlohmann::json parse_value(const std::string& v) {
  if (v == "true") return true;
  if (v == "false") return false;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (!v.empty() && *end == '\0') {
    if (v.find_first_of(".eE") == std::string::npos) return static_cast<int64_t>(d);
    return d;
  }
  return v;
}

}  // namespace

apq::ApqConfig apq_config(const std::string& method, int wbits, int abits, int calib_images, uint64_t seed,
                          const std::vector<std::string>& sets) {
  nlohmann::json j = apq::ApqConfig::defaults(apq::parse_method(method), wbits, abits).to_json();
  j["calib_images"] = calib_images;
  j["seed"] = seed;
  for (const std::string& s : sets) {
    if (s.empty()) continue;
    const size_t eq = s.find('=');
    if (eq == std::string::npos) fail("cli", "--set wants KEY=VALUE, got '{}'", s);
    const std::string key = s.substr(0, eq);
    if (!j.contains(key) || key == "method") fail("cli", "--set: unknown option '{}'", key);
    j[key] = parse_value(s.substr(eq + 1));
  }
  try {
    return apq::ApqConfig::from_json(j);
  } catch (const nlohmann::json::exception& e) {
    fail("cli", "--set: bad value type: {}", e.what());
  }
}

apq::ApqConfig ApqArgs::config() const { return apq_config(method, wbits, abits, calib_images, seed, sets); }

CalibSet load_calib_set(const Dataset& ds, int count, uint64_t seed, const ModelConfig& cfg, int workers) {
  if (ds.samples.size() < static_cast<size_t>(count))
    fail("cli", "{}: {} calibration images wanted, the folder has {}", ds.root, count, ds.samples.size());
  CalibSet c;
  c.indices = sample_indices(ds.samples.size(), static_cast<size_t>(count), seed);
  BatchLoader loader(ds, c.indices, cfg.preprocess(), count, workers);
  Batch b;
  if (!loader.next(b)) fail("cli", "{}: no calibration images", ds.root);
  c.images = std::move(b.images);
  c.labels = b.labels;
  for (size_t i : c.indices) c.paths.push_back(ds.samples[i].path);
  return c;
}

apq::ApqParams run_apq_calibration(const ModelConfig& cfg, const WeightMap& w, const CalibSet& cs,
                                   const apq::ApqConfig& c) {
  Progress p("calibrate " + c.label(), "layer");
  apq::CalibProgress pr;
  pr.on_layer = [&](size_t done, size_t total, const std::string&) { p.update(done, total); };
  apq::ApqParams params = apq::calibrate(cfg, w, cs.images, cs.labels, c, pr);
  p.finish();
  params.calib_images = cs.paths;
  return params;
}

namespace {

struct CalibArgs {
  std::string model, weights, calib_data, calib_labels, out, json;
  int threads = 0, workers = 2;
  ApqArgs q;
};

int run_calibrate(const CalibArgs& a) {
  set_num_threads(a.threads);
  const apq::ApqConfig c = a.q.config();  // validate before loading anything
  const ModelConfig& cfg = model_config(a.model);
  const WeightFile wf = load_checked_weights(cfg, a.weights);
  Dataset ds = open_dataset(a.calib_data, a.calib_labels, cfg.num_classes);
  std::fprintf(stderr, "qvit apq-calibrate: %s, %s, %d images from %s (seed %llu), %d threads\n", cfg.name.c_str(),
               c.label().c_str(), c.calib_images, a.calib_data.c_str(), static_cast<unsigned long long>(c.seed),
               num_threads());
  const CalibSet cs = load_calib_set(ds, c.calib_images, c.seed, cfg, a.workers);
  const apq::ApqParams p = run_apq_calibration(cfg, wf.tensors, cs, c);
  p.save(a.out);
  if (!a.json.empty())
    write_file_atomic(a.json, nlohmann::json{{"model", cfg.name}, {"config", c.to_json()}, {"label", c.label()},
                                             {"seconds", p.seconds}, {"threads", num_threads()}, {"output", a.out}}
                                      .dump(1) + "\n");
  std::printf("calibrated %zu layers of %s (%s) in %.1f s; wrote %s\n", p.layers.size(), cfg.name.c_str(),
              c.label().c_str(), p.seconds, a.out.c_str());
  return 0;
}

struct TableArgs {
  std::string model, weights, data, labels, out, split = "eval", methods = "base,ptq4vit,apq", bits = "8,6,4";
  std::vector<std::string> variants;
  int threads = 0, workers = 2, batch = 50, eval_images = 500;
  ApqArgs q;
  bool no_fp = false;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (size_t b = 0, e; b <= s.size(); b = e + 1) {
    e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.push_back(s.substr(b, e - b));
  }
  return out;
}

int run_table(const TableArgs& a) {
  set_num_threads(a.threads);
  const ModelConfig& cfg = model_config(a.model);
  const std::vector<std::string> methods = split_list(a.methods), bits = split_list(a.bits);
  std::vector<std::string> variants = a.variants;
  if (variants.empty()) variants.push_back("-");
  struct Plan {
    apq::ApqConfig c;
    std::string variant;
  };
  std::vector<Plan> plans;  // validated before any work
  for (const std::string& v : variants)
    for (const std::string& m : methods)
      for (const std::string& b : bits) {
        std::vector<std::string> sets = a.q.sets;
        if (v != "-")
          for (const std::string& kv : split_list(v)) sets.push_back(kv);
        const int nb = static_cast<int>(parse_value(b).is_number_integer() ? parse_value(b).get<int64_t>() : -1);
        plans.push_back({apq_config(m, nb, nb, a.q.calib_images, a.q.seed, sets), v});
      }
  if (a.split != "eval" && a.split != "val") fail("cli", "--split must be eval or val, got '{}'", a.split);
  const WeightFile wf = load_checked_weights(cfg, a.weights);
  Dataset ds = open_dataset(a.data, a.labels, cfg.num_classes);
  const CalibSet cs = load_calib_set(ds, a.q.calib_images, a.q.seed, cfg, a.workers);
  const std::vector<size_t> rest = complement_indices(ds, cs.indices);
  if (rest.size() < static_cast<size_t>(a.eval_images))
    fail("cli", "{}: {} images left after calibration, --eval-images {} wanted", a.data, rest.size(), a.eval_images);
  std::vector<size_t> pick = sample_indices(rest.size(), static_cast<size_t>(a.eval_images), a.q.seed + 1);
  std::sort(pick.begin(), pick.end());
  std::vector<size_t> order;
  if (a.split == "eval") {
    for (size_t i : pick) order.push_back(rest[i]);
  } else {
    std::vector<char> in(rest.size(), 0);
    for (size_t i : pick) in[i] = 1;
    for (size_t i = 0; i < rest.size(); ++i)
      if (!in[i]) order.push_back(rest[i]);
    if (order.empty()) fail("cli", "--split val: no images left besides calibration and evaluation");
  }
  EvalOptions eopt;
  eopt.batch = a.batch;
  eopt.workers = a.workers;
  auto evaluate_model = [&](Model& m, const std::string& what) {
    Progress p("eval " + what, "img");
    eopt.on_progress = [&](size_t d, size_t t) { p.update(d, t); };
    EvalResult r = evaluate(m, ds, order, cfg.preprocess(), eopt);
    p.finish();
    return r;
  };
  auto fp_model = create_model(cfg, wf);
  const EvalResult fp = evaluate_model(*fp_model, "fp32");
  std::fprintf(stderr, "   FP32 top-1 %.2f\n", fp.top1_pct());

  std::string md = fmt::format(
      "{} ({}), calibration: {} images of {} drawn with seed {}; evaluation: {} images ({} split) not used for "
      "calibration; {} threads.\n\n| method | bits | variant | top-1 (%) | top-5 (%) | agreement with FP32 (%) | "
      "calibration (s) |\n|---|---|---|---:|---:|---:|---:|\n| FP32 | W32A32 | - | {:.2f} | {:.2f} | 100.00 | - |\n",
      cfg.name, a.weights, a.q.calib_images, a.data, a.q.seed, order.size(), a.split, num_threads(), fp.top1_pct(),
      fp.top5_pct());
  nlohmann::json j = {{"model", cfg.name},  {"weights", a.weights},      {"calib_images", cs.paths},
                      {"seed", a.q.seed},   {"eval_images", order.size()}, {"split", a.split},
                      {"threads", num_threads()},
                      {"fp32", {{"top1", fp.top1_pct()}, {"top5", fp.top5_pct()}}},
                      {"rows", nlohmann::json::array()}};
  std::string csv = fmt::format("method,bits,variant,top1,top5,agreement,calib_seconds\nFP32,W32A32,,{:.2f},{:.2f},100.00,\n",
                                fp.top1_pct(), fp.top5_pct());
  for (const Plan& pl : plans) {
    const apq::ApqParams params = run_apq_calibration(cfg, wf.tensors, cs, pl.c);
    auto qm = apq::create_model(cfg, wf.tensors, params);
    const EvalResult r = evaluate_model(*qm, pl.c.label());
    const double agree = top1_agreement(r, fp);
    const std::string bits_s = fmt::format("W{}A{}", pl.c.wbits, pl.c.abits);
    const std::string& var = pl.variant;
    std::fprintf(stderr, "   %s %s: top-1 %.2f  agreement %.2f  calibration %.1f s\n", pl.c.label().c_str(),
                 var.c_str(), r.top1_pct(), agree, params.seconds);
    md += fmt::format("| {} | {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.1f} |\n", apq::method_name(pl.c.method), bits_s,
                      var, r.top1_pct(), r.top5_pct(), agree, params.seconds);
    csv += fmt::format("{},{},{},{:.2f},{:.2f},{:.2f},{:.1f}\n", apq::method_name(pl.c.method), bits_s,
                       csv_field(pl.variant), r.top1_pct(), r.top5_pct(), agree, params.seconds);
    j["rows"].push_back({{"method", apq::method_name(pl.c.method)}, {"bits", bits_s}, {"variant", pl.variant},
                         {"config", pl.c.to_json()}, {"top1", r.top1_pct()}, {"top5", r.top5_pct()},
                         {"agreement", agree}, {"calib_seconds", params.seconds}});
    if (!a.out.empty()) {  // keep partial results of a long run (each file still atomic)
      write_file_atomic(a.out + ".md", md);
      write_file_atomic(a.out + ".json", j.dump(1) + "\n");
      write_file_atomic(a.out + ".csv", csv);
    }
  }
  std::printf("%s", md.c_str());
  if (!a.out.empty()) std::fprintf(stderr, "wrote %s.md, %s.json and %s.csv\n", a.out.c_str(), a.out.c_str(), a.out.c_str());
  return 0;
}

}  // namespace

Command add_apq_calibrate_command(CLI::App& app) {
  auto args = std::make_shared<CalibArgs>();
  CLI::App* sub = app.add_subcommand("apq-calibrate", "Calibrate with PTQ4ViT's framework: base, ptq4vit or apq search");
  sub->add_option("--model", args->model, "Model name (ViT/DeiT)")->required();
  sub->add_option("--weights", args->weights, "Weights file or random:SEED")->required();
  sub->add_option("--calib-data", args->calib_data, "Calibration image folder")->required();
  sub->add_option("--calib-labels", args->calib_labels, "Label file when --calib-data is flat");
  sub->add_option("-o,--output", args->out, "Parameter file to write (qvit-apq-params JSON)")->required();
  sub->add_option("--json", args->json, "Also write a summary as JSON");
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--workers", args->workers, "Image decoding threads")->capture_default_str()->check(CLI::Range(1, 8));
  args->q.add_to(sub);
  return {sub, [args] { return run_calibrate(*args); }};
}

Command add_apq_table_command(CLI::App& app) {
  auto args = std::make_shared<TableArgs>();
  CLI::App* sub = app.add_subcommand("apq-table", "FP32 and {base, ptq4vit, apq} at W8A8/W6A6/W4A4, as a table");
  sub->add_option("--model", args->model, "Model name (ViT/DeiT)")->required();
  sub->add_option("--weights", args->weights, "Weights file or random:SEED")->required();
  sub->add_option("--data", args->data, "Image folder: calibration images and the evaluation split")->required();
  sub->add_option("--labels", args->labels, "Label file when --data is flat");
  sub->add_option("-o,--output", args->out, "Write OUT.md, OUT.json and OUT.csv");
  sub->add_option("--methods", args->methods, "Methods, comma-separated")->capture_default_str();
  sub->add_option("--bits", args->bits, "Bit widths (WkAk), comma-separated")->capture_default_str();
  sub->add_option("--variant", args->variants,
                  "Extra rows: KEY=VALUE[,KEY=VALUE] applied to every method/bits (repeatable; - = the defaults)");
  sub->add_option("--eval-images", args->eval_images, "Evaluation images (not used for calibration)")->capture_default_str();
  sub->add_option("--split", args->split, "eval (the --eval-images drawn) or val (the remaining images)")->capture_default_str();
  sub->add_option("--batch", args->batch, "Evaluation batch size")->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--workers", args->workers, "Image decoding threads")->capture_default_str()->check(CLI::Range(1, 8));
  args->q.add_to(sub);
  return {sub, [args] { return run_table(*args); }};
}

}  // namespace qvit::cli
