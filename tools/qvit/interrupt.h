// Ctrl-C for long CLI jobs: SIGINT/SIGTERM only set a flag; loops check it (Progress::update
// does, after every batch) and unwind with Interrupted, which main turns into exit code 130.
// Outputs are written atomically at the end, so an interrupted run leaves no partial files.
#pragma once

#include <exception>

namespace qvit::cli {

struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

void install_interrupt_handler();
bool interrupted();
void check_interrupted();  // throws Interrupted once a signal arrived

}  // namespace qvit::cli
