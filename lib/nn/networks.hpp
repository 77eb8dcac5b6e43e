// The two networks of SpineParseNet as native torch::nn modules whose parameter and buffer names
// and shapes are those of the original state dicts (spec Appendix A, A2), so the original's
// weights load one to one.
//
//   GCSN (gcn_mode 2, spec 3):  DeepLabv3+ 3-D Xception encoder, ASPP, two skip decoders and the
//                               graph module (region pooling -> 3 GCN layers over the spine
//                               adjacency -> region unpooling). with_graph=false gives the
//                               DeepLabv3+ pretraining network (spec 3.7).
//   ResUNet2D (spec 4.2):       in 21 = [MR, 20 bilinearly upsampled coarse logits], out 20.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <vector>

namespace spineparse::nn {

class FusedSeparableConv;  // nn/onednn_separable.hpp
class FusedConv3d;         // nn/onednn_separable.hpp

// Depthwise 3x3x3 -> BN -> [ReLU] -> pointwise 1x1x1 -> BN -> [ReLU]. The Xception blocks use it
// without activations (SepSame), the exit flow, ASPP and decoders with them (SepASPP).
struct SeparableConvImpl : torch::nn::Module {
  SeparableConvImpl(int64_t in, int64_t out, std::vector<int64_t> stride, int64_t dilation,
                    bool activations);
  torch::Tensor forward(const torch::Tensor& x);
  // relu(forward(x)), the ReLU fused into the pointwise convolution where it runs fused.
  torch::Tensor forward_relu(const torch::Tensor& x);
  torch::nn::Conv3d depthwise{nullptr}, pointwise{nullptr};
  torch::nn::BatchNorm3d depthwise_bn{nullptr}, pointwise_bn{nullptr};
  bool activations;
  std::vector<int64_t> stride;
  int64_t dilation;
  bool split_depthwise = false;  // set by split_depthwise_convolutions() (inference on CPU)
  // Set with split_depthwise where this library has oneDNN's own API: the same computation as
  // fused oneDNN primitives.
  std::shared_ptr<const FusedSeparableConv> fused;
};
TORCH_MODULE(SeparableConv);

struct XceptionBlockImpl : torch::nn::Module {
  // id: 1, 2, 3 or 20 (each block has its own layout in the original).
  XceptionBlockImpl(int id, int64_t in, int64_t out);
  // Returns the block output; for block 2 also its low-level feature L4 (before any ReLU).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x);
  int id;
  torch::nn::Conv3d skip{nullptr};
  torch::nn::BatchNorm3d skipbn{nullptr};
  std::vector<SeparableConv> main;  // in order
  // The skip convolution as a fused oneDNN convolution adding into the main path's output (set
  // with the main path's fused separable convolutions).
  std::shared_ptr<const FusedConv3d> fused_skip;
};
TORCH_MODULE(XceptionBlock);

struct GcsnOutput {
  torch::Tensor logits;            // [N,20,D,H,W]
  torch::Tensor deep_supervision;  // [N,20,D,H/4,W/4]; undefined without the graph module
};

struct GcsnLayers;
struct GcsnImpl : torch::nn::Module {
  // width scales every channel count (1 = the original network; the demo models use less).
  explicit GcsnImpl(bool with_graph = true, int64_t n_classes = 20, double width = 1.0);
  // x [N,1,D,H,W] in any float dtype (converted to the network's); outputs in float32.
  GcsnOutput forward(const torch::Tensor& x);
  bool with_graph;
  double width;
  torch::Tensor adjacency;  // normalised spine adjacency (not a parameter, not in checkpoints)
  std::shared_ptr<GcsnLayers> layers;  // typed handles to the registered submodules
};
TORCH_MODULE(Gcsn);

struct ExtResBlockImpl : torch::nn::Module {
  ExtResBlockImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv[3] = {nullptr, nullptr, nullptr};
  torch::nn::BatchNorm2d bn[3] = {nullptr, nullptr, nullptr};
};
TORCH_MODULE(ExtResBlock);

class FusedResUNet;  // nn/onednn_resunet.hpp

struct ResUNet2dImpl : torch::nn::Module {
  explicit ResUNet2dImpl(int64_t in_channels = 21, int64_t out_channels = 20, int64_t f_maps = 32);
  // image [N,1,H,W], unary (coarse logits) [N,20,h,w] -> logits [N,20,H,W], float32: channels-last
  // where the network ran channels-last on the CPU (the layout its convolutions write), plain
  // NCHW otherwise. The inputs are upsampled and concatenated in their dtype, then converted to
  // the network's.
  torch::Tensor forward(const torch::Tensor& image, const torch::Tensor& unary);
  // What the CPU path's first convolution reads: [image, unary upsampled bilinearly to the
  // image's size] in `dtype`, channels-last.
  torch::Tensor joined_input(const torch::Tensor& image, const torch::Tensor& unary,
                             torch::ScalarType dtype) const;
  std::vector<ExtResBlock> encoders_;
  std::vector<torch::nn::ConvTranspose2d> upsample_;
  std::vector<ExtResBlock> decoders_;
  torch::nn::Conv2d final_conv{nullptr};
  // Set by use_onednn_layout(): each convolution's weights (channels-last) and its geometry, by
  // module.
  struct OneDnnConv {
    torch::Tensor weight;
    std::vector<int64_t> padding, stride, dilation;
    int64_t groups = 1;
  };
  std::map<const torch::nn::Conv2dImpl*, OneDnnConv> onednn_weights_;
  // Set by use_onednn_layout(): each transposed convolution as a sub-pixel convolution (see
  // subpixel_weights) and its bias repeated per phase.
  std::vector<OneDnnConv> onednn_upsample_;
  std::vector<torch::Tensor> onednn_upsample_bias_;
  // Set by use_onednn_layout() when built with oneDNN's own API: the whole network as fused
  // oneDNN primitives (nn/onednn_resunet.hpp), used for inputs whose sizes divide by 16.
  std::shared_ptr<const FusedResUNet> fused_;

