// The precision a network runs in, per machine (nn/precision.hpp), and the kernels that make
// bfloat16 fast keeping the results: the sub-pixel form of the transposed convolutions, and the
// FLOP counts that bench reports against.
#include <gmock/gmock.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <tuple>
#include <vector>

#if __has_include(<oneapi/dnnl/dnnl.hpp>)
#include <oneapi/dnnl/dnnl.hpp>

#include "nn/onednn_conv.hpp"
#endif
#include "nn/int8_rows.hpp"
#include "nn/networks.hpp"
#include "nn/peak.hpp"
#include "nn/precision.hpp"
#include "nn/torch_util.hpp"

using namespace spineparse::nn;
using ::testing::HasSubstr;

namespace {
CpuFeatures cpu(bool avx512, bool bf16, bool amx) {
  CpuFeatures f;
  f.avx2 = f.fma = true;
  f.avx512f = avx512;
  f.avx512_bf16 = bf16;
  f.amx_tile = f.amx_bf16 = amx;
  return f;
}
}  // namespace

TEST(Device, NamesAreCanonicalWithAnIndexOnCudaWithOrWithoutAGpu) {
  using spineparse::nn::canonical_device;
  EXPECT_EQ(canonical_device("cpu", false, 0), "cpu");
  EXPECT_EQ(canonical_device("auto", false, 0), "cpu");
  EXPECT_EQ(canonical_device("auto", true, 0), "cpu");
  EXPECT_EQ(canonical_device("auto", true, 2), "cuda:0");
  EXPECT_EQ(canonical_device("cuda", true, 1), "cuda:0");  // never index -1
  EXPECT_EQ(canonical_device("cuda:1", true, 2), "cuda:1");
  EXPECT_THROW(canonical_device("cuda:2", true, 2), std::runtime_error);
  EXPECT_THROW(canonical_device("cuda", false, 0), std::runtime_error);
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "cuda0", "CUDA", ""})
    EXPECT_THROW(canonical_device(bad, true, 4), std::runtime_error) << bad;
  try {
    canonical_device("cuda:3", true, 2);
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("device 'cuda:3': only 2 GPU(s) visible"));
  }
  // On this machine: a name the network stages can use, equal for cuda and cuda:0.
  if (torch::cuda::is_available())
    EXPECT_EQ(spineparse::nn::parse_device("cuda"), spineparse::nn::parse_device("cuda:0"));
  else
    EXPECT_EQ(spineparse::nn::parse_device("auto").str(), "cpu");
}

TEST(Precision, AutoFollowsTheMachine) {
  auto amx = choose_precision("auto", false, cpu(true, true, true));
  EXPECT_EQ(amx.precision, Precision::kBFloat16);
  EXPECT_THAT(amx.reason, HasSubstr("AMX-BF16"));
  auto zen = choose_precision("auto", false, cpu(true, true, false));
  EXPECT_EQ(zen.precision, Precision::kBFloat16);
  EXPECT_THAT(zen.reason, HasSubstr("AVX512_BF16"));
  for (const auto& f : {cpu(true, false, false), cpu(false, false, false)}) {
    auto c = choose_precision("auto", false, f);
    EXPECT_EQ(c.precision, Precision::kFloat32);
    EXPECT_THAT(c.reason, HasSubstr("no native bfloat16"));
  }
  EXPECT_EQ(choose_precision("auto", true, cpu(false, false, false)).precision,
            Precision::kFloat16);
}

