// qvit predict: the top classes of each image with softmax probabilities and class names
// (synset_words.txt: "wnid description" per line, in class index order).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "commands.h"
#include "qvit/dataset.h"
#include "qvit/engine.h"
#include "qvit/error.h"
#include "qvit/model.h"
#include "qvit/parallel.h"

namespace qvit::cli {

namespace {
using nlohmann::json;

struct PredictArgs {
  std::string model, weights, classes, qmodel;
  std::vector<std::string> images;
  int top = 5, batch = 16, threads = 0, workers = 2;
  bool json_out = false;
};

struct ClassName {
  std::string wnid, text;
};

// Class names for `num_classes` classes from `path`; "" means DATA/synset_words.txt if it exists,
// else no names (indices only).
std::vector<ClassName> load_class_names(std::string path, int num_classes) {
  if (path.empty()) {
    const std::string def = default_data_dir() + "/synset_words.txt";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(def, ec)) return {};
    path = def;
  }
  std::ifstream f(path);
  if (!f) fail("cli", "{}: cannot open the class name file", path);
  std::vector<ClassName> names;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    names.push_back(sp == std::string::npos ? ClassName{line, ""}
                                            : ClassName{line.substr(0, sp), line.substr(sp + 1)});
  }
  if (static_cast<int>(names.size()) != num_classes)
    fail("cli", "{}: {} class names, the model has {} classes", path, names.size(), num_classes);
  return names;
}

struct Prediction {
  int index;
  float logit;
  double prob;
};

// The k most likely classes (ties: lower index first); softmax in double over all logits.
std::vector<Prediction> top_k(const float* logits, int n, int k) {
  const double mx = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::vector<Prediction> out;
  for (int j = 0; j < k; ++j)
    out.push_back({idx[j], logits[idx[j]], std::exp(static_cast<double>(logits[idx[j]]) - mx) / sum});
  return out;
}

int run_predict(const PredictArgs& a) {
  set_num_threads(a.threads);
  std::unique_ptr<Model> model;
  if (!a.qmodel.empty()) {
    if (!a.model.empty() || !a.weights.empty())
      fail("cli", "--qmodel holds the model: do not give --model/--weights with it");
    model = load_int_model(a.qmodel);
  } else {
    if (a.model.empty() || a.weights.empty()) fail("cli", "--model and --weights (or --qmodel) are required");
    model = load_model(a.model, a.weights);
  }
  const ModelConfig& cfg = model->config();
  if (a.top > cfg.num_classes)
    fail("cli", "--top {} exceeds the {} classes of {}", a.top, cfg.num_classes, cfg.name);
  const std::vector<ClassName> names = load_class_names(a.classes, cfg.num_classes);
  Dataset ds;
  for (const auto& p : a.images) ds.samples.push_back({p, -1});
  BatchLoader loader(ds, {}, cfg.preprocess(), a.batch, a.workers);
  json out = {{"model", cfg.name}, {"images", json::array()}};
  Batch batch;
  while (loader.next(batch)) {
    const Tensor logits = model->forward(batch.images);
    for (size_t i = 0; i < batch.index.size(); ++i) {
      const std::string& path = ds.samples[batch.index[i]].path;
      const auto preds = top_k(logits.f32() + i * cfg.num_classes, cfg.num_classes, a.top);
      json top = json::array();
      if (!a.json_out) std::printf("%s\n", path.c_str());
      for (size_t r = 0; r < preds.size(); ++r) {
        const Prediction& p = preds[r];
        json e = {{"index", p.index}, {"prob", p.prob}, {"logit", p.logit}};
        if (!names.empty()) {
          e["wnid"] = names[p.index].wnid;
          e["name"] = names[p.index].text;
        }
        if (!a.json_out) {
          std::printf("  %zu. %6.2f%%  %4d  %s\n", r + 1, 100.0 * p.prob, p.index,
                      names.empty() ? ""
                                    : (names[p.index].wnid + " " + names[p.index].text).c_str());
        }
        top.push_back(std::move(e));
      }
      out["images"].push_back({{"path", path}, {"top", std::move(top)}});
    }
  }
  if (a.json_out) std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
}  // namespace

Command add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("predict", "Top classes of images, with class names");
  sub->add_option("images", args->images, "Image files")->required();
  sub->add_option("--model", args->model, "Model name (unless --qmodel)");
  sub->add_option("--weights", args->weights, "Weights file or random:SEED (unless --qmodel)");
  sub->add_option("--qmodel", args->qmodel, "An integer model (.qvit from qvit convert) instead");
  sub->add_option("--classes", args->classes,
                  "Class names, 'wnid description' per line (default: DATA/synset_words.txt)");
  sub->add_option("--top", args->top, "How many classes to show")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--batch", args->batch, "Images per forward pass")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--workers", args->workers, "Image decoding threads")
      ->capture_default_str()->check(CLI::Range(1, 8));
  sub->add_flag("--json", args->json_out, "Print JSON instead of text");
  return {sub, [args] { return run_predict(*args); }};
}

}  // namespace qvit::cli