 private:
  // Decoder k's transposed convolution; on the CPU in bfloat16 as a sub-pixel convolution.
  torch::Tensor upsample(int k, const torch::Tensor& x) const;
  // x: [image, upsampled unary] in channels-last memory -> logits, channels-last.
  torch::Tensor forward_onednn(torch::Tensor x);
  torch::Tensor conv_onednn(const torch::nn::Conv2d& conv, const torch::Tensor& x) const;
  torch::Tensor block_onednn(const ExtResBlock& block, const torch::Tensor& x) const;
};
TORCH_MODULE(ResUNet2d);

// Inference-time rewrites that keep the results (to float rounding; tests compare them):
// every BatchNorm folded into the convolution before it (the network must be in eval mode;
// call after place(): the folded biases are created on the weights' device and dtype), and
// convolution weights in channels-last layout (oneDNN's native one; feed channels-last inputs).
void fold_batchnorm(Gcsn& net);
void fold_batchnorm(ResUNet2d& net);
void to_channels_last(torch::nn::Module& net);
// Runs the GCSN's depthwise 3-D convolutions (stride 1 along the slices) as three 2-D depthwise
// convolutions (one per kernel plane, slices as the batch, channels-last) summed with the plane's
// slice offset. The sum is the same convolution; LibTorch 1.13 gives oneDNN plain NCDHW tensors,
// for which it runs a grouped 3-D convolution as im2col + GEMM (three quarters of the GCSN's time
// on this CPU), while 2-D depthwise convolutions on channels-last tensors get oneDNN's direct AVX2
// kernel: 6-9x faster per layer. Their output stays in channels-last-3d memory, and the 1x1x1
// convolution after each reads it as one matrix product over the voxels, so chains of separable
// convolutions run without transposing copies. With oneDNN's own API (has_fused_onednn) each
// switched convolution runs as fused oneDNN primitives instead (FusedSeparableConv: the planes'
// sums, biases and ReLUs inside the convolutions), and so do the entry convolutions (3x3x3, by
// planes too) and the 1x1x1 ones (FusedConv3d: ReLUs, and the residual and graph-branch sums,
// fused). For CPU inference of a folded network; returns how many separable convolutions it
// switched.
int split_depthwise_convolutions(Gcsn& net);
// How many of the GCSN's separable convolutions run as fused oneDNN primitives, and how many of
// its other convolutions (the two entry convolutions, the 1x1x1 ones) as fused oneDNN convolutions.
int fused_separable_convolutions(const Gcsn& net);
int fused_plain_convolutions(const Gcsn& net);

// A transposed convolution with kernel 3, stride 2, padding 1 and output padding 1 (weight
// [in, out, 3, 3]) as a sub-pixel convolution: an ordinary 2x2 convolution with padding 1 whose
// 4 x out output channels, ordered (row phase, column phase, out), are the four output phases.
// Output (t, u) of that convolution, for t, u >= 1, reads input rows t-1, t and columns u-1, u,
// and its channel (ri, rj, o) is the transposed convolution's output (2(t-1)+ri, 2(u-1)+rj, o).
// Same sums (to float rounding), but a kernel that oneDNN has in every precision: LibTorch 1.13
// has no bfloat16 transposed convolution on the CPU.
torch::Tensor subpixel_weights(const torch::Tensor& transposed_weight);
// The transposed convolution's output [N, out, 2H, 2W] from the sub-pixel convolution's output z
// [N, 4 x out, H+1, W+1], in one copy, in channels-last memory.
torch::Tensor subpixel_shuffle(const torch::Tensor& z);

// CPU inference of a BatchNorm-folded ResUNet2D through oneDNN's convolutions with the activations
// in channels-last memory (NHWC, the layout oneDNN's AVX-512 and AMX kernels read and write, so no
// activation is reordered between layers) from the first convolution to the last, each weight
// converted once here. The transposed convolutions run as sub-pixel convolutions
// (subpixel_weights); the phase interleaving writes channels-last memory directly. Float32 or
// bfloat16 (the network's dtype: inputs are converted to it, the logits come back in it, plain
// NCHW). Where this library was built with oneDNN's own API (libdnnl-dev), each convolution also
// runs with its ReLU and residual sum fused (FusedResUNet). Returns false (and changes nothing)
// for a network of another dtype or device, or when LibTorch was built without oneDNN.
bool use_onednn_layout(ResUNet2d& net);
// Whether this library was built with oneDNN's own API (the fused ResUNet2D).
bool has_fused_onednn();

// int8 ResUNet2D on the CPU (has_fused_onednn(); FusedResUNet in nn/onednn_resunet.hpp): weights
// quantized per output channel, each activation at the scale of its calibrated range.
// record_activation_ranges runs a float32 network after use_onednn_layout on one batch and
// raises `ranges` (int8_activation_points() entries, created as zeros) to the largest |value| of
// each activation (returning the logits, as forward does); use_int8 then switches such a network
// to int8 with those ranges. Both throw
// std::runtime_error naming what is missing (oneDNN's own API, the fused float32 network, an int8
// kernel for this CPU) and std::invalid_argument for ranges of the wrong count or not positive.
int int8_activation_points();
torch::Tensor record_activation_ranges(const ResUNet2d& net, const torch::Tensor& image,
                                       const torch::Tensor& unary, std::vector<float>& ranges);
void use_int8(ResUNet2d& net, const std::vector<float>& ranges);

// What the network stages' `optimize` parameter does, once placed on their device: BatchNorm
// folding everywhere; on CPU the depthwise split (GCSN) and oneDNN's layout (ResUNet2D); on CUDA
// channels-last (on the CPU it made ResUNet2D 27 % slower and the GCSN no faster). Feed
// channels-last inputs when uses_channels_last(device).
// The GCSN's region pooling (spec 3.3): the soft assignment S [N,V,K] normalised over the
// voxels, times the features T [N,V,C] -> [N,K,C], never in float16 whatever autocast is on
// (the result in T's dtype).
torch::Tensor region_pool(const torch::Tensor& S, const torch::Tensor& T);

// How the GCSN's depthwise 3x3x3 convolutions run after optimize_for_inference: auto, planes on
// the CPU (split_depthwise_convolutions) and grouped 3-D on CUDA, where the planes have not yet
// been measured against cuDNN's grouped path.
enum class Depthwise { kAuto, kPlanes, kGrouped };
void optimize_for_inference(Gcsn& net, bool cuda, Depthwise depthwise = Depthwise::kAuto);
void optimize_for_inference(ResUNet2d& net, bool cuda, Depthwise unused = Depthwise::kAuto);
inline bool uses_channels_last(bool cuda) { return cuda; }

// The width of a GCSN state dict (conv5 has 1024 x width filters) and the f_maps of a ResUNet2D
// one.
double gcsn_width_of(const std::map<std::string, torch::Tensor>& state);
int64_t resunet_fmaps_of(const std::map<std::string, torch::Tensor>& state);

// Floating-point operations (multiply and add counted separately) of one forward pass: every
// convolution's 2 x weights x output voxels, and the graph module's matrix products; no
// elementwise work, interpolation or softmax. GCSN input [1,1,D,H,W]; ResUNet2D one slice of
// H x W. For reports of achieved GFLOP/s.
double forward_flops(const Gcsn& net, int64_t D, int64_t H, int64_t W);
double forward_flops(const ResUNet2d& net, int64_t H, int64_t W);

// Spec 3.4 / Appendix B.
torch::Tensor spine_adjacency();

// Loads a state dict into a module, checking every name, shape and dtype; all problems are
// reported in one exception. `allow_unexpected`: extra tensors are ignored (loading the
// DeepLabv3+ subset of GCSN weights).
void load_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                const std::string& source, bool allow_unexpected = false);
std::map<std::string, torch::Tensor> state_of(const torch::nn::Module& module);

}  // namespace spineparse::nn