TEST(Precision, ExplicitChoicesAndTheirLimits) {
  EXPECT_EQ(choose_precision("fp32", false, cpu(true, true, true)).precision, Precision::kFloat32);
  auto emulated = choose_precision("bf16", false, cpu(true, false, false));
  EXPECT_EQ(emulated.precision, Precision::kBFloat16);
  EXPECT_THAT(emulated.reason, HasSubstr("emulated"));
  EXPECT_EQ(choose_precision("bf16", true, cpu(true, false, false)).precision,
            Precision::kBFloat16);
  EXPECT_EQ(choose_precision("fp16", true, cpu(true, false, false)).precision, Precision::kFloat16);
  EXPECT_THROW(
      {
        try {
          choose_precision("fp16", false, cpu(true, true, true));
        } catch (const std::runtime_error& e) {
          EXPECT_THAT(e.what(), HasSubstr("needs CUDA"));
          throw;
        }
      },
      std::runtime_error);
  EXPECT_THROW(choose_precision("half", false, cpu(true, true, true)), std::runtime_error);
  EXPECT_EQ(choose_precision("int8", false, cpu(true, false, false)).precision, Precision::kInt8);
  EXPECT_STREQ(precision_name(Precision::kInt8), "int8");
  EXPECT_THAT([] { choose_precision("int8", true, cpu(true, false, false)); },
              ::testing::ThrowsMessage<std::runtime_error>(HasSubstr("for the CPU")));
  // auto never reaches int8 by itself (the fine stage takes it for calibrated weights).
  EXPECT_NE(choose_precision("auto", false, cpu(true, true, true)).precision, Precision::kInt8);
}

// bench's int8 peak: oneDNN's int8 convolution and matrix product, measured where this build has
// oneDNN's own API; refused on CUDA.
TEST(Precision, TheInt8PeakIsMeasuredOnTheCpu) {
  if (!has_fused_onednn()) GTEST_SKIP() << "no oneDNN API in this build";
  const PeakProbe p = measure_peak(Precision::kInt8, "cpu", 1);
  EXPECT_EQ(p.precision, "int8");
  EXPECT_GT(p.conv_gflops, 1.0);
  EXPECT_GT(p.gemm_gflops, 1.0);
  EXPECT_THROW(measure_peak(Precision::kInt8, "cuda:0", 1), std::runtime_error);
}

// The detected features agree with the kernel's own list of CPU flags.
TEST(Precision, DetectionAgreesWithProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  const auto has = [&](const char* f) {
    return flags.find(" " + std::string(f) + " ") != std::string::npos;
  };
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(f.avx512f, has("avx512f"));
  EXPECT_EQ(f.avx2, has("avx2"));
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (!cap) {
    EXPECT_EQ(f.avx512_bf16, has("avx512_bf16"));
    EXPECT_EQ(f.amx_bf16, has("amx_bf16"));
  }
  EXPECT_FALSE(f.model.empty());
}

// A transposed convolution (kernel 3, stride 2, padding 1, output padding 1) and its sub-pixel
// form give the same output, for odd and even sizes.
TEST(Precision, SubPixelConvolutionEqualsTheTransposedOne) {
  torch::manual_seed(5);
  c10::InferenceMode im;
  auto w = torch::randn({6, 4, 3, 3}), b = torch::randn({4});
  for (auto shape : {std::vector<int64_t>{2, 6, 5, 7}, std::vector<int64_t>{1, 6, 8, 8}}) {
    auto x = torch::randn(shape);
    auto want = torch::conv_transpose2d(x, w, b, 2, 1, 1);
    auto z = torch::conv2d(x, subpixel_weights(w), b.repeat({4}), 1, 1);
    auto got = subpixel_shuffle(z);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-5);
  }
}

namespace {
// What the int8 ResUNet2D's elementwise passes must give: v saturated, rounded to nearest even.
int8_t reference_int8(float v) {
  return static_cast<int8_t>(std::nearbyint(std::clamp(v, -127.f, 127.f)));
}
}  // namespace

