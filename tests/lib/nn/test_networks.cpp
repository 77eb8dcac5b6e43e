// The networks against the original code's outputs (../shared/reference), within the tolerances
// of its README: max |difference| <= 1e-3 x max |reference| for every output tensor.
#include <ATen/autocast_mode.h>
#include <gmock/gmock.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "nn/checkpoint.hpp"
#include "nn/networks.hpp"
#include "nn/safetensors.hpp"
#include "nn/torch_util.hpp"
#include "test_util.hpp"

using namespace spineparse::nn;
namespace fs = std::filesystem;

namespace {
std::string ref(const std::string& name) {
  return spineparse::testing::reference_dir() + "/" + name;
}

void expect_close(const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double scale = want.abs().max().item<double>();
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LE(diff, 1e-3 * scale) << what << ": max |diff| " << diff << ", max |ref| " << scale;
}

// A network's reference vectors: the original's weights and its inputs and outputs on them.
struct ReferenceVectors {
  std::map<std::string, torch::Tensor> weights, io;
};
ReferenceVectors reference_vectors(const std::string& network) {
  return {load_safetensors(::ref(network + "_weights.safetensors")).tensors,
          load_safetensors(::ref(network + "_io.safetensors")).tensors};
}

// The reference GCSN (weights of the original) in eval mode.
Gcsn reference_gcsn(const std::map<std::string, torch::Tensor>& w) {
  Gcsn net(true);
  load_state(*net, w, "gcsn_weights.safetensors");
  net->eval();
  return net;
}

// The reference ResUNet2D in eval mode.
ResUNet2d reference_resunet(const std::map<std::string, torch::Tensor>& w) {
  ResUNet2d net;
  load_state(*net, w, "resunet2d_weights.safetensors");
  net->eval();
  return net;
}

#define REQUIRE_REFERENCE() \
  if (!fs::exists(ref("manifest.json"))) GTEST_SKIP() << "no ../shared/reference"
}  // namespace

