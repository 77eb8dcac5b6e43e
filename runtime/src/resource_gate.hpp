// The run's cores and devices, granted to stage calls (ResourceUse) before they run and released
// after. Calls that hold several cores (networks on the CPU) go first: while one waits, no core is
// granted to a call that wants fewer, so the stream of short CPU stages never starves the networks
// and a network never shares its cores. A device is held by one call at a time. Requests are
// clamped to the run's cores, so every call can eventually run; a call holds its grant only while
// its own process() runs (no nested grants), so there is no deadlock; a device held in scopes is
// taken while the call already holds its cores, but a scope waits for nothing else. The calls of a node that
// declares shared_by_node join the grant one of them holds.
#pragma once

#include <condition_variable>
#include <mutex>
#include <map>
#include <set>
#include <string>

#include "spineparse/stage.hpp"

namespace spineparse {

class ResourceGate {
 public:
  explicit ResourceGate(int cores) : total_(cores < 1 ? 1 : cores), free_(total_) {}

  struct Grant {
    int cores = 0;
    std::string device;         // held for the whole call
    std::string scoped_device;  // held only inside hold_device() (ResourceUse::device_in_scopes)
    int want = 0;  // an elastic grant grows toward this (grow())
  };
  // Blocks until `use` of node `node` can be granted.
  Grant acquire(const ResourceUse& use, std::size_t node);
  void release(const Grant& g, std::size_t node);
  // Blocks until `device` is free and marks it held (a scope of a device_in_scopes call), and
  // gives it back.
  void hold_device(const std::string& device);
  void release_device(const std::string& device);
  // An elastic grant takes free cores toward its want while no other call waits for cores.
  void grow(Grant& g);
  int cores() const { return total_; }
  // The most cores held at once so far (never more than cores()).
  int most_held() {
    std::lock_guard<std::mutex> lk(mu_);
    return most_held_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int total_;
  int free_;
  int most_held_ = 0;
  int exclusive_waiting_ = 0;  // calls asking for several cores at once, not yet granted
  int waiting_ = 0;            // calls waiting for anything
  std::set<std::string> busy_devices_;
  // Nodes declaring shared_by_node whose grant is held: their calls in it and what it holds.
  struct Shared {
    int calls = 0;
    Grant grant;
  };
  std::map<std::size_t, Shared> shared_;
};

}  // namespace spineparse
