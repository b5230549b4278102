// libFuzzer target: qparams (see fuzz/fuzz_common.h).
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qvit::fuzz::qparams(data, size);
  return 0;
}
