#include "qvit/tensor.h"

#include <cstdlib>
#include <cstring>

#include "qvit/error.h"

namespace qvit {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::i8: return 1;
    case DType::u8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) fail("tensor", "negative dimension in shape {}", shape_str(s));
    n *= d;
  }
  return n;
}

namespace {
struct AlignedFree {
  void operator()(std::byte* p) const { std::free(p); }
};
}  // namespace

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  numel_ = shape_numel(shape_);
  size_t bytes = nbytes();
  size_t padded = (bytes + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  auto* p = static_cast<std::byte*>(std::aligned_alloc(64, padded));
  if (!p) fail("tensor", "out of memory allocating {} bytes for shape {}", bytes, shape_str(shape_));
  std::memset(p, 0, padded);
  data_ = std::shared_ptr<std::byte[]>(p, AlignedFree{});
}

void Tensor::check_dtype(DType want) const {
  if (want != dtype_)
    fail("tensor", "dtype mismatch: tensor is {}, accessed as {}", dtype_name(dtype_),
         dtype_name(want));
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel_)
    fail("tensor", "cannot reshape {} to {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_, dtype_);
  if (numel_) std::memcpy(t.data_.get(), data_.get(), nbytes());
  return t;
}

}  // namespace qvit
