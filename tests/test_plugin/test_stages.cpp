// Stages for testing the runtime: a source of tiny cases, pass-through, delay, a gate that
// measures how many cases are inside it at once, and a stage that fails chosen cases.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "spineparse/plugin_api.hpp"
#include "spineparse/registry.hpp"

namespace {
using namespace spineparse;

class Source : public Stage {
 public:
  explicit Source(const Params& p) : n_(p.get_int("cases")) {}
  std::vector<CaseSeed> enumerate(const StageContext&) override {
    std::vector<CaseSeed> s;
    for (std::int64_t i = 1; i <= n_; ++i)
      s.push_back({"Case" + std::to_string(i), {{"n", std::to_string(i)}}});
    return s;
  }
  CasePtr process(const CasePtr& in) override {
    auto out = in->derive();
    auto a = NdArray::make<float>({1, 2, 2});
    std::fill(a->data<float>(), a->data<float>() + 4, std::stof(in->attr("n")));
    out->set("image", a);
    return out;
  }

 private:
  std::int64_t n_;
};

class Pass : public Stage {
 public:
  CasePtr process(const CasePtr& in) override { return in; }
};

class Delay : public Stage {
 public:
  explicit Delay(const Params& p) : ms_(p.get_int("ms")) {}
  CasePtr process(const CasePtr& in) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms_));
    return in;
  }

 private:
  std::int64_t ms_;
};

// Holds every case until `hold` cases are inside or `timeout_ms` passes, and records the largest
// number of cases it ever held at once in each case's metric "gate_max", and the intra-op threads
// the executor granted when the case stopped waiting in "gate_threads". Declares the ResourceUse
// of its params `cores` and `device` (a fake device stands for a GPU).
class Gate : public Stage {
 public:
  explicit Gate(const Params& p) : hold_(p.get_int("hold")), timeout_ms_(p.get_int("timeout_ms")) {
    use_.cores = static_cast<int>(p.get_int("cores"));
    use_.min_cores = static_cast<int>(p.get_int("min_cores"));
    use_.device = p.get_string("device");
  }
  void open(const StageContext& ctx) override {
    ctx_ = ctx;
    if (ctx.declare) ctx.declare(use_);
  }
  CasePtr process(const CasePtr& in) override {
    std::unique_lock<std::mutex> lk(mu_);
    ++inside_;
    max_ = std::max(max_, inside_);
    cv_.notify_all();
    cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms_), [&] { return inside_ >= hold_; });
    auto out = in->derive();
    out->set_metric("gate_max", static_cast<double>(max_));
    out->set_metric("gate_threads", static_cast<double>(ctx_.threads_now()));
    --inside_;
    return out;
  }

 private:
  StageContext ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::int64_t inside_ = 0, max_ = 0;
  std::int64_t hold_, timeout_ms_;
  ResourceUse use_;
};

class Fail : public Stage {
 public:
  explicit Fail(const Params& p) : ids_(p.get_string_list("ids")), mode_(p.get_string("mode")) {}
  CasePtr process(const CasePtr& in) override {
    if (std::find(ids_.begin(), ids_.end(), in->id()) != ids_.end()) {
      if (mode_ == "non_std") throw 42;
      throw std::runtime_error("deliberate failure of " + in->id());
    }
    auto out = in->derive();
    out->set("checked", in->get("image"));
    return out;
  }

 private:
  std::vector<std::string> ids_;
  std::string mode_;
};

// labels = mask with one structure removed (label index % 19 + 1): a stand-in segmentation whose
// scores differ from case to case.
class MaskAsLabels : public Stage {
 public:
  CasePtr process(const CasePtr& in) override {
    const auto& m = *in->get("mask");
    auto labels = NdArray::make<std::uint8_t>(m.shape());
    const auto drop = static_cast<std::uint8_t>(in->index() % 19 + 1);
    for (std::int64_t i = 0; i < m.numel(); ++i) {
      const std::uint8_t v = m.data<std::uint8_t>()[i];
      labels->data<std::uint8_t>()[i] = v == drop ? 0 : v;
    }
    auto out = in->derive();
    out->set("labels", labels);
    return out;
  }
};

