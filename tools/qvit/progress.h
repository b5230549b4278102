// Progress reporting for long CLI jobs: a redrawn bar with rate and ETA on a terminal, plain
// periodic lines (every 10 % or 15 s) otherwise. Writes to stderr. update() throws Interrupted
// after Ctrl-C (interrupt.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace qvit::cli {

class Progress {
 public:
  Progress(std::string label, std::string unit);
  void update(size_t done, size_t total);
  void finish();

 private:
  std::string label_, unit_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_line_;
  int last_decile_ = -1;
  bool drawn_ = false;
};

}  // namespace qvit::cli
