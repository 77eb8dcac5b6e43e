// The network stages' shared helpers: the threads of a call, the device scope, weights placed for
// inference, TensorFloat-32, and device errors that must stop a run. All without a GPU: a CUDA
// device object is only named, never used, where the helper's logic allows it.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <gmock/gmock.h>
#include <torch/nn/modules/linear.h>

#include <mutex>
#include <thread>

#include "network_stage.hpp"

using namespace spineparse::plugins::network;
using ::testing::HasSubstr;

TEST(NetworkCall, TakesTheExecutorsThreadShareAndAsksAgainOnRefresh) {
  // A network call sets LibTorch's intra-op threads of its thread from
  // StageContext::threads_now(): all 4 alone, 2 beside one other call, 1 beside three.
  std::thread t([] {
    int running = 1;
    spineparse::StageContext ctx;
    ctx.total_threads = 4;
    ctx.running_calls = [&running] { return running; };
    NetworkCall call(ctx);
    EXPECT_EQ(call.threads(), 4);
    EXPECT_EQ(at::get_num_threads(), 4);
    running = 2;
    call.refresh();
    EXPECT_EQ(at::get_num_threads(), 2);
    running = 4;
    call.refresh();
    EXPECT_EQ(at::get_num_threads(), 1);
  });
  t.join();
}

TEST(NetworkCall, ACallThatHoldsNoCoreUsesOneThread) {
  // Under the executor a CUDA call is granted no core (ResourceUse cores = 0): its host work
  // (staging, copies) must not start a team of every thread.
  std::thread t([] {
    spineparse::StageContext ctx;
    ctx.total_threads = 8;
    ctx.granted_cores = [] { return 0; };
    NetworkCall call(ctx);
    EXPECT_EQ(call.threads(), 1);
    EXPECT_EQ(at::get_num_threads(), 1);
  });
  t.join();
}

// A stage named as on cuda:0 (nothing touches a GPU: its stream is inactive).
NetworkStage& cuda_stage(NetworkStage& s, int& holds, int& released) {
  s.setup.device = torch::Device("cuda:0");
  s.ctx.hold_device = [&holds, &released] {
    ++holds;
    return std::shared_ptr<void>(nullptr, [&released](void*) { ++released; });
  };
  return s;
}

TEST(DeviceScope, HoldsTheExecutorsDeviceAndTheStageLockOnlyInsideIt) {
  NetworkStage s;
  int holds = 0, released = 0;
  cuda_stage(s, holds, released);
  {
    DeviceScope scope(s);
    EXPECT_EQ(holds, 1);
    EXPECT_EQ(released, 0);
    EXPECT_FALSE(s.device_mutex.try_lock());  // one scope at a time outside the executor too
    scope.finish();
    EXPECT_EQ(released, 1);
    EXPECT_TRUE(s.device_mutex.try_lock());
    s.device_mutex.unlock();
  }
  EXPECT_EQ(released, 1);  // given back once
  {
    DeviceScope scope(s);  // an exception's path: the destructor gives it back
  }
  EXPECT_EQ(released, 2);
  NetworkStage cpu;  // on the CPU: nothing held
  bool asked = false;
  cpu.ctx.hold_device = [&asked] { asked = true; return std::shared_ptr<void>(); };
  DeviceScope none(cpu);
  EXPECT_FALSE(asked);
  EXPECT_TRUE(cpu.device_mutex.try_lock());
  cpu.device_mutex.unlock();
}

