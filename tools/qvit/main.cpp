// qvit: quantize vision transformers and run them on CPU. Dispatches to the subcommands; turns
// library errors into one-line messages and a non-zero exit code.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "commands.h"
#include "interrupt.h"
#include "qvit/error.h"

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY when it loads, before main. Its default (spin before sleeping)
  // makes every parallel region stall when another process holds a core -- measured here:
  // deit_small batch 1 on 2 threads, median 167-520 ms spinning vs 53 ms passive on a shared
  // machine. Unless the user chose a policy, restart once with PASSIVE.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run with the default
  }
  CLI::App app{"qvit: post-training quantization and CPU inference for vision transformers"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "qvit 0.1.0");
  const std::vector<qvit::cli::Command> commands = {
      qvit::cli::add_eval_command(app),
      qvit::cli::add_calibrate_command(app),
      qvit::cli::add_fqvit_table_command(app),
      qvit::cli::add_bench_command(app),
      qvit::cli::add_inspect_command(app),
      qvit::cli::add_convert_command(app),
      qvit::cli::add_predict_command(app),
      qvit::cli::add_report_command(app),
      qvit::cli::add_apq_calibrate_command(app),
      qvit::cli::add_apq_table_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  qvit::cli::install_interrupt_handler();
  try {
    for (const auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const qvit::cli::Interrupted&) {
    std::fprintf(stderr, "\nqvit: interrupted\n");
    return 130;
  } catch (const qvit::Error& e) {
    std::fprintf(stderr, "qvit: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qvit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
