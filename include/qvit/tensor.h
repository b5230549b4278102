// A small dense tensor: shape, dtype and a 64-byte aligned buffer. Copies share the buffer
// (like PyTorch); clone() makes a deep copy. Row-major (C-contiguous) always.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qvit {

enum class DType : uint8_t { f32, i8, u8, i32, i64 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[1000,192]"
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // Zero-initialised tensor of the given shape.
  explicit Tensor(Shape shape, DType dtype = DType::f32);

  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + ndim() : i]; }
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  bool empty() const { return numel_ == 0; }

  void* raw() { return data_.get(); }
  const void* raw() const { return data_.get(); }
  // Typed access; throws if the dtype does not match T.
  template <typename T>
  T* data();
  template <typename T>
  const T* data() const;
  float* f32() { return data<float>(); }
  const float* f32() const { return data<float>(); }

  // Same buffer, new shape (numel must match).
  Tensor reshaped(Shape shape) const;
  Tensor clone() const;

 private:
  void check_dtype(DType want) const;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::f32;
  std::shared_ptr<std::byte[]> data_;
};

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct DTypeOf<int8_t> {
  static constexpr DType value = DType::i8;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::u8;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::i32;
};

template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::i64;
};

template <typename T>
T* Tensor::data() {
  check_dtype(DTypeOf<T>::value);
  return reinterpret_cast<T*>(data_.get());
}
template <typename T>
const T* Tensor::data() const {
  check_dtype(DTypeOf<T>::value);
  return reinterpret_cast<const T*>(data_.get());
}

}  // namespace qvit
