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
#include "test_stage_options.hpp"

namespace {
using namespace spineparse;
using namespace spineparse::test_plugin;

class Source : public StageWith<SourceOptions> {
 public:
  using StageWith::StageWith;
  std::vector<CaseSeed> enumerate(const StageContext&) override {
    std::vector<CaseSeed> s;
    for (std::int64_t i = 1; i <= options_.cases; ++i)
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
};

class Pass : public Stage {
 public:
  CasePtr process(const CasePtr& in) override { return in; }
};

class Delay : public StageWith<DelayOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.ms));
    return in;
  }
};

// Holds every case until `hold` cases are inside or `timeout_ms` passes, and records the largest
// number of cases it ever held at once in each case's metric "gate_max", and the intra-op threads
// the executor granted when the case stopped waiting in "gate_threads". Declares the ResourceUse
// of its params `cores` and `device` (a fake device stands for a GPU).
class Gate : public StageWith<GateOptions> {
 public:
  explicit Gate(const Params& p) : StageWith(p) {
    use_.cores = options_.cores;
    use_.min_cores = options_.min_cores;
    use_.device = options_.device;
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
    cv_.wait_for(lk, std::chrono::milliseconds(options_.timeout_ms),
                 [&] { return inside_ >= options_.hold; });
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
  ResourceUse use_;
};

// Host work, device work on "fake:0" and host work again, each a sleep. Declares the device in
// scopes (or for the whole call) and records in "device_max" the most calls ever inside the
// device work at once; throws StopRun for the case `stop_on`.
class DeviceWork : public StageWith<DeviceWorkOptions> {
 public:
  using StageWith::StageWith;
  void open(const StageContext& ctx) override {
    ctx_ = ctx;
    ResourceUse use;
    use.cores = 0;
    use.device = "fake:0";
    use.device_in_scopes = options_.scopes;
    if (ctx.declare) ctx.declare(use);
  }
  CasePtr process(const CasePtr& in) override {
    if (in->id() == options_.stop_on) throw StopRun("fake:0 is in an unrecoverable state");
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.host_ms));
    {
      auto held = ctx_.hold_device ? ctx_.hold_device() : nullptr;
      const int now = ++inside_;
      int seen = max_.load();
      while (now > seen && !max_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.device_ms));
      --inside_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.after_ms));
    auto out = in->derive();
    out->set_metric("device_max", static_cast<double>(max_.load()));
    return out;
  }

 private:
  StageContext ctx_;
  std::atomic<int> inside_{0}, max_{0};
};

class Fail : public StageWith<FailOptions> {
 public:
  using StageWith::StageWith;
  CasePtr process(const CasePtr& in) override {
    const auto& ids = options_.ids;
    if (std::find(ids.begin(), ids.end(), in->id()) != ids.end()) {
      if (options_.mode == "non_std") throw 42;
      throw std::runtime_error("deliberate failure of " + in->id());
    }
    auto out = in->derive();
    out->set("checked", in->get("image"));
    return out;
  }
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
  using namespace spineparse::test_plugin;
  StageDescription src = describe<SourceOptions>(kind("source"), "N tiny cases");
  src.is_source = true;
  src.writes = {{"image"}};
  r.add_stage<Source>(src);
#if SPINEPARSE_ABI_MINOR >= 7  // built as an older plugin, it declares no attributes
  StageAttributes seed;
  seed.writes = {{"n", false, "the case's number"}};
  r.declare_attributes(kind("source"), seed);
#endif

  StageDescription pass;
  pass.kind = kind("pass");
  pass.summary = "pass-through";
  r.add_stage<Pass>(pass);

  r.add_stage<Delay>(describe<DelayOptions>(kind("delay"), "sleep"));
  r.add_stage<Gate>(describe<GateOptions>(kind("gate"), "in-flight probe"));
  r.add_stage<DeviceWork>(
      describe<DeviceWorkOptions>(kind("device_work"), "host, fake device, host work"));

  StageDescription fail = describe<FailOptions>(kind("fail"), "fails chosen cases");
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

  // A ParamSpec made by hand, as plugins written before param_set.hpp (ABI 2.3) do: still valid.
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
