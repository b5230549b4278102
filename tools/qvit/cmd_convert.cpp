// qvit convert: float weights + FQ-ViT parameters -> an integer model file (.qvit).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "qvit/engine.h"
#include "qvit/qvit_file.h"

namespace qvit::cli {

namespace {

struct ConvertArgs {
  std::string model, weights, qparams, out;
};

int run_convert(const ConvertArgs& a) {
  convert_files(a.model, a.weights, a.qparams, a.out);
  const QvitFile f = QvitFile::open(a.out);
  std::printf("wrote %s: %s, %s, %zu tensors, %llu bytes\n", a.out.c_str(),
              f.meta().at("model").get<std::string>().c_str(),
              f.meta().at("quant_label").get<std::string>().c_str(), f.names().size(),
              static_cast<unsigned long long>(f.file_size()));
  return 0;
}

}  // namespace

Command add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* sub = app.add_subcommand(
      "convert", "Convert a model and its FQ-ViT parameters to an integer model file (.qvit)");
  sub->add_option("--model", args->model, "Model name (vit/deit)")->required();
  sub->add_option("--weights", args->weights, "Weights: .safetensors/.pth or random:SEED")->required();
  sub->add_option("--qparams", args->qparams, "Parameters from qvit calibrate (--ptf --lis)")->required();
  sub->add_option("-o,--output", args->out, "Output .qvit file")->required();
  return {sub, [args] { return run_convert(*args); }};
}

}  // namespace qvit::cli
