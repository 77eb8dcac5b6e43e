// The test plugin's parameters, declared once (ParamSet): the plugin's stages decode them, and
// tests that edit graphs of test stages name them by member (GraphDraft::set<DelayOptions>).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spineparse/param_set.hpp"

namespace spineparse::test_plugin {

struct SourceOptions {
  std::int64_t cases = 5;
  static void declare(ParamSet<SourceOptions>& s) {
    s.add(&SourceOptions::cases, "cases", "how many").min(0);
  }
};

struct DelayOptions {
  std::int64_t ms = 10;
  static void declare(ParamSet<DelayOptions>& s) { s.add(&DelayOptions::ms, "ms", "milliseconds"); }
};

struct GateOptions {
  std::int64_t hold = 1000;
  std::int64_t timeout_ms = 100;
  int cores = 1;
  std::string device;
  int min_cores = 0;
  static void declare(ParamSet<GateOptions>& s) {
    using O = GateOptions;
    s.add(&O::hold, "hold", "cases to wait for");
    s.add(&O::timeout_ms, "timeout_ms", "max wait");
    s.add(&O::cores, "cores", "cores each call holds (-1: all, exclusively)");
    s.add(&O::device, "device", "a device each call holds alone (e.g. fake:0)");
    s.add(&O::min_cores, "min_cores", "elastic: start with at least this many of `cores`");
  }
};

struct DeviceWorkOptions {
  std::int64_t host_ms = 20, device_ms = 20, after_ms = 20;
  bool scopes = true;
  std::string stop_on;  // a case id whose call throws StopRun
  static void declare(ParamSet<DeviceWorkOptions>& s) {
    using O = DeviceWorkOptions;
    s.add(&O::host_ms, "host_ms", "host work before the device work");
    s.add(&O::device_ms, "device_ms", "device work, in a hold_device scope");
    s.add(&O::after_ms, "after_ms", "host work after it");
    s.add(&O::scopes, "scopes", "hold fake:0 in scopes (false: for the whole call)");
    s.add(&O::stop_on, "stop_on", "the case whose call throws StopRun");
  }
};

struct FailOptions {
  std::vector<std::string> ids;
  std::string mode = "std";
  static void declare(ParamSet<FailOptions>& s) {
    s.add(&FailOptions::ids, "ids", "case ids to fail").required();
    s.add(&FailOptions::mode, "mode", "exception kind").one_of({"std", "non_std"});
  }
};

}  // namespace spineparse::test_plugin
