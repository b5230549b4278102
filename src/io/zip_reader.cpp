// Zip archive reading for .pth checkpoints: end-of-central-directory (plus ZIP64) records, the
// central directory, local-header cross-checks, and stored/deflated entry extraction with CRC.
#include "io/zip_reader.h"

#include <zlib.h>

#include <cstring>

#include "io/file_util.h"
#include "qvit/error.h"

namespace qvit::io {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kEnd64Size = 56, kLocatorSize = 20;
constexpr size_t kCentralSize = 46, kLocalSize = 30;
constexpr uint32_t k32 = 0xffffffffu;
constexpr uint16_t k16 = 0xffff;
// Deflate cannot compress better than about 1032:1; larger claims are corrupt or hostile.
constexpr uint64_t kMaxDeflateRatio = 1032;

uint16_t u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint32_t u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// True if [offset, offset + n) lies inside [0, limit).
bool in_range(uint64_t offset, uint64_t n, uint64_t limit) {
  return offset <= limit && n <= limit - offset;
}

// Fills the fields marked 0xffffffff from a ZIP64 extended-information block (id 1), in the
// order the format defines: size, compressed size, local header offset.
bool apply_zip64_extra(const uint8_t* extra, size_t len, uint64_t* size, uint64_t* csize,
                       uint64_t* offset) {
  size_t p = 0;
  while (p + 4 <= len) {
    uint16_t id = u16(extra + p), n = u16(extra + p + 2);
    if (p + 4 + n > len) return false;
    if (id == 1) {
      const uint8_t* b = extra + p + 4;
      size_t used = 0;
      for (uint64_t* field : {size, csize, offset}) {
        if (!field || *field != k32) continue;
        if (used + 8 > n) return false;
        *field = u64(b + used);
        used += 8;
      }
      return true;
    }
    p += 4 + n;
  }
  return true;
}

uint32_t crc32_of(const uint8_t* p, uint64_t n) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  return static_cast<uint32_t>(crc32_z(crc, p, static_cast<z_size_t>(n)));
}

}  // namespace

ZipReader::ZipReader(const uint8_t* data, size_t size, std::string path, std::string component)
    : data_(data), size_(size), path_(std::move(path)), component_(std::move(component)) {
  uint64_t count = 0, cd_offset = 0, cd_size = 0;
  read_end_records(&count, &cd_offset, &cd_size);
  read_central_directory(count, cd_offset, cd_size);
}

void ZipReader::error(const std::string& what) const {
  fail(component_, "{}: zip archive: {}", path_, what);
}

void ZipReader::read_end_records(uint64_t* count, uint64_t* cd_offset, uint64_t* cd_size) const {
  if (size_ < kEndSize) error("file too short, no end-of-central-directory record (truncated?)");
  // The end record sits before an optional comment of at most 65535 bytes.
  size_t end = SIZE_MAX;
  size_t lowest = size_ - kEndSize > 65535 ? size_ - kEndSize - 65535 : 0;
  for (size_t pos = size_ - kEndSize + 1; pos-- > lowest;) {
    if (u32(data_ + pos) == kEndSig && pos + kEndSize + u16(data_ + pos + 20) <= size_) {
      end = pos;
      break;
    }
  }
  if (end == SIZE_MAX) error("no end-of-central-directory record (truncated or not a zip file?)");
  const uint8_t* e = data_ + end;
  uint64_t disk = u16(e + 4), cd_disk = u16(e + 6);
  *count = u16(e + 10);
  *cd_size = u32(e + 12);
  *cd_offset = u32(e + 16);
  uint64_t cd_limit = end;

  if (end >= kLocatorSize && u32(e - kLocatorSize) == kEnd64LocatorSig) {
    uint64_t rec = u64(e - kLocatorSize + 8);
    if (!in_range(rec, kEnd64Size, end - kLocatorSize) || u32(data_ + rec) != kEnd64Sig)
      error("bad ZIP64 end-of-central-directory record");
    const uint8_t* r = data_ + rec;
    disk = u32(r + 16);
    cd_disk = u32(r + 20);
    *count = u64(r + 32);
    *cd_size = u64(r + 40);
    *cd_offset = u64(r + 48);
    cd_limit = rec;
  } else if (*count == k16 || *cd_size == k32 || *cd_offset == k32) {
    error("ZIP64 end record missing");
  }
  if (disk != 0 || cd_disk != 0) error("multi-disk archives are not supported");
  if (!in_range(*cd_offset, *cd_size, cd_limit))
    error(fmt::format("central directory [{}, +{}) outside the archive (truncated?)", *cd_offset,
                      *cd_size));
  if (*count > *cd_size / kCentralSize)
    error(fmt::format("central directory of {} bytes cannot hold {} entries", *cd_size, *count));
}

