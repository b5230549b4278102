// Bit types: integer code ranges "int<b>" / "uint<b>" with b in [2, 16] (FQ-ViT uses int8,
// uint8 and uint4). Signed codes are [-2^(b-1), 2^(b-1) - 1], unsigned [0, 2^b - 1].
#include <string>

#include "qvit/error.h"
#include "qvit/quant.h"

namespace qvit {

namespace {
constexpr int kMinBits = 2;
constexpr int kMaxBits = 16;  // codes and zero points stay exact in float32 and int32 products
}  // namespace

std::string BitType::name() const { return (is_signed ? "int" : "uint") + std::to_string(bits); }

BitType make_bit_type(int bits, bool is_signed) {
  if (bits < kMinBits || bits > kMaxBits) {
    fail("quant", "impossible bit type '{}{}': bits must be in [{}, {}]", is_signed ? "int" : "uint",
         bits, kMinBits, kMaxBits);
  }
  return BitType{bits, is_signed};
}

BitType parse_bit_type(const std::string& s) {
  const bool is_signed = s.rfind("int", 0) == 0;
  const bool is_unsigned = s.rfind("uint", 0) == 0;
  const std::string digits = s.substr(is_unsigned ? 4 : is_signed ? 3 : 0);
  if ((!is_signed && !is_unsigned) || digits.empty() || digits.size() > 3 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    fail("quant", "unknown bit type '{}': expected int<bits> or uint<bits>, e.g. int8, uint4", s);
  }
  const int bits = std::stoi(digits);
  if (bits < kMinBits || bits > kMaxBits) {
    fail("quant", "impossible bit type '{}': bits must be in [{}, {}]", s, kMinBits, kMaxBits);
  }
  return BitType{bits, is_signed};
}

}  // namespace qvit