class FailOpen : public Stage {
 public:
  void open(const StageContext&) override { throw std::runtime_error("cannot open the device"); }
  CasePtr process(const CasePtr& in) override { return in; }
};

}  // namespace

#ifndef TEST_PLUGIN_NAME
#define TEST_PLUGIN_NAME "test"
#endif
#ifndef TEST_KIND_PREFIX
#define TEST_KIND_PREFIX "test."
#endif

void register_test_stages(spineparse::Registry& r) {
  using namespace spineparse;
  auto kind = [](const char* k) { return std::string(TEST_KIND_PREFIX) + k; };
  StageDescription src;
  src.kind = kind("source");
  src.summary = "N tiny cases";
  src.is_source = true;
  src.params = {{"cases",
                 ParamType::kInt,
                 ParamValue(std::int64_t{5}),
                 false,
                 "how many",
                 {},
                 0.0,
                 std::nullopt}};
  src.writes = {{"image"}};
  r.add_stage<Source>(src);

  StageDescription pass;
  pass.kind = kind("pass");
  pass.summary = "pass-through";
  r.add_stage<Pass>(pass);

  StageDescription delay;
  delay.kind = kind("delay");
  delay.summary = "sleep";
  delay.params = {{"ms", ParamType::kInt, ParamValue(std::int64_t{10}), false, "milliseconds"}};
  r.add_stage<Delay>(delay);

  StageDescription gate;
  gate.kind = kind("gate");
  gate.summary = "in-flight probe";
  gate.params = {
      {"hold", ParamType::kInt, ParamValue(std::int64_t{1000}), false, "cases to wait for"},
      {"timeout_ms", ParamType::kInt, ParamValue(std::int64_t{100}), false, "max wait"},
      {"cores", ParamType::kInt, ParamValue(std::int64_t{1}), false,
       "cores each call holds (-1: all, exclusively)"},
      {"device", ParamType::kString, ParamValue(std::string()), false,
       "a device each call holds alone (e.g. fake:0)"},
      {"min_cores", ParamType::kInt, ParamValue(std::int64_t{0}), false,
       "elastic: start with at least this many of `cores`"}};
  r.add_stage<Gate>(gate);

  StageDescription fail;
  fail.kind = kind("fail");
  fail.summary = "fails chosen cases";
  fail.params = {{"ids", ParamType::kStringList, std::nullopt, true, "case ids to fail"},
                 {"mode",
                  ParamType::kString,
                  ParamValue(std::string("std")),
                  false,
                  "exception kind",
                  {"std", "non_std"}}};
  fail.reads = {{"image"}};
  fail.writes = {{"checked"}};
  r.add_stage<Fail>(fail);

  StageDescription serial;
  serial.kind = kind("serial");
  serial.summary = "a stage that must run one case at a time";
  serial.concurrency = Concurrency::kSerial;
  r.add_stage<Pass>(serial);

  StageDescription mal;
  mal.kind = kind("mask_as_labels");
  mal.summary = "labels = the mask with one structure removed";
  mal.reads = {{"mask", false, "", "uint8", "D,H,W"}};
  mal.writes = {{"labels", false, "", "uint8", "D,H,W"}};
  r.add_stage<MaskAsLabels>(mal);

  StageDescription needs;
  needs.kind = kind("needs_file");
  needs.summary = "pass-through with a path parameter that must exist";
  ParamSpec file;
  file.name = "file";
  file.type = ParamType::kPath;
  file.required = true;
  file.help = "any existing file";
  file.must_exist = true;
  needs.params = {file};
  r.add_stage<Pass>(needs);

  StageDescription fo;
  fo.kind = kind("fail_open");
  fo.summary = "open() throws";
  r.add_stage<FailOpen>(fo);

  // Output checks: one suffix every build of this plugin claims, one its own.
  auto check = [](const std::string&) { return std::string("checked by " TEST_PLUGIN_NAME); };
  r.add_output_check(".shared_probe", check);
  r.add_output_check("." TEST_PLUGIN_NAME "_probe", check);
}

SPINEPARSE_PLUGIN(TEST_PLUGIN_NAME, "1.2.3", register_test_stages)