// The int8 passes (nn/int8_rows.hpp), in whichever build this CPU runs (AVX-512, AVX2 or
// baseline): ties to even, saturation, no fused multiply-add, against a scalar reference, for
// channel counts that are no multiple of a vector.
TEST(Precision, Int8PassesRoundToNearestEvenAndSaturate) {
  const std::vector<float> ties = {0.5f,    1.5f,   2.5f,   -0.5f, -1.5f,  -2.5f, 126.5f,
                                   -126.5f, 127.4f, 127.6f, 300.f, -300.f, 1e9f,  -1e9f};
  std::vector<int8_t> got(ties.size());
  const float one = 1.f;
  int8_rows::quantize_pixels(ties.data(), &one, got.data(), static_cast<int64_t>(ties.size()), 1);
  for (std::size_t i = 0; i < ties.size(); ++i)
    EXPECT_EQ(got[i], reference_int8(ties[i])) << ties[i];

  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-400.f, 400.f), scale(0.01f, 3.f);
  for (int64_t c : {1, 21, 37}) {
    const int64_t pixels = 4099;
    std::vector<float> x(static_cast<std::size_t>(pixels * c)), inv(static_cast<std::size_t>(c));
    for (auto& v : x) v = u(rng);
    for (auto& v : inv) v = scale(rng);
    std::vector<int8_t> q(x.size());
    int8_rows::quantize_pixels(x.data(), inv.data(), q.data(), pixels, c);
    int wrong = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
      wrong += q[i] != reference_int8(x[i] * inv[i % static_cast<std::size_t>(c)]);
    EXPECT_EQ(wrong, 0) << c << " channels";
  }

  // 2x2 max pooling rows: every channel, both columns and both rows of each output pixel.
  for (int64_t c : {1, 21, 64}) {
    const int64_t w = 9;
    std::vector<uint8_t> r0(static_cast<std::size_t>(2 * w * c)), r1(r0.size());
    for (auto& v : r0) v = static_cast<uint8_t>(rng() % 256);
    for (auto& v : r1) v = static_cast<uint8_t>(rng() % 256);
    std::vector<uint8_t> d(static_cast<std::size_t>(w * c) + 1, 7);
    int8_rows::max_pool_row(r0.data(), r1.data(), d.data(), w, c);
    int wrong = 0;
    for (int64_t j = 0; j < w; ++j)
      for (int64_t k = 0; k < c; ++k) {
        const auto at = [&](const std::vector<uint8_t>& r, int64_t x) { return r[x * c + k]; };
        wrong += d[j * c + k] != std::max({at(r0, 2 * j), at(r0, 2 * j + 1), at(r1, 2 * j),
                                           at(r1, 2 * j + 1)});
      }
    EXPECT_EQ(wrong, 0) << c << " channels";
    EXPECT_EQ(d.back(), 7) << "written past the row";
  }

  // Sums a fused multiply-add would round differently: 6 x fl(1/3) rounds to 2, so 2 - 1.5 is a
  // tie (0) where the fused 0.50000006 gives 1; likewise 1.5 - 6 x fl(1/3) gives 0, fused -1.
  const float third = 1.f / 3.f;
  for (auto [sv, zv, a, b] : {std::tuple<uint8_t, int8_t, float, float>{6, -3, third, 0.5f},
                              std::tuple<uint8_t, int8_t, float, float>{3, -6, 0.5f, third}}) {
    const int64_t c = 37;
    std::vector<uint8_t> s(2 * c, sv);
    std::vector<int8_t> z(4 * c, zv), d(2 * c, 99);
    int8_rows::skip_sum_row(s.data(), z.data(), d.data(), 2, c, 2 * c, a, b);
    EXPECT_EQ(std::count(d.begin(), d.end(), int8_t{0}), 2 * c) << int{sv} << ", " << int{zv};
  }

  std::uniform_int_distribution<int> byte(0, 255);
  for (int64_t c : {3, 32, 45}) {
    const int64_t w = 1001, zc = 4 * c + 5;  // odd width; phases at (x % 2) c within zc channels
    std::vector<uint8_t> s(static_cast<std::size_t>(w * c));
    std::vector<int8_t> z(static_cast<std::size_t>((w / 2 + 1) * zc)), d(s.size());
    for (auto& v : s) v = static_cast<uint8_t>(byte(rng));
    for (auto& v : z) v = static_cast<int8_t>(byte(rng) - 128);
    const float a = scale(rng), b = scale(rng);
    int8_rows::skip_sum_row(s.data(), z.data(), d.data(), w, c, zc, a, b);
    int wrong = 0;
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k) {
        const float sa = s[static_cast<std::size_t>(x * c + k)] * a;
        const float zb = z[static_cast<std::size_t>((x / 2) * zc + (x % 2) * c + k)] * b;
        wrong += d[static_cast<std::size_t>(x * c + k)] != reference_int8(sa + zb);
      }
    EXPECT_EQ(wrong, 0) << c << " channels";
  }
}

