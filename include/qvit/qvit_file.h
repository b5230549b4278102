// The .qvit container: one versioned, self-contained file for a converted (quantized) model. It
// holds a JSON metadata section (model config, quantization config, per-tensor scales and zero
// points: whatever the converter puts there) and named binary tensor sections (f32, i8, u8, i32,
// i64, or i8 values in [-8, 7] packed two per byte), each with a CRC32 and 64-byte aligned so a
// loader can use them in place from the memory-mapped file. Byte layout: docs/qvit-format.md.
// Every byte of a valid file is covered by a checksum or must be zero padding, so any change to a
// file is detected on open (with checksum verification, the default). Errors are qvit::Error
// "[qvit] FILE: ..." naming the section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "qvit/tensor.h"

namespace qvit {

inline constexpr uint32_t kQvitFormatVersion = 1;  // the newest version this code reads/writes

// One section of a file, as listed in its section table.
struct QvitSection {
  std::string name;
  bool is_metadata = false;  // the JSON metadata section (dtype/shape/bits unused)
  DType dtype = DType::u8;
  Shape shape;
  int bits = 8;              // 8 * dtype_size, or 4 for packed int4 (dtype i8)
  uint64_t offset = 0;       // from the start of the file, a multiple of 64
  uint64_t nbytes = 0;       // stored bytes (packed for int4: (numel + 1) / 2)
  uint32_t crc32 = 0;        // CRC-32 (zlib/ISO-HDLC) of the stored bytes
  const void* data = nullptr;  // the stored bytes, 64-byte aligned in memory, valid while the
                               // QvitFile (or a copy) lives
};
using QvitTensor = QvitSection;

struct QvitReadOptions {
  // Verify the header and every section's CRC32 on open (the default). Structural checks (bounds,
  // overlaps, sizes, names, JSON) always run; skipping CRCs only saves reading every page.
  bool verify_checksums = true;
};

class QvitFile {
 public:
  // Memory-maps `path` read-only and validates it (see QvitReadOptions).
  static QvitFile open(const std::string& path, const QvitReadOptions& options = {});

  const std::string& path() const;  // the file name (or label) used in messages
  uint32_t version() const;
  uint64_t file_size() const;
  const nlohmann::json& meta() const;  // always a JSON object

  // Tensor sections in file order (the metadata section is not included).
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  // Table entry and in-place bytes; throws "[qvit] FILE: no tensor 'name'" when absent. The
  // reference and `data` are valid while this QvitFile (or a copy of it) lives.
  const QvitSection& section(const std::string& name) const;
  // A copy as a Tensor; packed int4 is unpacked to int8 with the logical shape.
  Tensor tensor(const std::string& name) const;
  // Every section in table order, including the metadata section (for `qvit inspect`).
  const std::vector<QvitSection>& sections() const;

 private:
  struct State;
  explicit QvitFile(std::shared_ptr<const State> s) : s_(std::move(s)) {}
  friend QvitFile parse_qvit_view(std::shared_ptr<const void>, const uint8_t*, size_t,
                                  const std::string&, const QvitReadOptions&);
  std::shared_ptr<const State> s_;
};

// The same validation on bytes in memory (for fuzzing and tests); `label` names them in messages.
QvitFile parse_qvit(std::shared_ptr<const std::vector<uint8_t>> bytes, const std::string& label,
                    const QvitReadOptions& options = {});
// Lower level: `data`/`size` stay valid while `owner` lives (bytes that are not 64-byte aligned
// are copied once, so that sections are).
QvitFile parse_qvit_view(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                         const std::string& label, const QvitReadOptions& options = {});

// Collects a metadata object and tensors, then writes them. The bytes depend only on the calls
// made (sections in the order added, JSON with sorted keys), so the same input gives the same file.
class QvitWriter {
 public:
  void set_meta(nlohmann::json meta);  // must be an object
  // bits 0 (or 8 x element size): stored as is (f32, i8, u8, i32, i64). bits 4: `t` must be i8
  // with values in [-8, 7], stored packed two per byte. Throws for an empty or duplicate name or a bad bits/dtype pair.
  // The tensor's buffer is shared, not copied: do not modify it before save().
  void add(const std::string& name, const Tensor& t, int bits = 0);
  bool has(const std::string& name) const;
  // Atomic: a temporary in the same folder, fsync, rename. On failure `path` is untouched.
  void save(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;  // the exact bytes save() writes

 private:
  struct Item {
    std::string name;
    Tensor tensor;
    int bits;
  };
  using Sink = std::function<void(const void*, size_t)>;
  void emit(const std::string& path, const Sink& sink) const;
  nlohmann::json meta_ = nlohmann::json::object();
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;
};

// int4 packing (normative, see docs/qvit-format.md): value i goes to byte i / 2, low nibble for
// even i, high nibble for odd i, as 4-bit two's complement; an odd count leaves the last high
// nibble zero. pack_int4 throws when a value is outside [-8, 7].
void pack_int4(const int8_t* values, int64_t n, uint8_t* packed);  // packed: (n + 1) / 2 bytes
void unpack_int4(const uint8_t* packed, int64_t n, int8_t* values);

}  // namespace qvit
