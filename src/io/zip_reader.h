// A read-only zip archive reader over bytes already in memory (a MappedFile), enough for the
// archives torch.save writes: stored or deflated entries, ZIP64 end records and extra fields,
// data descriptors. The central directory and every local header are validated on open; all
// offsets are bounds-checked, so malformed archives raise an Error instead of reading outside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qvit::io {

struct ZipEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;  // uncompressed
  uint64_t local_offset = 0;
  uint64_t data_offset = 0;  // first byte of the (compressed) data
};

class ZipReader {
 public:
  // Errors are thrown as "[component] path: ...". `data` must outlive the reader.
  ZipReader(const uint8_t* data, size_t size, std::string path, std::string component);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when absent.
  const ZipEntry* find(std::string_view name) const;

  // The entry's bytes, CRC-checked: a view into the archive for stored entries, or inflated into
  // `scratch` (resized) for deflated ones.
  std::span<const uint8_t> read(const ZipEntry& e, std::vector<uint8_t>& scratch) const;

 private:
  [[noreturn]] void error(const std::string& what) const;
  void read_end_records(uint64_t* count, uint64_t* cd_offset, uint64_t* cd_size) const;
  void read_central_directory(uint64_t count, uint64_t cd_offset, uint64_t cd_size);
  void check_local_header(ZipEntry& e, uint64_t cd_offset) const;

  const uint8_t* data_;
  size_t size_;
  std::string path_;
  std::string component_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace qvit::io
