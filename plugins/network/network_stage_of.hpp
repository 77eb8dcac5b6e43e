// The class of a network stage (coarse.gcsn, fine.resunet), without LibTorch: the stage's
// options held as every stage holds them (StageWith), its network and state in `Impl`, a struct
// the stage's source defines with LibTorch and a member `network::NetworkStage stage`. The
// members are defined in network_stage.hpp; the stage's source instantiates the class there
// (`template class NetworkStageOf<Options, Impl>;`). Included by the network stages' headers only.
#pragma once

#include <memory>

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse::plugins::network {

template <class Options, class Impl>
class NetworkStageOf : public StageWith<Options> {
 public:
  explicit NetworkStageOf(const Params& p);
  ~NetworkStageOf() override;
  // run() under the device-lost rule (NetworkStage::guarded).
  CasePtr process(const CasePtr& in) final;
  // Gives back what the device held (NetworkStage::close).
  void close() override;

 protected:
  // One case: host work outside DeviceScopes, device work in them.
  virtual CasePtr run(const CasePtr& in) = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spineparse::plugins::network
