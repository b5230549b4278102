// Private helpers of the io module: read-only file mapping, atomic file writing and the decoding
// of raw little-endian elements (f16/bf16/f64 -> f32, integers kept) shared by both loaders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qvit/io.h"
#include "qvit/tensor.h"

namespace qvit::io {

// A whole file in memory: mmap for regular files (no copy, pages loaded on demand), a plain read
// for anything else. Throws "[io] PATH: cannot open: <strerror>" when the file cannot be read.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;          // mmap'ed region, or nullptr
  std::vector<uint8_t> buffer_;  // fallback when mmap is not possible
};

// Writes a file under a unique temporary name in the destination folder; commit() flushes it to
// disk and renames it over `path`. Destroying an uncommitted AtomicFile removes the temporary.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* bytes, size_t n);
  void commit();

 private:
  void discard() noexcept;
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
};

// The loaders behind load_safetensors / load_pth, on a file already read.
WeightFile parse_safetensors(const MappedFile& file);
WeightFile parse_pth(const MappedFile& file);

// Element types found in weight files, before conversion to a Tensor dtype.
enum class RawType : uint8_t { f32, f16, bf16, f64, i64, i32, i8, u8 };

size_t raw_size(RawType t);
const char* raw_name(RawType t);  // safetensors spelling: "F32", "BF16", ...
DType raw_to_dtype(RawType t);    // floating types -> f32, integers keep their type

// Decodes `n` contiguous little-endian elements at `src` (any alignment) into `dst`, which holds
// n elements of raw_to_dtype(t).
void decode_elements(const uint8_t* src, RawType t, size_t n, void* dst);

// `text` made safe for a one-line error message: control and non-ASCII bytes escaped as \xNN,
// cut to `max_len` characters with "..." appended.
std::string printable(std::string_view text, size_t max_len = 120);

float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);

}  // namespace qvit::io
