// The network stages' shared helper: the thread share of a call.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "network_stage.hpp"

using namespace spineparse::plugins::network;

TEST(NetworkCall, TakesTheExecutorsThreadShareAndAsksAgainOnRefresh) {
  // A CPU network call sets LibTorch's intra-op threads of its thread from
  // StageContext::threads_now(): all 4 alone, 2 beside one other call, 1 beside three.
  std::thread t([] {
    int running = 1;
    spineparse::StageContext ctx;
    ctx.total_threads = 4;
    ctx.running_calls = [&running] { return running; };
    NetworkSetup setup;  // CPU
    std::mutex unused;
    NetworkCall call(setup, ctx, &unused);
    EXPECT_EQ(call.threads(), 4);
    EXPECT_EQ(at::get_num_threads(), 4);
    running = 2;
    call.refresh();
    EXPECT_EQ(at::get_num_threads(), 2);
    running = 4;
    call.refresh();
    EXPECT_EQ(at::get_num_threads(), 1);
    EXPECT_TRUE(unused.try_lock());  // the CPU path never holds the device lock
    unused.unlock();
  });
  t.join();
}
