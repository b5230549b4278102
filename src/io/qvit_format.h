// Private constants of the .qvit layout (docs/qvit-format.md is the normative description), shared
// by the reader and the writer, plus the CRC32 used for every checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "qvit/tensor.h"

namespace qvit::qvitfmt {

constexpr char kMagic[4] = {'Q', 'V', 'I', 'T'};
constexpr size_t kHeaderBytes = 64;   // fixed file header
constexpr size_t kEntryBytes = 96;    // one section table entry
constexpr size_t kCrcOffset = 60;     // header CRC: last 4 bytes of the fixed header
constexpr uint64_t kAlign = 64;       // section data alignment
constexpr int kMaxDims = 8;
constexpr uint32_t kMaxSections = 1u << 20;
constexpr uint32_t kMaxNameBytes = 4096;
constexpr uint32_t kMaxMetaDepth = 128;  // JSON nesting limit of the metadata

// Field offsets in the fixed header.
constexpr size_t kOffVersion = 4, kOffFileSize = 8, kOffCount = 16, kOffNamesSize = 20,
                 kOffFlags = 24;
// Field offsets in a table entry.
constexpr size_t kEntNameOff = 0, kEntNameLen = 4, kEntKind = 8, kEntDtype = 9, kEntBits = 10,
                 kEntNdim = 11, kEntCrc = 12, kEntOffset = 16, kEntSize = 24, kEntDims = 32;

enum Kind : uint8_t { kKindMetadata = 0, kKindTensor = 1 };

// On-disk dtype codes (0 = none, for the metadata section).
uint8_t dtype_code(DType t);
std::optional<DType> dtype_from_code(uint8_t code);

constexpr uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// CRC-32 as in zlib (reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF); `crc` is the
// value so far (0 to start), so crc32_update(crc32_update(0, a), b) == CRC of a followed by b.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void store_le(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace qvit::qvitfmt
