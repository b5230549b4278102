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
Command add_apq_calibrate_command(CLI::App& app);
Command add_apq_table_command(CLI::App& app);

// Shared helpers.
// RFC 4180 CSV field: quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& v);
// Default data folder: $QVIT_DATA or ../shared/data.
std::string default_data_dir();

}  // namespace qvit::cli
