// Case: the record that flows through a graph, one per input volume.
//
// Stages receive std::shared_ptr<const Case> and return a new record (usually a copy made with
// Case::derive()) that shares every field they did not touch. Errors are values: a stage that fails
// marks the case failed and later stages pass it through untouched.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spineparse/ndarray.hpp"

namespace spineparse {

// Physical geometry of the raw volume as ITK reports it (LPS, millimetres), kept with the case so
// that outputs overlay the input in any viewer.
struct Geometry {
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  std::array<double, 3> origin{0.0, 0.0, 0.0};
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major 3x3

  // True when both describe the same grid within `tolerance` (relative for spacing).
  bool same_as(const Geometry& other, double tolerance = 1e-4) const;
  std::string describe() const;
};

struct StageTiming {
  std::string node;
  double seconds = 0.0;
};

struct CaseError {
  std::string node;
  std::string message;
};

// Opaque per-case payload that a plugin may attach (for example a device tensor). Its virtual
// destructor lives in the runtime so that its vtable does not depend on a plugin staying loaded
// for type identity; the payload's own code does, which the registry guarantees.
class Payload {
 public:
  virtual ~Payload();
  virtual std::string describe() const = 0;
};

class Case {
 public:
  Case(std::string id, std::size_t index) : id_(std::move(id)), index_(index) {}

  // A copy that shares every field: the usual start of a stage's process().
  std::shared_ptr<Case> derive() const { return std::make_shared<Case>(*this); }

  const std::string& id() const { return id_; }
  // The case's position in the whole cohort (in the source's order), the same in every shard.
  std::size_t index() const { return index_; }

  // Source attributes such as "image_path" and "mask_path".
  const std::map<std::string, std::string>& attrs() const { return attrs_; }
  std::string attr(const std::string& key, const std::string& fallback = "") const;
  void set_attr(const std::string& key, std::string value) { attrs_[key] = std::move(value); }
  void erase_attr(const std::string& key) { attrs_.erase(key); }

  const Geometry& geometry() const { return geometry_; }
  void set_geometry(const Geometry& g) { geometry_ = g; }

  bool has(const std::string& field) const;
  // Throws std::runtime_error naming the case and field when absent.
  NdArrayPtr get(const std::string& field) const;
  void set(const std::string& field, NdArrayPtr value);
  void erase(const std::string& field);
  std::vector<std::string> field_names() const;

  bool has_payload(const std::string& key) const { return payloads_.count(key) != 0; }
  std::shared_ptr<const Payload> payload(const std::string& key) const;
  void set_payload(const std::string& key, std::shared_ptr<const Payload> p);
  void erase_payload(const std::string& key) { payloads_.erase(key); }

  // Free-form numbers a stage reports (metrics, counts); they end up in run.json.
  const std::map<std::string, double>& metrics() const { return metrics_; }
  void set_metric(const std::string& key, double v) { metrics_[key] = v; }

  bool failed() const { return error_.has_value(); }
  const std::optional<CaseError>& error() const { return error_; }
  void fail(std::string node, std::string message) {
    error_ = CaseError{std::move(node), std::move(message)};
  }

 private:
  std::string id_;
  std::size_t index_;
  std::map<std::string, std::string> attrs_;
  Geometry geometry_;
  std::map<std::string, NdArrayPtr> fields_;
  std::map<std::string, std::shared_ptr<const Payload>> payloads_;
  std::map<std::string, double> metrics_;
  std::vector<StageTiming> unused_timings_;  // unused: kept so that the layout stays ABI 2's
  std::optional<CaseError> error_;
  bool unused_skipped_ = false;              // unused: as above
};

using CasePtr = std::shared_ptr<const Case>;

// An attribute "record:KEY" holds JSON text that the run's record (run.json) keeps as the case's
// object KEY (e.g. "record:qc" -> "qc": {...}) instead of listing it with the attributes.
inline constexpr const char* kRecordAttrPrefix = "record:";

// The attribute "warnings": what a stage found doubtful about the case, one per line; run.json
// lists them and the report shows them. Stages add to it with add_warning and declare it written
// (and read optional, when they look at it).
inline constexpr const char* kWarningsAttr = "warnings";
inline void add_warning(Case& c, const std::string& text) {
  const std::string w = c.attr(kWarningsAttr);
  c.set_attr(kWarningsAttr, w.empty() ? text : w + "\n" + text);
}

// A case the source will produce: id plus attributes (paths) known before reading. A seed with a
// non-empty attribute "skipped" is listed in the run's record as skipped, with that reason, and
// not run (e.g. a DICOM series that is not a volume).
inline constexpr const char* kSkippedAttr = "skipped";
struct CaseSeed {
  std::string id;
  std::map<std::string, std::string> attrs;
};

}  // namespace spineparse
