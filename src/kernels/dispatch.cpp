// Kernel path selection: QVIT_KERNELS=ref|avx2 (read once), else avx2 when the CPU has AVX2+FMA.
#include <atomic>
#include <cstdlib>
#include <string_view>

#include "kernels/kernels_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"

namespace qvit {
namespace {

bool cpu_has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

KernelPath default_path() {
  const bool has_avx2 = cpu_has_avx2_fma();
  const char* env = std::getenv("QVIT_KERNELS");
  if (env == nullptr || *env == '\0') return has_avx2 ? KernelPath::avx2 : KernelPath::ref;
  const std::string_view v(env);
  if (v == "ref") return KernelPath::ref;
  if (v == "avx2") {
    if (!has_avx2) fail("kernels", "QVIT_KERNELS=avx2 but this CPU lacks AVX2/FMA");
    return KernelPath::avx2;
  }
  fail("kernels", "QVIT_KERNELS='{}' is not one of: ref, avx2", v);
}

// -1 = not decided yet; otherwise a KernelPath value.
std::atomic<int> g_path{-1};

}  // namespace

KernelPath kernel_path() {
  int p = g_path.load(std::memory_order_acquire);
  if (p < 0) {
    static const KernelPath from_env = default_path();  // thread-safe one-time init
    int expected = -1;
    g_path.compare_exchange_strong(expected, static_cast<int>(from_env));
    p = g_path.load(std::memory_order_acquire);
  }
  return static_cast<KernelPath>(p);
}

void set_kernel_path(KernelPath p) {
  if (p == KernelPath::avx2 && !cpu_has_avx2_fma()) {
    fail("kernels", "the avx2 kernel path was requested but this CPU lacks AVX2/FMA");
  }
  g_path.store(static_cast<int>(p), std::memory_order_release);
}

const char* kernel_path_name(KernelPath p) {
  switch (p) {
    case KernelPath::ref: return "ref";
    case KernelPath::avx2: return "avx2";
  }
  return "?";
}

namespace kernels_detail {
bool use_avx2() { return kernel_path() == KernelPath::avx2; }
}  // namespace kernels_detail

}  // namespace qvit
