// NdArray: a dense, immutable-after-construction, C-order array shared between stages.
//
// Stages pass volumes as std::shared_ptr<const NdArray>, so a field a stage does not touch is
// shared, never copied. The storage is plain host memory; device tensors live inside the plugins
// that make them (LibTorch stays out of this header on purpose).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace spineparse {

enum class DType { kUInt8, kInt16, kInt32, kInt64, kFloat32, kFloat64 };

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<std::uint8_t>() {
  return DType::kUInt8;
}
template <>
constexpr DType dtype_of<std::int16_t>() {
  return DType::kInt16;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::kInt32;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::kInt64;
}
template <>
constexpr DType dtype_of<float>() {
  return DType::kFloat32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::kFloat64;
}

class NdArray {
 public:
  NdArray(DType dtype, std::vector<std::int64_t> shape);

  template <typename T>
  static std::shared_ptr<NdArray> make(std::vector<std::int64_t> shape) {
    return std::make_shared<NdArray>(dtype_of<T>(), std::move(shape));
  }

  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t dim(std::size_t i) const { return shape_.at(i); }
  std::size_t ndim() const { return shape_.size(); }
  std::int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return bytes_.size(); }

  void* raw() { return bytes_.data(); }
  const void* raw() const { return bytes_.data(); }

  // Typed access; throws std::logic_error when T does not match dtype().
  template <typename T>
  T* data() {
    check_type(dtype_of<T>());
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <typename T>
  const T* data() const {
    check_type(dtype_of<T>());
    return reinterpret_cast<const T*>(bytes_.data());
  }

  std::string shape_string() const;  // e.g. "12x440x880 float32"

 private:
  void check_type(DType wanted) const;

  DType dtype_;
  std::vector<std::int64_t> shape_;
  std::int64_t numel_ = 0;
  std::vector<unsigned char> bytes_;
};

using NdArrayPtr = std::shared_ptr<const NdArray>;

}  // namespace spineparse
