#include "progress.h"

#include "interrupt.h"

#include <unistd.h>

#include <cstdio>

namespace qvit::cli {

namespace {
std::string hms(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}
}  // namespace

Progress::Progress(std::string label, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_line_(start_) {}

void Progress::update(size_t done, size_t total) {
  check_interrupted();
  const auto now = std::chrono::steady_clock::now();
  const double el = std::chrono::duration<double>(now - start_).count();
  const double rate = el > 0 ? done / el : 0;
  const double eta = rate > 0 ? (total - done) / rate : -1;
  const double frac = total ? double(done) / total : 1.0;
  if (tty_) {
    const int width = 30, fill = static_cast<int>(frac * width);
    std::string bar(fill, '#');
    bar += std::string(width - fill, '.');
    std::fprintf(stderr, "\r%s [%s] %zu/%zu %5.1f%% %.1f %s/s ETA %s ", label_.c_str(), bar.c_str(),
                 done, total, 100 * frac, rate, unit_.c_str(), hms(eta).c_str());
    std::fflush(stderr);
    drawn_ = true;
    return;
  }
  const int decile = static_cast<int>(frac * 10);
  const double since = std::chrono::duration<double>(now - last_line_).count();
  if (decile != last_decile_ || since >= 15 || done == total) {
    std::fprintf(stderr, "%s: %zu/%zu (%.0f%%) %.1f %s/s elapsed %s ETA %s\n", label_.c_str(), done,
                 total, 100 * frac, rate, unit_.c_str(), hms(el).c_str(), hms(eta).c_str());
    last_decile_ = decile;
    last_line_ = now;
  }
}

void Progress::finish() {
  if (tty_ && drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace qvit::cli