// The FLOP counts: the full-size ResUNet2D is about 65 GFLOP per 256 x 512 slice and the GCSN
// about 77 per 18-slice case.
TEST(Precision, FlopCountsOfTheFullSizeNetworks) {
  ResUNet2d fine;
  Gcsn coarse(true);
  EXPECT_NEAR(forward_flops(fine, 256, 512) / 1e9, 64.6, 0.5);
  EXPECT_NEAR(forward_flops(coarse, 18, 128, 256) / 1e9, 76.9, 1.0);
  // Doubling the slices doubles the GCSN's convolutions (no strides along the slices); only the
  // small GCN layers stay the same.
  EXPECT_NEAR(forward_flops(coarse, 36, 128, 256) / forward_flops(coarse, 18, 128, 256), 2.0, 1e-4);
  // A quarter of the pixels, a quarter of the work (sizes divisible by 16).
  EXPECT_NEAR(forward_flops(fine, 128, 256) / forward_flops(fine, 256, 512), 0.25, 1e-12);
}

namespace {
// A GCSN of small width with random weights and statistics (in eval mode), fused or plain.
Gcsn random_gcsn(bool optimized) {
  Gcsn net(true, 20, 0.05);
  torch::manual_seed(9);
  for (auto& p : net->parameters()) p.uniform_(-0.3, 0.3);
  for (auto& b : net->named_buffers()) {
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
    if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.2, 0.2);
  }
  net->eval();
  if (optimized) optimize_for_inference(net, /*cuda=*/false);
  return net;
}

// The fused network's logits are the plain one's (float32 rounding) for 5 and 20 slices: the
// dilations below and above the slice count (5: the exit flow's 2 below, ASPP's 6, 12 and 18
// above; 20: all below).
void expect_same_logits(Gcsn& plain, Gcsn& fast) {
  for (int64_t slices : {5, 20}) {
    auto x = torch::randn({1, 1, slices, 32, 64});
    auto want = plain->forward(x).logits, got = fast->forward(x).logits;
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * want.abs().max().item<double>())
        << slices << " slices";
  }
}
}  // namespace

// With oneDNN held to AVX2 (a CPU without AVX-512), every convolution of the fused GCSN runs on
// one of its kernels, none on its reference implementation (the graph module's skip, a ReLU then
// a sum into the features, did: 1.1 s of a 2 s pass), and the outputs stay the plain network's.
// oneDNN takes the limit only before its first kernel runs: ctest runs each test in a process of
// its own.
TEST(Precision, TheFusedGcsnRunsNoReferenceConvolutionOnAvx2) {
  if (!has_fused_onednn()) GTEST_SKIP() << "built without oneDNN's own API";
#if __has_include(<oneapi/dnnl/dnnl.hpp>)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "this CPU has no AVX2";
  try {
    dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx2);
  } catch (const dnnl::error&) {
    GTEST_SKIP() << "oneDNN ran before in this process (run this test alone, as ctest does)";
  }
  c10::InferenceMode im;
  Gcsn plain = random_gcsn(false), fast = random_gcsn(true);
  const int before = onednn::reference_convolutions_run();
  expect_same_logits(plain, fast);
  EXPECT_EQ(onednn::reference_convolutions_run() - before, 0);
#endif
}

// The GCSN with its separable convolutions as fused oneDNN primitives (optimize on the CPU)
// equals the plain network in float32 (dilations below and above the slice count, in-plane
// strides).
TEST(Precision, FusedSeparableConvolutionsKeepTheGcsnOutputs) {
  if (!has_fused_onednn()) GTEST_SKIP() << "built without oneDNN's own API";
  c10::InferenceMode im;
  Gcsn plain = random_gcsn(false), fast = random_gcsn(true);
  EXPECT_EQ(fused_separable_convolutions(fast), 22);  // every one (three with in-plane strides)
  // the entry convolutions, the 1x1x1 ones of ASPP, decoder, graph branch and the blocks' skips
  EXPECT_EQ(fused_plain_convolutions(fast), 13);
  expect_same_logits(plain, fast);
}