TEST(Networks, ParameterCountsMatchTheOriginal) {
  auto count = [](const torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  EXPECT_EQ(count(*Gcsn(true)), 4231044);
  EXPECT_EQ(count(*Gcsn(false)), 4129796);
  EXPECT_EQ(count(*ResUNet2d()), 11784852);
}

TEST(Networks, AdjacencyIsAppendixB) {
  auto a = spine_adjacency();
  EXPECT_FLOAT_EQ(a[0][0].item<float>(), 1.0f);
  EXPECT_NEAR(a[1][1].item<float>(), 2.0 / 3, 1e-6);
  EXPECT_NEAR(a[1][11].item<float>(), 1 / std::sqrt(12.0), 1e-6);
  EXPECT_NEAR(a[10][19].item<float>(), 1 / std::sqrt(12.0), 1e-6);
  EXPECT_FLOAT_EQ(a[5][5].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(a[5][14].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(a[5][15].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(a[5][16].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(a[0][11].item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(a, a.t()));
  EXPECT_EQ((a != 0).sum().item<int64_t>(), 20 + 2 * 18);  // diagonal + 18 vertebra-disc edges
}

TEST(Networks, GcsnMatchesTheOriginal) {
  REQUIRE_REFERENCE();
  torch::NoGradGuard ng;
  const auto [w, io] = reference_vectors("gcsn");
  Gcsn net = reference_gcsn(w);
  auto out = net->forward(io.at("input"));
  expect_close(out.logits, io.at("logits"), "GCSN logits");
  expect_close(out.deep_supervision, io.at("deep_supervision"), "GCSN deep supervision");

  Gcsn deeplab(false);
  load_state(*deeplab, w, "gcsn_weights.safetensors (DeepLabv3+ subset)", true);
  deeplab->eval();
  expect_close(deeplab->forward(io.at("input")).logits, io.at("deeplab_logits"),
               "DeepLabv3+ logits");
}

TEST(Networks, ResUNet2dMatchesTheOriginal) {
  REQUIRE_REFERENCE();
  torch::NoGradGuard ng;
  const auto [w, io] = reference_vectors("resunet2d");
  ResUNet2d net = reference_resunet(w);
  auto logits = net->forward(io.at("image"), io.at("unary"));
  expect_close(logits, io.at("logits"), "ResUNet2D logits");
  expect_close(torch::softmax(logits, 1), io.at("softmax"), "ResUNet2D softmax");
}

// The inference rewrites (BatchNorm folded into the convolutions, channels-last weights and
// inputs) keep the original's outputs within the same tolerance.
TEST(Networks, FoldedChannelsLastNetworksMatchTheOriginal) {
  REQUIRE_REFERENCE();
  torch::NoGradGuard ng;
  const auto [w, io] = reference_vectors("gcsn");
  Gcsn net = reference_gcsn(w);
  fold_batchnorm(net);
  to_channels_last(*net);
  EXPECT_FALSE(torch::equal(state_of(*net).at("xception_features.conv1.weight"),
                            w.at("xception_features.conv1.weight")));
  EXPECT_EQ(split_depthwise_convolutions(net),
            22);  // every separable convolution (three with an in-plane stride of 2)
  EXPECT_EQ(fused_plain_convolutions(net), has_fused_onednn() ? 13 : 0);
  auto x = io.at("input").contiguous(torch::MemoryFormat::ChannelsLast3d);
  auto out = net->forward(x);
  expect_close(out.logits, io.at("logits"), "folded GCSN logits");
  expect_close(out.deep_supervision, io.at("deep_supervision"), "folded GCSN deep supervision");

  const auto [wr, ior] = reference_vectors("resunet2d");
  ResUNet2d unet = reference_resunet(wr);
  fold_batchnorm(unet);
  to_channels_last(*unet);
  EXPECT_TRUE(unet->decoders_[3]->bn[2].is_empty());
  EXPECT_TRUE(unet->encoders_[0]->conv[0]->bias.defined());
  auto logits =
      unet->forward(ior.at("image"), ior.at("unary").contiguous(torch::MemoryFormat::ChannelsLast));
  expect_close(logits, ior.at("logits"), "folded ResUNet2D logits");
}

// What the fine stage runs on the CPU (optimize=true): BatchNorm folded and the activations in
// oneDNN's layout. The original's outputs within the same tolerance, and the same as the plain
// folded network to float rounding, for a batch of several slices too.
TEST(Networks, ResUNet2dInOneDnnLayoutMatchesTheOriginal) {
  REQUIRE_REFERENCE();
  if (!at::hasMKLDNN()) GTEST_SKIP() << "this LibTorch has no oneDNN";
  c10::InferenceMode im;
  const auto [w, io] = reference_vectors("resunet2d");
  ResUNet2d plain = reference_resunet(w), fast = reference_resunet(w);
  fold_batchnorm(plain);
  optimize_for_inference(fast, /*cuda=*/false);
  EXPECT_EQ(fast->onednn_weights_.size(),
            9u * 3u + 1u);  // three per residual block, and the final 1x1
  // scripts/setup installs libdnnl-dev: the fused primitives run (the inputs divide by 16).
  EXPECT_TRUE(has_fused_onednn());
  EXPECT_TRUE(fast->fused_ != nullptr);
  auto logits = fast->forward(io.at("image"), io.at("unary"));
  EXPECT_FALSE(logits.is_mkldnn());
  expect_close(logits, io.at("logits"), "ResUNet2D logits in oneDNN layout");
  torch::manual_seed(3);
  auto image = torch::randn({3, 1, 64, 128}), unary = torch::randn({3, 20, 32, 64});
  auto want = plain->forward(image, unary), got = fast->forward(image, unary);
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * want.abs().max().item<double>());
  // A network in another dtype (here float64) keeps the plain path.
  ResUNet2d wide = reference_resunet(w);
  wide->to(torch::kDouble);
  optimize_for_inference(wide, /*cuda=*/false);
  EXPECT_TRUE(wide->onednn_weights_.empty());
  auto as_double = wide->forward(image.to(torch::kDouble), unary.to(torch::kDouble));
  EXPECT_LE((as_double.to(torch::kFloat) - want).abs().max().item<double>(),
            1e-5 * want.abs().max().item<double>());
}

// int8 against float32 on the original's ResUNet2D: activation ranges recorded on the reference
// slices; the labels (argmax) of those slices, of the slices mirrored and of the slices at 80 %
// contrast agree with float32's on >= 96 % of pixels. These are the reference's random slices
// through its weights, 2.4 % of whose pixels have their two best logits within 0.1 (bfloat16
// agrees on 99.4 %); on real cases the criterion is the pipeline's labels (`spineparse calibrate`
// and tests/tools/cli). A quantization off by a factor (ranges 0.4 x) falls to 0.89. Ranges of
// the wrong count or not positive are refused.
TEST(Networks, ResUNet2dInInt8AgreesWithFloat32) {
  REQUIRE_REFERENCE();
  if (!has_fused_onednn()) GTEST_SKIP() << "int8 needs oneDNN's own API (libdnnl-dev)";
  c10::InferenceMode im;
  const auto [w, io] = reference_vectors("resunet2d");
  ResUNet2d f32 = reference_resunet(w), i8 = reference_resunet(w);
  for (auto* n : {&f32, &i8}) optimize_for_inference(*n, /*cuda=*/false);
  const auto& image = io.at("image");
  const auto& unary = io.at("unary");
  std::vector<float> ranges(static_cast<std::size_t>(int8_activation_points()), 0.f);
  record_activation_ranges(f32, image, unary, ranges);
  use_int8(i8, ranges);
  auto agreement = [&](const torch::Tensor& x, const torch::Tensor& u, const char* what) {
    const auto a = f32->forward(x, u).argmax(1), b = i8->forward(x, u).argmax(1);
    const double agree = (a == b).to(torch::kDouble).mean().item<double>();
    std::printf("int8 vs float32 labels, %s: %.5f\n", what, agree);
    return agree;
  };
  EXPECT_GE(agreement(image, unary, "calibration slices"), 0.96);
  EXPECT_GE(agreement(image.flip({3}), unary.flip({3}), "mirrored"), 0.96);
  EXPECT_GE(agreement(image * 0.8, unary, "80 % contrast"), 0.96);
  EXPECT_THROW(use_int8(i8, {1.f}), std::invalid_argument);
  ranges[3] = 0.f;
  EXPECT_THROW(use_int8(i8, ranges), std::invalid_argument);
}

// depthwise=grouped keeps cuDNN's (here oneDNN's) grouped 3-D convolution after the rewrites,
// planes splits it into 2-D planes as on the CPU; both give the original's outputs. Channels-last
// weights and inputs (what optimize does on CUDA) with the planes too.
TEST(Networks, DepthwiseByPlanesOrGroupedGiveTheSameGcsn) {
  REQUIRE_REFERENCE();
  c10::InferenceMode im;
  const auto [w, io] = reference_vectors("gcsn");
  Gcsn grouped = reference_gcsn(w), planes = reference_gcsn(w);
  optimize_for_inference(grouped, /*cuda=*/false, Depthwise::kGrouped);
  optimize_for_inference(planes, /*cuda=*/true, Depthwise::kPlanes);  // channels-last, as on CUDA
  EXPECT_EQ(fused_separable_convolutions(grouped), 0);  // nothing split, nothing fused
  EXPECT_EQ(fused_plain_convolutions(grouped), 0);
  auto x = io.at("input");
  expect_close(grouped->forward(x).logits, io.at("logits"), "GCSN, grouped depthwise");
  expect_close(planes->forward(x.contiguous(torch::MemoryFormat::ChannelsLast3d)).logits,
               io.at("logits"), "GCSN, depthwise by planes in channels-last memory");
}

// The region pooling divides by a sum over every voxel: each weight about 1 / V. Under autocast
// in a 16-bit type it would lose most of its digits; it stays float32.
TEST(Networks, RegionPoolingStaysFloat32UnderAutocast) {
  torch::manual_seed(5);
  const auto S = torch::softmax(torch::randn({1, 40000, 20}), 2);
  const auto T = torch::randn({1, 40000, 16});
  const auto S64 = S.to(torch::kDouble);
  const auto want = torch::matmul((S64 / S64.sum(1, true)).transpose(1, 2), T.to(torch::kDouble));
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_dtype(at::kCPU, torch::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
#else
  at::autocast::set_autocast_cpu_dtype(torch::kBFloat16);
  at::autocast::set_cpu_enabled(true);
#endif
  ASSERT_EQ(torch::matmul(S.transpose(1, 2), T).scalar_type(), torch::kBFloat16);  // it is on
  const auto got = region_pool(S, T);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCPU, false);
#else
  at::autocast::set_cpu_enabled(false);
#endif
  at::autocast::clear_cache();
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  const double err = (got.to(torch::kDouble) - want).abs().max().item<double>();
  EXPECT_LT(err, 1e-5 * want.abs().max().item<double>());
}

TEST(Networks, LoadingReportsEveryMismatchAtOnce) {
  REQUIRE_REFERENCE();
  auto w = load_safetensors(ref("gcsn_weights.safetensors")).tensors;
  w.erase("semantic.bias");
  w["semantic.weight"] = torch::zeros({19, 256, 1, 1, 1});
  w["xception_features.bn1.running_mean"] =
      w["xception_features.bn1.running_mean"].to(torch::kFloat64);
  w["extra.tensor"] = torch::zeros({1});
  Gcsn net(true);
  try {
    load_state(*net, w, "bad.safetensors");
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_THAT(m, ::testing::HasSubstr("4 problems"));
    EXPECT_THAT(m, ::testing::HasSubstr("missing 'semantic.bias'"));
    EXPECT_THAT(m, ::testing::HasSubstr("'semantic.weight' has shape [19, 256, 1, 1, 1], the "
                                        "network expects [20, 256, 1, 1, 1]"));
    EXPECT_THAT(m, ::testing::HasSubstr("running_mean' is Double"));
    EXPECT_THAT(m, ::testing::HasSubstr("unexpected 'extra.tensor'"));
  }
}

TEST(Safetensors, RoundTrip) {
  spineparse::testing::TempDir d;
  std::map<std::string, torch::Tensor> t = {
      {"a", torch::randn({3, 4})}, {"b", torch::arange(5)}, {"c", torch::ones({2}, torch::kUInt8)}};
  save_safetensors((d / "x.safetensors").string(), t, {{"k", "v"}});
  auto back = load_safetensors((d / "x.safetensors").string());
  EXPECT_EQ(back.metadata.at("k"), "v");
  for (auto& [k, v] : t) EXPECT_TRUE(torch::equal(back.tensors.at(k), v)) << k;
  std::filesystem::resize_file(d / "x.safetensors", 60);
  EXPECT_THROW(load_safetensors((d / "x.safetensors").string()), std::runtime_error);
}

TEST(Checkpoint, ImportingTheOriginalCheckpointGivesBitIdenticalTensors) {
  REQUIRE_REFERENCE();
  auto ck = read_checkpoint(ref("gcsn_best_checkpoint.pytorch"));
  auto want = load_safetensors(ref("gcsn_weights.safetensors")).tensors;
  ASSERT_EQ(ck.state_dict.size(), want.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(ck.state_dict.count(name)) << name;
    const auto& got = ck.state_dict.at(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(got.reshape(t.sizes()), t)) << name;  // bit-identical values
  }
  EXPECT_TRUE(ck.info.count("epoch"));
  Gcsn net(true);
  load_state(*net, ck.state_dict, "checkpoint");  // fits the network as is
}

TEST(Checkpoint, RefusesFilesThatAreNotCheckpoints) {
  spineparse::testing::TempDir d;
  const std::string f = (d / "x.pytorch").string();
  { std::ofstream(f) << "not a zip"; }
  EXPECT_THAT([&] { read_checkpoint(f); },
              ::testing::ThrowsMessage<std::runtime_error>(
                  ::testing::HasSubstr("not a torch.save zip archive")));
}
