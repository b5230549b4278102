// File access for the io module: whole-file reads (mmap when possible) with clear errors, atomic
// writes (temporary file + rename, never partial output) and raw element decoding.
#include "io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <system_error>

#include "qvit/error.h"
#include "qvit/io.h"

namespace qvit::io {

static_assert(std::endian::native == std::endian::little,
              "the weight readers assume little-endian");

namespace {

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

// Closes a descriptor on scope exit.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("io", "{}: cannot open: {}", path, errno_text(errno));
  FdGuard guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("io", "{}: cannot open: {}", path, errno_text(errno));
  if (S_ISDIR(st.st_mode)) fail("io", "{}: cannot open: {}", path, errno_text(EISDIR));

  if (S_ISREG(st.st_mode)) {
    size_ = static_cast<size_t>(st.st_size);
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      map_ = p;
      data_ = static_cast<const uint8_t*>(p);
      ::madvise(p, size_, MADV_WILLNEED);  // the loaders read (almost) everything
      return;
    }
  }
  // Pipes, character devices or a failed mmap: read everything.
  size_ = 0;
  buffer_.resize(S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) : 1 << 16);
  for (;;) {
    if (size_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
    ssize_t n = ::read(fd, buffer_.data() + size_, buffer_.size() - size_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("io", "{}: read failed: {}", path, errno_text(errno));
    if (n == 0) break;
    size_ += static_cast<size_t>(n);
  }
  data_ = buffer_.data();
}

MappedFile::~MappedFile() {
  if (map_) ::munmap(map_, size_);
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    temp_path_ = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) return;
    if (errno != EEXIST) break;
  }
  int err = errno;
  std::string temp = temp_path_;
  temp_path_.clear();
  fail("io", "{}: cannot create temporary file '{}': {}", path, temp, errno_text(err));
}

AtomicFile::~AtomicFile() {
  discard();
}

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

void AtomicFile::write(const void* bytes, size_t n) {
  if (fd_ < 0) fail("io", "{}: write after the file was closed", path_);
  const auto* p = static_cast<const uint8_t*>(bytes);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? errno : EIO;
      discard();
      fail("io", "{}: write failed: {}", path_, errno_text(err));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) fail("io", "{}: commit after the file was closed", path_);
  // fsync before rename so that a crash cannot leave a renamed but empty file.
  if (::fsync(fd_) != 0) {
    int err = errno;
    discard();
    fail("io", "{}: fsync failed: {}", path_, errno_text(err));
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int err = errno;
    discard();
    fail("io", "{}: close failed: {}", path_, errno_text(err));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    discard();
    fail("io", "{}: cannot rename temporary file into place: {}", path_, errno_text(err));
  }
  temp_path_.clear();
}

size_t raw_size(RawType t) {
  switch (t) {
    case RawType::f64:
    case RawType::i64:
      return 8;
    case RawType::f32:
    case RawType::i32:
      return 4;
    case RawType::f16:
    case RawType::bf16:
      return 2;
    case RawType::i8:
    case RawType::u8:
      return 1;
  }
  return 1;
}

const char* raw_name(RawType t) {
  switch (t) {
    case RawType::f32:
      return "F32";
    case RawType::f16:
      return "F16";
    case RawType::bf16:
      return "BF16";
    case RawType::f64:
      return "F64";
    case RawType::i64:
      return "I64";
    case RawType::i32:
      return "I32";
    case RawType::i8:
      return "I8";
    case RawType::u8:
      return "U8";
  }
  return "?";
}

DType raw_to_dtype(RawType t) {
  switch (t) {
    case RawType::i64:
      return DType::i64;
    case RawType::i32:
      return DType::i32;
    case RawType::i8:
      return DType::i8;
    case RawType::u8:
      return DType::u8;
    default:
      return DType::f32;
  }
}

std::string printable(std::string_view text, size_t max_len) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  uint32_t bits =
      exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

namespace {

// Round-to-nearest double -> float without relying on out-of-range casts (undefined in C++).
float f64_to_f32(double d) {
  if (std::isfinite(d) && std::fabs(d) > static_cast<double>(FLT_MAX)) {
    // Halfway between FLT_MAX and 2^128 rounds to infinity (FLT_MAX's mantissa is odd).
    const double halfway = static_cast<double>(FLT_MAX) + std::ldexp(1.0, 103);
    float big = std::fabs(d) >= halfway ? INFINITY : FLT_MAX;
    return d < 0 ? -big : big;
  }
  return static_cast<float>(d);
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

void decode_elements(const uint8_t* src, RawType t, size_t n, void* dst) {
  if (n == 0) return;
  auto* out = static_cast<float*>(dst);
  switch (t) {
    case RawType::f16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_le<uint16_t>(src + 2 * i));
      return;
    case RawType::bf16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_le<uint16_t>(src + 2 * i));
      return;
    case RawType::f64:
      for (size_t i = 0; i < n; ++i) out[i] = f64_to_f32(load_le<double>(src + 8 * i));
      return;
    default:  // same layout in and out
      std::memcpy(dst, src, n * raw_size(t));
      return;
  }
}

}  // namespace qvit::io

namespace qvit {

void write_file_atomic(const std::string& path, const std::string& bytes) {
  io::AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

}  // namespace qvit
