// .qvit reading: validates the whole layout before exposing any section. Order of checks: size of
// the fixed header, magic, version (a newer file is refused before its layout is interpreted),
// file size, table bounds, header CRC, every entry (name, kind, dtype, bits, shape, size, offset,
// alignment), duplicates, overlaps, zero padding, section CRCs, metadata JSON. Every read is
// bounds-checked first, so arbitrary bytes give an Error, never a crash.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "io/file_util.h"
#include "io/qvit_format.h"
#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/qvit_file.h"

namespace qvit {

using nlohmann::json;
using namespace qvitfmt;

struct QvitFile::State {
  std::shared_ptr<const void> owner;  // keeps the bytes alive
  std::string path;
  uint32_t version = 0;
  uint64_t size = 0;
  json meta;
  std::vector<QvitSection> sections;           // table order
  std::unordered_map<std::string, size_t> by_name;  // tensor sections only
};

namespace {

std::string hex32(uint32_t v) {
  return fmt::format("0x{:08x}", v);
}

// Parses the metadata text; refuses deep nesting (the parser is iterative but a deep value would
// be costly to walk) and anything but an object.
json parse_meta(const std::string& path, const std::string& name, const uint8_t* p, size_t n) {
  json meta;
  try {
    meta = json::parse(p, p + n, [](int depth, json::parse_event_t, json&) {
      if (depth > static_cast<int>(kMaxMetaDepth))
        throw std::length_error("nesting deeper than " + std::to_string(kMaxMetaDepth));
      return true;
    });
  } catch (const json::exception& e) {
    fail("qvit", "{}: metadata section '{}' is not valid JSON: {}", path, name,
         io::printable(e.what(), 200));
  } catch (const std::length_error& e) {
    fail("qvit", "{}: metadata section '{}' is not valid JSON: {}", path, name, e.what());
  }
  if (!meta.is_object())
    fail("qvit", "{}: metadata section '{}' is not a JSON object", path, name);
  return meta;
}

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

}  // namespace

QvitFile parse_qvit_view(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                         const std::string& path, const QvitReadOptions& options) {
  // Sections are 64-byte aligned in the file; keep them aligned in memory (an mmap is, a buffer
  // from a vector or a pipe may not be) so that every section's data is.
  if (reinterpret_cast<uintptr_t>(data) % kAlign != 0) {
    void* p = std::aligned_alloc(kAlign, align_up(std::max<size_t>(size, 1)));
    if (!p) fail("qvit", "{}: out of memory copying {} bytes", path, size);
    std::shared_ptr<uint8_t> copy(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
    if (size) std::memcpy(copy.get(), data, size);
    data = copy.get();
    owner = std::move(copy);
  }
  if (size < kHeaderBytes)
    fail("qvit", "{}: truncated: {} bytes, shorter than the {}-byte header", path, size,
         kHeaderBytes);
  if (std::memcmp(data, kMagic, 4) != 0)
    fail("qvit", "{}: not a qvit file (bad magic '{}')", path,
         io::printable(std::string_view(reinterpret_cast<const char*>(data), 4)));
  const uint32_t version = load_le<uint32_t>(data + kOffVersion);
  if (version > kQvitFormatVersion)
    fail("qvit", "{}: format version {} is newer than this qvit supports ({})", path, version,
         kQvitFormatVersion);
  if (version == 0) fail("qvit", "{}: invalid format version 0", path);
  const uint64_t file_size = load_le<uint64_t>(data + kOffFileSize);
  if (file_size > size)
    fail("qvit", "{}: truncated: the header says {} bytes, the file has {}", path, file_size, size);
  if (file_size < size)
    fail("qvit", "{}: {} bytes, but the header says {} (trailing data)", path, size, file_size);
  const uint32_t count = load_le<uint32_t>(data + kOffCount);
  const uint32_t names_size = load_le<uint32_t>(data + kOffNamesSize);
  if (count == 0 || count > kMaxSections)
    fail("qvit", "{}: section count {} out of range [1, {}]", path, count, kMaxSections);
  const uint64_t table_end = kHeaderBytes + uint64_t{kEntryBytes} * count + names_size;
  if (table_end > size)
    fail("qvit", "{}: a section table of {} entries and {} name bytes does not fit in {} bytes",
         path, count, names_size, size);
  if (options.verify_checksums) {
    uint32_t crc = crc32_update(0, data, kCrcOffset);
    crc = crc32_update(crc, data + kHeaderBytes, table_end - kHeaderBytes);
    const uint32_t stored = load_le<uint32_t>(data + kCrcOffset);
    if (crc != stored)
      fail("qvit", "{}: checksum mismatch in the header and section table (stored {}, computed {})",
           path, hex32(stored), hex32(crc));
  }
  if (!all_zero(data + kOffFlags, kCrcOffset - kOffFlags))
    fail("qvit", "{}: reserved header bytes are not zero", path);

  auto st = std::make_shared<QvitFile::State>();
  st->owner = std::move(owner);
  st->path = path;
  st->version = version;
  st->size = size;
  st->sections.reserve(count);
  const uint8_t* names = data + kHeaderBytes + uint64_t{kEntryBytes} * count;
  const uint64_t data_start = align_up(table_end);
  int meta_index = -1;
  std::unordered_map<std::string_view, size_t> seen;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = data + kHeaderBytes + uint64_t{kEntryBytes} * i;
    QvitSection s;
    const uint32_t name_off = load_le<uint32_t>(e + kEntNameOff);
    const uint32_t name_len = load_le<uint32_t>(e + kEntNameLen);
    if (name_len == 0 || name_len > kMaxNameBytes || uint64_t{name_off} + name_len > names_size)
      fail("qvit", "{}: section {}: name [{}, +{}) outside the name area of {} bytes", path, i,
           name_off, name_len, names_size);
    s.name.assign(reinterpret_cast<const char*>(names + name_off), name_len);
    const std::string shown = io::printable(s.name);
    if (std::any_of(s.name.begin(), s.name.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
      fail("qvit", "{}: section {}: name '{}' contains control characters", path, i, shown);
    if (!seen.emplace(std::string_view(reinterpret_cast<const char*>(names + name_off), name_len), i)
             .second)
      fail("qvit", "{}: duplicate section name '{}'", path, shown);

    const uint8_t kind = e[kEntKind];
    const int ndim = e[kEntNdim];
    s.bits = e[kEntBits];
    s.crc32 = load_le<uint32_t>(e + kEntCrc);
    s.offset = load_le<uint64_t>(e + kEntOffset);
    s.nbytes = load_le<uint64_t>(e + kEntSize);
    if (ndim > kMaxDims)
      fail("qvit", "{}: section '{}': {} dimensions (limit {})", path, shown, ndim, kMaxDims);
    if (!all_zero(e + kEntDims + 8 * ndim, 8 * (kMaxDims - ndim)))
      fail("qvit", "{}: section '{}': unused dimension slots are not zero", path, shown);
    if (kind == kKindMetadata) {
      if (meta_index >= 0)
        fail("qvit", "{}: two metadata sections ('{}' and '{}')", path,
             io::printable(st->sections[meta_index].name), shown);
      if (e[kEntDtype] != 0 || s.bits != 0 || ndim != 0)
        fail("qvit", "{}: metadata section '{}' has a dtype, bits or shape", path, shown);
      s.is_metadata = true;
      meta_index = static_cast<int>(i);
    } else if (kind == kKindTensor) {
      auto dt = dtype_from_code(e[kEntDtype]);
      if (!dt) fail("qvit", "{}: section '{}': unknown dtype code {}", path, shown, e[kEntDtype]);
      s.dtype = *dt;
      uint64_t numel = 1;
      bool overflow = false;
      for (int d = 0; d < ndim; ++d) {
        const int64_t dim = load_le<int64_t>(e + kEntDims + 8 * d);
        if (dim < 0) fail("qvit", "{}: section '{}': negative dimension {}", path, shown, dim);
        s.shape.push_back(dim);
        overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel);
      }
      const int natural = static_cast<int>(8 * dtype_size(s.dtype));
      uint64_t need = 0;
      if (s.bits == natural) {
        overflow = overflow || __builtin_mul_overflow(numel, dtype_size(s.dtype), &need);
      } else if (s.bits == 4 && s.dtype == DType::i8) {
        need = numel / 2 + numel % 2;
      } else {
        fail("qvit", "{}: section '{}': {} bits with dtype {} (expected {}, or 4 for I8)", path,
             shown, s.bits, dtype_name(s.dtype), natural);
      }
      if (overflow || need != s.nbytes)
        fail("qvit", "{}: section '{}': {} bytes, but shape {} of {} ({} bits) needs {}", path,
             shown, s.nbytes, shape_str(s.shape), dtype_name(s.dtype), s.bits,
             overflow ? std::string("more than 2^64") : std::to_string(need));
    } else {
      fail("qvit", "{}: section '{}': unknown kind {}", path, shown, kind);
    }
    if (s.offset % kAlign != 0)
      fail("qvit", "{}: section '{}': offset {} is not a multiple of {}", path, shown, s.offset,
           kAlign);
    if (s.offset < data_start || s.offset > size || s.nbytes > size - s.offset)
      fail("qvit", "{}: section '{}': bytes [{}, +{}) outside the data area [{}, {})", path, shown,
           s.offset, s.nbytes, data_start, size);
    s.data = data + s.offset;
    st->sections.push_back(std::move(s));
  }
  if (meta_index < 0) fail("qvit", "{}: no metadata section", path);

  // No overlaps; every byte outside the sections (padding) must be zero, so that together with
  // the checksums any change to the file is detected.
  std::vector<const QvitSection*> by_offset;
  for (const QvitSection& s : st->sections) by_offset.push_back(&s);
  std::sort(by_offset.begin(), by_offset.end(), [](const QvitSection* a, const QvitSection* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  uint64_t pos = table_end;
  const QvitSection* prev = nullptr;
  for (const QvitSection* s : by_offset) {
    if (s->nbytes == 0) continue;
    if (s->offset < pos) {
      fail("qvit", "{}: sections '{}' and '{}' overlap", path,
           prev ? io::printable(prev->name) : std::string("(header)"), io::printable(s->name));
    }
    if (!all_zero(data + pos, s->offset - pos))
      fail("qvit", "{}: padding before section '{}' is not zero", path, io::printable(s->name));
    pos = s->offset + s->nbytes;
    prev = s;
  }
  if (!all_zero(data + pos, size - pos))
    fail("qvit", "{}: padding at the end of the file is not zero", path);

  if (options.verify_checksums) {
    // Sections in parallel (CRC32 runs at ~1.4 GB/s on one core here); the first mismatch in
    // table order is reported.
    std::vector<uint32_t> crcs(st->sections.size());
    parallel_for(static_cast<int64_t>(crcs.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        crcs[i] = crc32_update(0, st->sections[i].data, st->sections[i].nbytes);
    });
    for (size_t i = 0; i < crcs.size(); ++i) {
      const QvitSection& s = st->sections[i];
      const uint32_t crc = crcs[i];
      if (crc != s.crc32)
        fail("qvit", "{}: checksum mismatch in section '{}' (stored {}, computed {})", path,
             io::printable(s.name), hex32(s.crc32), hex32(crc));
    }
  }
  for (size_t i = 0; i < st->sections.size(); ++i) {
    const QvitSection& s = st->sections[i];
    if (s.is_metadata) continue;
    if (s.bits == 4 && shape_numel(s.shape) % 2 == 1 &&
        (static_cast<const uint8_t*>(s.data)[s.nbytes - 1] & 0xf0))
      fail("qvit", "{}: section '{}': the unused high nibble of the last byte is not zero", path,
           io::printable(s.name));
    st->by_name.emplace(s.name, i);
  }
  const QvitSection& m = st->sections[meta_index];
  st->meta = parse_meta(path, io::printable(m.name), static_cast<const uint8_t*>(m.data), m.nbytes);
  return QvitFile(std::move(st));
}

QvitFile parse_qvit(std::shared_ptr<const std::vector<uint8_t>> bytes, const std::string& label,
                    const QvitReadOptions& options) {
  if (!bytes) fail("qvit", "{}: no data", label);
  const uint8_t* data = bytes->data();
  const size_t size = bytes->size();
  return parse_qvit_view(std::move(bytes), data, size, label, options);
}

QvitFile QvitFile::open(const std::string& path, const QvitReadOptions& options) {
  auto file = std::make_shared<const io::MappedFile>(path);
  const uint8_t* data = file->data();
  const size_t size = file->size();
  return parse_qvit_view(std::move(file), data, size, path, options);
}

const std::string& QvitFile::path() const { return s_->path; }
uint32_t QvitFile::version() const { return s_->version; }
uint64_t QvitFile::file_size() const { return s_->size; }
const json& QvitFile::meta() const { return s_->meta; }
const std::vector<QvitSection>& QvitFile::sections() const { return s_->sections; }

std::vector<std::string> QvitFile::names() const {
  std::vector<std::string> out;
  for (const QvitSection& s : s_->sections)
    if (!s.is_metadata) out.push_back(s.name);
  return out;
}

bool QvitFile::has(const std::string& name) const {
  return s_->by_name.count(name) != 0;
}

const QvitSection& QvitFile::section(const std::string& name) const {
  auto it = s_->by_name.find(name);
  if (it == s_->by_name.end())
    fail("qvit", "{}: no tensor '{}'", s_->path, io::printable(name));
  return s_->sections[it->second];
}

Tensor QvitFile::tensor(const std::string& name) const {
  const QvitSection& s = section(name);
  Tensor t(s.shape, s.dtype);
  if (s.bits == 4) {
    unpack_int4(static_cast<const uint8_t*>(s.data), t.numel(), t.data<int8_t>());
  } else if (s.nbytes > 0) {
    std::memcpy(t.raw(), s.data, s.nbytes);
  }
  return t;
}

}  // namespace qvit