void ZipReader::read_central_directory(uint64_t count, uint64_t cd_offset, uint64_t cd_size) {
  entries_.reserve(count);
  const uint8_t* cd = data_ + cd_offset;
  uint64_t p = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (!in_range(p, kCentralSize, cd_size) || u32(cd + p) != kCentralSig)
      error(fmt::format("bad central directory entry {}", i));
    const uint8_t* h = cd + p;
    ZipEntry e;
    e.flags = u16(h + 8);
    e.method = u16(h + 10);
    e.crc32 = u32(h + 16);
    e.compressed_size = u32(h + 20);
    e.size = u32(h + 24);
    uint16_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
    e.local_offset = u32(h + 42);
    uint64_t total = kCentralSize + uint64_t{name_len} + extra_len + comment_len;
    if (!in_range(p, total, cd_size)) error(fmt::format("central directory entry {} truncated", i));
    e.name.assign(reinterpret_cast<const char*>(h + kCentralSize), name_len);
    if (!apply_zip64_extra(h + kCentralSize + name_len, extra_len, &e.size, &e.compressed_size,
                           &e.local_offset) ||
        e.size == k32 || e.compressed_size == k32 || e.local_offset == k32) {
      error(fmt::format("entry '{}': bad ZIP64 extra field", printable(e.name)));
    }
    check_local_header(e, cd_offset);
    if (!by_name_.emplace(e.name, entries_.size()).second)
      error(fmt::format("duplicate entry '{}'", printable(e.name)));
    entries_.push_back(std::move(e));
    p += total;
  }
}

void ZipReader::check_local_header(ZipEntry& e, uint64_t cd_offset) const {
  const std::string name = printable(e.name);
  if (!in_range(e.local_offset, kLocalSize, cd_offset) || u32(data_ + e.local_offset) != kLocalSig)
    error(fmt::format("entry '{}': bad local header at offset {}", name, e.local_offset));
  const uint8_t* h = data_ + e.local_offset;
  uint16_t name_len = u16(h + 26), extra_len = u16(h + 28);
  uint64_t header = kLocalSize + uint64_t{name_len} + extra_len;
  if (!in_range(e.local_offset, header, cd_offset))
    error(fmt::format("entry '{}': local header truncated", name));
  if (u16(h + 8) != e.method || name_len != e.name.size() ||
      std::memcmp(h + kLocalSize, e.name.data(), name_len) != 0)
    error(fmt::format("entry '{}': local header does not match the central directory", name));
  // With a data descriptor (flag bit 3) the local CRC and sizes may be zero.
  if (!(e.flags & 8)) {
    uint64_t size = u32(h + 22), csize = u32(h + 18);
    if (!apply_zip64_extra(h + kLocalSize + name_len, extra_len, &size, &csize, nullptr) ||
        u32(h + 14) != e.crc32 || size != e.size || csize != e.compressed_size)
      error(fmt::format("entry '{}': local header sizes or CRC differ from the central directory",
                        name));
  }
  e.data_offset = e.local_offset + header;
  if (!in_range(e.data_offset, e.compressed_size, cd_offset))
    error(fmt::format("entry '{}': data [{}, +{}) runs past the end of the entries (truncated?)",
                      name, e.data_offset, e.compressed_size));
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

std::span<const uint8_t> ZipReader::read(const ZipEntry& e, std::vector<uint8_t>& scratch) const {
  const std::string name = printable(e.name);
  if (e.flags & 1) error(fmt::format("entry '{}' is encrypted", name));
  const uint8_t* src = data_ + e.data_offset;
  std::span<const uint8_t> out;
  if (e.method == 0) {
    if (e.compressed_size != e.size)
      error(fmt::format("stored entry '{}' has compressed size {} != size {}", name,
                        e.compressed_size, e.size));
    out = {src, static_cast<size_t>(e.size)};
  } else if (e.method == 8) {
    if (e.size / kMaxDeflateRatio > e.compressed_size + 64)
      error(fmt::format("entry '{}': implausible size {} for {} compressed bytes", name, e.size,
                        e.compressed_size));
    scratch.assign(static_cast<size_t>(e.size), 0);
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) error("cannot initialise zlib");
    uint64_t in_left = e.compressed_size, out_left = e.size;
    zs.next_in = const_cast<Bytef*>(src);
    zs.next_out = scratch.data();
    int rc = Z_OK;
    while (rc == Z_OK) {
      // avail_in/avail_out are 32-bit; feed large entries in pieces.
      if (zs.avail_in == 0) {
        zs.avail_in = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
        in_left -= zs.avail_in;
      }
      if (zs.avail_out == 0) {
        zs.avail_out = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
        out_left -= zs.avail_out;
      }
      rc = inflate(&zs, Z_NO_FLUSH);
      if (rc == Z_BUF_ERROR && (zs.avail_in > 0 || in_left > 0) &&
          (zs.avail_out > 0 || out_left > 0))
        rc = Z_OK;  // no progress possible only if both sides are exhausted
    }
    uint64_t produced = zs.total_out;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || produced != e.size)
      error(fmt::format("entry '{}': corrupt deflate data ({})", name,
                        rc == Z_STREAM_END ? "wrong size" : "zlib error"));
    out = {scratch.data(), scratch.size()};
  } else {
    error(fmt::format("entry '{}' uses unsupported compression method {}", name, e.method));
  }
  if (crc32_of(out.data(), out.size()) != e.crc32)
    error(fmt::format("entry '{}': CRC mismatch (corrupt archive)", name));
  return out;
}

}  // namespace qvit::io