TEST(NetworkStage, ACallHoldsEveryCoreOnTheCpuAndItsGpuOnlyInScopes) {
  const auto gpu = resource_use(torch::Device("cuda:1"), 0);
  EXPECT_EQ(gpu.cores, 0);
  EXPECT_EQ(gpu.device, "cuda:1");
  EXPECT_TRUE(gpu.device_in_scopes);
  const auto cpu = resource_use(torch::Device("cpu"), 0);
  EXPECT_EQ(cpu.cores, spineparse::ResourceUse::kAllCores);
  EXPECT_EQ(cpu.device, "");
  EXPECT_EQ(resource_use(torch::Device("cpu"), 3).cores, 3);
  EXPECT_EQ(cpu.min_cores, 0);
  // min_cores: elastic on the CPU (starts with the free cores), nothing on a GPU.
  const auto elastic = resource_use(torch::Device("cpu"), 0, 1);
  EXPECT_EQ(elastic.cores, spineparse::ResourceUse::kAllCores);
  EXPECT_EQ(elastic.min_cores, 1);
  EXPECT_EQ(elastic.describe(), "up to all cores");
  EXPECT_EQ(resource_use(torch::Device("cpu"), 2, 5).min_cores, 2);
  EXPECT_EQ(resource_use(torch::Device("cuda:0"), 0, 1).min_cores, 0);
}

TEST(Place, WeightsNeedNoGradient) {
  torch::nn::Linear net(4, 3);
  NetworkSetup setup;
  place(*net, setup);
  for (const auto& p : net->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(Tf32, OffMeansFloat32AndTheProcessHasOneSetting) {
  // LibTorch allows TF32 in cuDNN by default: fp32 on a GPU would not be float32.
  spineparse::nn::set_tf32(false);
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN());
  EXPECT_FALSE(at::globalContext().allowTF32CuBLAS());
  EXPECT_FALSE(spineparse::nn::tf32_allowed());
  try {
    spineparse::nn::set_tf32(true);
    ADD_FAILURE() << "a second node asking for TF32 was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("one switch per process"));
  }
  EXPECT_FALSE(spineparse::nn::tf32_allowed());
  EXPECT_NO_THROW(spineparse::nn::set_tf32(false));
}

TEST(DeviceErrors, StickyCudaErrorsStopTheRunOthersFailOneCase) {
  using spineparse::nn::is_sticky_device_error;
  EXPECT_TRUE(is_sticky_device_error(
      "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be "
      "asynchronously reported at some other API call"));
  EXPECT_TRUE(is_sticky_device_error("CUDA error: device-side assert triggered"));
  EXPECT_TRUE(is_sticky_device_error("CUDA error: unspecified launch failure"));
  EXPECT_FALSE(is_sticky_device_error(
      "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)"));
  EXPECT_FALSE(is_sticky_device_error("CUDA error: invalid argument"));
  EXPECT_FALSE(is_sticky_device_error("weights file x does not exist"));

  NetworkStage s;
  int holds = 0, released = 0;
  cuda_stage(s, holds, released);
  try {
    s.stop_if_device_lost(std::runtime_error("CUDA error: an illegal memory access was encountered\nmore"));
    ADD_FAILURE() << "a sticky error did not stop the run";
  } catch (const spineparse::StopRun& e) {
    EXPECT_THAT(e.what(), HasSubstr("cuda:0 is in an unrecoverable state (CUDA error: an illegal"));
    EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("more")));
  }
  EXPECT_NO_THROW(s.stop_if_device_lost(std::runtime_error("CUDA out of memory. Tried ...")));
  NetworkStage cpu;
  EXPECT_NO_THROW(cpu.stop_if_device_lost(std::runtime_error("illegal memory access")));
}

TEST(StageStream, ACudaDeviceWithoutAnIndexIsRefused) {
  // Index -1 would make the stream guard write its per-device tables at -1.
  EXPECT_THROW(spineparse::nn::StageStream(torch::Device("cuda")), std::logic_error);
  EXPECT_FALSE(spineparse::nn::StageStream(torch::Device("cpu")).active());
}

TEST(PinnedCache, ReleasedThroughTheLoadedLibTorchOnlyWhereItHasCuda) {
  // The lookup finds LibTorch's own library in this process; without libtorch_cuda there is
  // nothing to release and nothing breaks.
  EXPECT_NE(spineparse::nn::loaded_library("libtorch_cpu.so"), "");
  EXPECT_EQ(spineparse::nn::loaded_library("libnot_a_library.so"), "");
  const bool cuda_loaded = !spineparse::nn::loaded_library("libtorch_cuda.so").empty();
  EXPECT_EQ(spineparse::nn::release_pinned_cache(), cuda_loaded);
}
