// Bit types: names, ranges and the impossible ones.
#include <gtest/gtest.h>

#include "qvit/error.h"
#include "qvit/quant.h"

namespace qvit {
namespace {

TEST(QuantBitType, ParsesFqVitTypes) {
  EXPECT_EQ(parse_bit_type("int8"), (BitType{8, true}));
  EXPECT_EQ(parse_bit_type("uint8"), (BitType{8, false}));
  EXPECT_EQ(parse_bit_type("uint4"), (BitType{4, false}));
  EXPECT_EQ(parse_bit_type("int8").qmin(), -128);
  EXPECT_EQ(parse_bit_type("int8").qmax(), 127);
  EXPECT_EQ(parse_bit_type("uint8").qmax(), 255);
  EXPECT_EQ(parse_bit_type("uint4").qmax(), 15);
  EXPECT_EQ(parse_bit_type("int16").qmin(), -32768);
  EXPECT_EQ(parse_bit_type("uint16").qmax(), 65535);
  EXPECT_EQ(parse_bit_type("int2").qmin(), -2);
  EXPECT_EQ(make_bit_type(6, false).name(), "uint6");
  EXPECT_EQ(make_bit_type(8, true).name(), "int8");
}

TEST(QuantBitType, RejectsImpossibleTypes) {
  for (const char* bad : {"uint1", "int17", "int0", "uint32", "int1"}) {
    try {
      parse_bit_type(bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("[quant] impossible bit type"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
  for (const char* bad : {"float8", "int", "uint-4", "int8x", "", "INT8"}) {
    EXPECT_THROW(parse_bit_type(bad), Error) << bad;
  }
  EXPECT_THROW(make_bit_type(1, false), Error);
  EXPECT_THROW(make_bit_type(17, true), Error);
}

}  // namespace
}  // namespace qvit
