// Stage parameters declared once: each is a member of the stage's options struct, whose initial
// values are the defaults, added in the struct's `declare` with its name, help and limits. The
// same declaration gives the ParamSpecs (graph validation, `spineparse stages`, docs/stages.md,
// the run's record) and decodes a node's resolved Params into the struct, once, when the stage is
// made; the stage then reads typed members, never a key. Tools decode a node's params with the
// same set (e.g. the network options) instead of reading keys, and name a parameter they set by
// its member: `name_of(&Options::height)`, `GraphDraft::set<Options>(node, &Options::height, 8)`.
//
//   struct PrepareOptions {
//     static constexpr const char* kKind = "fine.prepare";  // the kind, named once
//     std::int64_t height = 256, width = 512;
//     static void declare(ParamSet<PrepareOptions>& s) {
//       s.add(&PrepareOptions::height, "height", "rows of the fine grid").min(16);
//       s.add(&PrepareOptions::width, "width", "columns of the fine grid").min(16);
//     }
//   };
//   StageDescription d = describe<PrepareOptions>("...");  // the description, kind kKind
//   class Prepare : public StageWith<PrepareOptions> { ... };  // options_ decoded when made
//
// Member types: bool, std::int64_t, int, double, std::string (a path with .path()),
// std::vector<std::string>; std::optional of any of them for a parameter without a default that
// may be left out (the member stays empty).
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "spineparse/params.hpp"
#include "spineparse/stage.hpp"

namespace spineparse {

// Named setters over the ParamSpec just added to a ParamSet (valid until the next add()).
class ParamBuilder {
 public:
  explicit ParamBuilder(ParamSpec* s) : s_(s) {}
  ParamBuilder& min(double v) {
    s_->min = v;
    return *this;
  }
  ParamBuilder& max(double v) {
    s_->max = v;
    return *this;
  }
  ParamBuilder& range(double lo, double hi) { return min(lo).max(hi); }
  // For strings: the only accepted values.
  ParamBuilder& one_of(std::vector<std::string> values) {
    s_->allowed = std::move(values);
    return *this;
  }
  // No default: every node must set it.
  ParamBuilder& required() {
    s_->required = true;
    s_->default_value.reset();
    return *this;
  }
  // A file or folder (shown and checked as a path); on a list member, a list of them.
  ParamBuilder& path() {
    s_->type = s_->type == ParamType::kStringList ? ParamType::kPathList : ParamType::kPath;
    return *this;
  }
  // On a string member: any JSON value (an object, a list), held as its text.
  ParamBuilder& json() {
    s_->type = ParamType::kJson;
    return *this;
  }
  // A path the stage reads: validation refuses a non-empty value that does not exist, unless the
  // bool parameter named `unless` is true.
  ParamBuilder& existing(std::string unless = "") {
    s_->type = ParamType::kPath;
    s_->must_exist = true;
    s_->exists_unless = std::move(unless);
    return *this;
  }

