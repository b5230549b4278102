// libFuzzer target: image (see fuzz/fuzz_common.h).
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qvit::fuzz::image(data, size);
  return 0;
}
