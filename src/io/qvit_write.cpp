// .qvit writing (QvitWriter), the int4 packing and the format helpers shared with the reader.
// Layout: fixed 64-byte header, section table, name area, zero padding, then every section at a
// 64-byte aligned offset in the order added (metadata first), zero padding between sections.
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <functional>

#include "io/file_util.h"
#include "io/qvit_format.h"
#include "qvit/error.h"
#include "qvit/qvit_file.h"

namespace qvit {

static_assert(std::endian::native == std::endian::little, "the .qvit code assumes little-endian");

namespace qvitfmt {

uint8_t dtype_code(DType t) {
  switch (t) {
    case DType::f32: return 1;
    case DType::i8: return 2;
    case DType::u8: return 3;
    case DType::i32: return 4;
    case DType::i64: return 5;
  }
  return 0;
}

std::optional<DType> dtype_from_code(uint8_t code) {
  switch (code) {
    case 1: return DType::f32;
    case 2: return DType::i8;
    case 3: return DType::u8;
    case 4: return DType::i32;
    case 5: return DType::i64;
    default: return std::nullopt;
  }
}

uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const Bytef*>(data);
  uLong c = crc;
  while (n > 0) {  // zlib takes a uInt length
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    c = ::crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(c);
}

}  // namespace qvitfmt

void pack_int4(const int8_t* values, int64_t n, uint8_t* packed) {
  bool in_range = true;  // checked without an early exit so that the loop vectorizes
  for (int64_t i = 0; i < n; ++i) in_range &= values[i] >= -8 && values[i] <= 7;
  if (!in_range) {
    for (int64_t i = 0; i < n; ++i)
      if (values[i] < -8 || values[i] > 7)
        fail("qvit", "pack_int4: value {} at index {} is outside [-8, 7]", values[i], i);
  }
  for (int64_t i = 0; i < n / 2; ++i) {
    packed[i] = static_cast<uint8_t>((values[2 * i] & 0x0f) | ((values[2 * i + 1] & 0x0f) << 4));
  }
  if (n % 2) packed[n / 2] = static_cast<uint8_t>(values[n - 1] & 0x0f);
}

void unpack_int4(const uint8_t* packed, int64_t n, int8_t* values) {
  // Sign-extend a nibble: (x ^ 8) - 8 maps 0..7 -> 0..7 and 8..15 -> -8..-1.
  for (int64_t i = 0; i < n / 2; ++i) {
    values[2 * i] = static_cast<int8_t>(((packed[i] & 0x0f) ^ 8) - 8);
    values[2 * i + 1] = static_cast<int8_t>((packed[i] >> 4 ^ 8) - 8);
  }
  if (n % 2) values[n - 1] = static_cast<int8_t>(((packed[n / 2] & 0x0f) ^ 8) - 8);
}

namespace {

using nlohmann::json;
using namespace qvitfmt;

// The stored bytes of one section.
struct Payload {
  std::string name;
  uint8_t kind, dtype, bits;
  Shape shape;
  const uint8_t* data;
  uint64_t size;
  std::vector<uint8_t> owned;  // packed int4 or the metadata text
};

}  // namespace

void QvitWriter::emit(const std::string& path, const Sink& sink) const {
  const json& meta = meta_;
  std::vector<Payload> sections;
  sections.reserve(items_.size() + 1);
  {
    Payload m{"__metadata__", kKindMetadata, 0, 0, {}, nullptr, 0, {}};
    std::string text;
    try {
      text = meta.dump();
    } catch (const json::exception& e) {
      fail("qvit", "{}: cannot encode the metadata as JSON: {}", path, io::printable(e.what(), 200));
    }
    m.owned.assign(text.begin(), text.end());
    m.data = m.owned.data();
    m.size = m.owned.size();
    sections.push_back(std::move(m));
  }
  for (const auto& [name, t, bits] : items_) {
    Payload p{name, kKindTensor, dtype_code(t.dtype()), 0, t.shape(), nullptr, 0, {}};
    if (bits == 4) {
      p.bits = 4;
      p.owned.resize(static_cast<size_t>((t.numel() + 1) / 2));
      try {
        pack_int4(t.data<int8_t>(), t.numel(), p.owned.data());
      } catch (const Error& e) {
        fail("qvit", "{}: tensor '{}': {}", path, io::printable(name), e.what());
      }
      p.data = p.owned.data();
      p.size = p.owned.size();
    } else {
      p.bits = static_cast<uint8_t>(8 * dtype_size(t.dtype()));
      p.data = static_cast<const uint8_t*>(t.raw());
      p.size = t.nbytes();
    }
    sections.push_back(std::move(p));
  }

  // Name area, then offsets.
  std::string names;
  for (const Payload& p : sections) names += p.name;
  if (sections.size() > kMaxSections || names.size() > UINT32_MAX)
    fail("qvit", "{}: too many sections ({})", path, sections.size());
  const uint64_t table_end = kHeaderBytes + kEntryBytes * sections.size() + names.size();
  uint64_t offset = align_up(table_end);
  std::vector<uint8_t> head(offset, 0);
  uint32_t name_off = 0;
  uint64_t file_size = offset;  // the file ends right after the last section (no trailing padding)
  for (size_t i = 0; i < sections.size(); ++i) {
    const Payload& p = sections[i];
    uint8_t* e = head.data() + kHeaderBytes + kEntryBytes * i;
    store_le<uint32_t>(e + kEntNameOff, name_off);
    store_le<uint32_t>(e + kEntNameLen, static_cast<uint32_t>(p.name.size()));
    e[kEntKind] = p.kind;
    e[kEntDtype] = p.dtype;
    e[kEntBits] = p.bits;
    e[kEntNdim] = static_cast<uint8_t>(p.shape.size());
    store_le<uint32_t>(e + kEntCrc, crc32_update(0, p.data, p.size));
    store_le<uint64_t>(e + kEntOffset, offset);
    store_le<uint64_t>(e + kEntSize, p.size);
    for (size_t d = 0; d < p.shape.size(); ++d) store_le<int64_t>(e + kEntDims + 8 * d, p.shape[d]);
    name_off += static_cast<uint32_t>(p.name.size());
    file_size = offset + p.size;
    offset = align_up(file_size);
  }
  std::memcpy(head.data(), kMagic, 4);
  store_le<uint32_t>(head.data() + kOffVersion, kQvitFormatVersion);
  store_le<uint64_t>(head.data() + kOffFileSize, file_size);
  store_le<uint32_t>(head.data() + kOffCount, static_cast<uint32_t>(sections.size()));
  store_le<uint32_t>(head.data() + kOffNamesSize, static_cast<uint32_t>(names.size()));
  std::memcpy(head.data() + kHeaderBytes + kEntryBytes * sections.size(), names.data(),
              names.size());
  uint32_t crc = crc32_update(0, head.data(), kCrcOffset);
  crc = crc32_update(crc, head.data() + kHeaderBytes, table_end - kHeaderBytes);
  store_le<uint32_t>(head.data() + kCrcOffset, crc);

  sink(head.data(), head.size());
  static const uint8_t kZeros[kAlign] = {};
  uint64_t written = head.size();
  for (size_t i = 0; i < sections.size(); ++i) {
    const Payload& p = sections[i];
    sink(p.data, p.size);
    written += p.size;
    if (i + 1 < sections.size()) {
      const uint64_t pad = align_up(written) - written;
      sink(kZeros, pad);
      written += pad;
    }
  }
  if (written != file_size)
    fail("qvit", "{}: internal error: wrote {} of {} bytes", path, written, file_size);
}

void QvitWriter::set_meta(json meta) {
  if (!meta.is_object()) fail("qvit", "metadata must be a JSON object, got {}", meta.type_name());
  meta_ = std::move(meta);
}

void QvitWriter::add(const std::string& name, const Tensor& t, int bits) {
  const std::string shown = io::printable(name);
  if (name.empty() || name.size() > kMaxNameBytes)
    fail("qvit", "tensor name '{}' must have 1 to {} bytes", shown, kMaxNameBytes);
  if (name == "__metadata__") fail("qvit", "'__metadata__' cannot be used as a tensor name");
  if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
    fail("qvit", "tensor name '{}' contains control characters", shown);
  if (index_.count(name)) fail("qvit", "duplicate tensor name '{}'", shown);
  if (t.ndim() > kMaxDims)
    fail("qvit", "tensor '{}' has {} dimensions (limit {})", shown, t.ndim(), kMaxDims);
  if (t.numel() != shape_numel(t.shape()) || (t.numel() > 0 && !t.raw()))
    fail("qvit", "tensor '{}' is uninitialised", shown);
  const int natural = static_cast<int>(8 * dtype_size(t.dtype()));
  if (bits == natural) bits = 0;
  if (bits != 0 && !(bits == 4 && t.dtype() == DType::i8))
    fail("qvit", "tensor '{}': bits {} with dtype {} (0 or {} stores it as is, 4 packs I8)", shown,
         bits, dtype_name(t.dtype()), natural);
  index_.emplace(name, items_.size());
  items_.push_back({name, t, bits});
}

bool QvitWriter::has(const std::string& name) const {
  return index_.count(name) != 0;
}

std::vector<uint8_t> QvitWriter::to_bytes() const {
  std::vector<uint8_t> out;
  emit("<memory>", [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

void QvitWriter::save(const std::string& path) const {
  io::AtomicFile file(path);
  emit(path, [&](const void* p, size_t n) { file.write(p, n); });
  file.commit();
}

}  // namespace qvit
