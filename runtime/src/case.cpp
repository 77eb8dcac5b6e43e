// The core library's key functions: arrays, geometry and the case, so that their vtables and type
// information live in libspineparse_core, never in a plugin that may be unloaded.
#include "spineparse/case.hpp"

#include <cmath>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "spineparse/ndarray.hpp"

namespace spineparse {

namespace {
// Each DType's size and name, in the enum's order.
struct DTypeFacts {
  std::size_t size;
  const char* name;
};
constexpr DTypeFacts kDTypes[] = {{1, "uint8"}, {2, "int16"},   {4, "int32"},
                                  {8, "int64"}, {4, "float32"}, {8, "float64"}};
static_assert(std::size(kDTypes) == static_cast<std::size_t>(DType::kFloat64) + 1);

const DTypeFacts* facts(DType t) {
  const auto i = static_cast<std::size_t>(t);
  return i < std::size(kDTypes) ? &kDTypes[i] : nullptr;
}
}  // namespace

std::size_t dtype_size(DType t) { return facts(t) ? facts(t)->size : 0; }

const char* dtype_name(DType t) { return facts(t) ? facts(t)->name : "?"; }

NdArray::NdArray(DType dtype, std::vector<std::int64_t> shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  numel_ = 1;
  for (auto d : shape_) {
    if (d < 0) throw std::invalid_argument("NdArray: negative dimension");
    numel_ *= d;
  }
  bytes_.resize(static_cast<std::size_t>(numel_) * dtype_size(dtype_));
}

void NdArray::check_type(DType wanted) const {
  if (wanted != dtype_) {
    throw std::logic_error(std::string("NdArray holds ") + dtype_name(dtype_) + ", accessed as " +
                           dtype_name(wanted));
  }
}

std::string NdArray::shape_string() const {
  std::ostringstream s;
  for (std::size_t i = 0; i < shape_.size(); ++i) s << (i ? "x" : "") << shape_[i];
  s << " " << dtype_name(dtype_);
  return s.str();
}

bool Geometry::same_as(const Geometry& o, double tol) const {
  for (int i = 0; i < 3; ++i) {
    if (std::abs(spacing[i] - o.spacing[i]) > tol * std::max(1.0, std::abs(spacing[i])))
      return false;
    // Origins in mm: allow a small absolute slack scaled by the voxel size.
    if (std::abs(origin[i] - o.origin[i]) > 1e-3 * std::max(1.0, spacing[i])) return false;
  }
  for (int i = 0; i < 9; ++i) {
    if (std::abs(direction[i] - o.direction[i]) > tol) return false;
  }
  return true;
}

std::string Geometry::describe() const {
  std::ostringstream s;
  s << "spacing (" << spacing[0] << ", " << spacing[1] << ", " << spacing[2] << ") origin ("
    << origin[0] << ", " << origin[1] << ", " << origin[2] << ")";
  return s.str();
}

Payload::~Payload() = default;

std::string Case::attr(const std::string& key, const std::string& fallback) const {
  auto it = attrs_.find(key);
  return it == attrs_.end() ? fallback : it->second;
}

bool Case::has(const std::string& field) const { return fields_.count(field) != 0; }

NdArrayPtr Case::get(const std::string& field) const {
  auto it = fields_.find(field);
  if (it == fields_.end() || !it->second) {
    throw std::runtime_error("case " + id_ + " has no field '" + field + "'");
  }
  return it->second;
}

void Case::set(const std::string& field, NdArrayPtr value) { fields_[field] = std::move(value); }
void Case::erase(const std::string& field) { fields_.erase(field); }

std::vector<std::string> Case::field_names() const {
  std::vector<std::string> names;
  for (const auto& kv : fields_) names.push_back(kv.first);
  return names;
}

std::shared_ptr<const Payload> Case::payload(const std::string& key) const {
  auto it = payloads_.find(key);
  if (it == payloads_.end()) {
    throw std::runtime_error("case " + id_ + " has no payload '" + key + "'");
  }
  return it->second;
}

void Case::set_payload(const std::string& key, std::shared_ptr<const Payload> p) {
  payloads_[key] = std::move(p);
}

}  // namespace spineparse
