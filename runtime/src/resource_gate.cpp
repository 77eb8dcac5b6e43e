#include "resource_gate.hpp"

#include <algorithm>

namespace spineparse {

ResourceGate::Grant ResourceGate::acquire(const ResourceUse& use, std::size_t node) {
  Grant g;
  g.want = use.cores == ResourceUse::kAllCores ? total_ : std::clamp(use.cores, 0, total_);
  const int least = use.min_cores > 0 ? std::min(use.min_cores, g.want) : g.want;
  (use.device_in_scopes ? g.scoped_device : g.device) = use.device;
  const bool exclusive = least > 1;  // must have several cores at once
  std::unique_lock<std::mutex> lk(mu_);
  // A node whose calls share one grant: join it while one of its calls holds it.
  auto joined = [&] {
    const auto s = use.shared_by_node ? shared_.find(node) : shared_.end();
    if (s == shared_.end()) return false;
    ++s->second.calls;
    g = s->second.grant;
    return true;
  };
  if (joined()) return g;
  if (exclusive) ++exclusive_waiting_;
  ++waiting_;
  cv_.wait(lk, [&] {
    if (use.shared_by_node && shared_.count(node)) return true;  // another call got it meanwhile
    const bool device_free = g.device.empty() || busy_devices_.count(g.device) == 0;
    const bool cores_free =
        free_ >= least && (least == 0 || exclusive || exclusive_waiting_ == 0);
    return device_free && cores_free;
  });
  --waiting_;
  if (exclusive) --exclusive_waiting_;
  if (joined()) return g;
  g.cores = least == g.want ? g.want : std::min(free_, g.want);
  if (use.shared_by_node) shared_[node] = {1, g};
  free_ -= g.cores;
  most_held_ = std::max(most_held_, total_ - free_);
  if (!g.device.empty()) busy_devices_.insert(g.device);
  return g;
}

void ResourceGate::grow(Grant& g) {
  std::lock_guard<std::mutex> lk(mu_);
  if (g.cores >= g.want || waiting_ > 0 || free_ == 0) return;
  const int more = std::min(free_, g.want - g.cores);
  free_ -= more;
  g.cores += more;
  most_held_ = std::max(most_held_, total_ - free_);
}

void ResourceGate::hold_device(const std::string& device) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return busy_devices_.count(device) == 0; });
  busy_devices_.insert(device);
}

void ResourceGate::release_device(const std::string& device) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    busy_devices_.erase(device);
  }
  cv_.notify_all();
}

void ResourceGate::release(const Grant& g, std::size_t node) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (auto s = shared_.find(node); s != shared_.end()) {
      if (--s->second.calls > 0) return;  // the node's other calls still hold it
      free_ += s->second.grant.cores;
      if (!s->second.grant.device.empty()) busy_devices_.erase(s->second.grant.device);
      shared_.erase(s);
    } else {
      free_ += g.cores;
      if (!g.device.empty()) busy_devices_.erase(g.device);
    }
  }
  cv_.notify_all();
}

}  // namespace spineparse