 private:
  ParamSpec* s_;
};

namespace param_detail {
template <class M>
struct Kind;
template <>
struct Kind<bool> {
  static constexpr ParamType type = ParamType::kBool;
  static ParamValue value(bool v) { return v; }
  static bool read(const Params& p, const std::string& k) { return p.get_bool(k); }
};
template <>
struct Kind<std::int64_t> {
  static constexpr ParamType type = ParamType::kInt;
  static ParamValue value(std::int64_t v) { return v; }
  static std::int64_t read(const Params& p, const std::string& k) { return p.get_int(k); }
};
template <>
struct Kind<int> {
  static constexpr ParamType type = ParamType::kInt;
  static ParamValue value(int v) { return std::int64_t{v}; }
  static int read(const Params& p, const std::string& k) { return static_cast<int>(p.get_int(k)); }
};
template <>
struct Kind<double> {
  static constexpr ParamType type = ParamType::kFloat;
  static ParamValue value(double v) { return v; }
  static double read(const Params& p, const std::string& k) { return p.get_float(k); }
};
template <>
struct Kind<std::string> {
  static constexpr ParamType type = ParamType::kString;
  static ParamValue value(const std::string& v) { return v; }
  static std::string read(const Params& p, const std::string& k) { return p.get_string(k); }
};
template <>
struct Kind<std::vector<std::string>> {
  static constexpr ParamType type = ParamType::kStringList;
  static ParamValue value(const std::vector<std::string>& v) { return v; }
  static std::vector<std::string> read(const Params& p, const std::string& k) {
    return p.get_string_list(k);
  }
};
template <class M>
struct Kind<std::optional<M>> : Kind<M> {};
template <class M>
struct IsOptional : std::false_type {};
template <class M>
struct IsOptional<std::optional<M>> : std::true_type {};
}  // namespace param_detail

template <class Options>
class ParamSet {
 public:
  // Declares member `m` (of Options or a base of it) as parameter `name`; its value in a
  // default-constructed Options is the default (none for an std::optional member).
  template <class M, class C>
  ParamBuilder add(M C::*m, std::string name, std::string help) {
    static_assert(std::is_base_of_v<C, Options>, "the member must belong to the options struct");
    using K = param_detail::Kind<M>;
    M Options::*member = static_cast<M Options::*>(m);
    ParamSpec s;
    s.name = name;
    s.type = K::type;
    s.help = std::move(help);
    if constexpr (!param_detail::IsOptional<M>::value)
      s.default_value = K::value(defaults().*member);
    specs_.push_back(std::move(s));
    decoders_.push_back([name, member](const Params& p, Options& o) {
      if (p.has(name)) o.*member = K::read(p, name);
    });
    encoders_.push_back([name, member](const Options& o, Params& p) {
      if constexpr (param_detail::IsOptional<M>::value) {
        if ((o.*member).has_value()) p.set(name, K::value(*(o.*member)));
      } else {
        p.set(name, K::value(o.*member));
      }
    });
    members_.emplace_back(member);
    return ParamBuilder(&specs_.back());
  }
  // The name member `m` was added under. Throws std::logic_error for a member never added.
  template <class M, class C>
  const std::string& name_of(M C::*m) const {
    const M Options::*member = static_cast<M Options::*>(m);
    for (std::size_t i = 0; i < members_.size(); ++i) {
      const auto* held = std::any_cast<M Options::*>(&members_[i]);
      if (held && *held == member) return specs_[i].name;
    }
    throw std::logic_error("a member of the options struct that declare() does not add");
  }
  // A value of member type M as a graph gives it.
  template <class M>
  static ParamValue value(const M& v) {
    return param_detail::Kind<M>::value(v);
  }
  const std::vector<ParamSpec>& specs() const { return specs_; }
  // A node's resolved values as Options: what it sets, the declared defaults elsewhere.
  Options decode(const Params& p) const {
    Options o{};
    for (const auto& d : decoders_) d(p, o);
    return o;
  }
  // Options as the Params a node would give (empty optionals left out); decode's inverse.
  Params encode(const Options& o) const {
    Params p;
    for (const auto& e : encoders_) e(o, p);
    return p;
  }

 private:
  static const Options& defaults() {
    static const Options d = Options();
    return d;
  }
  std::vector<ParamSpec> specs_;
  std::vector<std::function<void(const Params&, Options&)>> decoders_;
  std::vector<std::function<void(const Options&, Params&)>> encoders_;
  std::vector<std::any> members_;  // M Options::* of each spec, for name_of
};

// The parameter set of an options struct with a `static void declare(ParamSet<Options>&)`,
// built once.
template <class Options>
const ParamSet<Options>& params_of() {
  static const ParamSet<Options> set = [] {
    ParamSet<Options> s;
    Options::declare(s);
    return s;
  }();
  return set;
}

// A stage whose parameters are an options struct, decoded once into options_ when the stage is
// made (so an instance that `merge` makes for after_run, never opened, has them too):
//   class Prepare : public StageWith<PrepareOptions> {
//    public:
//     using StageWith::StageWith;
//     ...
template <class Options>
class StageWith : public Stage {
 public:
  explicit StageWith(const Params& p) : options_(params_of<Options>().decode(p)) {}

 protected:
  const Options options_;
};

// A stage description with its kind, summary and the parameters Options declares; the caller
// adds the fields and the rest.
template <class Options>
StageDescription describe(std::string kind, std::string summary) {
  StageDescription d;
  d.kind = std::move(kind);
  d.summary = std::move(summary);
  d.params = params_of<Options>().specs();
  return d;
}
// The same for options that name their kind (static constexpr const char* kKind).
template <class Options>
StageDescription describe(std::string summary) {
  return describe<Options>(Options::kKind, std::move(summary));
}

}  // namespace spineparse
