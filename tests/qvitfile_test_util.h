// Helpers for the .qvit tests: an independent bitwise CRC-32, a small file with every dtype, and
// byte patching that keeps the header checksum valid (to reach the checks behind it).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "qvit/qvit_file.h"

namespace qvit::test {

// The textbook bitwise CRC-32 (reflected 0xEDB88320), independent of zlib.
inline uint32_t crc32_bitwise(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

template <typename T>
T get_le(const std::vector<uint8_t>& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
template <typename T>
void put_le(std::vector<uint8_t>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

// Layout numbers from docs/qvit-format.md (written out here, not taken from the implementation).
constexpr size_t kQHeader = 64, kQEntry = 96;
inline size_t entry_at(size_t i) { return kQHeader + kQEntry * i; }
inline size_t table_end(const std::vector<uint8_t>& b) {
  return kQHeader + kQEntry * get_le<uint32_t>(b, 16) + get_le<uint32_t>(b, 20);
}

// Recomputes the header CRC (bytes [0, 60) then [64, end of the name area)); does nothing when the
// table does not fit in the bytes.
inline void fix_header_crc(std::vector<uint8_t>& b) {
  if (b.size() < kQHeader || table_end(b) > b.size()) return;
  uint32_t crc = crc32_bitwise(b.data(), 60);
  crc = crc32_bitwise(b.data() + 64, table_end(b) - 64, crc);
  put_le<uint32_t>(b, 60, crc);
}

// Recomputes the CRC of table entry i from its stored bytes.
inline void fix_section_crc(std::vector<uint8_t>& b, size_t i) {
  const size_t e = entry_at(i);
  const uint64_t off = get_le<uint64_t>(b, e + 16), size = get_le<uint64_t>(b, e + 24);
  put_le<uint32_t>(b, e + 12, crc32_bitwise(b.data() + off, size));
}

// A small file with every dtype, an odd-length int4 tensor, a scalar and an empty tensor.
// Table order: __metadata__, w8, w4, u, f, b, idx, scalar, empty.
inline QvitWriter sample_writer() {
  QvitWriter w;
  w.set_meta({{"model", "toy"}, {"scales", {0.5, 0.25}}, {"bits", 8}});
  Tensor w8({3, 5}, DType::i8), w4({3, 5}, DType::i8), u({4}, DType::u8), f({2, 2});
  Tensor b({3}, DType::i32), idx({2}, DType::i64), scalar(Shape{}), empty({0, 4});
  for (int i = 0; i < 15; ++i) {
    w8.data<int8_t>()[i] = static_cast<int8_t>(i * 17 - 128);
    w4.data<int8_t>()[i] = static_cast<int8_t>(i % 16 - 8);
  }
  for (int i = 0; i < 4; ++i) u.data<uint8_t>()[i] = static_cast<uint8_t>(250 + i);
  for (int i = 0; i < 4; ++i) f.f32()[i] = 0.1f * static_cast<float>(i) - 1.5f;
  b.data<int32_t>()[0] = INT32_MIN;
  b.data<int32_t>()[2] = 123456789;
  idx.data<int64_t>()[1] = -(int64_t{1} << 60);
  scalar.f32()[0] = 3.25f;
  w.add("w8", w8);
  w.add("w4", w4, 4);
  w.add("u", u);
  w.add("f", f);
  w.add("b", b);
  w.add("idx", idx);
  w.add("scalar", scalar);
  w.add("empty", empty);
  return w;
}

}  // namespace qvit::test
