// The qvit command-line tool: one file per command, each adding its subcommand to the app.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace qvit::cli {

struct Command {
  CLI::App* app;
  std::function<int()> run;  // returns the exit code
};

Command add_eval_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_calibrate_command(CLI::App& app);
Command add_fqvit_table_command(CLI::App& app);
Command add_inspect_command(CLI::App& app);
Command add_convert_command(CLI::App& app);
Command add_predict_command(CLI::App& app);
Command add_report_command(CLI::App& app);

// Shared helpers.
// Default data folder: $QVIT_DATA or ../shared/data.
std::string default_data_dir();

}  // namespace qvit::cli
