// Bit-width validation shared by all PTQ4ViT / APQ-ViT quantizers (2..8 bits).
#include "qvit/apq_quant.h"
#include "qvit/error.h"

namespace qvit::apq {

int check_bits(int bits, std::string_view what) {
  if (bits < 2 || bits > 8) fail("apq", "--{} must be an integer in 2..8, got {}", what, bits);
  return bits;
}

}  // namespace qvit::apq
